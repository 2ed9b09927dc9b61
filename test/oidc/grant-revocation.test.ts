/*
 * Every way a grant ends (src/oidc/grant-revocation.ts), each seen by two instances of the server
 * on one database (two pools on PostgreSQL): tokens issued through instance A, read through both
 * first (so both verifiers hold the token in memory), the grant ended through B or A, and then
 * on BOTH instances the FHIR API answers 401 `invalid_token` (read and search) while
 * introspection answers `active: false` — and a bystander's grant still works.
 */
import type { Observation, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource } from '../../src/fhir/repository.ts';
import { countingStatements, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  authorizeLaunch,
  clientAuth,
  createTestClient,
  createTestSite,
  type IssuedTokens,
  issueTokens,
  type TestClient,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let a: TestServer;
let b: TestServer;
let bystander: IssuedTokens;
let patients = 0;

async function newPatient(): Promise<string> {
  const id = `rev-${++patients}`;
  await putResource(t.db, { resourceType: 'Patient', id, name: [{ family: 'Revoked' }] } as Patient);
  await putResource(t.db, {
    resourceType: 'Observation',
    id: `${id}-obs`,
    status: 'final',
    code: { text: 'x' },
    subject: { reference: `Patient/${id}` },
  } as Observation);
  return id;
}

/** A launch through instance A: a new user, client and site unless given. */
async function launch(
  options: { client?: TestClient; siteNum?: string; scope?: string } = {},
): Promise<IssuedTokens> {
  const patientId = await newPatient();
  const client = options.client ?? (await createTestClient(a.ctx));
  const siteNum = options.siteNum ?? (await createTestSite(a.ctx, client.clientId)).siteNum;
  const issued = await issueTokens(a, {
    client,
    siteNum,
    patientId,
    scope: options.scope ?? 'openid fhirUser launch patient/*.read offline_access',
  });
  expect(issued.status).toBe(200);
  return issued;
}

const fhir = (s: TestServer, path: string, token: string) =>
  fetch(`${s.url}/fhir/${path}`, { headers: { authorization: `Bearer ${token}` } });

const introspect = (s: TestServer, token: string, client: TestClient) =>
  tokenRequest(s.url, { token }, clientAuth(client), '/fhir/token/introspection');

/** RFC 7009 revocation at one instance. */
const revokeAt = (s: TestServer, token: string, client: TestClient) =>
  tokenRequest(s.url, { token }, clientAuth(client), '/fhir/token/revocation');

function admin(s: TestServer, method: string, path: string, body?: unknown) {
  return fetch(`${s.url}/admin/api${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Reads and introspects on both instances: the tokens work (and sit in both verifiers' memory). */
async function expectLive(x: IssuedTokens, client: TestClient = x.client) {
  for (const s of [a, b]) {
    const read = await fhir(s, `Patient/${x.patientId}`, x.body.access_token!);
    expect(read.status).toBe(200);
    const search = await fhir(s, `Observation?patient=${x.patientId}`, x.body.access_token!);
    expect(search.status).toBe(200);
    const everything = await fhir(s, `Patient/${x.patientId}/$everything`, x.body.access_token!);
    expect(everything.status).toBe(200);
    expect((await introspect(s, x.body.access_token!, client)).body.active).toBe(true);
  }
}

/** On both instances: the FHIR API refuses the access token, introspection says inactive, refresh fails. */
async function expectEnded(x: IssuedTokens, client: TestClient = x.client) {
  for (const s of [a, b]) {
    for (const path of [
      `Patient/${x.patientId}`,
      `Observation?patient=${x.patientId}`,
      `Patient/${x.patientId}/$everything`,
    ]) {
      const res = await fhir(s, path, x.body.access_token!);
      expect(res.status, `${path} on ${s === a ? 'A' : 'B'}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
      expect(((await res.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    }
    expect((await introspect(s, x.body.access_token!, client)).body).toEqual({ active: false });
    if (x.body.refresh_token) {
      expect((await introspect(s, x.body.refresh_token, client)).body).toEqual({ active: false });
    }
  }
  if (x.body.refresh_token) {
    const again = await tokenRequest(
      b.url,
      { grant_type: 'refresh_token', refresh_token: x.body.refresh_token },
      clientAuth(client),
    );
    expect(again.body.error).toBe('invalid_grant');
  }
  // Targeted: someone else's grant is untouched.
  await expectLive(bystander);
}

async function grantRevokedReasons(userId: string): Promise<unknown[]> {
  await a.ctx.audit.flush();
  const { rows } = await t.db.query<{ detail: { reason: string } }>(
    `SELECT detail FROM audit_events WHERE action = 'grant.revoked' AND user_id = $1 ORDER BY id`,
    [userId],
  );
  return rows.map((r) => r.detail.reason);
}

beforeAll(async () => {
  t = await createTestDatabase();
  a = await startTestServer(t.db);
  // The second instance: its own pool (PostgreSQL), its own verifier memory, the same PUBLIC_URL.
  b = await startTestServer(await t.connectAnother(), { PUBLIC_URL: a.url });
  bystander = await launch();
  await expectLive(bystander);
});
afterAll(async () => {
  await b?.stop();
  await a?.stop();
  await t?.drop();
});

describe('a grant that ends, ends everywhere: FHIR 401 and introspection inactive on both instances', () => {
  it('authorization code replayed (RFC 6749 §4.1.2): the first redemption’s tokens end', async () => {
    const {
      form,
      code: _code,
      ...launched
    } = await authorizeLaunch(a, {
      patientId: await newPatient(),
      scope: 'openid launch patient/*.read offline_access',
    });
    const first = await tokenRequest(a.url, form, clientAuth(launched.client));
    expect(first.status).toBe(200);
    const issued = { ...launched, status: 200, headers: first.headers, body: first.body };
    await expectLive(issued);
    const replay = await tokenRequest(b.url, form, clientAuth(launched.client));
    expect(replay.body.error).toBe('invalid_grant');
    await expectEnded(issued);
  });

  it('refresh token revoked (RFC 7009) at the other instance', async () => {
    const x = await launch();
    await expectLive(x);
    expect((await revokeAt(b, x.body.refresh_token!, x.client)).status).toBe(200);
    await expectEnded(x);
  });

  it('access token revoked (RFC 7009): its grant ends, refresh token and sibling access tokens included', async () => {
    const x = await launch();
    // A sibling access token of the same grant, from a refresh.
    const refreshed = await tokenRequest(
      a.url,
      { grant_type: 'refresh_token', refresh_token: x.body.refresh_token! },
      clientAuth(x.client),
    );
    expect(refreshed.status).toBe(200);
    const sibling = { ...x, body: { access_token: String(refreshed.body.access_token) } } as IssuedTokens;
    await expectLive(x);
    await expectLive(sibling);
    expect((await revokeAt(b, x.body.access_token!, x.client)).status).toBe(200);
    await expectEnded({ ...x, body: { ...x.body, refresh_token: String(refreshed.body.refresh_token) } });
    await expectEnded(sibling);
    expect(await grantRevokedReasons(x.user.id)).toEqual(['access_token_revoked']);
  });

  it('user deactivated through the admin API', async () => {
    const x = await launch();
    await expectLive(x);
    expect((await admin(b, 'POST', `/users/${x.user.id}/deactivate`)).status).toBe(200);
    await expectEnded(x);
    expect(await grantRevokedReasons(x.user.id)).toEqual(['user_deactivated']);
  });

  it('password reset by an administrator: refresh and access tokens stop (issue 16, finding 3)', async () => {
    const x = await launch();
    await expectLive(x);
    const reset = await admin(b, 'POST', `/users/${x.user.id}/password`, {
      password: 'a brand new password',
    });
    expect(reset.status).toBe(204);
    await expectEnded(x);
    expect(await grantRevokedReasons(x.user.id)).toEqual(['password_reset']);
  });

  it('a refused password reset changes nothing: the grants stay', async () => {
    const x = await launch();
    const reset = await admin(b, 'POST', `/users/${x.user.id}/password`, { password: 'short' });
    expect(reset.status).toBe(400);
    await expectLive(x);
  });

  it('roles changed (and only when they change)', async () => {
    const x = await launch();
    expect((await admin(b, 'PATCH', `/users/${x.user.id}`, { roles: [] })).status).toBe(200);
    await expectLive(x); // the same roles (none): nothing changed, nothing ends
    expect((await admin(b, 'PATCH', `/users/${x.user.id}`, { roles: ['clinician'] })).status).toBe(200);
    await expectEnded(x);
    expect(await grantRevokedReasons(x.user.id)).toEqual(['roles_changed']);
  });

  it('an administrator ends the user’s access: POST /admin/api/users/{id}/revoke-grants', async () => {
    const client = await createTestClient(a.ctx);
    const siteNum = (await createTestSite(a.ctx, client.clientId)).siteNum;
    const first = await launch({ client, siteNum });
    // A second grant of the same user, online_access this time, in the same browser session.
    const second = await issueTokens(a, {
      client,
      siteNum,
      user: first.user,
      jar: first.jar,
      patientId: await newPatient(),
      scope: 'openid fhirUser launch patient/*.read online_access',
    });
    expect(second.body.refresh_token).toBeTruthy();
    await expectLive(first);
    await expectLive(second);
    const res = await admin(b, 'POST', `/users/${first.user.id}/revoke-grants`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ id: first.user.id, sessions_ended: 1, grants_revoked: 2 });
    await expectEnded(first);
    await expectEnded(second);
    // The EHR session went with it: the browser is signed out.
    const chart = await fetch(`${a.url}/patients`, {
      redirect: 'manual',
      headers: { cookie: first.jar.header('/patients') },
    });
    expect(chart.status).toBeGreaterThanOrEqual(300);
    expect(chart.headers.get('location')).toMatch(/\/login/);
    // Audited: the administrator's act, and each grant it ended.
    await b.ctx.audit.flush();
    const { rows } = await t.db.query<{ detail: Record<string, unknown> }>(
      `SELECT detail FROM audit_events WHERE action = 'admin.user.revoke_grants' AND entity = $1`,
      [`user/${first.user.id}`],
    );
    expect(rows[0]?.detail).toMatchObject({ via: 'api', sessions_ended: 1, grants_revoked: 2 });
    expect(await grantRevokedReasons(first.user.id)).toEqual([
      'access_ended_by_admin',
      'access_ended_by_admin',
    ]);
    // Again: nothing left to end, still a JSON answer.
    expect(await (await admin(a, 'POST', `/users/${first.user.id}/revoke-grants`)).json()).toEqual({
      id: first.user.id,
      sessions_ended: 0,
      grants_revoked: 0,
    });
  });

  it('revoke-grants refuses an unknown user (404) and other methods (405), in JSON', async () => {
    const unknown = await admin(a, 'POST', '/users/no-such-user/revoke-grants');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toBeTruthy();
    const quote = await admin(a, 'POST', `/users/${encodeURIComponent("x' OR '1'='1")}/revoke-grants`);
    expect(quote.status).toBe(404);
    const get = await admin(a, 'GET', `/users/${bystander.user.id}/revoke-grants`);
    expect(get.status).toBe(405);
    const anonymous = await fetch(`${a.url}/admin/api/users/${bystander.user.id}/revoke-grants`, {
      method: 'POST',
    });
    expect(anonymous.status).toBe(401);
    await expectLive(bystander);
  });

  it('the user signs out: the online_access grant of that session ends, an offline_access one does not', async () => {
    const client = await createTestClient(a.ctx);
    const siteNum = (await createTestSite(a.ctx, client.clientId)).siteNum;
    const online = await launch({
      client,
      siteNum,
      scope: 'openid fhirUser launch patient/*.read online_access',
    });
    const offline = await issueTokens(a, {
      client,
      siteNum,
      user: online.user,
      jar: online.jar,
      patientId: await newPatient(),
      scope: 'openid fhirUser launch patient/*.read offline_access',
    });
    await expectLive(online);
    await expectLive(offline);
    const page = await fetch(`${b.url}/patients`, { headers: { cookie: online.jar.header('/patients') } });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    const out = await fetch(`${b.url}/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: online.jar.header('/logout'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf }).toString(),
    });
    expect(out.status).toBe(303);
    await expectEnded(online);
    await expectLive(offline);
    expect(await grantRevokedReasons(online.user.id)).toEqual(['signed_out']);
  });

  it('client deleted', async () => {
    const x = await launch();
    await expectLive(x);
    expect((await admin(b, 'DELETE', `/clients/${x.client.clientId}`)).status).toBe(204);
    for (const s of [a, b]) {
      const res = await fhir(s, `Patient/${x.patientId}`, x.body.access_token!);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
      // The deleted client cannot authenticate any more; to anyone else the token is inactive.
      expect((await introspect(s, x.body.access_token!, x.client)).status).toBe(401);
      expect((await introspect(s, x.body.access_token!, bystander.client)).body).toEqual({ active: false });
    }
    await expectLive(bystander);
  });

  it('client secret reset', async () => {
    const client = await createTestClient(a.ctx, { token_endpoint_auth_method: 'client_secret_basic' });
    const x = await launch({ client });
    await expectLive(x);
    const reset = await admin(b, 'POST', `/clients/${client.clientId}/secret`);
    expect(reset.status).toBe(200);
    const { client_secret } = (await reset.json()) as { client_secret: string };
    await expectEnded(x, { ...client, clientSecret: client_secret });
    expect(await grantRevokedReasons(x.user.id)).toEqual(['client_secret_reset']);
  });

  it('site removed: the grants launched for it end, the client’s other sites’ do not', async () => {
    const client = await createTestClient(a.ctx);
    const gone = (await createTestSite(a.ctx, client.clientId)).siteNum;
    const kept = (await createTestSite(a.ctx, client.clientId)).siteNum;
    const x = await launch({ client, siteNum: gone });
    const y = await launch({ client, siteNum: kept });
    await expectLive(x);
    expect((await admin(b, 'DELETE', `/clients/${client.clientId}/sites/${gone}`)).status).toBe(204);
    await expectEnded(x);
    await expectLive(y);
    expect(await grantRevokedReasons(x.user.id)).toEqual(['site_deleted']);
  });
});

describe('the check costs no round trip of its own', () => {
  it('a Patient read makes one query (resource and token liveness together) besides its audit row', async () => {
    const counting = countingStatements(t.db);
    const queries = counting.statements;
    const c = await startTestServer(counting.db, { PUBLIC_URL: a.url });
    try {
      const x = await launch();
      expect((await fhir(c, `Patient/${x.patientId}`, x.body.access_token!)).status).toBe(200);
      await c.ctx.audit.flush();
      queries.length = 0;
      expect((await fhir(c, `Patient/${x.patientId}`, x.body.access_token!)).status).toBe(200);
      await c.ctx.audit.flush();
      const made = queries
        .map((q) => q.sql)
        .filter((q) => /fhir_resources|oidc_models|users|audit_events/.test(q));
      expect(made).toHaveLength(2);
      expect(made[0]).toContain('fhir_resources');
      expect(made[0]).toContain('oidc_models');
      expect(made[1]).toMatch(/INSERT INTO audit_events/);
      // …and that one query refuses the token once the grant has ended.
      await revokeAt(a, x.body.access_token!, x.client);
      queries.length = 0;
      expect((await fhir(c, `Patient/${x.patientId}`, x.body.access_token!)).status).toBe(401);
      await c.ctx.audit.flush();
      expect(queries.filter((q) => /fhir_resources|oidc_models/.test(q.sql))).toHaveLength(1);
    } finally {
      await c.stop();
    }
  });

  it('an $everything page asks it in the Patient’s read: no statement names oidc_models alone', async () => {
    const counting = countingStatements(t.db);
    const queries = counting.statements;
    const c = await startTestServer(counting.db, { PUBLIC_URL: a.url });
    try {
      const x = await launch();
      const path = `Patient/${x.patientId}/$everything`;
      queries.length = 0;
      const res = await fhir(c, path, x.body.access_token!);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { entry: unknown[] }).entry).toHaveLength(2);
      const liveness = queries.map((q) => q.sql).filter((q) => q.includes('oidc_models'));
      expect(liveness).toHaveLength(1);
      expect(liveness[0]).toContain('fhir_resources');
      await revokeAt(a, x.body.access_token!, x.client);
      expect((await fhir(c, path, x.body.access_token!)).status).toBe(401);
    } finally {
      await c.stop();
    }
  });
});
