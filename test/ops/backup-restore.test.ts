/*
 * Backups as the README's "Backups and restore" says to take them, restored and served:
 * - PostgreSQL (PostgreSQL pass): `pg_dump --format=custom` of the live database while the
 *   server runs, `pg_restore --no-owner` into a new database, a server on the copy: the EHR
 *   session, the site's SEK and the patients made before the dump all work there
 * - the embedded database (both passes): the DATA_DIR folder of a stopped server copied; a
 *   server on the copy does the same
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createPgliteDatabase } from '../../src/db/pglite.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createTestDatabase, usingPostgres } from '../helpers/database.ts';
import { CookieJar } from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN } from '../helpers/server.ts';
import { DEMO_CLINICIANS, DEMO_SITE, prepareDeployment } from './cluster.ts';
import { Clinician, discover, fhirGet, redeemCode } from './flow.ts';

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const run = promisify(execFile);
const SEK = 'backed-up SEK 5150';

/** Demo data, the test's patients, a known SEK and a signed-in clinician, on `db`. */
async function populate(db: Database) {
  const s = await startTestServer(db, { DEMO_DATA: 'true' });
  try {
    const setup = await prepareDeployment(s.url, TEST_ADMIN_TOKEN, 3);
    const patched = await setup.admin('PATCH', `/admin/api/clients/${setup.clientId}/sites/${DEMO_SITE}`, {
      shared_encryption_key: SEK,
    });
    expect(patched.status).toBe(200);
    const clinician = new Clinician(s.url);
    await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password);
    return { s, setup, cookies: clinician.jar.header('/') };
  } catch (err) {
    await s.stop();
    throw err;
  }
}

/** On a server over the restored copy: the session of before launches, the SEK and the patient come out right. */
async function launchOnCopy(db: Database, before: Awaited<ReturnType<typeof populate>>) {
  const s = await startTestServer(db);
  try {
    const clinician = new Clinician(s.url, new CookieJar(before.cookies));
    const patient = before.setup.patients[1]!;
    const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap');
    const discovery = await discover(`${s.url}/fhir`);
    const { code } = await clinician.authorize(discovery, {
      clientId: before.setup.clientId,
      redirectUri: before.setup.redirectUri,
      launch: launch.get('launch')!,
      pkce: false,
    });
    const token = await redeemCode(discovery, {
      code,
      clientId: before.setup.clientId,
      redirectUri: before.setup.redirectUri,
    });
    expect(token.status).toBe(200);
    expect(token.body.patient).toBe(patient);
    expect(token.body.oceanSharedEncryptionKey).toBe(Buffer.from(SEK, 'utf8').toString('base64'));
    const read = await fhirGet(`${s.url}/fhir`, `Patient/${patient}`, token.body.access_token);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(patient);
  } finally {
    await s.stop();
  }
}

describe('backups and restore', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it.skipIf(!usingPostgres)(
    'pg_dump of the live database, pg_restore into a new one, a server on the copy',
    async () => {
      const t = await createTestDatabase();
      cleanups.push(() => t.drop());
      const before = await populate(t.db);
      const dir = mkdtempSync(join(tmpdir(), 'backup-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, 'ehr.dump');
      try {
        // While the server runs: pg_dump takes one consistent snapshot.
        await run('pg_dump', ['--format=custom', `--file=${file}`, t.url!]);
      } finally {
        await before.s.stop();
      }

      const restoredName = `restored_${randomBytes(5).toString('hex')}`;
      const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${restoredName}`);
      const restoredUrl = new URL(t.url!);
      restoredUrl.pathname = `/${restoredName}`;
      cleanups.push(async () => {
        await admin.query(`DROP DATABASE IF EXISTS ${restoredName} WITH (FORCE)`);
        await admin.end();
      });
      await run('pg_restore', ['--no-owner', '--exit-on-error', `--dbname=${restoredUrl}`, file]);

      const restored = createPostgresDatabase(restoredUrl.toString(), { max: 5 });
      cleanups.push(() => restored.close());
      const { rows } = await restored.query<{ n: number }>('SELECT count(*)::int AS n FROM sites');
      expect(rows[0]!.n).toBeGreaterThan(0);
      await launchOnCopy(restored, before);
    },
  );

  it('a copy of a stopped embedded database folder serves like the original', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'embedded-backup-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const original = await createPgliteDatabase(join(dir, 'data'));
    let before: Awaited<ReturnType<typeof populate>>;
    try {
      before = await populate(original);
      await before.s.stop();
    } finally {
      await original.close(); // stopped: the folder is consistent
    }
    cpSync(join(dir, 'data'), join(dir, 'copy'), { recursive: true });
    const copy = await createPgliteDatabase(join(dir, 'copy'));
    try {
      await launchOnCopy(copy, before);
    } finally {
      await copy.close();
    }
  });
});
