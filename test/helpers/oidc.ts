/*
 * Helpers for tests that need clients, users, EHR sessions and real tokens.
 * - createTestClient / createTestSite / createTestUser write rows through the real stores (or SQL
 *   for users, whose store belongs to the EHR capability)
 * - signIn makes an EHR session row and the signed `ehr.sid` cookie express-session expects:
 *   the same thing POST /login produces, without a test-only route in src/
 * - createTestLaunch stores the launch's patient first when it is not stored (a launch names a
 *   stored patient), then records the launch as /launch does
 * - issueTokens runs the REAL flow over HTTP: launch context → /fhir/auth → /interaction →
 *   /fhir/auth/:uid → redirect_uri?code → POST /fhir/token, and returns the token response
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { Patient } from '@medplum/fhirtypes';
import { type ClientRecord, type CreateClientInput, createClient } from '../../src/clients/clients.ts';
import type { AppContext } from '../../src/context.ts';
import { readResource } from '../../src/fhir/reads.ts';
import { isValidId } from '../../src/fhir/resource-types.ts';
import { putResource } from '../../src/fhir/writes.ts';
import {
  type CreateLaunchInput,
  createLaunchContext,
  type LaunchRequester,
} from '../../src/launch/launch-contexts.ts';
import { addSite } from '../../src/sites/sites.ts';
import type { TestServer } from './server.ts';

export const TEST_REDIRECT_URI = 'https://ocean.example.test/sso/smart/callback';

export interface TestClient {
  client: ClientRecord;
  clientId: string;
  clientSecret?: string;
}

export async function createTestClient(
  ctx: AppContext,
  overrides: Partial<CreateClientInput> = {},
): Promise<TestClient> {
  const { client, client_secret } = await createClient(ctx, {
    name: 'Ocean (test)',
    redirect_uris: [TEST_REDIRECT_URI],
    launch_url: 'https://ocean.example.test/sso/smart/auth',
    token_endpoint_auth_method: 'none',
    ...overrides,
  });
  return { client, clientId: client.client_id, ...(client_secret ? { clientSecret: client_secret } : {}) };
}

export async function createTestSite(
  ctx: AppContext,
  clientId: string,
  options: { siteNum?: string; sek?: string; actions?: string[] } = {},
): Promise<{ siteNum: string; sek: string }> {
  const siteNum = options.siteNum ?? String(1000 + Math.floor(Math.random() * 8_999_000));
  const sek = options.sek ?? `SEK-${randomBytes(12).toString('base64url')}-é`;
  await addSite(ctx, clientId, {
    siteNum,
    sharedEncryptionKey: sek,
    actions: options.actions ?? ['viewMap', 'dashboard'],
  });
  return { siteNum, sek };
}

export interface TestUser {
  id: string;
  username: string;
  practitionerId: string;
  givenName: string;
  familyName: string;
  email: string | null;
}

/** A users row (its Practitioner need not exist). The password hash is unusable: sign in with signIn(). */
export async function createTestUser(
  ctx: AppContext,
  overrides: Partial<Omit<TestUser, 'id'>> & { id?: string; roles?: string[] } = {},
): Promise<TestUser> {
  const id = overrides.id ?? randomBytes(12).toString('hex');
  const user: TestUser = {
    id,
    username: overrides.username ?? `clinician-${id.slice(0, 8)}`,
    practitionerId: overrides.practitionerId ?? `pr-${id.slice(0, 10)}`,
    givenName: overrides.givenName ?? 'Grace',
    familyName: overrides.familyName ?? 'Hopper',
    email: overrides.email === undefined ? `${id.slice(0, 8)}@clinic.example.test` : overrides.email,
  };
  await ctx.db.query(
    `INSERT INTO users (id, username, password_hash, practitioner_id, given_name, family_name, email, roles)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      user.id,
      user.username,
      '!unusable',
      user.practitionerId,
      user.givenName,
      user.familyName,
      user.email,
      overrides.roles ?? [],
    ],
  );
  return user;
}

/**
 * Signs a user into an EHR session: the ehr_sessions row and the signed cookie, as express-session
 * would make them. Returns the Cookie header value and the session id.
 */
export async function signIn(ctx: AppContext, userId: string): Promise<{ cookie: string; sid: string }> {
  const sid = randomBytes(24).toString('base64url');
  const maxAge = ctx.config.ttl.session * 1000;
  const expires = new Date(Date.now() + maxAge);
  const authTime = Math.floor(Date.now() / 1000);
  const data = {
    cookie: {
      originalMaxAge: maxAge,
      expires: expires.toISOString(),
      httpOnly: true,
      path: '/',
      sameSite: 'lax',
      secure: false,
    },
    userId,
    authTime,
  };
  await ctx.db.query('INSERT INTO ehr_sessions (sid, user_id, data, expires_at) VALUES ($1, $2, $3, $4)', [
    sid,
    userId,
    JSON.stringify(data),
    expires,
  ]);
  const secret = ctx.box.deriveKey('ehr-session-cookie').toString('base64');
  const signature = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '');
  return { cookie: `ehr.sid=${encodeURIComponent(`s:${sid}.${signature}`)}`, sid };
}

/** A small cookie jar with path scoping, like a browser for one host. */
export class CookieJar {
  #cookies = new Map<string, { name: string; value: string; path: string }>();

  constructor(initial?: string) {
    if (initial) for (const part of initial.split(/;\s*/)) this.#setPair(part, '/');
  }

  #setPair(pair: string, path: string) {
    const i = pair.indexOf('=');
    if (i <= 0) return;
    const name = pair.slice(0, i).trim();
    this.#cookies.set(`${name};${path}`, { name, value: pair.slice(i + 1), path });
  }

  store(setCookies: string[], requestPath: string) {
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(/;\s*/);
      let path = requestPath.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const a of attrs) {
        const [k = '', v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const name = pair.slice(0, pair.indexOf('=')).trim();
      if (expired) this.#cookies.delete(`${name};${path}`);
      else this.#setPair(pair, path);
    }
  }

  header(requestPath: string): string {
    return [...this.#cookies.values()]
      .filter(
        (c) =>
          requestPath === c.path ||
          requestPath.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) ||
          c.path === '/',
      )
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

export interface PkcePair {
  verifier: string;
  challenge: string;
}

export function pkce(): PkcePair {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface AuthorizeResult {
  /** The final Location that left our server (the client's redirect_uri, or somewhere else). */
  location: URL;
  /** Every Location followed, in order. */
  hops: string[];
  code?: string;
  state?: string;
  error?: string;
  errorDescription?: string;
  /** The last response when the flow stopped on our server (an error page, a consent form…). */
  stoppedAt?: { status: number; body: string; url: string };
}

/**
 * Follows the browser's redirects from an authorization request until it leaves our server.
 * `method: 'POST'` sends the parameters as a form, like SMART's authorize-post.
 */
export async function authorize(
  serverUrl: string,
  params: Record<string, string | undefined>,
  jar: CookieJar,
  options: { method?: 'GET' | 'POST'; maxHops?: number } = {},
): Promise<AuthorizeResult> {
  const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
  const form = new URLSearchParams(clean);
  const url = new URL(`${serverUrl}/fhir/auth`);
  const method = options.method ?? 'GET';
  if (method === 'GET') url.search = form.toString();
  return followRedirects(serverUrl, url, jar, {
    ...(method === 'POST' ? { form } : {}),
    ...(options.maxHops !== undefined ? { maxHops: options.maxHops } : {}),
  });
}

export interface TokenRequestAuth {
  clientId: string;
  clientSecret?: string;
  method?: 'client_secret_basic' | 'client_secret_post' | 'none';
  /** Extra form fields (client_assertion…). */
  extra?: Record<string, string>;
}

export async function tokenRequest(
  serverUrl: string,
  form: Record<string, string | undefined>,
  auth: TokenRequestAuth,
  path = '/fhir/token',
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const body = new URLSearchParams(
    Object.fromEntries(Object.entries(form).filter(([, v]) => v !== undefined)) as Record<string, string>,
  );
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const method = auth.method ?? (auth.clientSecret ? 'client_secret_basic' : 'none');
  if (method === 'client_secret_basic') {
    headers.authorization = `Basic ${Buffer.from(
      `${encodeURIComponent(auth.clientId)}:${encodeURIComponent(auth.clientSecret ?? '')}`,
    ).toString('base64')}`;
  } else {
    body.set('client_id', auth.clientId);
    if (method === 'client_secret_post' && auth.clientSecret) body.set('client_secret', auth.clientSecret);
  }
  for (const [k, v] of Object.entries(auth.extra ?? {})) body.set(k, v);
  const res = await fetch(`${serverUrl}${path}`, { method: 'POST', headers, body: body.toString() });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A launch context as /launch records it, for a patient stored first when the test has not. */
export async function createTestLaunch(
  ctx: AppContext,
  input: CreateLaunchInput,
  requester: LaunchRequester = {},
): ReturnType<typeof createLaunchContext> {
  const patientId = input.patientId;
  if (patientId && isValidId(patientId) && !(await readResource(ctx.db, 'Patient', patientId))) {
    await putResource(ctx.db, { resourceType: 'Patient', id: patientId } satisfies Patient);
  }
  return createLaunchContext(ctx, input, requester);
}

export interface IssueTokensOptions {
  patientId?: string;
  scope?: string;
  /** Reuse a client (default: a new public client with a new site). */
  client?: TestClient;
  siteNum?: string;
  user?: TestUser;
  /** Reuse a browser (cookie jar already holding the EHR session). */
  jar?: CookieJar;
  action?: string;
  nonce?: string;
  usePkce?: boolean;
  method?: 'GET' | 'POST';
}

/** Who launched what: the client, site, user, browser, launch id and patient of one launch. */
export interface Launched {
  client: TestClient;
  siteNum: string;
  user: TestUser;
  jar: CookieJar;
  launchId: string;
  patientId: string;
}

export interface IssuedTokens extends Launched {
  status: number;
  headers: Headers;
  /** The token response. */
  body: Record<string, unknown> & { access_token?: string; id_token?: string; refresh_token?: string };
}

export interface AuthorizedLaunch extends Launched {
  code: string;
  /** The token request's form for this code (PKCE verifier included). */
  form: Record<string, string | undefined>;
}

/** An EHR launch over HTTP up to the code at redirect_uri (tests of what a code does keep it). */
export async function authorizeLaunch(
  server: TestServer,
  options: IssueTokensOptions = {},
): Promise<AuthorizedLaunch> {
  const { ctx } = server;
  const client = options.client ?? (await createTestClient(ctx));
  const siteNum = options.siteNum ?? (await createTestSite(ctx, client.clientId)).siteNum;
  const user = options.user ?? (await createTestUser(ctx));
  let jar = options.jar;
  if (!jar) jar = new CookieJar((await signIn(ctx, user.id)).cookie);
  const patientId = options.patientId ?? 'example-patient';
  const { launchId } = await createTestLaunch(ctx, {
    userId: user.id,
    patientId,
    siteNum,
    action: options.action ?? 'viewMap',
  });
  const p = options.usePkce === false ? undefined : pkce();
  const result = await authorize(
    server.url,
    {
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: client.client.redirect_uris[0],
      scope: options.scope ?? 'openid fhirUser launch patient/*.read',
      state: randomBytes(8).toString('hex'),
      aud: server.ctx.config.fhirBaseUrl,
      launch: launchId,
      nonce: options.nonce ?? randomBytes(8).toString('hex'),
      code_challenge: p?.challenge,
      code_challenge_method: p ? 'S256' : undefined,
    },
    jar,
    { method: options.method ?? 'GET' },
  );
  if (!result.code) {
    throw new Error(
      `authorization gave no code: ${result.error ?? ''} ${result.errorDescription ?? ''} ${result.stoppedAt ? `${result.stoppedAt.status} at ${result.stoppedAt.url}` : ''}`,
    );
  }
  const form = {
    grant_type: 'authorization_code',
    code: result.code,
    redirect_uri: client.client.redirect_uris[0],
    code_verifier: p?.verifier,
  };
  return { code: result.code, form, client, siteNum, user, jar, launchId, patientId };
}

/** The token endpoint's client authentication for a test client (its secret, when it has one). */
export const clientAuth = (c: TestClient): TokenRequestAuth => ({
  clientId: c.clientId,
  ...(c.clientSecret ? { clientSecret: c.clientSecret } : {}),
});

/** Runs a complete EHR launch over HTTP and redeems the code: the token response a real client gets. */
export async function issueTokens(
  server: TestServer,
  options: IssueTokensOptions = {},
): Promise<IssuedTokens> {
  const { code: _code, form, ...launched } = await authorizeLaunch(server, options);
  const token = await tokenRequest(server.url, form, clientAuth(launched.client));
  return { status: token.status, headers: token.headers, body: token.body, ...launched };
}

/** Follows a browser's GET redirects from `start` until it leaves `serverUrl` (or stops on a page). */
export async function followRedirects(
  serverUrl: string,
  start: URL,
  jar: CookieJar,
  /** `form`: the first request is a form POST of it (SMART's authorize-post); the rest are GETs. */
  options: { form?: URLSearchParams; maxHops?: number } = {},
): Promise<AuthorizeResult> {
  let url = start;
  let form = options.form;
  const hops: string[] = [];
  for (let i = 0; i < (options.maxHops ?? 10); i++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: {
        cookie: jar.header(url.pathname),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(form ? { method: 'POST', body: form.toString() } : {}),
    });
    form = undefined;
    jar.store(res.headers.getSetCookie(), url.pathname);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) {
      return {
        location: url,
        hops,
        stoppedAt: { status: res.status, body: await res.text(), url: url.toString() },
      };
    }
    await res.arrayBuffer();
    url = new URL(location, url);
    hops.push(url.toString());
    if (url.origin !== new URL(serverUrl).origin) {
      const q = url.searchParams;
      return {
        location: url,
        hops,
        ...(q.get('code') ? { code: q.get('code')! } : {}),
        ...(q.get('state') ? { state: q.get('state')! } : {}),
        ...(q.get('error') ? { error: q.get('error')! } : {}),
        ...(q.get('error_description') ? { errorDescription: q.get('error_description')! } : {}),
      };
    }
  }
  throw new Error('too many redirects');
}
