/*
 * POST /admin/api/import and `npm run import`: Synthea-shaped transactions, PUT bundles,
 * idempotence, one transaction (a bad bundle writes nothing), refusals with the entry named.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Encounter, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCompartment, readResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { startTestServer, TEST_ADMIN_TOKEN, TEST_SECRETS_KEY, type TestServer } from '../helpers/server.ts';
import { NPI, patientBundle, practitionerBundle } from './synthea.ts';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db, { IMPORT_BODY_LIMIT: '2mb' });
});
afterAll(async () => {
  await server?.stop();
  await t?.drop();
});

async function postBundle(body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}/admin/api/import`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      'content-type': 'application/fhir+json',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, headers: res.headers };
}

async function counts() {
  const r = await server.ctx.db.query<{ n: unknown; h: unknown }>(
    'SELECT (SELECT count(*) FROM fhir_resources) AS n, (SELECT count(*) FROM fhir_resource_history) AS h',
  );
  return { resources: Number(r.rows[0]!.n), history: Number(r.rows[0]!.h) };
}

describe('import', () => {
  it('imports Synthea-shaped bundles: urn:uuid references rewritten, conditional references resolved, idempotent', async () => {
    const practitioners = practitionerBundle('1112223334', 'org-77');
    const first = await postBundle(practitioners);
    expect(first.status).toBe(200);
    expect(first.json.type).toBe('transaction-response');
    // ifNoneExist: a second practitioner bundle with the same identifiers creates nothing
    const again = await postBundle(practitionerBundle('1112223334', 'org-77'));
    expect(again.json.entry.map((e: any) => e.response.status)).toEqual(['200 OK', '200 OK']);
    const practitionerId = first.json.entry[1].response.location.split('/')[1];

    const { patientId, bundle } = patientBundle({ others: 24, npi: '1112223334', orgId: 'org-77' });
    const before = await counts();
    const r = await postBundle(bundle);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(r.json.entry).toHaveLength(25);
    expect(r.json.entry[0].response).toMatchObject({
      status: '201 Created',
      location: `Patient/${patientId}/_history/1`,
    });
    expect((await counts()).resources).toBe(before.resources + 25);

    const chart = await listCompartment(server.ctx.db, patientId, { count: 100 });
    expect(chart.resources).toHaveLength(24);
    const encounter = chart.resources.find((x) => x.resourceType === 'Encounter') as Encounter;
    expect(encounter.subject?.reference).toBe(`Patient/${patientId}`);
    expect(encounter.participant?.[0]?.individual?.reference).toBe(`Practitioner/${practitionerId}`);
    expect(encounter.serviceProvider?.reference).toMatch(/^Organization\/[0-9a-f-]{36}$/);
    const condition = chart.resources.find((x) => x.resourceType === 'Condition') as {
      encounter?: { reference?: string };
    };
    expect(condition.encounter?.reference).toBe(`Encounter/${encounter.id}`);
    expect(JSON.stringify(chart.resources)).not.toContain('urn:uuid:');

    // importing the same bundle again changes nothing
    const mid = await counts();
    const twice = await postBundle(bundle);
    expect(twice.status).toBe(200);
    expect(
      twice.json.entry.every((e: any) => e.response.status === '200 OK' && e.response.etag === 'W/"1"'),
    ).toBe(true);
    expect(await counts()).toEqual(mid);
  });

  it('keeps an unresolvable conditional reference as a logical reference', async () => {
    const { patientId, bundle } = patientBundle({ others: 1, npi: '0000000000', orgId: 'nowhere' });
    expect((await postBundle(bundle)).status).toBe(200);
    const chart = await listCompartment(server.ctx.db, patientId, { count: 10 });
    const encounter = chart.resources[0] as Encounter;
    expect(encounter.participant?.[0]?.individual).toMatchObject({
      type: 'Practitioner',
      identifier: { system: NPI, value: '0000000000' },
    });
    expect(encounter.participant?.[0]?.individual?.reference).toBeUndefined();
  });

  it('imports PUT bundles with ids idempotently and bumps the version on a change', async () => {
    const bundle = (gender: string) => ({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        {
          resource: { resourceType: 'Patient', id: 'put-1', gender, name: [{ family: 'Put' }] },
          request: { method: 'PUT', url: 'Patient/put-1' },
        },
        {
          resource: {
            resourceType: 'Observation',
            id: 'put-obs',
            status: 'final',
            code: { text: 'x' },
            subject: { reference: 'Patient/put-1' },
          },
          request: { method: 'PUT', url: 'Observation/put-obs' },
        },
      ],
    });
    const r = await postBundle(bundle('male'));
    expect(r.json.type).toBe('batch-response');
    expect(r.json.entry.map((e: any) => e.response.location)).toEqual([
      'Patient/put-1/_history/1',
      'Observation/put-obs/_history/1',
    ]);
    const same = await postBundle(bundle('male'));
    expect(same.json.entry.map((e: any) => e.response.location)).toEqual([
      'Patient/put-1/_history/1',
      'Observation/put-obs/_history/1',
    ]);
    const changed = await postBundle(bundle('female'));
    expect(changed.json.entry[0].response.location).toBe('Patient/put-1/_history/2');
    expect(changed.json.entry[1].response.location).toBe('Observation/put-obs/_history/1');
    const stored = await readResource(server.ctx.db, 'Patient', 'put-1');
    expect((stored!.resource as Patient).gender).toBe('female');
    expect((await readResource(server.ctx.db, 'Observation', 'put-obs'))?.compartment).toBe('put-1');
  });

  it('imports collection bundles (no requests) by resource id', async () => {
    const r = await postBundle({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: { resourceType: 'Practitioner', id: 'coll-pr', name: [{ family: 'Coll' }] } }],
    });
    expect(r.status).toBe(200);
    expect((await readResource(server.ctx.db, 'Practitioner', 'coll-pr'))?.versionId).toBe(1);
  });

  it('refuses a bad bundle with a 400 naming the entry, and writes nothing', async () => {
    const { bundle } = patientBundle({ others: 5 });
    const cases: [string, unknown, RegExp][] = [
      [
        'unsupported type',
        {
          ...bundle,
          entry: [
            ...bundle.entry.slice(0, 2),
            { resource: { resourceType: 'Spaceship' }, request: { method: 'POST', url: 'Spaceship' } },
          ],
        },
        /Bundle\.entry\[2\]: resource type Spaceship is not supported/,
      ],
      [
        'dangling urn:uuid',
        {
          ...bundle,
          entry: [
            ...bundle.entry,
            {
              fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001',
              resource: {
                resourceType: 'Condition',
                subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000099' },
              },
              request: { method: 'POST', url: 'Condition' },
            },
          ],
        },
        /Bundle\.entry\[6\]: reference urn:uuid:00000000-0000-4000-8000-000000000099 names no entry/,
      ],
      [
        'bad id',
        {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              resource: { resourceType: 'Patient', id: 'bad id' },
              request: { method: 'PUT', url: 'Patient/bad id' },
            },
          ],
        },
        /Bundle\.entry\[0\]: resource\.id must match/,
      ],
      [
        'url and id disagree',
        {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            { resource: { resourceType: 'Patient', id: 'a' }, request: { method: 'PUT', url: 'Patient/b' } },
          ],
        },
        /Bundle\.entry\[0\]: resource\.id differs/,
      ],
      [
        'NUL in a string',
        {
          ...bundle,
          entry: [
            ...bundle.entry,
            {
              resource: { resourceType: 'Patient', id: 'nul', name: [{ family: 'a\u0000b' }] },
              request: { method: 'PUT', url: 'Patient/nul' },
            },
          ],
        },
        /Bundle\.entry\[6\]: strings may not contain the NUL character/,
      ],
      [
        'missing request',
        { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' } }] },
        /Bundle\.entry\[0\]: a transaction entry needs a request/,
      ],
      [
        'searchset',
        { resourceType: 'Bundle', type: 'searchset', entry: [] },
        /Bundle\.type must be collection, batch or transaction/,
      ],
      ['not a bundle', { resourceType: 'Patient', id: 'x' }, /must be a FHIR Bundle/],
      ['not JSON', '{"resourceType": "Bundle", "entry": [', /not valid JSON/],
      ['an array', '[1,2]', /one JSON object/],
    ];
    const before = await counts();
    for (const [name, body, message] of cases) {
      const r = await postBundle(body);
      expect(r.status, name).toBe(400);
      expect(r.json?.resourceType, name).toBe('OperationOutcome');
      expect(r.json.issue[0].diagnostics, name).toMatch(message);
    }
    expect(await counts()).toEqual(before);
  });

  it('needs the admin token, JSON, and a body within IMPORT_BODY_LIMIT', async () => {
    const { bundle } = patientBundle({ others: 1 });
    const anonymous = await fetch(`${server.url}/admin/api/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(bundle),
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await postBundle(bundle, { authorization: 'Bearer not-the-admin-token' });
    expect(wrong.status).toBe(401);
    const text = await postBundle(JSON.stringify(bundle), { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    const huge = await postBundle({ ...bundle, padding: 'x'.repeat(3 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    const empty = await postBundle('');
    expect(empty.status).toBe(400);
  });

  it('imports a large bundle in one go', async () => {
    const { patientId, bundle } = patientBundle({ others: 2000 });
    const r = await postBundle(bundle);
    expect(r.status).toBe(200);
    expect(r.json.entry).toHaveLength(2001);
    let n = 0;
    let cursor: string | undefined;
    do {
      const page = await listCompartment(server.ctx.db, patientId, { count: 1000, cursor });
      n += page.resources.length;
      cursor = page.nextCursor;
    } while (cursor);
    expect(n).toBe(2000);
  }, 120_000);
});

describe('npm run import', () => {
  it('loads bundle files into the configured database and refuses a bad one with its reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'import-cli-'));
    const good = join(dir, 'good.json');
    const bad = join(dir, 'bad.json');
    const { patientId, bundle } = patientBundle({ others: 3 });
    writeFileSync(good, JSON.stringify(bundle));
    writeFileSync(
      bad,
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: { resourceType: 'Spaceship' }, request: { method: 'POST', url: 'Spaceship' } }],
      }),
    );
    const env = {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      SECRETS_KEY: TEST_SECRETS_KEY,
      KEYS_DIR: join(dir, 'keys'),
      ...(usingPostgres ? { DATABASE_URL: t.url } : { DATABASE_URL: '', DATA_DIR: join(dir, 'data') }),
    };
    const run = promisify(execFile);
    // one run, two files: the good one is loaded, the bad one refused, and the exit status says so
    const result = await run('node', ['--import', 'tsx', 'src/fhir/import-cli.ts', good, bad], { env }).catch(
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect((result as { code?: number }).code).toBe(1);
    expect(result.stdout).toMatch(/good\.json: transaction, 4 entries — 4 created/);
    expect(result.stderr).toMatch(
      /bad\.json: refused, nothing written — Bundle\.entry\[0\]: resource type Spaceship is not supported/,
    );
    if (usingPostgres) expect((await readResource(server.ctx.db, 'Patient', patientId))?.versionId).toBe(1);
  }, 180_000);
});

describe('import spools', () => {
  it('removes spools of processes that are gone or a day old, and keeps those of live processes', async () => {
    const { sweepImportSpools } = await import('../../src/fhir/import-route.ts');
    const dir = mkdtempSync(join(tmpdir(), 'spool-sweep-'));
    // a pid that surely ended: a child that has exited
    const child = execFile(process.execPath, ['-e', '']);
    await new Promise((resolve) => child.once('exit', resolve));
    const spool = (pid: number, suffix: string) => {
      const path = join(dir, `fhir-import-${pid}-${suffix}`);
      mkdirSync(path);
      writeFileSync(join(path, 'bundle.json'), '{"resourceType":"Bundle"}');
      return path;
    };
    const dead = spool(child.pid!, 'dead');
    const mine = spool(process.pid, 'mine');
    const live = spool(process.ppid, 'live');
    const old = spool(process.ppid, 'old');
    const dayAgo = new Date(Date.now() - 25 * 60 * 60 * 1000);
    utimesSync(old, dayAgo, dayAgo);
    writeFileSync(join(dir, 'fhir-import-notes.txt'), 'not a spool');

    expect(await sweepImportSpools(dir)).toBe(2);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(mine)).toBe(true);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(join(dir, 'fhir-import-notes.txt'))).toBe(true);
  });
});
