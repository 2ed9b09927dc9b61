/*
 * Sign-in through the organization's identity provider, against a REAL OpenID Connect provider
 * (oidc-provider on its own port, test/helpers/identity-provider.ts) — the hospital's Entra ID,
 * Okta or Keycloak in production. Pins down: the account is found by (iss, sub) only, created on
 * first sign-in with its Practitioner, updated from the claims every time; a wrong nonce, a
 * foreign signature and another issuer are refused and change nothing; a deactivated account
 * stays out; with passwords off the form is gone and POST /login refused; sign-out offers the
 * provider's end-session URL; and Ocean's id_token carries the federated user's claims.
 */
import { randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { putResource } from '../../src/fhir/repository.ts';
import { setActive } from '../../src/users/users.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { browse, type IdentityProvider, startIdentityProvider } from '../helpers/identity-provider.ts';
import { CookieJar, createTestClient, createTestSite, issueTokens, type TestUser } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const ADMIN_GROUP = 'ehr-administrators';

interface Identity {
  user_id: string;
  username: string;
  given_name: string;
  family_name: string;
  email: string | null;
  roles: string[];
  active: boolean;
  password_hash: string | null;
  practitioner_id: string;
}

describe('sign-in through the organization’s OpenID Connect provider', () => {
  let t: TestDatabase;
  let idp: IdentityProvider;
  let s: TestServer;
  const started: { stop(): Promise<void> }[] = [];

  /** Our server as the provider's relying party, registered there under a client id of its own. */
  async function relyingParty(
    provider: IdentityProvider,
    env: Record<string, string> = {},
    issuer = provider.issuer,
  ) {
    const clientId = `ehr-${randomBytes(4).toString('hex')}`;
    const clientSecret = randomBytes(24).toString('base64url');
    const server = await startTestServer(t.db, {
      IDP_ISSUER: issuer,
      IDP_CLIENT_ID: clientId,
      IDP_CLIENT_SECRET: clientSecret,
      IDP_ADMIN_ROLE: ADMIN_GROUP,
      RATE_LIMIT_LOGIN: '0',
      ...env,
    });
    started.push(server);
    await provider.addClient({
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [`${server.url}/login/sso/callback`],
      post_logout_redirect_uris: [`${server.url}/login?signedOut=provider`],
    });
    return server;
  }

  /** A person presses the provider's button and comes back signed in (or refused). */
  function signInThrough(
    server: TestServer,
    jar: CookieJar,
    options: { returnTo?: string; rewrite?: (url: URL) => URL } = {},
  ) {
    const start = `${server.url}/login/sso${options.returnTo ? `?returnTo=${encodeURIComponent(options.returnTo)}` : ''}`;
    return browse(start, jar, options.rewrite ? { rewrite: options.rewrite } : {});
  }

  async function identity(issuer: string, sub: string): Promise<Identity | undefined> {
    const { rows } = await t.db.query<Identity>(
      `SELECT i.user_id, u.username, u.given_name, u.family_name, u.email, u.roles, u.active, u.password_hash, u.practitioner_id
         FROM user_identities i JOIN users u ON u.id = i.user_id WHERE i.issuer = $1 AND i.subject = $2`,
      [issuer, sub],
    );
    return rows[0];
  }

  async function lastSignIn() {
    const { rows } = await t.db.query<{
      outcome: string;
      user_id: string | null;
      detail: Record<string, string>;
    }>(
      `SELECT outcome, user_id, detail FROM audit_events WHERE action = 'ehr.signin' ORDER BY id DESC LIMIT 1`,
    );
    return rows[0];
  }

  async function count(table: string): Promise<number> {
    const { rows } = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    return rows[0]!.n;
  }

  function person(sub: string, claims: Record<string, unknown>) {
    idp.accounts.set(sub, claims);
    idp.signInAs(sub);
  }

  beforeAll(async () => {
    t = await createTestDatabase();
    idp = await startIdentityProvider();
    started.push(idp);
    s = await relyingParty(idp);
  });
  afterAll(async () => {
    for (const x of started.reverse()) await x.stop().catch(() => {});
    await t?.drop();
  });

  it('first sign-in creates the account and its Practitioner, from the provider’s claims', async () => {
    person('alice-0001', {
      given_name: 'Alice',
      family_name: 'Nguyen',
      email: 'alice.nguyen@hospital.example',
      preferred_username: 'anguyen',
      roles: ['clinicians'],
    });
    const jar = new CookieJar();
    const result = await signInThrough(s, jar, { returnTo: '/patients?q=smith' });

    expect(result.status).toBe(200);
    expect(result.url.href).toBe(`${s.url}/patients?q=smith`);
    expect(result.body).toContain('Alice Nguyen');
    // It went through the provider: its authorize endpoint, with PKCE, state and nonce.
    const authorize = result.visited.find((u) => u.origin === idp.issuer && u.pathname === '/auth');
    expect(authorize?.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize?.searchParams.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(authorize?.searchParams.get('nonce')).toMatch(/^[\w-]{20,}$/);
    expect(authorize?.searchParams.get('redirect_uri')).toBe(`${s.url}/login/sso/callback`);

    const account = await identity(idp.issuer, 'alice-0001');
    expect(account).toMatchObject({
      username: 'anguyen',
      given_name: 'Alice',
      family_name: 'Nguyen',
      email: 'alice.nguyen@hospital.example',
      roles: ['clinician'],
      active: true,
      password_hash: null,
    });
    const practitioner = await t.db.query<{ resource: { name: { family: string; given: string[] }[] } }>(
      `SELECT resource FROM fhir_resources WHERE resource_type = 'Practitioner' AND id = $1`,
      [account!.practitioner_id],
    );
    expect(practitioner.rows[0]?.resource.name[0]).toMatchObject({ family: 'Nguyen', given: ['Alice'] });
    expect(await lastSignIn()).toMatchObject({
      outcome: 'success',
      user_id: account!.user_id,
      detail: { method: 'identity_provider', account: 'created' },
    });
  });

  it('gives a fresh session id at sign-in (the one of the pending request is worth nothing)', async () => {
    const jar = new CookieJar();
    let pending = '';
    const result = await signInThrough(s, jar, {
      rewrite: (url) => {
        if (url.origin === idp.issuer && !pending) pending = jar.header('/');
        return url;
      },
    });
    expect(result.status).toBe(200);
    const sid = (h: string) => /ehr\.sid=([^;]+)/.exec(h)?.[1];
    expect(sid(pending)).toBeTruthy();
    expect(sid(jar.header('/'))).toBeTruthy();
    expect(sid(jar.header('/'))).not.toBe(sid(pending));
    const planted = await fetch(`${s.url}/patients`, { redirect: 'manual', headers: { cookie: pending } });
    expect(planted.status).toBe(303);
  });

  it('the second sign-in finds the same account; a changed name, e-mail and role update it', async () => {
    const before = await identity(idp.issuer, 'alice-0001');
    const users = await count('users');
    expect((await signInThrough(s, new CookieJar())).status).toBe(200);
    expect(await identity(idp.issuer, 'alice-0001')).toEqual(before);
    expect(await count('users')).toBe(users);
    expect((await lastSignIn())?.detail.account).toBe('unchanged');

    person('alice-0001', {
      given_name: 'Alice',
      family_name: 'Nguyen-Smith',
      email: 'alice.smith@hospital.example',
      preferred_username: 'asmith',
      roles: ['clinicians', ADMIN_GROUP],
    });
    expect((await signInThrough(s, new CookieJar())).status).toBe(200);
    const after = await identity(idp.issuer, 'alice-0001');
    expect(after).toMatchObject({
      user_id: before!.user_id,
      username: 'anguyen', // chosen once; the id_token sub and the username never follow the provider
      family_name: 'Nguyen-Smith',
      email: 'alice.smith@hospital.example',
      roles: ['admin', 'clinician'],
    });
    expect(await count('users')).toBe(users);
    const practitioner = await t.db.query<{
      resource: { name: { family: string }[]; telecom: { value: string }[] };
    }>(`SELECT resource FROM fhir_resources WHERE resource_type = 'Practitioner' AND id = $1`, [
      after!.practitioner_id,
    ]);
    expect(practitioner.rows[0]?.resource.name[0]?.family).toBe('Nguyen-Smith');
    expect(practitioner.rows[0]?.resource.telecom[0]?.value).toBe('alice.smith@hospital.example');
    expect((await lastSignIn())?.detail.account).toBe('updated');

    // The administrator group taken away at the provider takes the role away here.
    person('alice-0001', { ...idp.accounts.get('alice-0001'), roles: ['clinicians'] });
    expect((await signInThrough(s, new CookieJar())).status).toBe(200);
    expect((await identity(idp.issuer, 'alice-0001'))?.roles).toEqual(['clinician']);
  });

  it('never takes over a local account with the same username or e-mail: (iss, sub) is the only key', async () => {
    const local = await createUser(s.ctx, {
      username: 'bwong',
      password: 'a-long-local-password',
      given_name: 'Bea',
      family_name: 'Wong',
      email: 'bea.wong@hospital.example',
      roles: ['admin'],
    });
    person('bea-provider-sub', {
      name: 'Bea Wong',
      email: 'bea.wong@hospital.example',
      preferred_username: 'bwong',
    });
    expect((await signInThrough(s, new CookieJar())).status).toBe(200);
    const federated = await identity(idp.issuer, 'bea-provider-sub');
    expect(federated?.user_id).not.toBe(local.id);
    expect(federated?.username).toMatch(/^bwong-[0-9a-f]{6}$/);
    expect(federated).toMatchObject({ given_name: 'Bea', family_name: 'Wong', roles: ['clinician'] });
  });

  it('refuses an id_token whose nonce is not the one this sign-in sent, and changes nothing', async () => {
    person('mallory-nonce', { given_name: 'Mal', family_name: 'Lory' });
    const users = await count('users');
    const jar = new CookieJar();
    const result = await signInThrough(s, jar, {
      rewrite: (url) => {
        if (url.origin === idp.issuer && url.pathname === '/auth' && url.searchParams.has('nonce')) {
          url.searchParams.set('nonce', 'a-nonce-from-another-request-0123456789');
        }
        return url;
      },
    });
    expect(result.url.pathname).toBe('/login/sso/callback');
    expect(result.status).toBe(401);
    expect(result.body).toContain('could not be verified');
    expect(await identity(idp.issuer, 'mallory-nonce')).toBeUndefined();
    expect(await count('users')).toBe(users);
    expect(await lastSignIn()).toMatchObject({
      outcome: 'failure',
      detail: {
        reason: 'answer_rejected',
        provider_error: 'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
        check: 'unexpected ID Token "nonce" claim value',
      },
    });
    // Not signed in, and the pending request is spent: replaying the answer is refused too.
    expect(
      (await fetch(`${s.url}/patients`, { redirect: 'manual', headers: { cookie: jar.header('/') } })).status,
    ).toBe(303);
    const replay = await browse(result.url, jar);
    expect(replay.status).toBe(400);
  });

  it('refuses an id_token signed with a key the provider does not publish', async () => {
    const impostor = await startIdentityProvider({ publishForeignKeys: true });
    started.push(impostor);
    const server = await relyingParty(impostor);
    impostor.accounts.set('eve-signature', { given_name: 'Eve', family_name: 'Forger' });
    impostor.signInAs('eve-signature');
    const result = await signInThrough(server, new CookieJar());
    expect(result.url.pathname).toBe('/login/sso/callback');
    expect(result.status).toBe(401);
    expect(await identity(impostor.issuer, 'eve-signature')).toBeUndefined();
    expect((await lastSignIn())?.detail).toMatchObject({
      reason: 'answer_rejected',
      check: 'JWT signature verification failed',
    });
  });

  it('refuses an answer from another issuer, with or without the RFC 9207 iss parameter', async () => {
    const server = await relyingParty(idp, {}, idp.otherTenantIssuer);
    person('trent-tenant', { given_name: 'Trent', family_name: 'Tenant' });

    const asSent = await signInThrough(server, new CookieJar());
    expect(asSent.url.pathname).toBe('/login/sso/callback');
    expect(asSent.status).toBe(401);
    expect((await lastSignIn())?.detail.check).toBe('unexpected "iss" (issuer) response parameter value');

    // A mix-up attacker strips `iss` from the answer: the id_token's own iss still gives it away.
    const stripped = await signInThrough(server, new CookieJar(), {
      rewrite: (url) => {
        if (url.pathname === '/login/sso/callback') url.searchParams.delete('iss');
        return url;
      },
    });
    expect(stripped.status).toBe(401);
    expect(await lastSignIn()).toMatchObject({
      outcome: 'failure',
      detail: {
        reason: 'answer_rejected',
        provider_error: 'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
        check: 'unexpected JWT "iss" (issuer) claim value',
      },
    });
    expect(await identity(idp.otherTenantIssuer, 'trent-tenant')).toBeUndefined();
    expect(await identity(idp.issuer, 'trent-tenant')).toBeUndefined();
  });

  it('keeps a deactivated account out, and does not update it', async () => {
    person('carol-0002', { given_name: 'Carol', family_name: 'Ito' });
    expect((await signInThrough(s, new CookieJar())).status).toBe(200);
    const carol = await identity(idp.issuer, 'carol-0002');
    await setActive(s.ctx, carol!.user_id, false);
    person('carol-0002', { given_name: 'Carol', family_name: 'Ito-Renamed' });

    const jar = new CookieJar();
    const result = await signInThrough(s, jar);
    expect(result.status).toBe(403);
    expect(result.body).toContain('deactivated');
    expect(await identity(idp.issuer, 'carol-0002')).toMatchObject({ active: false, family_name: 'Ito' });
    expect(await lastSignIn()).toMatchObject({
      outcome: 'failure',
      user_id: carol!.user_id,
      detail: { reason: 'inactive' },
    });
    expect(
      (await fetch(`${s.url}/patients`, { redirect: 'manual', headers: { cookie: jar.header('/') } })).status,
    ).toBe(303);
  });

  it('refuses the provider’s own refusal (access_denied) with a page naming it', async () => {
    idp.signInAs(undefined);
    // The provider's login page stays: the person gives up; the provider answers access_denied.
    const jar = new CookieJar();
    const page = await signInThrough(s, jar);
    expect(page.url.origin).toBe(idp.issuer);
    const authorize = page.visited.find((u) => u.pathname === '/auth')!;
    const state = authorize.searchParams.get('state')!;
    const result = await browse(
      `${s.url}/login/sso/callback?error=access_denied&error_description=The+user+cancelled&state=${state}&iss=${encodeURIComponent(idp.issuer)}`,
      jar,
    );
    expect(result.status).toBe(401);
    expect(result.body).toContain('access_denied');
    expect((await lastSignIn())?.detail).toMatchObject({
      reason: 'provider_error',
      provider_error: 'access_denied',
    });
  });

  it('an Ocean launch by a federated user carries that user’s claims in the id_token', async () => {
    person('dana-0003', {
      given_name: 'Dana',
      family_name: 'Okafor',
      email: 'dana.okafor@hospital.example',
    });
    const jar = new CookieJar();
    expect((await signInThrough(s, jar)).status).toBe(200);
    const dana = await identity(idp.issuer, 'dana-0003');
    await putResource(t.db, { resourceType: 'Patient', id: 'sso-patient', name: [{ family: 'Chart' }] });
    const client = await createTestClient(s.ctx);
    const { siteNum } = await createTestSite(s.ctx, client.clientId);

    const tokens = await issueTokens(s, {
      jar,
      client,
      siteNum,
      patientId: 'sso-patient',
      scope: 'openid fhirUser profile launch patient/*.read',
      user: { id: dana!.user_id } as TestUser,
    });
    expect(tokens.status).toBe(200);
    const { payload } = await jwtVerify(
      tokens.body.id_token!,
      createRemoteJWKSet(new URL(`${s.url}/fhir/jwks`)),
      { issuer: s.config.fhirBaseUrl, audience: client.clientId },
    );
    expect(payload).toMatchObject({
      sub: dana!.user_id,
      given_name: 'Dana',
      family_name: 'Okafor',
      name: 'Dana Okafor',
      email: 'dana.okafor@hospital.example',
      fhirUser: `${s.config.fhirBaseUrl}/Practitioner/${dana!.practitioner_id}`,
    });
    expect(tokens.body.patient).toBe('sso-patient');
  });

  it('sign-out ends our session and offers the provider’s end-session URL', async () => {
    person('erin-0004', { given_name: 'Erin', family_name: 'Baker' });
    const jar = new CookieJar();
    const page = await signInThrough(s, jar);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
    expect(csrf).toBeTruthy();
    const out = await fetch(`${s.url}/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header('/logout'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf! }).toString(),
    });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/login?signedOut=sso');
    jar.store(out.headers.getSetCookie(), '/logout');
    const signedOut = await browse(new URL(out.headers.get('location')!, s.url), jar);
    expect(signedOut.body).toContain('You have signed out.');
    const href = /href="([^"]+)">Also sign out of your organization/
      .exec(signedOut.body)?.[1]
      ?.replaceAll('&amp;', '&');
    const endSession = new URL(href!);
    expect(endSession.origin + endSession.pathname).toBe(`${idp.issuer}/session/end`);
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${s.url}/login?signedOut=provider`);
    expect(
      (await fetch(`${s.url}/patients`, { redirect: 'manual', headers: { cookie: jar.header('/') } })).status,
    ).toBe(303);
    // After a password sign-in there is nothing to sign out of at the provider: no such offer.
    const local = await browse(`${s.url}/login?signedOut=1`, new CookieJar());
    expect(local.body).toContain('You have signed out.');
    expect(local.body).not.toContain('Also sign out of your organization');
  });

  it('with local passwords off, the password form is gone and POST /login is refused', async () => {
    const server = await relyingParty(idp, { LOCAL_PASSWORDS: 'false' });
    await createUser(server.ctx, {
      username: 'frank',
      password: 'frank-has-a-password',
      given_name: 'Frank',
      family_name: 'Local',
    });
    const jar = new CookieJar();
    const form = await browse(`${server.url}/login`, jar);
    expect(form.status).toBe(200);
    expect(form.body).not.toContain('type="password"');
    expect(form.body).toContain('href="/login/sso"');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? '';
    const post = await fetch(`${server.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header('/login'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        username: 'frank',
        password: 'frank-has-a-password',
        _csrf: csrf,
      }).toString(),
    });
    expect(post.status).toBe(403);
    expect(post.headers.get('set-cookie') ?? '').not.toMatch(/ehr\.sid=s%3A/);
    expect(await lastSignIn()).toMatchObject({
      outcome: 'failure',
      detail: { reason: 'local_passwords_off' },
    });

    // The provider still signs people in.
    person('gus-0005', { given_name: 'Gus', family_name: 'Provider' });
    expect((await signInThrough(server, new CookieJar())).status).toBe(200);
  });

  it('an account of the provider has no password: password sign-in refuses it', async () => {
    const alice = await identity(idp.issuer, 'alice-0001');
    const jar = new CookieJar();
    const form = await browse(`${s.url}/login`, jar);
    expect(form.body).toContain('type="password"');
    expect(form.body).toContain('Sign in with your organization account');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? '';
    const post = await fetch(`${s.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header('/login'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: alice!.username, password: '', _csrf: csrf }).toString(),
    });
    expect(post.status).toBe(400);
    const post2 = await fetch(`${s.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header('/login'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        username: alice!.username,
        password: 'anything-at-all',
        _csrf: csrf,
      }).toString(),
    });
    expect(post2.status).toBe(401);
  });
  it('reads the claims a provider keeps out of the id_token from its userinfo endpoint (Okta’s default)', async () => {
    const thin = await startIdentityProvider({ claimsInIdToken: false });
    started.push(thin);
    const server = await relyingParty(thin, { IDP_ROLES_CLAIM: 'realm_access.roles' });
    thin.accounts.set('hana-0006', {
      given_name: 'Hana',
      family_name: 'Sato',
      email: 'hana.sato@hospital.example',
      realm_access: { roles: ['clinicians', ADMIN_GROUP] },
    });
    thin.signInAs('hana-0006');
    const jar = new CookieJar();
    expect((await signInThrough(server, jar)).status).toBe(200);
    expect(await identity(thin.issuer, 'hana-0006')).toMatchObject({
      given_name: 'Hana',
      family_name: 'Sato',
      email: 'hana.sato@hospital.example',
      roles: ['admin', 'clinician'],
    });
    // The role from the provider is the role here: the administration console opens.
    const console = await fetch(`${server.url}/admin`, {
      redirect: 'manual',
      headers: { cookie: jar.header('/admin') },
    });
    expect(console.status).toBe(200);
  });

  it('answers 502 with a page when the provider cannot be reached, and 429 past the sign-in budget', async () => {
    const gone = await startIdentityProvider();
    const issuer = gone.issuer;
    await gone.stop();
    const server = await relyingParty(idp, { RATE_LIMIT_LOGIN: '3' }, issuer).catch(() => undefined);
    // relyingParty registers the client at `idp`; the server itself only knows the dead issuer.
    expect(server).toBeDefined();
    const first = await browse(`${server!.url}/login/sso`, new CookieJar());
    expect(first.status).toBe(502);
    expect(first.body).toContain('cannot be reached');
    await browse(`${server!.url}/login/sso`, new CookieJar());
    await browse(`${server!.url}/login/sso/callback?code=x&state=y`, new CookieJar());
    const limited = await browse(`${server!.url}/login/sso`, new CookieJar());
    expect(limited.status).toBe(429);
    expect(limited.body).not.toMatch(/\n\s+at /);
  });
});
