/*
 * SECRETS_KEY rotation with two server PROCESSES on one PostgreSQL and launches going on the
 * whole time (SPEC §3.1): instance A restarts with the new key (old one as
 * SECRETS_KEY_PREVIOUS) while B still has only the old key — A must seal nothing B cannot open;
 * then B restarts the same way, the stored secrets are re-sealed in the background, and both
 * restart once more without the old key. Every launch of the run — through both instances,
 * hops alternating between them — gets its patient and the site's SEK; none fails.
 * A balancer takes an instance out before it restarts (as Caddy's health check would) and back
 * in when /readyz answers. Needs PostgreSQL: runs in the PostgreSQL pass, skipped otherwise.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { secretsKeyId } from '../../src/keys/key-ring.ts';
import { SEALED_COLUMNS } from '../../src/keys/sealed-columns.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { freePort } from '../helpers/private-postgres.ts';
import {
  type ServerProcess,
  startServerProcess,
  type WorkingCopy,
  workingCopy,
} from '../helpers/processes.ts';
import { DEMO_CLINICIANS, DEMO_SITE, type DeploymentSetup, prepareDeployment } from './cluster.ts';
import { Clinician, type Discovery, discover, jwtPayload, redeemCode, send } from './flow.ts';
import { type LoadBalancer, startProxy } from './proxy.ts';

vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

const SEK = 'rotation-under-load SEK ✓';
const SEK_B64 = Buffer.from(SEK, 'utf8').toString('base64');

describe.skipIf(!usingPostgres)(
  'SECRETS_KEY rotation under load, two instances (PostgreSQL pass only)',
  () => {
    let t: TestDatabase;
    let proxy: LoadBalancer;
    let setup: DeploymentSetup;
    let discovery: Discovery;
    const copies: WorkingCopy[] = [];
    const keyDirs: string[] = [];
    const instances: ServerProcess[] = [];
    const ports: number[] = [];
    /** Instances the balancer sends to (by index). */
    const inRotation = new Set<number>();
    const k1 = randomBytes(32).toString('base64');
    const k2 = randomBytes(32).toString('base64');
    const adminToken = randomBytes(32).toString('hex');

    beforeAll(async () => {
      t = await createTestDatabase();
      ports.push(await freePort(), await freePort());
      proxy = await startProxy(() => [...inRotation].sort().map((i) => ports[i]!));
      for (let i = 0; i < 2; i++) {
        copies.push(workingCopy(`rot${i}`));
        keyDirs.push(mkdtempSync(join(tmpdir(), `keys-rot${i}-`)));
      }
      instances.push(
        ...(await Promise.all(
          copies.map((c, i) =>
            startServerProcess({
              cwd: c.dir,
              port: ports[i],
              env: {
                DATABASE_URL: t.url!,
                DATABASE_POOL_MAX: '5',
                PUBLIC_URL: proxy.url,
                SECRETS_KEY: k1,
                ADMIN_TOKEN: adminToken,
                KEYS_DIR: keyDirs[i]!,
                DEMO_DATA: 'true',
                KEY_REFRESH_INTERVAL: '1',
                RATE_LIMIT_LOGIN: '0',
                RATE_LIMIT_TOKEN: '0',
                RATE_LIMIT_ADMIN: '0',
              },
            }),
          ),
        )),
      );
      inRotation.add(0).add(1);
      setup = await prepareDeployment(proxy.url, adminToken, 6);
      const patched = await setup.admin('PATCH', `/admin/api/clients/${setup.clientId}/sites/${DEMO_SITE}`, {
        shared_encryption_key: SEK,
      });
      expect(patched.status).toBe(200);
      discovery = await discover(`${proxy.url}/fhir`);
    }, 300_000);

    afterAll(async () => {
      await Promise.all(instances.map((i) => i.stop().catch(() => null)));
      await proxy?.close().catch(() => {});
      for (const c of copies) c.remove();
      for (const d of keyDirs) rmSync(d, { recursive: true, force: true });
      await t?.drop();
    });

    const readyz = async (i: number) =>
      (await (await send(`${instances[i]!.url}/readyz`)).json()) as {
        secretsKey: { state: string; remaining: number };
      };

    /** Out of the balancer, restarted with `env`, back in once ready. */
    const restart = async (i: number, env: Record<string, string | undefined>) => {
      inRotation.delete(i);
      await new Promise((r) => setTimeout(r, 300)); // requests already sent to it finish (graceful drain)
      expect(await instances[i]!.stop()).toBe(0);
      instances[i]!.setEnv(env);
      await instances[i]!.start();
      inRotation.add(i);
    };

    it('rotates and drops the old key while clinicians launch through both instances; no launch fails', async () => {
      const failures: string[] = [];
      let launches = 0;
      let stopping = false;
      // Two clinicians launching in a loop; every hop goes to whichever instance the balancer picks.
      const clinicianLoop = async (who: number) => {
        const clinician = new Clinician(proxy.url);
        await clinician.signIn(DEMO_CLINICIANS[who]!.username, DEMO_CLINICIANS[who]!.password);
        for (let n = 0; !stopping; n++) {
          const patient = setup.patients[(n + who) % setup.patients.length]!;
          try {
            const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap');
            const { code } = await clinician.authorize(discovery, {
              clientId: setup.clientId,
              redirectUri: setup.redirectUri,
              launch: launch.get('launch')!,
              pkce: false,
            });
            const token = await redeemCode(discovery, {
              code,
              clientId: setup.clientId,
              redirectUri: setup.redirectUri,
            });
            if (token.status !== 200) throw new Error(`token ${token.status} ${JSON.stringify(token.body)}`);
            if (token.body.patient !== patient) throw new Error('wrong patient');
            if (token.body.oceanSharedEncryptionKey !== SEK_B64)
              throw new Error('wrong SEK in the token response');
            if (jwtPayload(token.body.access_token).oceanSharedEncryptionKey !== SEK_B64)
              throw new Error('wrong SEK in the access token');
            launches++;
          } catch (err) {
            failures.push(`${DEMO_CLINICIANS[who]!.username} launch ${n}: ${(err as Error).message}`);
          }
        }
      };
      const loops = [clinicianLoop(0), clinicianLoop(1)];
      const waitForLaunches = async (more: number) => {
        const target = launches + more;
        while (launches < target && failures.length === 0) await new Promise((r) => setTimeout(r, 50));
      };

      try {
        await waitForLaunches(4);

        // A gets the new key; B cannot open it, so A keeps sealing under the old one and re-seals nothing.
        await restart(0, { SECRETS_KEY: k2, SECRETS_KEY_PREVIOUS: k1 });
        await waitForLaunches(4);
        expect((await readyz(0)).secretsKey.state).toBe('waiting');
        // A new secret registered through A now (a site's SEK) is sealed under the old key.
        const viaA = await setup.admin(
          'PATCH',
          `/admin/api/clients/${setup.clientId}/sites/${DEMO_SITE}`,
          { shared_encryption_key: SEK },
          0,
        );
        expect(viaA.status).toBe(200);
        await waitForLaunches(4);

        // B too: every live instance can open the new key; re-sealing runs until nothing is left.
        await restart(1, { SECRETS_KEY: k2, SECRETS_KEY_PREVIOUS: k1 });
        for (;;) {
          const [a, b] = [await readyz(0), await readyz(1)];
          if (a.secretsKey.state === 'idle' && b.secretsKey.state === 'idle') break;
          await new Promise((r) => setTimeout(r, 200));
        }
        await waitForLaunches(4);

        // Everything stored is under the new key now.
        const client = new pg.Client({ connectionString: t.url! });
        await client.connect();
        try {
          for (const c of SEALED_COLUMNS) {
            const { rows } = await client.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM ${c.table} WHERE ${c.sealed} IS NOT NULL AND ${c.sealed} NOT LIKE $1`,
              [`v2.${secretsKeyId(Buffer.from(k2, 'base64'))}.%`],
            );
            expect({ column: `${c.table}.${c.sealed}`, left: rows[0]!.n }).toEqual({
              column: `${c.table}.${c.sealed}`,
              left: 0,
            });
          }
        } finally {
          await client.end();
        }

        // The old key dropped, one instance at a time.
        await restart(0, { SECRETS_KEY_PREVIOUS: undefined });
        await waitForLaunches(4);
        await restart(1, { SECRETS_KEY_PREVIOUS: undefined });
        await waitForLaunches(6);
      } finally {
        stopping = true;
        await Promise.all(loops);
      }
      expect(failures).toEqual([]);
      expect(launches).toBeGreaterThanOrEqual(26);
    });
  },
);
