/*
 * Revocation across two server PROCESSES (separate memory, separate working copies) on one
 * PostgreSQL behind one PUBLIC_URL: a token read through both instances — so both verifiers hold
 * it in memory — is refused by both (FHIR 401 invalid_token, introspection inactive) as soon as
 * its grant ends through either: access-token revocation, refresh-token revocation, an
 * administrator ending the user's access, the user's deactivation.
 * Needs PostgreSQL: runs in the PostgreSQL pass (DATABASE_URL set), skipped otherwise.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { type Cluster, DEMO_CLINICIANS, DEMO_SITE, startCluster } from './cluster.ts';
import {
  Clinician,
  type Discovery,
  discover,
  fhirGet,
  jwtPayload,
  redeemCode,
  send,
  type TokenResponse,
} from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

describe.skipIf(!usingPostgres)('revocation reaches every instance (PostgreSQL pass only)', () => {
  let t: TestDatabase;
  let c: Cluster;
  let discovery: Discovery;
  let launches = 0;

  beforeAll(async () => {
    t = await createTestDatabase();
    c = await startCluster({ databaseUrl: t.url!, instances: 2 });
    discovery = await discover(c.fhirBase, 0);
  }, 240_000);
  afterAll(async () => {
    await c?.close();
    await t?.drop();
  });

  /** A launch by a demo clinician, its code redeemed on instance 1. */
  async function launch(
    clinicianIndex: number,
    scope: string,
  ): Promise<{ token: TokenResponse; patient: string }> {
    const who = DEMO_CLINICIANS[clinicianIndex]!;
    const clinician = new Clinician(c.publicUrl);
    await clinician.signIn(who.username, who.password, 0);
    const patient = c.patients[launches++ % c.patients.length]!;
    const params = await clinician.launch(patient, DEMO_SITE, 'viewMap', 0);
    const { code } = await clinician.authorize(
      discovery,
      { clientId: c.clientId, redirectUri: c.redirectUri, launch: params.get('launch')!, pkce: false, scope },
      (hop) => hop % 2,
    );
    const token = await redeemCode(discovery, { code, clientId: c.clientId, redirectUri: c.redirectUri }, 1);
    expect(token.status).toBe(200);
    return { token: token.body, patient };
  }

  const form = (fields: Record<string, string>) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: c.clientId, ...fields }).toString(),
  });
  const introspect = async (token: string, backend: number) =>
    (await send(discovery.introspection_endpoint!, form({ token }), backend)).json();
  const revoke = (token: string, backend: number) =>
    send(`${c.fhirBase}/token/revocation`, form({ token }), backend);

  async function expectLive(x: { token: TokenResponse; patient: string }) {
    for (const b of [0, 1]) {
      expect((await fhirGet(c.fhirBase, `Patient/${x.patient}`, x.token.access_token, b)).status).toBe(200);
      expect(((await introspect(x.token.access_token, b)) as { active: boolean }).active).toBe(true);
    }
  }

  async function expectEnded(x: { token: TokenResponse; patient: string }) {
    for (const b of [0, 1]) {
      const res = await send(
        `${c.fhirBase}/Patient/${x.patient}`,
        { headers: { authorization: `Bearer ${x.token.access_token}` } },
        b,
      );
      expect(res.status, `instance ${b}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
      expect(await introspect(x.token.access_token, b)).toEqual({ active: false });
      if (x.token.refresh_token)
        expect(await introspect(x.token.refresh_token, b)).toEqual({ active: false });
    }
  }

  it('an access token revoked through instance 0', async () => {
    const x = await launch(0, 'openid fhirUser launch patient/*.read online_access');
    await expectLive(x);
    expect((await revoke(x.token.access_token, 0)).status).toBe(200);
    await expectEnded(x);
  });

  it('a refresh token revoked through instance 1', async () => {
    const x = await launch(0, 'openid fhirUser launch patient/*.read online_access');
    expect(x.token.refresh_token).toBeTruthy();
    await expectLive(x);
    expect((await revoke(x.token.refresh_token!, 1)).status).toBe(200);
    await expectEnded(x);
  });

  it('an administrator ends the user’s access through instance 0, then deactivates them through 1', async () => {
    const x = await launch(1, 'openid fhirUser launch patient/*.read online_access');
    const bystander = await launch(0, 'openid fhirUser launch patient/*.read online_access');
    await expectLive(x);
    const userId = String(jwtPayload(x.token.access_token).sub);
    const ended = await c.admin('POST', `/admin/api/users/${userId}/revoke-grants`, undefined, 0);
    expect(ended.status).toBe(200);
    expect(((await ended.json()) as { grants_revoked: number }).grants_revoked).toBeGreaterThanOrEqual(1);
    await expectEnded(x);
    await expectLive(bystander);

    const y = await launch(1, 'openid fhirUser launch patient/*.read online_access');
    await expectLive(y);
    expect((await c.admin('POST', `/admin/api/users/${userId}/deactivate`, undefined, 1)).status).toBe(200);
    await expectEnded(y);
    await expectLive(bystander);
  });
});
