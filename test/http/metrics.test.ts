import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeFamily } from '../../src/http/metrics.ts';
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
