import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { issueTokens } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('discovery: openid-configuration, smart-configuration, JWKS', () => {
  let t: TestDatabase;
  let s: TestServer;
  let oidc: Record<string, unknown>;
  let smart: Record<string, unknown>;
  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    oidc = (await (await fetch(`${s.url}/fhir/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    smart = (await (await fetch(`${s.url}/fhir/.well-known/smart-configuration`)).json()) as Record<
      string,
      unknown
    >;
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  it('uses the FHIR base, byte for byte, as the issuer of both documents', () => {
    expect(s.ctx.config.fhirBaseUrl).toBe(`${s.url}/fhir`);
    expect(oidc.issuer).toBe(`${s.url}/fhir`);
    expect(smart.issuer).toBe(oidc.issuer);
  });

  it('agrees on every endpoint, and the endpoints live where they say', async () => {
    for (const key of [
      'authorization_endpoint',
      'token_endpoint',
      'jwks_uri',
      'introspection_endpoint',
      'revocation_endpoint',
    ]) {
      expect(smart[key], key).toBe(oidc[key]);
      expect(String(smart[key]).startsWith(`${s.url}/fhir/`), key).toBe(true);
    }
    expect(new Set(smart.token_endpoint_auth_methods_supported as string[])).toEqual(
      new Set(oidc.token_endpoint_auth_methods_supported as string[]),
    );
    expect(smart.code_challenge_methods_supported).toEqual(['S256']);
    expect(oidc.code_challenge_methods_supported).toEqual(['S256']);
    expect(smart.response_types_supported).toEqual(oidc.response_types_supported);
    expect((await fetch(String(oidc.jwks_uri))).status).toBe(200);
    // The token endpoint answers (an OAuth error for an empty request, not a 404).
    const tok = await fetch(String(smart.token_endpoint), { method: 'POST' });
    expect(tok.status).toBe(400);
    expect(((await tok.json()) as { error: string }).error).toBe('invalid_request');
  });

  it('lists every applicable SMART 2.2 field and capability', () => {
    for (const key of [
      'issuer',
      'jwks_uri',
      'authorization_endpoint',
      'token_endpoint',
      'token_endpoint_auth_methods_supported',
      'grant_types_supported',
      'response_types_supported',
      'scopes_supported',
      'code_challenge_methods_supported',
      'introspection_endpoint',
      'revocation_endpoint',
      'capabilities',
    ]) {
      expect(smart, key).toHaveProperty(key);
    }
    expect(smart.grant_types_supported).toEqual([
      'authorization_code',
      'refresh_token',
      'client_credentials',
    ]);
    // SMART Backend Services (EHR systems asking for launches): RS384 and ES384 client assertions.
    expect(smart.token_endpoint_auth_signing_alg_values_supported).toEqual(
      expect.arrayContaining(['RS384', 'ES384', 'RS256', 'ES256']),
    );
    expect(smart.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    expect(smart.capabilities).toContain('client-confidential-asymmetric');
    // The provider's own document says the same for SMART Backend Services clients.
    expect(oidc.grant_types_supported).toEqual(expect.arrayContaining(['client_credentials']));
    expect(oidc.token_endpoint_auth_signing_alg_values_supported).toEqual(
      expect.arrayContaining(['RS384', 'ES384']),
    );
    expect(smart.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']),
    );
    expect(smart.capabilities).toEqual(
      expect.arrayContaining([
        'launch-ehr',
        'authorize-post',
        'client-public',
        'client-confidential-symmetric',
        'client-confidential-asymmetric',
        'sso-openid-connect',
        'context-ehr-patient',
        'context-banner',
        'context-style',
        'permission-patient',
        'permission-user',
        'permission-offline',
        'permission-online',
        'permission-v1',
        'permission-v2',
      ]),
    );
    expect(smart.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'fhirUser', 'launch', 'online_access']),
    );
  });

  it('signs id_tokens with RS256 or ES256, never none', () => {
    for (const doc of [oidc, smart]) {
      const algs = doc.id_token_signing_alg_values_supported as string[];
      expect(algs).toEqual(expect.arrayContaining(['RS256', 'ES256']));
      expect(algs).not.toContain('none');
    }
  });

  it('answers CORS from any origin on both documents and the JWKS', async () => {
    for (const path of ['openid-configuration', 'smart-configuration']) {
      const r = await fetch(`${s.url}/fhir/.well-known/${path}`, {
        headers: { origin: 'https://elsewhere.example' },
      });
      // "*" or the origin echoed back: either way any origin may read it.
      expect(['*', 'https://elsewhere.example'], path).toContain(
        r.headers.get('access-control-allow-origin'),
      );
      const pre = await fetch(`${s.url}/fhir/.well-known/${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://elsewhere.example', 'access-control-request-method': 'GET' },
      });
      expect(pre.status, path).toBeLessThan(300);
      expect(['*', 'https://elsewhere.example'], path).toContain(
        pre.headers.get('access-control-allow-origin'),
      );
    }
    const jwks = await fetch(`${s.url}/fhir/jwks`, { headers: { origin: 'https://x.example' } });
    expect(jwks.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('publishes exactly the signing keys service JWKS (active and next), public parts only', async () => {
    const jwks = (await (await fetch(String(oidc.jwks_uri))).json()) as { keys: Record<string, unknown>[] };
    expect(jwks).toEqual(s.ctx.keys.publicJwks());
    expect(jwks.keys.length).toBe(4);
    for (const k of jwks.keys) {
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(k, priv).not.toHaveProperty(priv);
    }
  });

  it('serves the SMART style document as JSON', async () => {
    const r = await fetch(`${s.url}/smart-style.json`, { headers: { origin: 'https://ocean.example' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/application\/json/);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(await r.json()).toHaveProperty('color_background');
  });

  it('signs with the active key, and after a rotation with the new one, still publishing the old', async () => {
    const before = await issueTokens(s, { patientId: 'p-rot' });
    const oldKid = decodeProtectedHeader(before.body.id_token!).kid;
    expect(oldKid).toBe(s.ctx.keys.activePrivateJwk('RS256').kid);
    await s.ctx.keys.rotate();
    const after = await issueTokens(s, { patientId: 'p-rot' });
    const newKid = decodeProtectedHeader(after.body.id_token!).kid;
    const atKid = decodeProtectedHeader(after.body.access_token!).kid;
    expect(newKid).toBe(s.ctx.keys.activePrivateJwk('RS256').kid);
    expect(atKid).toBe(newKid);
    expect(newKid).not.toBe(oldKid);
    const jwks = (await (await fetch(`${s.url}/fhir/jwks`)).json()) as { keys: { kid: string }[] };
    const kids = jwks.keys.map((k) => k.kid);
    expect(kids).toContain(oldKid);
    expect(kids).toContain(newKid);
    expect(jwks).toEqual(s.ctx.keys.publicJwks());
  });
});
