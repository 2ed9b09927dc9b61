import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  authorize,
  CookieJar,
  createTestClient,
  createTestLaunch,
  createTestSite,
  createTestUser,
  issueTokens,
  pkce,
  signIn,
  type TestClient,
  type TestUser,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('authorization endpoint and interaction', () => {
  let t: TestDatabase;
  let s: TestServer;
  let client: TestClient;
  let siteNum: string;
  let user: TestUser;
  let jar: CookieJar;

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    client = await createTestClient(s.ctx);
    siteNum = (await createTestSite(s.ctx, client.clientId)).siteNum;
    user = await createTestUser(s.ctx);
    jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const newLaunch = async (patientId = 'pat-a', who: TestUser = user, site = siteNum) =>
    (await createTestLaunch(s.ctx, { userId: who.id, patientId, siteNum: site, action: 'viewMap' })).launchId;

  const params = (launch: string, extra: Record<string, string | undefined> = {}) => {
    const p = pkce();
    return {
      verifier: p.verifier,
      params: {
        response_type: 'code',
        client_id: client.clientId,
        redirect_uri: client.client.redirect_uris[0],
        scope: 'openid fhirUser launch patient/*.read',
        state: randomBytes(8).toString('hex'),
        aud: s.ctx.config.fhirBaseUrl,
        launch,
        nonce: 'n-1',
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
        ...extra,
      } as Record<string, string | undefined>,
    };
  };

  const redeem = (code: string, verifier?: string, c: TestClient = client) =>
    tokenRequest(
      s.url,
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: c.client.redirect_uris[0],
        code_verifier: verifier,
      },
      { clientId: c.clientId, ...(c.clientSecret ? { clientSecret: c.clientSecret } : {}) },
    );

  it('GET: an EHR session is the login — code back at redirect_uri with state and iss, no second sign-in', async () => {
    const { params: p } = params(await newLaunch());
    const r = await authorize(s.url, p, jar);
    expect(r.code).toBeTruthy();
    expect(r.state).toBe(p.state);
    expect(r.location.searchParams.get('iss')).toBe(s.ctx.config.fhirBaseUrl);
    expect(r.location.origin + r.location.pathname).toBe(client.client.redirect_uris[0]);
    expect(r.hops.some((h) => h.includes('/login'))).toBe(false);
  });

  it('POST (authorize-post) works like GET', async () => {
    const { params: p, verifier } = params(await newLaunch('pat-post'));
    const r = await authorize(s.url, p, jar, { method: 'POST' });
    expect(r.code).toBeTruthy();
    expect(r.state).toBe(p.state);
    const tok = await redeem(r.code!, verifier);
    expect(tok.status).toBe(200);
    expect(tok.body.patient).toBe('pat-post');
  });

  it('with no EHR session: to /login?returnTo=<interaction>, and back into the flow after sign-in', async () => {
    const browser = new CookieJar();
    const { params: p, verifier } = params(await newLaunch('pat-login'));
    const first = await authorize(s.url, p, browser);
    expect(first.code).toBeUndefined();
    const loginHop = new URL(first.hops.find((h) => new URL(h).pathname === '/login')!);
    const returnTo = loginHop.searchParams.get('returnTo')!;
    expect(returnTo).toMatch(/^\/interaction\/[\w-]+$/);
    // The user signs in (the EHR's /login sets the session cookie), then the browser goes back.
    const { cookie } = await signIn(s.ctx, user.id);
    browser.store([`${cookie}; Path=/; HttpOnly`], '/login');
    let url = new URL(returnTo, s.url);
    let code: string | undefined;
    for (let i = 0; i < 5 && !code; i++) {
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: browser.header(url.pathname) } });
      browser.store(res.headers.getSetCookie(), url.pathname);
      url = new URL(res.headers.get('location')!, url);
      code = url.searchParams.get('code') ?? undefined;
    }
    expect(code).toBeTruthy();
    expect((await redeem(code!, verifier)).body.patient).toBe('pat-login');
  });

  it('two launches for two patients in one browser session each carry their own patient and grant', async () => {
    const a = await issueTokens(s, { client, siteNum, user, jar, patientId: 'pat-one' });
    const b = await issueTokens(s, { client, siteNum, user, jar, patientId: 'pat-two' });
    expect(a.body.patient).toBe('pat-one');
    expect(b.body.patient).toBe('pat-two');
    expect(decodeJwt(a.body.access_token!).patient).toBe('pat-one');
    expect(decodeJwt(b.body.access_token!).patient).toBe('pat-two');
    const grants = await t.db.query<{ grant_id: string }>(
      'SELECT grant_id FROM launch_contexts WHERE patient_id = ANY($1)',
      [['pat-one', 'pat-two']],
    );
    expect(new Set(grants.rows.map((r) => r.grant_id)).size).toBe(2);
  });

  it('single sign-on: once the browser has signed in, a launch needs no interaction page at all', async () => {
    const browser = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    const first = params(await newLaunch('pat-sso-1'));
    const r1 = await authorize(s.url, first.params, browser);
    expect(r1.code).toBeTruthy();
    expect(r1.hops.some((h) => h.includes('/interaction/'))).toBe(true);
    const second = params(await newLaunch('pat-sso-2'));
    const r2 = await authorize(s.url, second.params, browser);
    expect(r2.code).toBeTruthy();
    expect(r2.hops).toHaveLength(1);
    expect(r2.state).toBe(second.params.state);
    const tok = await redeem(r2.code!, second.verifier);
    expect(tok.body.patient).toBe('pat-sso-2');
    // A bad launch on that path is still an error redirect with state and no code.
    const bad = params(randomBytes(32).toString('base64url'));
    const r3 = await authorize(s.url, bad.params, browser);
    expect(r3.code).toBeUndefined();
    expect(r3.error).toBe('invalid_request');
    expect(r3.state).toBe(bad.params.state);
    // An explicit prompt goes through the interaction, and the launch is consumed once.
    const prompted = params(await newLaunch('pat-sso-3'), { prompt: 'login' });
    const r4 = await authorize(s.url, prompted.params, browser);
    expect(r4.code).toBeTruthy();
    expect(r4.hops.some((h) => h.includes('/interaction/'))).toBe(true);
    expect((await redeem(r4.code!, prompted.verifier)).body.patient).toBe('pat-sso-3');
    // Signed out of the EHR: back to the sign-in page, whatever the provider's cookie says.
    const signedOut = new CookieJar();
    for (const part of browser.header('/fhir/auth').split('; ')) {
      if (!part.startsWith('ehr.sid=')) signedOut.store([`${part}; Path=/`], '/');
    }
    const r5 = await authorize(s.url, params(await newLaunch('pat-sso-4')).params, signedOut);
    expect(r5.code).toBeUndefined();
    expect(r5.hops.some((h) => new URL(h).pathname === '/login')).toBe(true);
  });

  it('a deactivated clinician gets no code, even with a live browser session', async () => {
    const leaving = await createTestUser(s.ctx);
    const browser = new CookieJar((await signIn(s.ctx, leaving.id)).cookie);
    await issueTokens(s, { client, siteNum, user: leaving, jar: browser, patientId: 'pat-before' });
    const launch = await newLaunch('pat-after', leaving);
    await t.db.query('UPDATE users SET active = false WHERE id = $1', [leaving.id]);
    const r = await authorize(s.url, params(launch).params, browser);
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('access_denied');
  });

  it('another clinician signing into the same browser gets their own identity', async () => {
    const browser = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    const first = await issueTokens(s, { client, siteNum, user, jar: browser, patientId: 'pat-x' });
    expect(decodeJwt(first.body.id_token!).sub).toBe(user.id);
    const second = await createTestUser(s.ctx, { givenName: 'Ada', familyName: 'Lovelace' });
    browser.store([`${(await signIn(s.ctx, second.id)).cookie}; Path=/`], '/');
    const next = await issueTokens(s, { client, siteNum, user: second, jar: browser, patientId: 'pat-y' });
    expect(next.status).toBe(200);
    const id = decodeJwt(next.body.id_token!);
    expect(id.sub).toBe(second.id);
    expect(id.given_name).toBe('Ada');
  });

  it('requires PKCE S256 by default: no challenge, or plain, gets an error redirect with state and no code', async () => {
    const noPkce = params(await newLaunch(), { code_challenge: undefined, code_challenge_method: undefined });
    const r1 = await authorize(s.url, noPkce.params, jar);
    expect(r1.code).toBeUndefined();
    expect(r1.error).toBe('invalid_request');
    expect(r1.state).toBe(noPkce.params.state);
    const plain = params(await newLaunch(), {
      code_challenge: 'a'.repeat(43),
      code_challenge_method: 'plain',
    });
    const r2 = await authorize(s.url, plain.params, jar);
    expect(r2.code).toBeUndefined();
    expect(r2.error).toBe('invalid_request');
    expect(r2.state).toBe(plain.params.state);
  });

  it('lets an administrator switch PKCE off for one client (and that client only)', async () => {
    const noPkceClient = await createTestClient(s.ctx, { require_pkce: false });
    const site = (await createTestSite(s.ctx, noPkceClient.clientId)).siteNum;
    const launch = await newLaunch('pat-np', user, site);
    const r = await authorize(
      s.url,
      {
        response_type: 'code',
        client_id: noPkceClient.clientId,
        redirect_uri: noPkceClient.client.redirect_uris[0],
        scope: 'openid fhirUser launch patient/*.read',
        state: 'st',
        aud: s.ctx.config.fhirBaseUrl,
        launch,
      },
      jar,
    );
    expect(r.code).toBeTruthy();
    const tok = await redeem(r.code!, undefined, noPkceClient);
    expect(tok.status).toBe(200);
    expect(tok.body.patient).toBe('pat-np');
  });

  it('aud: one trailing slash is tolerated; any other value, or none, gets an error redirect and no code', async () => {
    const slash = params(await newLaunch(), { aud: `${s.ctx.config.fhirBaseUrl}/` });
    expect((await authorize(s.url, slash.params, jar)).code).toBeTruthy();
    for (const aud of [`${s.ctx.config.fhirBaseUrl}//`, 'https://evil.example/fhir', s.url, undefined]) {
      const p = params(await newLaunch(), { aud });
      const r = await authorize(s.url, p.params, jar);
      expect(r.code, String(aud)).toBeUndefined();
      expect(r.error, String(aud)).toBe('invalid_request');
      expect(r.state, String(aud)).toBe(p.params.state);
      expect(r.location.origin + r.location.pathname).toBe(client.client.redirect_uris[0]);
    }
  });

  it('launch: unknown, reused, another user’s or another client’s launch gets an error and no code', async () => {
    const unknown = params(randomBytes(32).toString('base64url'));
    const r1 = await authorize(s.url, unknown.params, jar);
    expect(r1.code).toBeUndefined();
    expect(r1.error).toBe('invalid_request');
    expect(r1.state).toBe(unknown.params.state);

    const launch = await newLaunch('pat-once');
    expect((await authorize(s.url, params(launch).params, jar)).code).toBeTruthy();
    const reused = await authorize(s.url, params(launch).params, jar);
    expect(reused.code).toBeUndefined();
    expect(reused.error).toBe('invalid_request');

    const someoneElse = await createTestUser(s.ctx);
    const theirs = await newLaunch('pat-theirs', someoneElse);
    const r3 = await authorize(s.url, params(theirs).params, jar);
    expect(r3.code).toBeUndefined();
    expect(r3.error).toBe('invalid_request');
    // Not consumed by the failed attempt: its owner can still use it.
    const ownerJar = new CookieJar((await signIn(s.ctx, someoneElse.id)).cookie);
    expect((await authorize(s.url, params(theirs).params, ownerJar)).code).toBeTruthy();

    const otherClient = await createTestClient(s.ctx);
    const otherSite = (await createTestSite(s.ctx, otherClient.clientId)).siteNum;
    const foreign = await newLaunch('pat-foreign', user, otherSite);
    const r4 = await authorize(s.url, params(foreign).params, jar);
    expect(r4.code).toBeUndefined();
    expect(r4.error).toBe('invalid_request');
  });

  it('an expired launch gets no code', async () => {
    const launch = await newLaunch('pat-exp');
    await t.db.query(
      `UPDATE launch_contexts SET expires_at = now() - interval '1 second' WHERE patient_id = 'pat-exp'`,
    );
    const r = await authorize(s.url, params(launch).params, jar);
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('invalid_request');
  });

  it('never redirects to an unregistered redirect_uri: an error page on our server instead', async () => {
    for (const redirect_uri of [
      'https://evil.example/cb',
      `${client.client.redirect_uris[0]}/extra`,
      undefined,
    ]) {
      const p = params(await newLaunch(), { redirect_uri });
      const r = await authorize(s.url, p.params, jar);
      expect(r.code).toBeUndefined();
      expect(r.hops.every((h) => new URL(h).origin === s.url)).toBe(true);
      expect(r.stoppedAt?.status).toBe(400);
      expect(r.stoppedAt?.body).toMatch(/redirect_uri/);
      expect(r.stoppedAt?.body).not.toMatch(/at .*\.(js|ts):\d+/);
    }
  });

  it('drops the scopes it does not grant, never refusing the request', async () => {
    const scope =
      'openid fhirUser profile launch launch/patient online_access patient/Patient.read patient/*.read patient/$everything user/*.*';
    const r = await issueTokens(s, { client, siteNum, user, jar, scope });
    expect(r.status).toBe(200);
    const granted =
      'openid fhirUser profile launch launch/patient online_access patient/Patient.read patient/*.read';
    expect(r.body.scope).toBe(granted);
    expect(decodeJwt(r.body.access_token!).scope).toBe(granted);
  });

  it('grants v2 scopes, granular ones included, verbatim', async () => {
    const scope =
      'openid fhirUser launch patient/Patient.rs patient/Observation.rs?category=laboratory patient/Condition.cruds';
    const r = await issueTokens(s, { client, siteNum, user, jar, scope });
    expect(r.body.scope).toBe(
      'openid fhirUser launch patient/Patient.rs patient/Observation.rs?category=laboratory',
    );
  });

  it('issues a refresh token for offline_access although SMART clients send no prompt', async () => {
    const r = await issueTokens(s, {
      client,
      siteNum,
      user,
      jar,
      scope: 'openid fhirUser launch offline_access patient/*.read',
    });
    expect(r.body.refresh_token).toBeTruthy();
    expect(r.body.scope).toContain('offline_access');
    const none = await issueTokens(s, {
      client,
      siteNum,
      user,
      jar,
      scope: 'openid fhirUser launch patient/*.read',
    });
    expect(none.body.refresh_token).toBeUndefined();
  });

  it('single sign-on with offline_access: no interaction for the prompt the client did not send, one for a prompt it sent', async () => {
    const browser = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    const scope = 'openid fhirUser launch offline_access patient/*.read';
    const first = params(await newLaunch('pat-off-1'), { scope });
    expect((await authorize(s.url, first.params, browser)).code).toBeTruthy();
    // the browser has a provider session now: the next launch gets its code at /fhir/auth itself
    const second = params(await newLaunch('pat-off-2'), { scope });
    const r2 = await authorize(s.url, second.params, browser);
    expect(r2.code).toBeTruthy();
    expect(r2.hops).toHaveLength(1);
    const tok = await redeem(r2.code!, second.verifier);
    expect(tok.body.patient).toBe('pat-off-2');
    expect(tok.body.refresh_token).toBeTruthy();
    expect(String(tok.body.scope).split(' ')).toContain('offline_access');
    // prompt=consent sent by the client is the client's question: the interaction answers it
    const asked = params(await newLaunch('pat-off-3'), { scope, prompt: 'consent' });
    const r3 = await authorize(s.url, asked.params, browser);
    expect(r3.code).toBeTruthy();
    expect(r3.hops.some((h) => h.includes('/interaction/'))).toBe(true);
    expect((await redeem(r3.code!, asked.verifier)).body.refresh_token).toBeTruthy();
    // a client that is not pre-authorized is shown the page, single sign-on or not
    const shy = await createTestClient(s.ctx, { pre_authorized: false });
    const shySite = (await createTestSite(s.ctx, shy.clientId)).siteNum;
    const shyLaunch = params(await newLaunch('pat-off-4', user, shySite), {
      scope,
      client_id: shy.clientId,
      redirect_uri: shy.client.redirect_uris[0],
    });
    const r4 = await authorize(s.url, shyLaunch.params, browser);
    expect(r4.code).toBeUndefined();
    expect(r4.stoppedAt?.status).toBe(200);
    expect(r4.stoppedAt?.body).toContain('Allow access?');
  });

  it('asks for consent when the client is not pre-authorized: Allow gives a code, Deny access_denied', async () => {
    const shy = await createTestClient(s.ctx, { pre_authorized: false });
    const site = (await createTestSite(s.ctx, shy.clientId)).siteNum;
    const consentFor = async (decision: 'allow' | 'deny', patient: string) => {
      const p = pkce();
      const r = await authorize(
        s.url,
        {
          response_type: 'code',
          client_id: shy.clientId,
          redirect_uri: shy.client.redirect_uris[0],
          scope: 'openid fhirUser launch patient/*.read user/*.*',
          state: `st-${decision}`,
          aud: s.ctx.config.fhirBaseUrl,
          launch: await newLaunch(patient, user, site),
          code_challenge: p.challenge,
          code_challenge_method: 'S256',
        },
        jar,
      );
      expect(r.stoppedAt?.status).toBe(200);
      const page = r.stoppedAt!.body;
      expect(page).toContain('Read all clinical records of this patient');
      expect(page).not.toContain('user/*.*');
      const action = /action="([^"]+)"/.exec(page)![1]!;
      const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
      const url = new URL(action, s.url);
      const res = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: jar.header(url.pathname), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, decision }).toString(),
      });
      jar.store(res.headers.getSetCookie(), url.pathname);
      let next = new URL(res.headers.get('location')!, url);
      const resumed = await fetch(next, {
        redirect: 'manual',
        headers: { cookie: jar.header(next.pathname) },
      });
      next = new URL(resumed.headers.get('location')!, next);
      return next;
    };
    const allowed = await consentFor('allow', 'pat-consent');
    expect(allowed.searchParams.get('code')).toBeTruthy();
    const denied = await consentFor('deny', 'pat-denied');
    expect(denied.searchParams.get('code')).toBeNull();
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('state')).toBe('st-deny');
  });

  it('refuses a consent POST without the CSRF token', async () => {
    const res = await fetch(`${s.url}/interaction/abc/confirm`, {
      method: 'POST',
      headers: {
        cookie: jar.header('/interaction/abc/confirm'),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'decision=allow',
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });

  it('without a launch: no patient context, patient scopes dropped, the token still names fhirUser', async () => {
    const p = pkce();
    const r = await authorize(
      s.url,
      {
        response_type: 'code',
        client_id: client.clientId,
        redirect_uri: client.client.redirect_uris[0],
        scope: 'openid fhirUser launch patient/*.read user/*.read',
        state: 'no-launch',
        aud: s.ctx.config.fhirBaseUrl,
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
      },
      jar,
    );
    expect(r.code).toBeTruthy();
    const tok = await redeem(r.code!, p.verifier);
    expect(tok.status).toBe(200);
    expect(tok.body.scope).toBe('openid fhirUser user/*.read');
    expect(tok.body).not.toHaveProperty('patient');
    expect(tok.body).not.toHaveProperty('oceanSharedEncryptionKey');
    const at = decodeJwt(String(tok.body.access_token));
    expect(at.patient).toBeUndefined();
    expect(at.fhirUser).toBe(`${s.ctx.config.fhirBaseUrl}/Practitioner/${user.practitionerId}`);
  });

  it('odd requests get clear errors, never a crash or a stack trace', async () => {
    const resume = await fetch(`${s.url}/fhir/auth/not-a-real-interaction`, { redirect: 'manual' });
    expect(resume.status).toBeGreaterThanOrEqual(400);
    expect(resume.status).toBeLessThan(500);
    const getToken = await fetch(`${s.url}/fhir/token`);
    expect(getToken.status).toBeGreaterThanOrEqual(400);
    expect(getToken.status).toBeLessThan(500);
    const noClient = await fetch(`${s.url}/fhir/auth?response_type=code`, { redirect: 'manual' });
    expect(noClient.status).toBe(400);
    const unknownClient = await fetch(`${s.url}/fhir/auth?response_type=code&client_id=nobody-at-all`, {
      redirect: 'manual',
    });
    expect(unknownClient.status).toBe(400);
    const dupes = await fetch(
      `${s.url}/fhir/auth?response_type=code&client_id=${client.clientId}&client_id=${client.clientId}`,
      { redirect: 'manual' },
    );
    expect(dupes.status).toBe(400);
    const jsonPost = await fetch(`${s.url}/fhir/auth`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/json' },
      body: '{"client_id":',
    });
    expect(jsonPost.status).toBe(400);
    for (const r of [resume, getToken, noClient, unknownClient, dupes, jsonPost]) {
      expect(await r.text()).not.toMatch(/at .*\.(js|ts):\d+/);
    }
  });

  it('an unknown or finished interaction is a clear page, not a crash', async () => {
    const res = await fetch(`${s.url}/interaction/does-not-exist`, {
      headers: { cookie: jar.header('/interaction/x') },
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/expired|launch the application again/i);
  });
});
