/*
 * SECRETS_KEY rotation with two server PROCESSES on one PostgreSQL and launches going on the
 * whole time (CONTRACT §3.1): instance A restarts with the new key (old one as
 * SECRETS_KEY_PREVIOUS) while B still has only the old key — A must seal nothing B cannot open;
 * then B restarts the same way, the stored secrets are re-sealed in the background, and both
 * restart once more without the old key. Every launch of the run — through both instances,
 * hops spread over them — gets its patient and the site's SEK; none fails.
 * Needs PostgreSQL: runs in the PostgreSQL pass, skipped otherwise.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { secretsKeyId } from '../../src/keys/key-ring.ts';
import { SEALED_COLUMNS } from '../../src/keys/sealed-columns.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { DEMO_SITE, type DeploymentSetup, prepareDeployment } from './cluster.ts';
import { type Discovery, discover } from './flow.ts';
import { Fleet, launchLoad } from './rolling.ts';

vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

const SEK = 'rotation-under-load SEK ✓';

describe.skipIf(!usingPostgres)(
  'SECRETS_KEY rotation under load, two instances (PostgreSQL pass only)',
  () => {
    let t: TestDatabase;
    let fleet: Fleet;
    let setup: DeploymentSetup;
    let discovery: Discovery;
    const k1 = randomBytes(32).toString('base64');
    const k2 = randomBytes(32).toString('base64');
    const adminToken = randomBytes(32).toString('hex');

    beforeAll(async () => {
      t = await createTestDatabase();
      fleet = await Fleet.create();
      const env = {
        DATABASE_URL: t.url!,
        DATABASE_POOL_MAX: '5',
        SECRETS_KEY: k1,
        ADMIN_TOKEN: adminToken,
        DEMO_DATA: 'true',
        KEY_REFRESH_INTERVAL: '1',
        RATE_LIMIT_LOGIN: '0',
        RATE_LIMIT_TOKEN: '0',
        RATE_LIMIT_ADMIN: '0',
      };
      await Promise.all([fleet.add(env), fleet.add(env)]);
      setup = await prepareDeployment(fleet.url, adminToken, 6);
      const patched = await setup.admin('PATCH', `/admin/api/clients/${setup.clientId}/sites/${DEMO_SITE}`, {
        shared_encryption_key: SEK,
      });
      expect(patched.status).toBe(200);
      discovery = await discover(`${fleet.url}/fhir`);
    }, 300_000);

    afterAll(async () => {
      await fleet?.close();
      await t?.drop();
    });

    const state = async (i: number) => ((await fleet.readyz(i)).secretsKey as { state: string }).state;

    it('rotates and drops the old key while clinicians launch through both instances; no launch fails', async () => {
      const load = launchLoad(fleet.url, discovery, setup, SEK);
      try {
        await load.more(4);

        // A gets the new key; B cannot open it, so A keeps sealing under the old one and re-seals nothing.
        expect(await fleet.restart(0, { SECRETS_KEY: k2, SECRETS_KEY_PREVIOUS: k1 })).toBe(0);
        await load.more(4);
        expect(await state(0)).toBe('waiting');
        // A new secret registered through A now (the site's SEK again) must stay readable by B.
        const viaA = await setup.admin(
          'PATCH',
          `/admin/api/clients/${setup.clientId}/sites/${DEMO_SITE}`,
          { shared_encryption_key: SEK },
          0,
        );
        expect(viaA.status).toBe(200);
        await load.more(4);

        // B too: every live instance can open the new key; re-sealing runs until nothing is left.
        expect(await fleet.restart(1, { SECRETS_KEY: k2, SECRETS_KEY_PREVIOUS: k1 })).toBe(0);
        while ((await state(0)) !== 'idle' || (await state(1)) !== 'idle')
          await new Promise((r) => setTimeout(r, 200));
        await load.more(4);

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
        expect(await fleet.restart(0, { SECRETS_KEY_PREVIOUS: undefined })).toBe(0);
        await load.more(4);
        expect(await fleet.restart(1, { SECRETS_KEY_PREVIOUS: undefined })).toBe(0);
        await load.more(6);
      } finally {
        await load.stop();
      }
      expect(load.failures).toEqual([]);
      expect(load.launches()).toBeGreaterThanOrEqual(26);
    });
  },
);
