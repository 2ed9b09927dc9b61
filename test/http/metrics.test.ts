import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInternalAddress, routeFamily } from '../../src/http/metrics.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('metrics', () => {
  let t: TestDatabase;
  let s: TestServer;
  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, { METRICS_TOKEN: 'metrics-token-for-tests' });
  });
  afterAll(async () => {
    await s.stop();
    await t.drop();
  });

  it('needs the metrics token when one is configured', async () => {
    await request(s.url).get('/metrics').expect(401);
    await request(s.url).get('/metrics').set('Authorization', 'Bearer wrong-token-wrong-token').expect(401);
  });

  it('exposes Prometheus text with request latency by route family and pool use', async () => {
    await request(s.url).get('/fhir/Patient/abc');
    const r = await request(s.url)
      .get('/metrics')
      .set('Authorization', 'Bearer metrics-token-for-tests')
      .expect(200);
    expect(r.headers['content-type']).toMatch(/text\/plain/);
    expect(r.text).toMatch(/http_request_duration_seconds_bucket\{[^}]*family="fhir_api"/);
    expect(r.text).toContain('db_pool_connections{state="total"}');
    expect(r.text).toContain('process_cpu_seconds_total');
    expect(r.text).not.toContain('abc');
  });

  it('labels by family, never by id', () => {
    expect(routeFamily('/fhir/Patient/123')).toBe('fhir_api');
    expect(routeFamily('/fhir/.well-known/smart-configuration')).toBe('discovery');
    expect(routeFamily('/fhir/token')).toBe('oauth');
    expect(routeFamily('/admin/api/clients/x')).toBe('admin_api');
    expect(routeFamily('/patients/123')).toBe('ehr');
  });
});

describe('metrics served only on an internal address (METRICS_INTERNAL_ONLY)', () => {
  let t: TestDatabase;
  let s: TestServer;
  beforeAll(async () => {
    t = await createTestDatabase();
    // Behind a balancer on loopback: req.ip is the address the balancer saw.
    s = await startTestServer(t.db, { METRICS_INTERNAL_ONLY: 'true', TRUST_PROXY: 'loopback' });
  });
  afterAll(async () => {
    await s.stop();
    await t.drop();
  });

  it('answers loopback and private clients, and is a 404 for anyone else', async () => {
    await request(s.url).get('/metrics').expect(200);
    await request(s.url).get('/metrics').set('X-Forwarded-For', '10.20.30.40').expect(200);
    await request(s.url).get('/metrics').set('X-Forwarded-For', 'fd00::7').expect(200);
    const outside = await request(s.url).get('/metrics').set('X-Forwarded-For', '203.0.113.9');
    expect(outside.status).toBe(404);
    expect(outside.text).not.toContain('process_cpu_seconds_total');
    await request(s.url).get('/metrics').set('X-Forwarded-For', '2001:db8::1').expect(404);
  });

  it.each([
    ['127.0.0.1', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['10.0.0.1', true],
    ['172.16.5.4', true],
    ['172.32.0.1', false],
    ['192.168.1.1', true],
    ['169.254.1.1', true],
    ['fe80::1', true],
    ['fd12:3456::1', true],
    ['8.8.8.8', false],
    ['::ffff:8.8.8.8', false],
    ['2001:db8::1', false],
    ['not an address', false],
    [undefined, false],
  ])('judges %s internal: %s', (ip, expected) => {
    expect(isInternalAddress(ip)).toBe(expected);
  });
});
