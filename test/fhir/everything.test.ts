/*
 * Patient/{id}/$everything for a client that reads one page (Ocean's reference client): the
 * first page holds the Patient, then AllergyIntolerance, MedicationStatement, MedicationRequest,
 * Condition, DocumentReference and Immunization, then the rest — whatever order the chart was
 * loaded in — and paging still returns every resource exactly once while the chart changes.
 */
import type { Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource, putResources } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createTestClient, createTestSite, createTestUser, issueTokens } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let server: TestServer;
let token: string;

const FIRST = [
  'AllergyIntolerance',
  'MedicationStatement',
  'MedicationRequest',
  'Condition',
  'DocumentReference',
  'Immunization',
];

/** A minimal resource of `type` in the Patient's compartment. */
function inChart(type: string, id: string, patientId: string, note = ''): Resource {
  const ref = { reference: `Patient/${patientId}` };
  switch (type) {
    case 'AllergyIntolerance':
    case 'Immunization':
      return { resourceType: type, id, patient: ref, note: note ? [{ text: note }] : undefined } as Resource;
    case 'DocumentReference':
      return {
        resourceType: type,
        id,
        status: 'current',
        subject: ref,
        description: note,
        content: [],
      } as never;
    default:
      return {
        resourceType: type,
        id,
        subject: ref,
        ...(note ? { note: [{ text: note }] } : {}),
      } as Resource;
  }
}

async function get(path: string, bearer = token) {
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
  const json = (await res.json()) as {
    entry?: { resource: { resourceType: string; id: string } }[];
    link: { relation: string; url: string }[];
  };
  return { status: res.status, json };
}

/**
 * The long tail first (300 observations and encounters), then what a referral needs — `perType`
 * of each of its types — in shuffled type order.
 */
async function loadChart(patientId: string, perType = 3) {
  const db = server.ctx.db;
  await putResource(db, { resourceType: 'Patient', id: patientId, name: [{ family: 'Long' }] });
  const tail: Resource[] = [];
  for (let i = 0; i < 150; i++) {
    tail.push(inChart('Observation', `${patientId}-obs-${i}`, patientId));
    tail.push(inChart('Encounter', `${patientId}-enc-${i}`, patientId));
  }
  await putResources(db, tail);
  const wanted: string[] = [];
  for (const type of [
    'Immunization',
    'DocumentReference',
    'Condition',
    'MedicationRequest',
    'AllergyIntolerance',
    'MedicationStatement',
  ])
    for (let i = 0; i < perType; i++) {
      await putResource(db, inChart(type, `${patientId}-${type}-${i}`, patientId));
      wanted.push(`${type}/${patientId}-${type}-${i}`);
    }
  // and some more of the tail after them
  await putResource(db, inChart('Procedure', `${patientId}-proc-late`, patientId));
  return { wanted, total: 1 + tail.length + wanted.length + 1 };
}

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  const user = await createTestUser(server.ctx);
  const client = await createTestClient(server.ctx);
  const { siteNum } = await createTestSite(server.ctx, client.clientId);
  await putResource(server.ctx.db, { resourceType: 'Patient', id: 'long', name: [{ family: 'Long' }] });
  token = (
    await issueTokens(server, {
      client,
      siteNum,
      user,
      patientId: 'long',
      scope: 'openid launch patient/*.read',
    })
  ).body.access_token!;
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await t?.drop();
});

describe('$everything order', () => {
  it('puts allergies, medications, conditions, documents and immunizations on the unpaged first page, in that order', async () => {
    // 40 of each: 240 resources a referral is filled from, after 300 of the tail
    const { wanted, total } = await loadChart('long', 40);
    const r = await get('/fhir/Patient/long/$everything');
    expect(r.status).toBe(200);
    const entries = r.json.entry!.map((e) => `${e.resource.resourceType}/${e.resource.id}`);
    // the whole chart on one page (default _count 1000): nothing is left to a next page
    expect(entries).toHaveLength(total);
    expect(r.json.link.some((l) => l.relation === 'next')).toBe(false);
    expect(entries[0]).toBe('Patient/long');
    const head = entries.slice(1, 1 + wanted.length);
    expect(new Set(head)).toEqual(new Set(wanted));
    // grouped by type in the documented order, load order within a type
    const types = head.map((e) => e.split('/')[0]!);
    expect(types).toEqual(FIRST.flatMap((ty) => Array.from({ length: 40 }, () => ty)));
    expect(head.filter((e) => e.startsWith('Condition/'))).toEqual(
      Array.from({ length: 40 }, (_, i) => `Condition/long-Condition-${i}`),
    );
    // then the long tail in load order
    expect(entries[1 + wanted.length]).toBe('Observation/long-obs-0');
    expect(entries[2 + wanted.length]).toBe('Encounter/long-enc-0');
  });

  it('a page holds at most 4 MiB of resource text: a chart of large documents pages by size (and a search)', async () => {
    const db = server.ctx.db;
    await putResource(db, { resourceType: 'Patient', id: 'docs', name: [{ family: 'Docs' }] });
    const big = 'x'.repeat(1.5 * 2 ** 20);
    for (let i = 0; i < 3; i++)
      await putResource(db, inChart('DocumentReference', `docs-doc-${i}`, 'docs', big));
    for (let i = 0; i < 5; i++) await putResource(db, inChart('Condition', `docs-cond-${i}`, 'docs'));
    await putResource(db, inChart('Observation', 'docs-obs', 'docs'));
    const user = await createTestUser(server.ctx);
    const bearer = (
      await issueTokens(server, { user, patientId: 'docs', scope: 'openid launch patient/*.read' })
    ).body.access_token!;
    const pages: { ids: string[]; bytes: number }[] = [];
    let url: string | undefined = '/fhir/Patient/docs/$everything';
    while (url) {
      const res = await fetch(`${server.url}${url}`, { headers: { authorization: `Bearer ${bearer}` } });
      expect(res.status).toBe(200);
      const text = await res.text();
      const bundle = JSON.parse(text) as {
        entry: { resource: { id: string } }[];
        link: { relation: string; url: string }[];
      };
      pages.push({ ids: bundle.entry.map((e) => e.resource.id), bytes: Buffer.byteLength(text) });
      url = bundle.link.find((l) => l.relation === 'next')?.url.slice(server.url.length);
    }
    // the conditions, then two documents (3 MiB); the third would pass 4 MiB: it opens page 2
    expect(pages.map((p) => p.ids)).toEqual([
      [
        'docs',
        'docs-cond-0',
        'docs-cond-1',
        'docs-cond-2',
        'docs-cond-3',
        'docs-cond-4',
        'docs-doc-0',
        'docs-doc-1',
      ],
      ['docs-doc-2', 'docs-obs'],
    ]);
    for (const p of pages) expect(p.bytes).toBeLessThan(4 * 2 ** 20 + 64 * 1024);

    // a search pages by size the same way
    const searched: string[][] = [];
    url = '/fhir/DocumentReference?patient=docs&_count=10';
    while (url) {
      const r = await get(url, bearer);
      expect(r.status).toBe(200);
      searched.push((r.json.entry ?? []).map((e) => e.resource.id));
      url = r.json.link.find((l) => l.relation === 'next')?.url.slice(server.url.length);
    }
    expect(searched).toEqual([['docs-doc-0', 'docs-doc-1'], ['docs-doc-2']]);
  });

  it('a resource larger than the budget is a page of its own; paging by size returns each once', async () => {
    const { listCompartment } = await import('../../src/fhir/repository.ts');
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      // a budget of one byte: every resource is larger, the first of each page is taken anyway
      const page = await listCompartment(server.ctx.db, 'docs', { count: 10, maxBytes: 1, cursor });
      expect(page.resources).toHaveLength(1);
      seen.push(page.resources[0]!.id!);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(9);
    expect(new Set(seen).size).toBe(9);
  });

  it('documents the order in the CapabilityStatement', async () => {
    const metadata = (await (await fetch(`${server.url}/fhir/metadata`)).json()) as {
      rest: { resource: { type: string; operation?: { name: string; documentation?: string }[] }[] }[];
    };
    const patient = metadata.rest[0]!.resource.find((r) => r.type === 'Patient')!;
    const doc = patient.operation!.find((o) => o.name === 'everything')!.documentation!;
    expect(doc).toContain(FIRST.join(', '));
    expect(doc).toMatch(/exactly once/);
  });

  it('keeps the order under _type', async () => {
    const r = await get('/fhir/Patient/long/$everything?_type=Encounter,Condition&_count=42');
    expect(r.json.entry!.map((e) => e.resource.id)).toEqual([
      ...Array.from({ length: 40 }, (_, i) => `long-Condition-${i}`),
      'long-enc-0',
      'long-enc-1',
    ]);
  });

  it('pages through every resource exactly once while the chart changes', async () => {
    const { total } = await loadChart('paged');
    const user = await createTestUser(server.ctx);
    const paged = (
      await issueTokens(server, { user, patientId: 'paged', scope: 'openid launch patient/*.read' })
    ).body.access_token!;
    const db = server.ctx.db;
    const seen: string[] = [];
    let url: string | undefined = '/fhir/Patient/paged/$everything?_count=7';
    let page = 0;
    while (url) {
      const r = await get(url, paged);
      expect(r.status).toBe(200);
      seen.push(...(r.json.entry ?? []).map((e) => `${e.resource.resourceType}/${e.resource.id}`));
      url = r.json.link.find((l) => l.relation === 'next')?.url.slice(server.url.length);
      page++;
      // between pages: new resources of the first groups and of the tail (they wait for the next
      // $everything), and updates of seen and unseen resources of both
      await putResource(db, inChart('AllergyIntolerance', `paged-new-allergy-${page}`, 'paged'));
      await putResource(db, inChart('Observation', `paged-new-obs-${page}`, 'paged'));
      await putResource(db, inChart('Condition', `paged-Condition-${page % 3}`, 'paged', `update ${page}`));
      await putResource(
        db,
        inChart('Observation', `paged-obs-${(page * 7) % 150}`, 'paged', `update ${page}`),
      );
    }
    expect(page).toBe(Math.ceil(total / 7));
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
    expect(seen.some((s) => s.includes('-new-'))).toBe(false);
    expect(seen[0]).toBe('Patient/paged');
    expect(seen.slice(1, 19).every((s) => FIRST.includes(s.split('/')[0]!))).toBe(true);
  });
});
