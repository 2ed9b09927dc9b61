import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  CookieJar,
  createTestClient,
  createTestLaunch,
  createTestSite,
  createTestUser,
  pkce,
  signIn,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with exactly the headers given (fetch would not let a test forge Host), and an optional absolute-form target. */
function raw(
  serverUrl: string,
  target: string,
  headers: Record<string, string>,
  method = 'GET',
  body?: string,
): Promise<Raw> {
  const { hostname, port } = new URL(serverUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path: target, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Every absolute URL anywhere in a JSON value. */
function urlsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) urlsIn(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) urlsIn(v, out);
  return out;
}

/** URLs of a CapabilityStatement that are ours (not terminology or spec identifiers). */
const ours = (urls: string[], base: string) =>
  urls.filter((u) => !/hl7\.org|smarthealthit\.org|terminology/.test(u) || u.startsWith(base));

const FORGED = [
  ['Host', { host: 'evil.example' }],
  ['Host with a port', { host: 'evil.example:8443' }],
  ['X-Forwarded-Host and -Proto', { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }],
  ['Forwarded', { forwarded: 'host=evil.example;proto=https' }],
] as const;

describe.each([
  ['without TRUST_PROXY', {}],
  ['with TRUST_PROXY', { TRUST_PROXY: 'loopback' }],
])('every URL the server publishes is built from PUBLIC_URL (%s)', (_name, env) => {
  let t: TestDatabase;
  let s: TestServer;
  let pub: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, env);
    pub = s.url;
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const headersFor = (forged: Record<string, string>) => ({ host: new URL(pub).host, ...forged });

  it.each(FORGED)('discovery names only PUBLIC_URL endpoints with a forged %s', async (_what, forged) => {
    for (const path of [
      '/fhir/.well-known/openid-configuration',
      '/fhir/.well-known/oauth-authorization-server',
      '/fhir/.well-known/smart-configuration',
    ]) {
      const r = await raw(pub, path, headersFor(forged));
      expect(r.status, path).toBe(200);
      const urls = urlsIn(JSON.parse(r.body));
      expect(urls.length, path).toBeGreaterThan(3);
      for (const u of urls) expect(u.startsWith(`${pub}/`), `${path}: ${u}`).toBe(true);
      expect(r.body).not.toContain('evil.example');
    }
    const meta = await raw(pub, '/fhir/metadata', { ...headersFor(forged), accept: 'application/fhir+json' });
    expect(meta.status).toBe(200);
    expect(meta.body).not.toContain('evil.example');
    for (const u of ours(urlsIn(JSON.parse(meta.body)), pub)) expect(u.startsWith(`${pub}/`), u).toBe(true);
  });

  it('ignores an absolute-form request line naming another host', async () => {
    const r = await raw(pub, 'http://evil.example/fhir/.well-known/openid-configuration', {
      host: 'evil.example',
    });
    expect(r.status).toBe(200);
    expect(r.body).not.toContain('evil.example');
    expect(JSON.parse(r.body).authorization_endpoint).toBe(`${pub}/fhir/auth`);
  });

  it('serves one cacheable document to everyone, whatever Host they sent', async () => {
    const a = await raw(pub, '/fhir/.well-known/openid-configuration', headersFor({}));
    const b = await raw(pub, '/fhir/.well-known/openid-configuration', headersFor({ host: 'evil.example' }));
    expect(b.body).toBe(a.body);
    for (const r of [a, b]) {
      expect(r.headers['cache-control']).toBe('public, max-age=300');
      expect(r.headers['access-control-allow-origin']).toBe('*');
    }
    const smart = await raw(
      pub,
      '/fhir/.well-known/smart-configuration',
      headersFor({ host: 'evil.example' }),
    );
    expect(smart.headers['cache-control']).toBe('public, max-age=300');
  });

  it('keeps every Location of an authorization on PUBLIC_URL or the client, with a forged Host on each hop', async () => {
    const client = await createTestClient(s.ctx);
    const { siteNum } = await createTestSite(s.ctx, client.clientId);
    const user = await createTestUser(s.ctx);
    const jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    const { launchId } = await createTestLaunch(s.ctx, {
      userId: user.id,
      patientId: 'pat-host',
      siteNum,
      action: 'viewMap',
    });
    const p = pkce();
    const redirectUri = client.client.redirect_uris[0]!;
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: redirectUri,
      scope: 'openid fhirUser launch patient/*.read',
      state: randomBytes(8).toString('hex'),
      aud: s.ctx.config.fhirBaseUrl,
      launch: launchId,
      nonce: 'n-1',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
    });
    let url = new URL(`${pub}/fhir/auth?${query}`);
    const forged = { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' };
    let code: string | null = null;
    for (let hop = 0; hop < 10 && !code; hop++) {
      const r = await raw(pub, `${url.pathname}${url.search}`, {
        ...forged,
        cookie: jar.header(url.pathname),
      });
      const setCookie = r.headers['set-cookie'];
      jar.store(Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [], url.pathname);
      const location = r.headers.location;
      expect(r.status, `hop ${hop} ${url.pathname}: ${r.body.slice(0, 200)}`).toBeGreaterThanOrEqual(300);
      expect(typeof location).toBe('string');
      const loc = String(location);
      expect(loc).not.toContain('evil.example');
      // Absolute Locations are ours or the client's redirect_uri; relative ones stay on ours.
      if (/^[a-z]+:/i.test(loc))
        expect(loc.startsWith(`${pub}/`) || loc.startsWith(redirectUri), loc).toBe(true);
      url = new URL(loc, pub);
      if (url.href.startsWith(redirectUri)) {
        code = url.searchParams.get('code');
        expect(url.searchParams.get('iss')).toBe(s.ctx.config.fhirBaseUrl);
      }
    }
    expect(code).toBeTruthy();
    const token = await tokenRequest(
      pub,
      { grant_type: 'authorization_code', code: code!, redirect_uri: redirectUri, code_verifier: p.verifier },
      { clientId: client.clientId },
    );
    expect(token.status).toBe(200);
  });
});

describe('nothing advertised that does not answer', () => {
  let t: TestDatabase;
  let s: TestServer;
  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  it('advertises no pushed-authorization endpoint and no DPoP (neither is served here)', async () => {
    const oidc = (await (await fetch(`${s.url}/fhir/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    expect(oidc).not.toHaveProperty('pushed_authorization_request_endpoint');
    expect(oidc).not.toHaveProperty('require_pushed_authorization_requests');
    expect(oidc).not.toHaveProperty('dpop_signing_alg_values_supported');
    expect((await fetch(`${s.url}/fhir/request`, { method: 'POST' })).status).toBe(404);
  });

  it('walks both discovery documents: every advertised URL answers, none is a 404 or a 5xx', async () => {
    const seen = new Map<string, string>();
    for (const doc of ['openid-configuration', 'smart-configuration', 'oauth-authorization-server']) {
      const body = (await (await fetch(`${s.url}/fhir/.well-known/${doc}`)).json()) as Record<
        string,
        unknown
      >;
      for (const [key, value] of Object.entries(body)) {
        if (typeof value === 'string' && /^https?:\/\//.test(value) && key !== 'issuer') seen.set(value, key);
      }
    }
    expect([...seen.values()]).toEqual(
      expect.arrayContaining([
        'authorization_endpoint',
        'token_endpoint',
        'jwks_uri',
        'introspection_endpoint',
        'revocation_endpoint',
      ]),
    );
    for (const [url, key] of seen) {
      expect(url.startsWith(`${s.url}/`), url).toBe(true);
      // Endpoints that take a client's POST answer an empty one with an OAuth error; the rest are GETs.
      const post =
        /^(token|introspection|revocation|pushed_authorization_request|registration)_endpoint$/.test(key);
      const res = await fetch(url, {
        method: post ? 'POST' : 'GET',
        redirect: 'manual',
        ...(post ? { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' } : {}),
      });
      expect(res.status, `${key} ${url}`).not.toBe(404);
      expect(res.status, `${key} ${url}`).toBeLessThan(500);
    }
  });
});
