/*
 * SECRETS_KEY rotation (CONTRACT §3.1, src/keys/secrets-rotation.ts) on the run's database, with
 * the real server on a real socket:
 * - a SEK registered under one key, a launch context made under it, a confidential client's
 *   secret and an EHR session all outlive the rotation AND the dropping of the old key
 * - every registered sealed column ends up under the new key; several re-sealers at once lose nothing
 * - a new key seals nothing while a live instance cannot open it
 * - starting the timer keeps the heartbeat the start made (stop() is the goodbye)
 * - a value sealed under neither key stops the start with a message naming it
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KeyRing, secretsKeyId } from '../../src/keys/key-ring.ts';
import { SEALED_COLUMNS } from '../../src/keys/sealed-columns.ts';
import { openKeyRing, SecretsKeyError, SecretsRotation } from '../../src/keys/secrets-rotation.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import { CookieJar } from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { DEMO_CLINICIANS, DEMO_SITE, prepareDeployment } from '../ops/cluster.ts';
import { Clinician, discover, jwtPayload, redeemCode, send } from '../ops/flow.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const key = () => randomBytes(32);
const b64 = (k: Buffer) => k.toString('base64');
const SEK = 'rotation SEK — ünïcödé 1234';

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Every sealed value in the registered columns, as stored. */
async function sealedValues(t: TestDatabase): Promise<string[]> {
  const all: string[] = [];
  for (const c of SEALED_COLUMNS) {
    const { rows } = await t.db.query<{ s: string }>(
      `SELECT ${c.sealed} AS s FROM ${c.table} WHERE ${c.sealed} IS NOT NULL`,
    );
    all.push(...rows.map((r) => r.s));
  }
  return all;
}

describe(`SECRETS_KEY rotation (${usingPostgres ? 'PostgreSQL' : 'PGlite'})`, () => {
  let t: TestDatabase;
  const servers: TestServer[] = [];
  const start = async (env: Record<string, string | undefined>) => {
    const s = await startTestServer(t.db, { KEY_REFRESH_INTERVAL: '1', RATE_LIMIT_TOKEN: '0', ...env });
    servers.push(s);
    return s;
  };
  const stop = async (s: TestServer) => {
    servers.splice(servers.indexOf(s), 1);
    await s.stop();
  };

  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    for (const s of [...servers]) await s.stop().catch(() => {});
    await t?.drop();
  });

  it('delivers a SEK registered under the old key after the rotation and after the old key is dropped', async () => {
    const k1 = key();
    const k2 = key();
    const s1 = await start({ SECRETS_KEY: b64(k1), DEMO_DATA: 'true' });
    const setup = await prepareDeployment(s1.url, TEST_ADMIN_TOKEN, 2);
    expect(
      (
        await setup.admin('PATCH', `/admin/api/clients/${setup.clientId}/sites/${DEMO_SITE}`, {
          shared_encryption_key: SEK,
        })
      ).status,
    ).toBe(200);
    const created = await setup.admin('POST', '/admin/api/clients', {
      name: 'confidential',
      redirect_uris: ['https://ocean.example.test/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(created.status).toBe(201);
    const confidential = (await created.json()) as { client_id: string; client_secret: string };

    // Signed in and a launch made under the old key; the token is asked for after the rotation.
    const clinician = new Clinician(s1.url);
    await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password);
    const pending = await clinician.launch(setup.patients[0]!, DEMO_SITE, 'viewMap');
    // No rotation under way: the format the previous release reads too (no key id).
    expect((await sealedValues(t)).every((v) => v.startsWith('v1.'))).toBe(true);
    await stop(s1);

    // The rotation: new key, old one still readable; re-sealed in the background.
    const s2 = await start({ SECRETS_KEY: b64(k2), SECRETS_KEY_PREVIOUS: b64(k1) });
    const ready = await waitFor(async () => {
      const r = await send(`${s2.url}/readyz`);
      const body = (await r.json()) as { secretsKey: { state: string; remaining: number } };
      return body.secretsKey.state === 'idle' ? body : undefined;
    }, 'the rotation to finish');
    expect(ready.secretsKey.remaining).toBe(0);
    expect(s2.ctx.box.status.resealedHere).toBeGreaterThanOrEqual(4); // root, 4 signing keys, site, context
    const values = await sealedValues(t);
    expect(values.length).toBeGreaterThan(0);
    expect(values.filter((v) => !v.startsWith(`v2.${secretsKeyId(k2)}.`))).toEqual([]);
    // The admin console shows where it stands.
    const page = await send(`${s2.url}/admin/api/keys`, {
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });
    expect(((await page.json()) as { secretsKey: { state: string } }).secretsKey.state).toBe('idle');
    await stop(s2);

    // The old key dropped.
    const s3 = await start({ SECRETS_KEY: b64(k2) });
    // The same browser (its EHR session cookie), now talking to the new instance.
    const moved = new Clinician(s3.url, new CookieJar(clinician.jar.header('/')));
    const discovery = await discover(`${s3.url}/fhir`);
    const { code } = await moved.authorize(discovery, {
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
      launch: pending.get('launch')!,
      pkce: false,
    });
    const token = await redeemCode(discovery, {
      code,
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
    });
    expect(token.status).toBe(200);
    expect(token.body.patient).toBe(setup.patients[0]);
    const sekB64 = Buffer.from(SEK, 'utf8').toString('base64');
    expect(token.body.oceanSharedEncryptionKey).toBe(sekB64);
    expect(jwtPayload(token.body.access_token).oceanSharedEncryptionKey).toBe(sekB64);

    // A fresh launch (the EHR session of before the rotation still signs it) gets the same SEK.
    const again = await moved.launch(setup.patients[1]!, DEMO_SITE, 'dashboard');
    const second = await moved.authorize(discovery, {
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
      launch: again.get('launch')!,
      pkce: false,
    });
    const token2 = await redeemCode(discovery, {
      code: second.code,
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
    });
    expect(token2.body.oceanSharedEncryptionKey).toBe(sekB64);

    // A client secret issued under the old key still authenticates (keyed hashes use the root).
    const basic = (secret: string) =>
      send(`${s3.url}/fhir/token/introspection`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${confidential.client_id}:${secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token: 'not-a-token' }).toString(),
      });
    expect((await basic(confidential.client_secret)).status).toBe(200);
    expect((await basic(`${confidential.client_secret}x`)).status).toBe(401);
    await stop(s3);

    // A key that sealed nothing here: the start fails and says why, naming what it cannot open.
    const err = await start({ SECRETS_KEY: b64(key()) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretsKeyError);
    expect((err as Error).message).toMatch(/secrets_root cannot be opened.*SECRETS_KEY/);
  });

  it('refuses to start on a value sealed under neither key, naming its table and row', async () => {
    const own = await createTestDatabase(); // a database of its own: the one above is under another key now
    try {
      const k = key();
      const s = await startTestServer(own.db, { SECRETS_KEY: b64(k), DEMO_DATA: 'true' });
      await s.stop();
      const { client_id } = (
        await own.db.query<{ client_id: string }>('SELECT client_id FROM clients LIMIT 1')
      ).rows[0]!;
      // One sealed by a server without rotation (no key id), one during someone else's rotation.
      const stranger = new KeyRing(key(), key());
      const rotatingStranger = new KeyRing(key(), key(), key());
      await own.db.query(
        `INSERT INTO sites (site_num, client_id, sek_encrypted, sek_hint)
         VALUES ('990077', $1, $2, '…'), ('990078', $1, $3, '…')`,
        [client_id, stranger.encrypt('x', 'sek:990077'), rotatingStranger.encrypt('y', 'sek:990078')],
      );
      const err = await startTestServer(own.db, { SECRETS_KEY: b64(k) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretsKeyError);
      const message = (err as Error).message;
      expect(message).toMatch(/^2 stored secret\(s\) cannot be opened with SECRETS_KEY \(key id /);
      expect(message).toMatch(/sites\.sek_encrypted \(990077\): secret cannot be decrypted/);
      expect(message).toMatch(
        /sites\.sek_encrypted \(990078\): secret sealed under key \S+, which is neither SECRETS_KEY/,
      );
      expect(message).toMatch(/set SECRETS_KEY_PREVIOUS back to the old key/);
    } finally {
      await own.drop();
    }
  });
});

describe(`SECRETS_KEY rotation mechanics (${usingPostgres ? 'PostgreSQL' : 'PGlite'})`, () => {
  let t: TestDatabase;
  const k1 = key();
  const k2 = key();
  const columns = [SEALED_COLUMNS.find((c) => c.table === 'secrets_root')!];

  beforeAll(async () => {
    t = await createTestDatabase();
    const { migrate } = await import('../../src/db/migrate.ts');
    await migrate(t.db);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('seals nothing under the new key while a live instance cannot open it, then re-seals', async () => {
    await openKeyRing(t.db, { current: k1 }, columns);
    await t.db.query(
      `INSERT INTO secrets_key_readers (instance_id, current_key_id, readable_key_ids) VALUES ('old', $1, $2)`,
      [secretsKeyId(k1), [secretsKeyId(k1)]],
    );
    const ring = await openKeyRing(t.db, { current: k2, previous: k1 }, columns);
    const rotation = new SecretsRotation(t.db, ring, { intervalSeconds: 1, columns });
    await rotation.tick();
    expect(ring.status.state).toBe('waiting');
    expect(ring.sealingKeyId).toBe(secretsKeyId(k1));
    expect(ring.encrypt('x', 'p').startsWith(`v2.${secretsKeyId(k1)}.`)).toBe(true);
    expect(ring.status.remaining['secrets_root.root_sealed']).toBe(1);

    await t.db.query(`DELETE FROM secrets_key_readers WHERE instance_id = 'old'`);
    await rotation.tick();
    expect(ring.status.state).toBe('idle');
    expect(ring.sealingKeyId).toBe(secretsKeyId(k2));
    expect(ring.status.remaining['secrets_root.root_sealed']).toBe(0);
    await rotation.stop();
  });

  it('keeps the heartbeat its start made, and says idle at once when no rotation is under way', async () => {
    const ring = await openKeyRing(t.db, { current: k2 }, columns);
    const rotation = new SecretsRotation(t.db, ring, { intervalSeconds: 60, columns });
    await rotation.register();
    rotation.start();
    expect(ring.status.state).toBe('idle');
    // Whatever the start queued has run once a later query on the same database has answered.
    await new Promise((r) => setTimeout(r, 200));
    await t.db.query('SELECT 1');
    const { rows } = await t.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM secrets_key_readers WHERE instance_id = $1',
      [rotation.instanceId],
    );
    expect(rows[0]!.n).toBe(1);
    await rotation.stop();
    const after = await t.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM secrets_key_readers WHERE instance_id = $1',
      [rotation.instanceId],
    );
    expect(after.rows[0]!.n).toBe(0); // stop() still says goodbye
  });

  it('loses nothing when several instances re-seal the same rows at once', async () => {
    await t.db.exec(`CREATE TABLE rotation_probe (id text PRIMARY KEY, sealed text)`);
    const probe = [
      {
        table: 'rotation_probe',
        key: 'id',
        sealed: 'sealed',
        purposeFrom: 'id',
        purpose: (id: string) => `probe:${id}`,
      },
    ];
    const old = new KeyRing(k1, k1);
    const n = 450; // more than two batches
    for (let i = 0; i < n; i += 50) {
      const ids = Array.from({ length: 50 }, (_, j) => `p${String(i + j).padStart(4, '0')}`);
      await t.db.query(
        `INSERT INTO rotation_probe (id, sealed) SELECT unnest($1::text[]), unnest($2::text[])`,
        [ids, ids.map((id) => old.encrypt(`value of ${id}`, `probe:${id}`))],
      );
    }
    await t.db.query(`UPDATE rotation_probe SET sealed = NULL WHERE id = 'p0007'`); // NULLs are skipped
    // Three instances: three connection pools on PostgreSQL (PGlite has the one).
    const dbs = [t.db, await t.connectAnother(), await t.connectAnother()];
    const rotations = await Promise.all(
      dbs.map(async (db) => {
        const ring = await openKeyRing(db, { current: k2, previous: k1 }, []);
        ring.sealUnderCurrent(true);
        return new SecretsRotation(db, ring, { intervalSeconds: 1, columns: probe });
      }),
    );
    const counts = await Promise.all(rotations.map((r) => r.pass()));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(n - 1); // each value re-sealed exactly once
    expect((await rotations[0]!.remaining())['rotation_probe.sealed']).toBe(0);
    const { rows } = await t.db.query<{ id: string; sealed: string | null }>(
      'SELECT id, sealed FROM rotation_probe',
    );
    const fresh = new KeyRing(k1, k2);
    for (const r of rows) {
      if (r.id === 'p0007') expect(r.sealed).toBeNull();
      else expect(fresh.decryptText(r.sealed!, `probe:${r.id}`)).toBe(`value of ${r.id}`);
    }
  });
});
