/*
 * SMART Backend Services details that need more than one server or a clock: an EHR system whose
 * keys are fetched from its jwks_uri (a real HTTP server of the test) and rotated there, and one
 * client assertion replayed at two instances sharing a database at the same moment.
 */
import { createServer, type Server } from 'node:http';
import type { JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  askLaunch,
  assertionTokenRequest,
  clientAssertion,
  ehrKey,
  ehrToken,
  registerEhrSystem,
} from '../helpers/ehr-backend.ts';
import { createTestClient, createTestSite } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let a: TestServer;
let b: TestServer;
let jwksServer: Server;
let jwksUrl: string;
let published: JWK[] = [];
let fetches = 0;

beforeAll(async () => {
  t = await createTestDatabase();
  // The test's jwks_uri is on 127.0.0.1: a special-use address oidc-provider refuses unless told.
  a = await startTestServer(t.db, { JWKS_URI_PRIVATE_NETWORK: 'true' });
  // The second instance: its own pool (PostgreSQL), the same PUBLIC_URL (one issuer, one token endpoint).
  b = await startTestServer(await t.connectAnother(), {
    PUBLIC_URL: a.url,
    JWKS_URI_PRIVATE_NETWORK: 'true',
  });
  jwksServer = createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=0' });
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  const address = jwksServer.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  jwksUrl = `http://127.0.0.1:${address.port}/.well-known/jwks.json`;
});

afterEach(() => {
  vi.useRealTimers();
});

afterAll(async () => {
  jwksServer?.closeAllConnections();
  await new Promise<void>((resolve) => jwksServer?.close(() => resolve()));
  await b?.stop();
  await a?.stop();
  await t?.drop();
});

describe('keys from the EHR system’s jwks_uri', () => {
  it('fetches them, and picks up a rotation once the fetched set is stale (≥ 60 s, or the cache headers)', async () => {
    const k1 = await ehrKey('ES384');
    published = [k1.publicJwk];
    const reg = await registerEhrSystem(a.url, {
      name: 'EMR with a JWKS URL',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks_uri: jwksUrl,
    });
    expect(reg.status).toBe(201);
    const id = String(reg.body.client_id);
    await expect(ehrToken(a.url, id, k1)).resolves.toMatch(/^ey/);
    expect(fetches).toBeGreaterThan(0);

    // The EHR rotates: the new key is published, the old one withdrawn.
    const k2 = await ehrKey('RS384');
    published = [k2.publicJwk];
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.now() + 61_000);
    const before = fetches;
    await expect(ehrToken(a.url, id, k2)).resolves.toMatch(/^ey/);
    expect(fetches).toBeGreaterThan(before);
    // The withdrawn key no longer signs anything we accept.
    const old = await assertionTokenRequest(a.url, id, await clientAssertion(a.url, id, k1));
    expect(old.status).toBe(401);
  });
});

describe('a jwks_uri on a private address', () => {
  it('is not fetched unless JWKS_URI_PRIVATE_NETWORK says so (SSRF): the assertion is refused', async () => {
    const guarded = await startTestServer(await t.connectAnother(), { PUBLIC_URL: a.url });
    try {
      const k = await ehrKey('ES384');
      published = [k.publicJwk];
      const reg = await registerEhrSystem(a.url, {
        name: 'EMR on the hospital network',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks_uri: jwksUrl,
      });
      const id = String(reg.body.client_id);
      const before = fetches;
      const refused = await assertionTokenRequest(guarded.url, id, await clientAssertion(a.url, id, k));
      expect(refused.status).toBe(401);
      expect(fetches).toBe(before);
      // The instance that allows private addresses takes the same kind of assertion.
      await expect(ehrToken(a.url, id, k)).resolves.toMatch(/^ey/);
    } finally {
      await guarded.stop();
    }
  });
});

describe('one assertion, two instances', () => {
  it('a client assertion replayed at another instance at the same moment gives exactly one token', async () => {
    const k = await ehrKey('ES384');
    const reg = await registerEhrSystem(a.url, {
      name: 'EMR of two instances',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [k.publicJwk] },
    });
    const id = String(reg.body.client_id);
    // Both instances know the client (and its keys) before the race.
    await ehrToken(a.url, id, k);
    await assertionTokenRequest(b.url, id, await clientAssertion(a.url, id, k));
    for (let round = 0; round < 5; round++) {
      const assertion = await clientAssertion(a.url, id, k);
      const [ra, rb] = await Promise.all([
        assertionTokenRequest(a.url, id, assertion),
        assertionTokenRequest(b.url, id, assertion),
      ]);
      expect([ra.status, rb.status].sort()).toEqual([200, 401]);
    }
  });

  it('a token from one instance asks for a launch at the other', async () => {
    const ocean = await createTestClient(a.ctx);
    const site = await createTestSite(a.ctx, ocean.clientId);
    const k = await ehrKey('ES256');
    const reg = await registerEhrSystem(a.url, {
      name: 'EMR behind a balancer',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [k.publicJwk] },
    });
    const token = await ehrToken(a.url, String(reg.body.client_id), k);
    const r = await askLaunch(b.url, token, { site: site.siteNum, action: 'viewMap', user: { id: 'u-1' } });
    expect(r.status).toBe(201);
  });
});
