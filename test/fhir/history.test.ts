/*
 * _history and vread judged per version: a version is visible only if that version was filed in
 * the token's compartment and passes the token's query restrictions (and the resource is visible
 * now). A result imported under one patient and refiled under another never shows the first
 * patient's version to the second patient's token; `total` and paging count only what is listed.
 * Also: migration 130 backfills each stored version's compartment exactly as the writer computes it.
 */
import type { Observation } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMigrations, migrate } from '../../src/db/migrate.ts';
import { putResource } from '../../src/fhir/repository.ts';
import { compartmentOf } from '../../src/fhir/resource-types.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createTestClient, createTestSite, createTestUser, issueTokens } from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let server: TestServer;
const tokens: Record<'a' | 'b' | 'aLab' | 'user', string> = { a: '', b: '', aLab: '', user: '' };

const observation = (id: string, patientId: string, category: string, value: number): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  category: [
    { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] },
  ],
  code: { text: 'Potassium' },
  subject: { reference: `Patient/${patientId}` },
  valueQuantity: { value, unit: 'mmol/L' },
});

async function importResources(...resources: object[]) {
  const res = await fetch(`${server.url}/admin/api/import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/fhir+json' },
    body: JSON.stringify({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: resources.map((r) => ({
        resource: r,
        request: { method: 'PUT', url: `${(r as Observation).resourceType}/${(r as Observation).id}` },
      })),
    }),
  });
  expect(res.status).toBe(200);
}

async function get(path: string, token: string) {
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

const versions = (bundle: { entry?: { response: { etag: string } }[] }) =>
  (bundle.entry ?? []).map((e) => e.response.etag);

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  await importResources(
    { resourceType: 'Patient', id: 'pat-a', name: [{ family: 'Ames' }] },
    { resourceType: 'Patient', id: 'pat-b', name: [{ family: 'Best' }] },
    // B's potassium, misfiled under B's chart first … then refiled under A (a correction)
    observation('refiled', 'pat-b', 'laboratory', 6.1),
  );
  await importResources(observation('refiled', 'pat-a', 'laboratory', 4.2));
  // A's own observation: first a vital sign, then recoded as a laboratory result
  await importResources(observation('recoded', 'pat-a', 'vital-signs', 120));
  await importResources(observation('recoded', 'pat-a', 'laboratory', 4.4));

  const user = await createTestUser(server.ctx);
  const client = await createTestClient(server.ctx);
  const { siteNum } = await createTestSite(server.ctx, client.clientId);
  const token = async (patientId: string, scope: string) =>
    (await issueTokens(server, { client, siteNum, user, patientId, scope })).body.access_token!;
  tokens.a = await token('pat-a', 'openid launch patient/*.read');
  tokens.b = await token('pat-b', 'openid launch patient/*.read');
  tokens.aLab = await token(
    'pat-a',
    'openid launch patient/Patient.rs patient/Observation.rs?category=laboratory',
  );
  tokens.user = await token('pat-a', 'openid launch user/*.read');
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await t?.drop();
});

describe('history across charts', () => {
  it("does not show A's token the version filed under B, neither in _history nor by vread", async () => {
    expect((await get('/fhir/Observation/refiled', tokens.a)).status).toBe(200);
    const history = await get('/fhir/Observation/refiled/_history', tokens.a);
    expect(history.status).toBe(200);
    expect(versions(history.json)).toEqual(['W/"2"']);
    expect(history.json.total).toBe(1);
    expect(history.text).not.toContain('pat-b');
    // B's value, as a value: a timestamp such as 13:45:46.110Z contains the characters "6.1" too
    expect(history.text).not.toMatch(/"value":\s*6\.1\b/);

    const v1 = await get('/fhir/Observation/refiled/_history/1', tokens.a);
    const absent = await get('/fhir/Observation/refiled/_history/9', tokens.a);
    expect(v1.status).toBe(404);
    expect(v1.json.issue[0].code).toBe(absent.json.issue[0].code);
    expect(v1.text).not.toMatch(/"value":\s*6\.1\b/);
    expect((await get('/fhir/Observation/refiled/_history/2', tokens.a)).status).toBe(200);
  });

  it("gives B's token nothing of a resource now filed under A, not even B's own old version", async () => {
    expect((await get('/fhir/Observation/refiled', tokens.b)).status).toBe(404);
    expect((await get('/fhir/Observation/refiled/_history', tokens.b)).status).toBe(404);
    expect((await get('/fhir/Observation/refiled/_history/1', tokens.b)).status).toBe(404);
  });

  it('shows a user-level token every version', async () => {
    const history = await get('/fhir/Observation/refiled/_history', tokens.user);
    expect(versions(history.json)).toEqual(['W/"2"', 'W/"1"']);
    expect(history.json.total).toBe(2);
    expect((await get('/fhir/Observation/refiled/_history/1', tokens.user)).status).toBe(200);
  });
});

describe('history under a query-restricted scope', () => {
  it('lists and vreads only the versions that pass the restriction', async () => {
    expect((await get('/fhir/Observation/recoded', tokens.aLab)).status).toBe(200);
    const history = await get('/fhir/Observation/recoded/_history', tokens.aLab);
    expect(versions(history.json)).toEqual(['W/"2"']);
    expect(history.json.total).toBe(1);
    expect(history.text).not.toContain('vital-signs');
    expect((await get('/fhir/Observation/recoded/_history/1', tokens.aLab)).status).toBe(404);
    expect((await get('/fhir/Observation/recoded/_history/2', tokens.aLab)).status).toBe(200);
    // the unrestricted token of the same patient sees both
    expect(versions((await get('/fhir/Observation/recoded/_history', tokens.a)).json)).toEqual([
      'W/"2"',
      'W/"1"',
    ]);
  });
});

describe('history paging', () => {
  it('pages the visible versions newest first, each once, with a steady total while new versions arrive', async () => {
    const db = server.ctx.db;
    // v1 B, v2 A, v3 B, v4 A, v5 A: A's token sees 2, 4, 5
    const filedUnder = ['pat-b', 'pat-a', 'pat-b', 'pat-a', 'pat-a'];
    for (const [i, p] of filedUnder.entries())
      await putResource(db, observation('paged', p, 'laboratory', i));
    const seen: string[] = [];
    const totals: number[] = [];
    let url: string | undefined = '/fhir/Observation/paged/_history?_count=1';
    let pages = 0;
    while (url) {
      const r = await get(url, tokens.a);
      expect(r.status).toBe(200);
      seen.push(...versions(r.json));
      totals.push(r.json.total);
      url = r.json.link
        .find((l: { relation: string }) => l.relation === 'next')
        ?.url?.slice(server.url.length);
      // a new version under A after the first page: it waits for the next history
      if (pages++ === 0) await putResource(db, observation('paged', 'pat-a', 'laboratory', 99));
    }
    expect(seen).toEqual(['W/"5"', 'W/"4"', 'W/"2"']);
    expect(totals).toEqual([3, 3, 3]);
    expect(versions((await get('/fhir/Observation/paged/_history', tokens.a)).json)).toEqual([
      'W/"6"',
      'W/"5"',
      'W/"4"',
      'W/"2"',
    ]);
    expect((await get('/fhir/Observation/paged/_history?_cursor=bad!', tokens.a)).status).toBe(400);
  });
});

describe('migration 130: the compartment of every stored version', () => {
  it('backfills each version with the compartment the writer computes from that version', async () => {
    const fresh = await createTestDatabase();
    try {
      const all = listMigrations();
      await migrate(
        fresh.db,
        all.filter((m) => m.name < '130'),
      );
      const rows: { type: string; id: string; v: number; deleted: boolean; body: Record<string, unknown> }[] =
        [
          { type: 'Patient', id: 'p1', v: 1, deleted: false, body: { resourceType: 'Patient', id: 'p1' } },
          {
            type: 'Observation',
            id: 'o1',
            v: 1,
            deleted: false,
            body: { resourceType: 'Observation', id: 'o1', subject: { reference: 'Patient/p2' } },
          },
          {
            type: 'Observation',
            id: 'o1',
            v: 2,
            deleted: false,
            body: { resourceType: 'Observation', id: 'o1', subject: { reference: 'Patient/p1/_history/3' } },
          },
          {
            type: 'Observation',
            id: 'o1',
            v: 3,
            deleted: true,
            body: { resourceType: 'Observation', id: 'o1' },
          },
          {
            type: 'Observation',
            id: 'o2',
            v: 1,
            deleted: false,
            // no subject: the first performer naming a Patient decides
            body: {
              resourceType: 'Observation',
              id: 'o2',
              performer: [
                { reference: 'Practitioner/x' },
                { reference: 'Patient/p3' },
                { reference: 'Patient/p4' },
              ],
            },
          },
          {
            type: 'CarePlan',
            id: 'cp',
            v: 1,
            deleted: false,
            body: {
              resourceType: 'CarePlan',
              id: 'cp',
              subject: { reference: 'Group/g' },
              activity: [{ detail: { performer: [{ reference: 'Patient/p5' }] } }],
            },
          },
          {
            type: 'AllergyIntolerance',
            id: 'ai',
            v: 1,
            deleted: false,
            body: {
              resourceType: 'AllergyIntolerance',
              id: 'ai',
              patient: { reference: 'https://elsewhere.example/Patient/p9' },
              recorder: { reference: 'Patient/p6' },
            },
          },
          {
            type: 'Practitioner',
            id: 'dr',
            v: 1,
            deleted: false,
            body: { resourceType: 'Practitioner', id: 'dr' },
          },
          {
            type: 'Condition',
            id: 'odd',
            v: 1,
            deleted: false,
            body: {
              resourceType: 'Condition',
              id: 'odd',
              subject: { reference: 42 },
              asserter: { reference: 'Patient/bad id' },
            },
          },
        ];
      for (const r of rows)
        await fresh.db.query(
          `INSERT INTO fhir_resource_history (resource_type, id, version_id, last_updated, deleted, resource)
           VALUES ($1, $2, $3, now(), $4, $5::jsonb)`,
          [r.type, r.id, r.v, r.deleted, JSON.stringify(r.body)],
        );
      await migrate(fresh.db, all);
      const { rows: got } = await fresh.db.query<{
        resource_type: string;
        id: string;
        version_id: number;
        c: string | null;
      }>('SELECT resource_type, id, version_id, compartment_patient AS c FROM fhir_resource_history');
      const compartment = (type: string, id: string, v: number) =>
        got.find((g) => g.resource_type === type && g.id === id && Number(g.version_id) === v)?.c;
      for (const r of rows.filter((x) => !x.deleted))
        expect(compartment(r.type, r.id, r.v), `${r.type}/${r.id}/${r.v}`).toBe(
          compartmentOf(r.body as { resourceType: string; id: string }),
        );
      // a deletion keeps the compartment of the version it deleted
      expect(compartment('Observation', 'o1', 3)).toBe('p1');
      expect(compartment('Observation', 'o2', 1)).toBe('p3');
      expect(compartment('CarePlan', 'cp', 1)).toBe('p5');
      expect(compartment('AllergyIntolerance', 'ai', 1)).toBe('p6');
    } finally {
      await fresh.drop();
    }
  });
});
