/*
 * The whole EHR launch over real HTTP, as a clinician's browser and Ocean would drive it, for
 * operations tests against server processes (possibly behind ./proxy.ts):
 *   POST /login (real form + CSRF) → GET /launch → discovery → authorize (EHR session, no
 *   second sign-in) → code at redirect_uri → POST token → FHIR reads with the access token.
 * Every step may be pinned to one backend of the proxy (`x-ops-backend`), so a test can sign in
 * on one instance, authorize on another and redeem the code on a third.
 */
import { createHash, randomBytes } from 'node:crypto';
import { CookieJar } from '../helpers/oidc.ts';

export type Backend = number | undefined;

/** Requests sent through send() so far (benchmarks count HTTP requests with it). */
export const sent = { count: 0 };

/** fetch without following redirects, pinned to a backend when asked. */
export async function send(url: string | URL, init: RequestInit = {}, backend?: Backend): Promise<Response> {
  sent.count++;
  const headers = new Headers(init.headers);
  if (backend !== undefined) headers.set('x-ops-backend', String(backend));
  return fetch(url, {
    ...init,
    headers,
    redirect: 'manual',
    signal: init.signal ?? AbortSignal.timeout(180_000),
  });
}

export interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  id_token: string;
  patient: string;
  scope: string;
  oceanSharedEncryptionKey?: string;
  [k: string]: unknown;
}

export interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  introspection_endpoint?: string;
  jwks_uri: string;
}

export class Clinician {
  /** `jar`: another clinician's cookies, to carry one browser over to another server. */
  constructor(
    readonly publicUrl: string,
    readonly jar = new CookieJar(),
  ) {}

  async request(path: string | URL, init: RequestInit = {}, backend?: Backend): Promise<Response> {
    const url = new URL(path, this.publicUrl);
    const headers = new Headers(init.headers);
    const cookie = this.jar.header(url.pathname);
    if (cookie) headers.set('cookie', cookie);
    const res = await send(url, { ...init, headers }, backend);
    this.jar.store(res.headers.getSetCookie(), url.pathname);
    return res;
  }

  /** GET /login, then POST it with the CSRF token; resolves when signed in (303/302 away from /login). */
  async signIn(username: string, password: string, backend?: Backend): Promise<void> {
    const page = await this.request('/login', {}, backend);
    const html = await page.text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    if (!csrf) throw new Error(`no CSRF token on /login (HTTP ${page.status})`);
    const res = await this.request(
      '/login',
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username, password, _csrf: csrf }).toString(),
      },
      backend,
    );
    await res.arrayBuffer();
    const location = res.headers.get('location') ?? '';
    if (res.status < 300 || res.status >= 400 || location.includes('/login')) {
      throw new Error(`sign-in failed: HTTP ${res.status} → ${location}`);
    }
  }

  /** GET /launch → the launch URL's query (iss, launch, siteNum, action). */
  async launch(patient: string, site: string, action: string, backend?: Backend): Promise<URLSearchParams> {
    const res = await this.request(`/launch?${new URLSearchParams({ patient, site, action })}`, {}, backend);
    const body = await res.text();
    if (res.status !== 302) throw new Error(`launch answered ${res.status}: ${body.slice(0, 200)}`);
    return new URL(res.headers.get('location')!).searchParams;
  }

  /**
   * The authorization request with the EHR session, following our own redirects (interaction,
   * resume) until the browser leaves for redirect_uri; returns the code. `backends` pins each hop.
   */
  async authorize(
    discovery: Discovery,
    p: { clientId: string; redirectUri: string; launch: string; scope?: string; pkce?: boolean },
    backends: (hop: number) => Backend = () => undefined,
  ): Promise<{ code: string; verifier: string | undefined; state: string }> {
    const state = randomBytes(12).toString('base64url');
    const verifier = p.pkce === false ? undefined : randomBytes(32).toString('base64url');
    const params = new URLSearchParams({
      response_type: 'code',
      client_id: p.clientId,
      redirect_uri: p.redirectUri,
      scope: p.scope ?? 'openid fhirUser launch online_access patient/*.read',
      state,
      aud: discovery.issuer,
      launch: p.launch,
      nonce: randomBytes(12).toString('base64url'),
    });
    if (verifier) {
      params.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
      params.set('code_challenge_method', 'S256');
    }
    let url = new URL(`${discovery.authorization_endpoint}?${params}`);
    const ours = new URL(this.publicUrl).origin;
    for (let hop = 0; hop < 10; hop++) {
      const res = await this.request(url, {}, backends(hop));
      const body = await res.text();
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) {
        throw new Error(`authorize stopped at ${url.pathname} with ${res.status}: ${body.slice(0, 300)}`);
      }
      const next = new URL(location, url);
      if (next.origin !== ours) {
        const code = next.searchParams.get('code');
        if (!code) throw new Error(`authorize ended without a code: ${next.search}`);
        if (next.searchParams.get('state') !== state) throw new Error('state mismatch');
        return { code, verifier, state };
      }
      url = next;
    }
    throw new Error('too many redirects');
  }
}

export async function discover(issuer: string, backend?: Backend): Promise<Discovery> {
  const res = await send(`${issuer}/.well-known/openid-configuration`, {}, backend);
  if (res.status !== 200) throw new Error(`discovery answered ${res.status}`);
  return (await res.json()) as Discovery;
}

/** POST token as a public client (Ocean's reference client) or with client_secret_basic. */
export async function redeemCode(
  discovery: Discovery,
  p: { code: string; clientId: string; redirectUri: string; verifier?: string; clientSecret?: string },
  backend?: Backend,
): Promise<{ status: number; body: TokenResponse & { error?: string } }> {
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code: p.code,
    redirect_uri: p.redirectUri,
  });
  if (p.verifier) form.set('code_verifier', p.verifier);
  return tokenRequest(discovery, form, p, backend);
}

export async function refresh(
  discovery: Discovery,
  p: { refreshToken: string; clientId: string; clientSecret?: string },
  backend?: Backend,
): Promise<{ status: number; body: TokenResponse & { error?: string } }> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: p.refreshToken });
  return tokenRequest(discovery, form, p, backend);
}

async function tokenRequest(
  discovery: Discovery,
  form: URLSearchParams,
  p: { clientId: string; clientSecret?: string },
  backend?: Backend,
) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (p.clientSecret) {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(p.clientId)}:${encodeURIComponent(p.clientSecret)}`).toString('base64')}`;
  } else form.set('client_id', p.clientId);
  const res = await send(
    discovery.token_endpoint,
    { method: 'POST', headers, body: form.toString() },
    backend,
  );
  return { status: res.status, body: (await res.json()) as TokenResponse & { error?: string } };
}

/** GET a FHIR path with a bearer token; resolves to status and parsed body. */
export async function fhirGet(
  fhirBase: string,
  path: string,
  accessToken: string,
  backend?: Backend,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await send(
    `${fhirBase}/${path}`,
    { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/fhir+json' } },
    backend,
  );
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

/** The payload of a JWT, unverified (tests check signatures separately where it matters). */
export function jwtPayload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}
