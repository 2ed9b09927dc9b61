/*
 * An upgrade without downtime (README "Upgrades without downtime"): the previous release and
 * this one run against ONE PostgreSQL database while the new release's migrations are applied.
 * - "previous release": the parent of the commit that added the newest migration file, copied
 *   with `git archive` (node_modules shared) — the release whose schema the newest migration expands
 * - the previous release starts alone and serves; the new one starts on the same database and
 *   migrates it; both serve side by side; the previous one restarts on the expanded schema (a
 *   rollback) and serves again; then it leaves and the new one serves alone
 * - clinicians launch through the balancer the whole time; every launch gets its patient and
 *   SEK; none fails
 * Needs PostgreSQL and the repository's git history: skipped, with the reason, otherwise.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/processes.ts';
import { DEMO_SITE, type DeploymentSetup, prepareDeployment } from './cluster.ts';
import { type Discovery, discover } from './flow.ts';
import { Fleet, launchLoad } from './rolling.ts';

vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

const SEK = 'upgrade SEK 4711';

/** The commit before the newest migration was added, or why there is none to test against. */
function previousRelease(): { commit?: string; reason?: string } {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', REPO_ROOT, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    const added = git('log', '-1', '--format=%H', '--diff-filter=A', 'HEAD', '--', 'src/db/migrations/');
    if (!added) return { reason: 'no commit adds a migration' };
    return { commit: git('rev-parse', '--verify', `${added}^`) };
  } catch {
    return { reason: 'no git history here (a shallow clone or an exported tree)' };
  }
}

const previous = previousRelease();
const skipReason = !usingPostgres ? 'needs PostgreSQL (two instances)' : previous.reason;

describe.skipIf(Boolean(skipReason))(
  `upgrade: the previous release and this one on one database${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let t: TestDatabase;
    let fleet: Fleet;
    let setup: DeploymentSetup;
    let discovery: Discovery;
    const adminToken = randomBytes(32).toString('hex');
    let env: Record<string, string>;

    beforeAll(async () => {
      t = await createTestDatabase();
      fleet = await Fleet.create();
      env = {
        DATABASE_URL: t.url!,
        DATABASE_POOL_MAX: '5',
        SECRETS_KEY: randomBytes(32).toString('base64'),
        ADMIN_TOKEN: adminToken,
        DEMO_DATA: 'true',
        RATE_LIMIT_LOGIN: '0',
        RATE_LIMIT_TOKEN: '0',
        RATE_LIMIT_ADMIN: '0',
      };
      await fleet.add(env, previous.commit); // the previous release alone: its schema only
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

    it('keeps launching through both releases while the new one migrates, after a rollback, and after', async () => {
      const migrations = async () =>
        (await t.db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY version')).rows.map(
          (r) => r.name,
        );
      const before = await migrations();
      const load = launchLoad(fleet.url, discovery, setup, SEK);
      try {
        await load.more(4);
        const current = await fleet.add(env); // this release: applies the newer migrations (expand)
        const after = await migrations();
        expect(after.length).toBeGreaterThan(before.length);
        await load.more(8); // both releases serve, hops spread over them

        // Rollback drill: the previous release restarts on the expanded schema and serves.
        expect(await fleet.restart(0, {})).toBe(0);
        await load.more(6);

        // The previous release leaves; this one serves alone.
        expect(await fleet.remove(0)).toBe(0);
        await load.more(4);
        expect(fleet.instances[current]!.running()).toBe(true);
      } finally {
        await load.stop();
      }
      expect(load.failures).toEqual([]);
    });
  },
);
