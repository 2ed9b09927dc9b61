/*
 * Issue 16, finding 3: a pre-authorized client got `user/*.rs offline_access` without a launch and
 * without a page, and the grant outlived the user's password reset. Now:
 * - without a launch, offline_access needs the consent page even for a pre-authorized client;
 *   inside a launch, or without offline_access, no page (what the README promises)
 * - the user sees standing grants under "Connected apps" and can end each there
 * - an administrator's password reset ends the refresh token and the access tokens
 */
import type { Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  authorize,
  CookieJar,
  createTestClient,
  createTestUser,
  followRedirects,
  issueTokens,
  pkce,
  signIn,
  type TestClient,
  type TestUser,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let s: TestServer;
let client: TestClient;
const PATIENT = 'offline-patient';

beforeAll(async () => {
  t = await createTestDatabase();
  s = await startTestServer(t.db);
  client = await createTestClient(s.ctx); // pre-authorized (the default), public
  expect(client.client.pre_authorized).toBe(true);
  await putResource(t.db, { resourceType: 'Patient', id: PATIENT, name: [{ family: 'Offline' }] } as Patient);
});
afterAll(async () => {
  await s?.stop();
  await t?.drop();
});

/** An authorization request without a launch (standalone), as the probe sent it. */
async function standalone(jar: CookieJar, scope: string) {
  const p = pkce();
  const r = await authorize(
    s.url,
    {
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: client.client.redirect_uris[0],
      scope,
      state: 'st',
      aud: s.ctx.config.fhirBaseUrl,
      nonce: 'n',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
    },
    jar,
  );
  return { r, verifier: p.verifier };
}

async function redeem(code: string, verifier: string) {
  const token = await tokenRequest(
    s.url,
    {
      grant_type: 'authorization_code',
      code,
      redirect_uri: client.client.redirect_uris[0],
      code_verifier: verifier,
    },
    { clientId: client.clientId },
  );
  expect(token.status).toBe(200);
  return token.body as { access_token: string; refresh_token?: string; scope: string };
}

/** Posts the consent page's form and follows the browser back to redirect_uri. */
async function answer(page: string, jar: CookieJar, decision: 'allow' | 'deny') {
  const action = new URL(/action="([^"]+)"/.exec(page)![1]!, s.url);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
  const res = await fetch(action, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: jar.header(action.pathname), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, decision }).toString(),
  });
  jar.store(res.headers.getSetCookie(), action.pathname);
  return followRedirects(s.url, new URL(res.headers.get('location')!, action), jar);
}

/** A user who consented to standing access: their jar, tokens and the consent page they saw. */
async function consented(user: TestUser) {
  const jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
  const { r, verifier } = await standalone(jar, 'openid fhirUser user/*.rs offline_access');
  expect(r.code).toBeUndefined();
  const back = await answer(r.stoppedAt!.body, jar, 'allow');
  expect(back.code).toBeTruthy();
  return { jar, page: r.stoppedAt!.body, tokens: await redeem(back.code!, verifier) };
}

/** A form POST to one of our pages with a browser's cookies. */
const postForm = (path: string, jar: CookieJar, fields: Record<string, string>) =>
  fetch(`${s.url}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: jar.header(path), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

const fhirRead = (token: string) =>
  fetch(`${s.url}/fhir/Patient/${PATIENT}`, { headers: { authorization: `Bearer ${token}` } });
const introspect = async (token: string) =>
  (await tokenRequest(s.url, { token }, { clientId: client.clientId }, '/fhir/token/introspection')).body;
const refresh = (token: string) =>
  tokenRequest(s.url, { grant_type: 'refresh_token', refresh_token: token }, { clientId: client.clientId });

async function expectEnded(tokens: { access_token: string; refresh_token?: string }) {
  const read = await fhirRead(tokens.access_token);
  expect(read.status).toBe(401);
  expect(read.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  expect(await introspect(tokens.access_token)).toEqual({ active: false });
  expect(await introspect(tokens.refresh_token!)).toEqual({ active: false });
  expect((await refresh(tokens.refresh_token!)).body.error).toBe('invalid_grant');
}

describe('offline_access for a pre-authorized client', () => {
  it('outside a launch, needs the consent page (the probe got a code without one)', async () => {
    const user = await createTestUser(s.ctx);
    const jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    const { r } = await standalone(jar, 'openid fhirUser user/*.rs offline_access');
    expect(r.code).toBeUndefined();
    expect(r.stoppedAt?.status).toBe(200);
    expect(r.stoppedAt!.body).toContain('Keep access after you sign out, until you revoke it');
    expect(r.stoppedAt!.body).toContain('href="/account/apps"');
    // Deny: no code, access_denied back to the client.
    const denied = await answer(r.stoppedAt!.body, jar, 'deny');
    expect(denied.error).toBe('access_denied');
  });

  it('outside a launch without offline_access, and inside a launch with it: no page', async () => {
    const user = await createTestUser(s.ctx);
    const jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    const { r, verifier } = await standalone(jar, 'openid fhirUser user/*.rs online_access');
    expect(r.code).toBeTruthy();
    const online = await redeem(r.code!, verifier);
    // online_access rides on a launch's EHR session: outside a launch it is dropped, not refused.
    expect(online.scope).toBe('openid fhirUser user/*.rs');
    expect(online.refresh_token).toBeUndefined();
    const launched = await issueTokens(s, {
      client,
      user,
      jar,
      patientId: PATIENT,
      scope: 'openid fhirUser launch patient/*.read offline_access',
    });
    expect(launched.status).toBe(200);
    expect(launched.body.scope).toContain('offline_access');
    expect(launched.body.refresh_token).toBeTruthy();
  });

  it('after consent: a refresh token; an administrator’s password reset ends it and the access tokens', async () => {
    const user = await createTestUser(s.ctx);
    const { tokens } = await consented(user);
    expect(tokens.scope.split(' ')).toEqual(expect.arrayContaining(['user/*.rs', 'offline_access']));
    expect(tokens.refresh_token).toBeTruthy();
    expect((await fhirRead(tokens.access_token)).status).toBe(200);
    const refreshed = await refresh(tokens.refresh_token!);
    expect(refreshed.status).toBe(200);
    const second = String(refreshed.body.access_token);
    expect((await fhirRead(second)).status).toBe(200);

    const reset = await fetch(`${s.url}/admin/api/users/${user.id}/password`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'another good password' }),
    });
    expect(reset.status).toBe(204);
    await expectEnded({
      access_token: tokens.access_token,
      refresh_token: String(refreshed.body.refresh_token),
    });
    expect((await fhirRead(second)).status).toBe(401);
  });

  it('the user sees the standing grant under Connected apps and ends it there; nobody else can', async () => {
    const user = await createTestUser(s.ctx);
    const { jar, tokens } = await consented(user);
    const list = await fetch(`${s.url}/account/apps`, { headers: { cookie: jar.header('/account/apps') } });
    expect(list.status).toBe(200);
    expect(list.headers.get('cache-control')).toContain('no-store');
    const html = await list.text();
    expect(html).toContain('Ocean (test)');
    expect(html).toContain('Read all clinical records of any patient you can see');
    const action = /action="(\/account\/apps\/[^"]+\/revoke)"/.exec(html)![1]!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;

    // Another signed-in user posting the same grant id (with their own CSRF token) ends nothing.
    const other = await createTestUser(s.ctx);
    const otherJar = new CookieJar((await signIn(s.ctx, other.id)).cookie);
    const otherPage = await (
      await fetch(`${s.url}/account/apps`, { headers: { cookie: otherJar.header('/account/apps') } })
    ).text();
    expect(otherPage).toContain('No app holds standing access');
    const otherCsrf = /name="_csrf" value="([^"]+)"/.exec(otherPage)![1]!;
    const stolen = await postForm(action, otherJar, { _csrf: otherCsrf });
    expect(stolen.status).toBe(303);
    expect((await fhirRead(tokens.access_token)).status).toBe(200);

    // Without the CSRF token: refused, nothing ends.
    const forged = await postForm(action, jar, {});
    expect(forged.status).toBe(403);
    expect((await fhirRead(tokens.access_token)).status).toBe(200);

    const ended = await postForm(action, jar, { _csrf: csrf });
    expect(ended.status).toBe(303);
    expect(ended.headers.get('location')).toBe('/account/apps?revoked=1');
    await expectEnded(tokens);
    const after = await (
      await fetch(`${s.url}/account/apps?revoked=1`, { headers: { cookie: jar.header('/account/apps') } })
    ).text();
    expect(after).toContain('Access ended.');
    expect(after).toContain('No app holds standing access');
  });

  it('Connected apps needs a signed-in user', async () => {
    const res = await fetch(`${s.url}/account/apps`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/login?returnTo=%2Faccount%2Fapps');
  });
});
