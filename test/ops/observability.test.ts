/*
 * Observability end to end: after a real sign-in, launch, token, refresh and FHIR reads,
 * GET /metrics (Prometheus text, prom-client) counts launches by outcome, tokens by grant type,
 * FHIR requests by resource type, interaction and status, with latency histograms and pool
 * use — and names no patient. Every log line written while serving a request carries its id.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fhirInteraction } from '../../src/fhir/interaction-label.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { capturedLogger, startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { DEMO_CLINICIANS, DEMO_SITE, type DeploymentSetup, prepareDeployment } from './cluster.ts';
import { Clinician, discover, fhirGet, redeemCode, refresh } from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf('}'));
    const got = Object.fromEntries(
      [...inner.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]] as [string, string]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v))
      return Number(line.slice(line.indexOf('}') + 2));
  }
  return 0;
}

describe('observability: /metrics and request ids', () => {
  let t: TestDatabase;
  let s: TestServer;
  let setup: DeploymentSetup;
  const { logger, lines } = capturedLogger('info');

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, { DEMO_DATA: 'true' }, logger);
    setup = await prepareDeployment(s.url, TEST_ADMIN_TOKEN, 3);
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  it('counts launches, tokens by grant type and FHIR requests by type and status, with latency and pool use', async () => {
    const logStart = lines.length;
    const discovery = await discover(`${s.url}/fhir`);
    const clinician = new Clinician(s.url);
    // Not signed in yet: /launch sends the browser to sign in first.
    const early = await clinician.request(
      `/launch?patient=${setup.patients[0]}&site=${DEMO_SITE}&action=viewMap`,
    );
    expect(early.status).toBe(303);
    await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password);
    const refused = await clinician.request(
      `/launch?patient=no-such-patient&site=${DEMO_SITE}&action=viewMap`,
    );
    expect(refused.status).toBe(404);
    const patient = setup.patients[0]!;
    const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap');
    const { code } = await clinician.authorize(discovery, {
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
      launch: launch.get('launch')!,
      pkce: false,
    });
    const token = await redeemCode(discovery, {
      code,
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
    });
    expect(token.status).toBe(200);
    const refreshed = await refresh(discovery, {
      refreshToken: token.body.refresh_token!,
      clientId: setup.clientId,
    });
    expect(refreshed.status).toBe(200);
    const at = token.body.access_token;
    expect((await fhirGet(`${s.url}/fhir`, `Patient/${patient}`, at)).status).toBe(200);
    expect((await fhirGet(`${s.url}/fhir`, `Patient/${patient}`, at)).status).toBe(200);
    expect((await fhirGet(`${s.url}/fhir`, `Patient/${patient}/$everything`, at)).status).toBe(200);
    expect((await fhirGet(`${s.url}/fhir`, `Condition?patient=${patient}`, at)).status).toBe(200);
    expect((await fhirGet(`${s.url}/fhir`, 'Patient/nobody-here', at)).status).toBeGreaterThanOrEqual(400);
    expect((await fhirGet(`${s.url}/fhir`, `Patient/${patient}`, 'not-a-token')).status).toBe(401);

    const text = await (await fetch(`${s.url}/metrics`)).text();
    expect(metricValue(text, 'smart_launches_total', { outcome: 'launched' })).toBe(1);
    expect(metricValue(text, 'smart_launches_total', { outcome: 'refused' })).toBe(1);
    expect(metricValue(text, 'smart_launches_total', { outcome: 'sign_in' })).toBe(1);
    expect(metricValue(text, 'oauth_tokens_issued_total', { grant_type: 'authorization_code' })).toBe(1);
    expect(metricValue(text, 'oauth_tokens_issued_total', { grant_type: 'refresh_token' })).toBe(1);
    const fhir = (labels: Record<string, string>) => metricValue(text, 'fhir_requests_total', labels);
    expect(fhir({ resource_type: 'Patient', interaction: 'read', status: '200' })).toBe(2);
    expect(fhir({ resource_type: 'Patient', interaction: 'everything', status: '200' })).toBe(1);
    expect(fhir({ resource_type: 'Condition', interaction: 'search-type', status: '200' })).toBe(1);
    expect(fhir({ resource_type: 'Patient', interaction: 'read', status: '401' })).toBe(1);
    expect(
      metricValue(text, 'fhir_request_duration_seconds_count', { interaction: 'read' }),
    ).toBeGreaterThanOrEqual(4);
    expect(
      metricValue(text, 'http_request_duration_seconds_count', {
        family: 'oauth',
        method: 'POST',
        status: '2xx',
      }),
    ).toBe(2);
    expect(
      metricValue(text, 'http_request_duration_seconds_count', {
        family: 'launch',
        method: 'GET',
        status: '3xx',
      }),
    ).toBe(2);
    expect(text).toMatch(/http_request_duration_seconds_bucket\{le="0\.005",family="fhir_api"/);
    expect(text).toMatch(/db_pool_connections\{state="total"\} \d+/);
    // No identifier of anyone in the metrics.
    for (const id of [...setup.patients, 'nobody-here', 'no-such-patient', setup.clientId])
      expect(text).not.toContain(id);

    // Every line logged while serving those requests carries its request id.
    const logged = lines.slice(logStart).map((l) => JSON.parse(l) as { reqId?: string; msg: string });
    expect(logged.length).toBeGreaterThan(10);
    for (const line of logged) expect(line.reqId, JSON.stringify(line)).toMatch(/^[\w.-]{8,64}$/);
    // Including the lines the capabilities write themselves, not just the access log.
    expect(logged.some((l) => l.msg !== 'request completed' && l.msg !== 'request errored')).toBe(true);
  });

  it('names FHIR interactions from method and path, with bounded labels', () => {
    expect(fhirInteraction('GET', '/fhir/metadata')).toEqual({
      resourceType: 'CapabilityStatement',
      interaction: 'capabilities',
    });
    expect(fhirInteraction('GET', '/fhir/Patient/1')).toEqual({
      resourceType: 'Patient',
      interaction: 'read',
    });
    expect(fhirInteraction('GET', '/fhir/Observation')).toEqual({
      resourceType: 'Observation',
      interaction: 'search-type',
    });
    expect(fhirInteraction('POST', '/fhir/Observation/_search')).toEqual({
      resourceType: 'Observation',
      interaction: 'search-type',
    });
    expect(fhirInteraction('GET', '/fhir/Patient/1/$everything')).toEqual({
      resourceType: 'Patient',
      interaction: 'everything',
    });
    expect(fhirInteraction('GET', '/fhir/Patient/1/_history/2')).toEqual({
      resourceType: 'Patient',
      interaction: 'vread',
    });
    expect(fhirInteraction('DELETE', '/fhir/Patient/1')).toEqual({
      resourceType: 'Patient',
      interaction: 'delete',
    });
    // Whatever a client puts in the path, the label set stays small.
    expect(fhirInteraction('GET', "/fhir/Robert'); DROP TABLE--/1")).toEqual({
      resourceType: 'other',
      interaction: 'read',
    });
    expect(fhirInteraction('GET', '/fhir/Patient/1/$anything-at-all')).toEqual({
      resourceType: 'Patient',
      interaction: 'other',
    });
  });

  it('honours a well-formed X-Request-Id from the load balancer and answers with it', async () => {
    const before = lines.length;
    const r = await fetch(`${s.url}/fhir/Patient/whoever`, {
      headers: { 'x-request-id': 'lb-req-0123456789' },
    });
    expect(r.headers.get('x-request-id')).toBe('lb-req-0123456789');
    await r.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const logged = lines.slice(before).map((l) => JSON.parse(l) as { reqId?: string });
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expect(line.reqId).toBe('lb-req-0123456789');
    // A malformed one is replaced, not echoed.
    const bad = await fetch(`${s.url}/healthz`, { headers: { 'x-request-id': 'bad id\twith "quotes"' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
