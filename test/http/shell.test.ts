import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLogger, redactUrl } from '../../src/http/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { capturedLogger, startTestServer, type TestServer } from '../helpers/server.ts';

describe('HTTP shell', () => {
  let t: TestDatabase;
  let s: TestServer;
  const { logger, lines } = capturedLogger('info');
  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, {}, logger);
  });
  afterAll(async () => {
    await s.stop();
    await t.drop();
  });

  it('answers liveness and readiness', async () => {
    await request(s.url).get('/healthz').expect(200, { status: 'ok' });
    await request(s.url)
      .get('/readyz')
      .expect(200)
      .expect((r) => expect(r.body.database).toBe('ok'));
  });

  it('sends security headers and no x-powered-by', async () => {
    const r = await request(s.url).get('/healthz');
    expect(r.headers['x-powered-by']).toBeUndefined();
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['content-security-policy']).toContain("default-src 'self'");
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers unknown FHIR paths with an OperationOutcome', async () => {
    const r = await request(s.url).get('/fhir/NoSuchThing/1').expect(404);
    expect(r.headers['content-type']).toMatch(/application\/fhir\+json/);
    expect(r.body.resourceType).toBe('OperationOutcome');
  });

  it('answers unknown admin API paths with OAuth-style JSON', async () => {
    const r = await request(s.url).get('/admin/api/nothing-here').set('Authorization', 'Bearer x');
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.body).toHaveProperty('error');
    expect(r.body).toHaveProperty('error_description');
  });

  it('answers unknown pages with an HTML page, never a stack trace', async () => {
    const r = await request(s.url).get('/no/such/page').expect(404);
    expect(r.headers['content-type']).toMatch(/text\/html/);
    expect(r.text).not.toMatch(/at .*\.ts:\d+/);
  });

  it('keeps query values (PHI, codes) out of request logs', async () => {
    await request(s.url).get('/fhir/Patient?name=Tremblay&identifier=9876543210');
    const text = lines.join('\n');
    expect(text).toContain('/fhir/Patient?name=…&identifier=…');
    expect(text).not.toContain('Tremblay');
    expect(text).not.toContain('9876543210');
  });

  it('redacts query values but keeps parameter names', () => {
    expect(redactUrl('/launch?patient=p1&site=1234&action=viewMap')).toBe(
      '/launch?patient=…&site=…&action=…',
    );
    expect(redactUrl('/fhir/metadata')).toBe('/fhir/metadata');
  });

  it('masks the ids of a path (a Patient id may be the EHR chart number), keeps its route words', () => {
    const cases: [string, string][] = [
      ['/fhir/Patient/MRN-0042/$everything?_count=5', '/fhir/Patient/…/$everything?_count=…'],
      ['/fhir/Patient/tremblay', '/fhir/Patient/…'],
      ['/fhir/Observation/o1/_history/3', '/fhir/Observation/…/_history/…'],
      ['/patients/637e91e3-3b77/documents/doc1', '/patients/…/documents/…'],
      ['/admin/api/clients/G_rRcl/sites/1234/delete', '/admin/api/clients/…/sites/…/delete'],
      ['/admin/clients/abc/allowlist.txt', '/admin/clients/…/allowlist.txt'],
      ['/interaction/XyZ/confirm', '/interaction/…/confirm'],
      ['/fhir/auth/resumeUid', '/fhir/auth/…'],
      ['/some/thing/with9digit/x', '/some/thing/…/x'],
      ['/fhir/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration'],
      ['/static/app.css', '/static/app.css'],
      ['/fhir/Patient', '/fhir/Patient'],
      ['/', '/'],
    ];
    for (const [url, logged] of cases) expect(redactUrl(url), url).toBe(logged);
  });

  it("writes access lines with the logger's level, bindings and destination; the logger itself still redacts", () => {
    const { logger: base, lines: out } = capturedLogger('warn');
    const access = accessLogger(base);
    access.info({ req: { id: 'r1' } }, 'below the level');
    access.warn(
      { req: { id: 'r2', method: 'GET', url: '/fhir/Patient/…' }, res: { statusCode: 404 } },
      'line',
    );
    base.warn({ client: { client_secret: 's3cret' }, authorization: 'Bearer abc' }, 'careless');
    const [line, careless] = out.map((l) => JSON.parse(l));
    expect(out).toHaveLength(2);
    expect(line).toMatchObject({
      service: 'smart-ocean-launch',
      req: { id: 'r2' },
      res: { statusCode: 404 },
    });
    expect(careless).toMatchObject({ client: { client_secret: '[redacted]' }, authorization: '[redacted]' });
  });
});
