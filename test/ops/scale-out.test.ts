/*
 * Scale-out (CONTRACT §3.1): two instances from two separate working copies (no shared files, no
 * shared memory, separate KEYS_DIR), one PostgreSQL, one PUBLIC_URL in front (a round-robin
 * proxy inside the test). Every URL the server produces — issuer, interaction, redirects —
 * names the proxy, so a request can land on either instance; `x-ops-backend` pins a step.
 * KEY_REFRESH_INTERVAL is 2 s here: a rotation through one instance reaches the other within it.
 * Needs PostgreSQL: runs in the PostgreSQL pass (DATABASE_URL set), skipped otherwise.
 */
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { type Cluster, DEMO_CLINICIANS, DEMO_SITE, startCluster } from './cluster.ts';
import { Clinician, type Discovery, discover, fhirGet, jwtPayload, redeemCode, send } from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const KEY_REFRESH_INTERVAL = 2;

describe.skipIf(!usingPostgres)(
  'scale-out: two instances, one database, one PUBLIC_URL (PostgreSQL pass only)',
  () => {
    let t: TestDatabase;
    let c: Cluster;
    let discovery: Discovery;

    beforeAll(async () => {
      t = await createTestDatabase();
      c = await startCluster({
        databaseUrl: t.url!,
        instances: 2,
        env: { KEY_REFRESH_INTERVAL: String(KEY_REFRESH_INTERVAL) },
      });
      discovery = await discover(c.fhirBase, 0);
    }, 240_000);
    afterAll(async () => {
      await c?.close();
      await t?.drop();
    });

    it('both instances publish the same issuer, discovery and JWKS', async () => {
      const [d0, d1] = await Promise.all([discover(c.fhirBase, 0), discover(c.fhirBase, 1)]);
      expect(d0).toEqual(d1);
      expect(d0.issuer).toBe(c.fhirBase);
      const [j0, j1] = await Promise.all([0, 1].map(async (b) => (await send(d0.jwks_uri, {}, b)).json()));
      expect(j0).toEqual(j1);
    });

    it('sign-in and launch on one, authorize across both, token on the other, FHIR reads on both', async () => {
      const clinician = new Clinician(c.publicUrl);
      await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password, 0);
      const patient = c.patients[3]!;
      const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap', 0);
      expect(launch.get('iss')).toBe(c.fhirBase);

      // Each hop of the authorization dance alternates instance: auth on B, interaction on A, resume on B …
      const { code, verifier } = await clinician.authorize(
        discovery,
        { clientId: c.clientId, redirectUri: c.redirectUri, launch: launch.get('launch')!, pkce: false },
        (hop) => (hop + 1) % 2,
      );
      const token = await redeemCode(
        discovery,
        { code, clientId: c.clientId, redirectUri: c.redirectUri, verifier },
        1,
      );
      expect(token.status).toBe(200);
      expect(token.body.patient).toBe(patient);
      expect(jwtPayload(token.body.id_token).iss).toBe(c.fhirBase);

      // The id_token verifies against the JWKS as served by either instance.
      for (const b of [0, 1]) {
        const jwks = createLocalJWKSet((await (await send(discovery.jwks_uri, {}, b)).json()) as never);
        await jwtVerify(token.body.id_token, jwks, { issuer: c.fhirBase, audience: c.clientId });
      }
      for (const b of [0, 1]) {
        const read = await fhirGet(c.fhirBase, `Patient/${patient}`, token.body.access_token, b);
        expect(read.status).toBe(200);
        expect(read.body.id).toBe(patient);
        const everything = await fhirGet(
          c.fhirBase,
          `Patient/${patient}/$everything`,
          token.body.access_token,
          b,
        );
        expect(everything.status).toBe(200);
        expect(everything.body.resourceType).toBe('Bundle');
        // …and never another patient's chart.
        const other = await fhirGet(c.fhirBase, `Patient/${c.patients[4]}`, token.body.access_token, b);
        expect([403, 404]).toContain(other.status);
      }
    });

    it(`a key rotation through one instance is served by the other within KEY_REFRESH_INTERVAL (${KEY_REFRESH_INTERVAL} s here)`, async () => {
      const admin = { authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/json' };
      const rotated = await send(
        `${c.publicUrl}/admin/api/keys/rotate`,
        { method: 'POST', headers: admin, body: '{}' },
        0,
      );
      expect(rotated.status).toBe(200);
      const { keys } = (await rotated.json()) as { keys: { kid: string; alg: string; state: string }[] };
      const active = keys.find((k) => k.alg === 'RS256' && k.state === 'active')!.kid;
      const published = keys.filter((k) => k.state !== 'retired').map((k) => k.kid);

      // Poll the other instance (bounded), never assert on time: it must converge.
      let jwksOfB: { keys: { kid: string }[] } = { keys: [] };
      for (let i = 0; i < 100; i++) {
        jwksOfB = (await (await send(discovery.jwks_uri, {}, 1)).json()) as typeof jwksOfB;
        if (published.every((kid) => jwksOfB.keys.some((k) => k.kid === kid))) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(jwksOfB.keys.map((k) => k.kid)).toEqual(expect.arrayContaining(published));

      // And instance B signs with the new active key (its provider reloads on the change).
      let kid: string | undefined;
      for (let i = 0; i < 50 && kid !== active; i++) {
        const clinician = new Clinician(c.publicUrl);
        await clinician.signIn(DEMO_CLINICIANS[1]!.username, DEMO_CLINICIANS[1]!.password, 1);
        const launch = await clinician.launch(c.patients[5]!, DEMO_SITE, 'dashboard', 1);
        const { code } = await clinician.authorize(
          discovery,
          { clientId: c.clientId, redirectUri: c.redirectUri, launch: launch.get('launch')!, pkce: false },
          () => 1,
        );
        const token = await redeemCode(
          discovery,
          { code, clientId: c.clientId, redirectUri: c.redirectUri },
          1,
        );
        expect(token.status).toBe(200);
        kid = decodeProtectedHeader(token.body.id_token).kid;
        if (kid !== active) await new Promise((r) => setTimeout(r, 500));
      }
      expect(kid).toBe(active);
    });

    it('40 concurrent launches spread over both instances all succeed with the right patient', async () => {
      const before = [...c.proxy.counts];
      // 40 clinicians' browsers, each signed in (round-robin: on either instance)…
      const clinicians = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const who = DEMO_CLINICIANS[i % DEMO_CLINICIANS.length]!;
          const clinician = new Clinician(c.publicUrl);
          await clinician.signIn(who.username, who.password);
          return clinician;
        }),
      );
      // …launch at once, each its own patient, every request landing wherever the balancer sends it.
      const results = await Promise.all(
        clinicians.map(async (clinician, i) => {
          const patient = c.patients[i % c.patients.length]!;
          const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap');
          const { code } = await clinician.authorize(discovery, {
            clientId: c.clientId,
            redirectUri: c.redirectUri,
            launch: launch.get('launch')!,
            pkce: false,
          });
          const token = await redeemCode(discovery, {
            code,
            clientId: c.clientId,
            redirectUri: c.redirectUri,
          });
          const read = await fhirGet(c.fhirBase, `Patient/${patient}`, token.body.access_token ?? '');
          return {
            patient,
            token: token.status,
            tokenPatient: token.body.patient,
            read: read.status,
            readId: read.body.id,
          };
        }),
      );
      for (const r of results) {
        expect(r).toEqual({
          patient: r.patient,
          token: 200,
          tokenPatient: r.patient,
          read: 200,
          readId: r.patient,
        });
      }
      // Both instances took a share of the work.
      expect(c.proxy.counts[0]! - (before[0] ?? 0)).toBeGreaterThan(40);
      expect(c.proxy.counts[1]! - (before[1] ?? 0)).toBeGreaterThan(40);
    });

    it('neither instance logged a server error', () => {
      for (const instance of c.instances) {
        const errors = instance.logLines().filter((l) => Number(l.level) >= 50);
        expect(errors).toEqual([]);
      }
    });
  },
);
