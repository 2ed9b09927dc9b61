/*
 * A restart loses nothing (CONTRACT §3.1): codes, EHR sessions, refresh tokens and access tokens are
 * rows, not process memory. One server process (on the run's database: PGlite on disk in the
 * embedded pass, PostgreSQL in the other) is restarted between authorize and token — once
 * gracefully (SIGTERM), once as a crash (SIGKILL) — and everything issued before still works.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { type Cluster, DEMO_CLINICIANS, DEMO_SITE, startCluster } from './cluster.ts';
import { Clinician, type Discovery, discover, fhirGet, jwtPayload, redeemCode, refresh } from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

describe(`restarts (${usingPostgres ? 'PostgreSQL' : 'PGlite on disk'})`, () => {
  let t: TestDatabase | undefined;
  let c: Cluster;
  let discovery: Discovery;

  beforeAll(async () => {
    t = usingPostgres ? await createTestDatabase() : undefined;
    c = await startCluster({ databaseUrl: t?.url, instances: 1 });
    discovery = await discover(c.fhirBase);
  }, 240_000);
  afterAll(async () => {
    await c?.close();
    await t?.drop();
  });

  it('redeems a code issued before a restart; the EHR session, refresh and access tokens survive two more', async () => {
    const server = c.instances[0]!;
    const clinician = new Clinician(c.publicUrl);
    await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password);
    const patient = c.patients[2]!;
    const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap');
    const { code } = await clinician.authorize(discovery, {
      clientId: c.clientId,
      redirectUri: c.redirectUri,
      launch: launch.get('launch')!,
      scope: 'openid fhirUser launch online_access patient/*.read',
      pkce: false,
    });

    // Graceful restart between authorize and token.
    expect(await server.stop()).toBe(0);
    await server.start();
    const token = await redeemCode(discovery, { code, clientId: c.clientId, redirectUri: c.redirectUri });
    expect(token.status).toBe(200);
    expect(token.body.patient).toBe(patient);
    expect(token.body.refresh_token).toEqual(expect.any(String));

    // A crash this time.
    await server.kill();
    await server.start();

    // The EHR session: a second launch needs no sign-in.
    const again = await clinician.launch(c.patients[3]!, DEMO_SITE, 'dashboard');
    expect(again.get('launch')).toEqual(expect.any(String));

    // The access token issued before both restarts still reads its patient, and only its patient.
    const read = await fhirGet(c.fhirBase, `Patient/${patient}`, token.body.access_token);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(patient);

    // The refresh token (online_access: alive while the EHR session is) keeps the launch context.
    const refreshed = await refresh(discovery, {
      refreshToken: token.body.refresh_token!,
      clientId: c.clientId,
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.patient).toBe(patient);
    expect(jwtPayload(refreshed.body.access_token).patient).toBe(patient);

    // The code stays single-use across restarts, and its replay revokes the grant (RFC 6749 §4.1.2).
    const replay = await redeemCode(discovery, { code, clientId: c.clientId, redirectUri: c.redirectUri });
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    const afterReplay = await refresh(discovery, {
      refreshToken: refreshed.body.refresh_token ?? token.body.refresh_token!,
      clientId: c.clientId,
    });
    expect(afterReplay.status).toBe(400);
  });
});
