/*
 * The lean dispatcher (src/http/lean-dispatch.ts) answers a FHIR read exactly as the Express
 * application does: the same status, body and headers (security headers, CORS, content type),
 * for a read, a refusal of each kind and a missing token — compared side by side with the same
 * request sent through the application itself. And it keeps the obligations it takes over: the
 * request id (kept or drawn), one log line without the query's values, the metrics.
 */
import type { Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { issueTokens } from '../helpers/oidc.ts';
import { capturedLogger, startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let s: TestServer;
let token: string;
const { logger, lines } = capturedLogger('info');

beforeAll(async () => {
  t = await createTestDatabase();
  s = await startTestServer(t.db, {}, logger);
  for (const id of ['lean-a', 'lean-b'])
    await putResource(t.db, { resourceType: 'Patient', id, name: [{ family: 'Lean' }] } as Patient);
  token = String((await issueTokens(s, { patientId: 'lean-a' })).body.access_token);
});

afterAll(async () => {
  await s?.stop();
  await t?.drop();
});

/** Headers that differ per answer by nature. */
const VARYING = new Set(['date', 'x-request-id', 'connection', 'keep-alive', 'content-length', 'etag']);
const stable = (h: Record<string, string>) =>
  Object.fromEntries(Object.entries(h).filter(([k]) => !VARYING.has(k.toLowerCase())));

async function both(path: string, headers: Record<string, string>) {
  const lean = await fetch(`${s.url}${path}`, { headers });
  const leanHeaders = Object.fromEntries(lean.headers.entries());
  const leanBody = await lean.text();
  let viaApp = request(s.app).get(path);
  for (const [k, v] of Object.entries(headers)) viaApp = viaApp.set(k, v);
  const app = await viaApp;
  return {
    lean: {
      status: lean.status,
      headers: stable(leanHeaders),
      body: leanBody,
      id: leanHeaders['x-request-id'],
    },
    app: { status: app.status, headers: stable(app.headers as Record<string, string>), body: app.text },
  };
}

describe('the lean dispatcher of the FHIR read', () => {
  it('answers like the application: a read, another patient, an unknown id, no token, a bad token', async () => {
    const auth = { authorization: `Bearer ${token}`, accept: 'application/fhir+json' };
    const cases: [string, Record<string, string>, number][] = [
      ['/fhir/Patient/lean-a', auth, 200],
      ['/fhir/Patient/lean-b', auth, 404],
      ['/fhir/Patient/nobody', auth, 404],
      ['/fhir/Observation/x', auth, 404],
      ['/fhir/Patient/lean-a?_format=xml', auth, 406],
      ['/fhir/Patient/lean-a', {}, 401],
      ['/fhir/Patient/lean-a', { authorization: 'Bearer a.b.c' }, 401],
    ];
    for (const [path, headers, status] of cases) {
      const r = await both(path, headers);
      expect({ path, status: r.lean.status }).toEqual({ path, status });
      expect(r.lean.status).toBe(r.app.status);
      expect(r.lean.headers).toEqual(r.app.headers);
      const strip = (b: string) => b.replace(/"lastUpdated":"[^"]+"/g, '');
      expect(strip(r.lean.body)).toBe(strip(r.app.body));
    }
    const ok = await both('/fhir/Patient/lean-a', auth);
    expect(ok.lean.headers['content-security-policy']).toContain("default-src 'self'");
    expect(ok.lean.headers['access-control-allow-origin']).toBe('*');
    expect(ok.lean.headers['x-powered-by']).toBeUndefined();
  });

  it('keeps a valid X-Request-Id, draws one otherwise, and logs one line per request without query values', async () => {
    const kept = await fetch(`${s.url}/fhir/Patient/lean-a?_elements=name`, {
      headers: { authorization: `Bearer ${token}`, 'x-request-id': 'lean-request-0001' },
    });
    expect(kept.headers.get('x-request-id')).toBe('lean-request-0001');
    const drawn = await fetch(`${s.url}/fhir/Patient/lean-a`, {
      headers: { authorization: `Bearer ${token}`, 'x-request-id': 'bad id with spaces' },
    });
    expect(drawn.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await new Promise((r) => setTimeout(r, 50));
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.req?.id === 'lean-request-0001');
    expect(line).toMatchObject({
      msg: 'request completed',
      req: { method: 'GET', url: '/fhir/Patient/…?_elements=…' },
      res: { statusCode: 200 },
    });
    expect(JSON.stringify(line)).not.toContain('name');
    expect(JSON.stringify(line)).not.toContain('lean-a');
  });

  it('counts the reads in the metrics', async () => {
    const metrics = async () =>
      (await request(s.app).get('/metrics').set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`)).text;
    const count = (text: string) =>
      Number(
        /fhir_requests_total\{resource_type="Patient",interaction="read",status="200"\} (\d+)/.exec(
          text,
        )?.[1] ?? 0,
      );
    const before = count(await metrics());
    await (
      await fetch(`${s.url}/fhir/Patient/lean-a`, { headers: { authorization: `Bearer ${token}` } })
    ).text();
    expect(count(await metrics())).toBe(before + 1);
  });

  it('leaves every other request to the application (HEAD, a trailing slash, a lower-case type)', async () => {
    const head = await fetch(`${s.url}/fhir/Patient/lean-a`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(head.status).toBe(200);
    const slash = await fetch(`${s.url}/fhir/Patient/lean-a/`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const slashApp = await request(s.app)
      .get('/fhir/Patient/lean-a/')
      .set('authorization', `Bearer ${token}`);
    expect(slash.status).toBe(slashApp.status);
    const lower = await fetch(`${s.url}/fhir/patient/lean-a`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const lowerApp = await request(s.app).get('/fhir/patient/lean-a').set('authorization', `Bearer ${token}`);
    expect(lower.status).toBe(lowerApp.status);
  });
});
