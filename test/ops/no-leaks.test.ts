/*
 * No leaks: a real server process at LOG_LEVEL=trace goes through a full set-up over the admin
 * API (user with a password, confidential client with a secret, site with its SEK, patients by
 * import), a sign-in (plus a wrong password and a wrong client secret), a launch, token,
 * refresh, introspection, Patient read, $everything and revocation. Then:
 * - everything it printed (stdout and stderr) holds no patient name, health card number, SEK
 *   (text or Base64), client secret, password, admin token, code or token
 * - a dump of every table holds SEKs and private keys only encrypted, secrets and passwords
 *   only hashed, and no token or code in the clear
 * Both passes: PGlite on disk (dumped after the process stops) and PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';
import {
  type ServerProcess,
  startServerProcess,
  type WorkingCopy,
  workingCopy,
} from '../helpers/processes.ts';
import { opsPatients, patientBundle } from './fixtures.ts';
import { Clinician, discover, fhirGet, redeemCode, refresh, send } from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const REDIRECT_URI = 'https://ocean.example.test/sso/smart/callback';

describe(`no leaks in logs or at rest (${usingPostgres ? 'PostgreSQL' : 'PGlite on disk'})`, () => {
  let t: TestDatabase | undefined;
  let copy: WorkingCopy;
  let server: ServerProcess;
  const dirs: string[] = [];
  const adminToken = randomBytes(32).toString('hex');
  const secretsKey = randomBytes(32).toString('base64');
  const password = `Pw-${randomBytes(9).toString('base64url')}-secret`;
  const wrongPassword = `Wrong-${randomBytes(9).toString('base64url')}`;
  const sek = `SEK ${randomBytes(18).toString('base64url')} é`;
  const patients = opsPatients(3, 'leak');
  const secrets: Record<string, string> = {};
  let dataDir: string | undefined;

  beforeAll(async () => {
    t = usingPostgres ? await createTestDatabase() : undefined;
    dataDir = t ? undefined : mkdtempSync(join(tmpdir(), 'leak-data-'));
    const keysDir = mkdtempSync(join(tmpdir(), 'leak-keys-'));
    dirs.push(keysDir, ...(dataDir ? [dataDir] : []));
    copy = workingCopy('leaks');
    server = await startServerProcess({
      cwd: copy.dir,
      env: {
        ...(t ? { DATABASE_URL: t.url! } : { DATA_DIR: dataDir! }),
        KEYS_DIR: keysDir,
        SECRETS_KEY: secretsKey,
        ADMIN_TOKEN: adminToken,
        DEMO_DATA: 'false',
        LOG_LEVEL: 'trace',
      },
    });
  }, 240_000);
  afterAll(async () => {
    await server?.stop();
    copy?.remove();
    await t?.drop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('prints none of the secrets or PHI it handled, and stores secrets only encrypted or hashed', async () => {
    const base = server.url;
    const admin = async (method: string, path: string, body?: unknown) => {
      const r = await send(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      expect(r.status, `${method} ${path}: ${text.slice(0, 200)}`).toBeLessThan(300);
      return JSON.parse(text) as Record<string, unknown>;
    };

    // Set-up through the admin API.
    await admin('POST', '/admin/api/users', {
      username: 'leak.tester',
      password,
      given_name: 'Octavia',
      family_name: 'Brightwater',
      email: 'octavia.brightwater@clinic.example.org',
    });
    const created = await admin('POST', '/admin/api/clients', {
      name: 'Ocean (leak test)',
      redirect_uris: [REDIRECT_URI],
      launch_url: 'https://ocean.example.test/sso/smart/auth',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const clientId = String(created.client_id);
    const clientSecret = String(created.client_secret);
    expect(clientSecret.length).toBeGreaterThan(20);
    await admin('POST', `/admin/api/clients/${encodeURIComponent(clientId)}/sites`, {
      site_num: '7777',
      shared_encryption_key: sek,
      actions: ['viewMap'],
    });
    await admin('POST', '/admin/api/import', patientBundle(patients));

    // A wrong password, then the right one; a launch with PKCE and a confidential client.
    const discovery = await discover(`${base}/fhir`);
    const clinician = new Clinician(base);
    await expect(clinician.signIn('leak.tester', wrongPassword)).rejects.toThrow(/sign-in failed/);
    await clinician.signIn('leak.tester', password);
    const launch = await clinician.launch(patients[0]!.id, '7777', 'viewMap');
    const launchId = launch.get('launch')!;
    const { code, verifier } = await clinician.authorize(discovery, {
      clientId,
      redirectUri: REDIRECT_URI,
      launch: launchId,
      scope: 'openid fhirUser profile launch online_access patient/*.read',
    });
    const bad = await redeemCode(discovery, {
      code,
      clientId,
      redirectUri: REDIRECT_URI,
      verifier,
      clientSecret: `${clientSecret}x`,
    });
    expect(bad.status).toBe(401);
    const token = await redeemCode(discovery, {
      code,
      clientId,
      redirectUri: REDIRECT_URI,
      verifier,
      clientSecret,
    });
    expect(token.status).toBe(200);
    expect(Buffer.from(String(token.body.oceanSharedEncryptionKey), 'base64').toString('utf8')).toBe(sek);
    const everything = await fhirGet(
      `${base}/fhir`,
      `Patient/${patients[0]!.id}/$everything`,
      token.body.access_token,
    );
    expect(everything.status).toBe(200);
    expect(JSON.stringify(everything.body)).toContain(patients[0]!.family);
    expect(
      (await fhirGet(`${base}/fhir`, `Patient/${patients[0]!.id}`, token.body.access_token)).status,
    ).toBe(200);
    const refreshed = await refresh(discovery, {
      refreshToken: token.body.refresh_token!,
      clientId,
      clientSecret,
    });
    expect(refreshed.status).toBe(200);
    const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
    const introspected = await send(discovery.introspection_endpoint!, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: refreshed.body.access_token }).toString(),
    });
    expect(((await introspected.json()) as { active: boolean }).active).toBe(true);
    const revoked = await send(`${base}/fhir/token/revocation`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: refreshed.body.refresh_token ?? token.body.refresh_token!,
      }).toString(),
    });
    expect(revoked.status).toBe(200);

    Object.assign(secrets, {
      password,
      wrongPassword,
      sek,
      sekBase64: Buffer.from(sek, 'utf8').toString('base64'),
      clientSecret,
      adminToken,
      secretsKey,
      code,
      verifier: verifier!,
      launchId,
      accessToken: token.body.access_token,
      accessTokenSignature: token.body.access_token.split('.')[2]!,
      refreshToken: token.body.refresh_token!,
      idToken: token.body.id_token,
      refreshedAccessToken: refreshed.body.access_token,
    });
    const phi: Record<string, string> = {};
    for (const [i, p] of patients.entries()) {
      phi[`family${i}`] = p.family;
      phi[`given${i}`] = p.given;
      phi[`hcn${i}`] = p.hcn;
      // an id is an identifier: an EHR's may be its chart number
      phi[`patientId${i}`] = p.id;
    }

    await server.stop();
    const output = server.output();
    expect(output.length).toBeGreaterThan(1000);
    expect(output).toContain('"msg":"request completed"');
    for (const [name, value] of Object.entries({ ...secrets, ...phi })) {
      expect(output.includes(value), `server output contains the ${name}`).toBe(false);
    }

    // The database at rest.
    const tables = await dumpAllTables(t?.url, dataDir);
    const everythingAtRest = Object.values(tables).flat().join('\n');
    for (const name of [
      'password',
      'wrongPassword',
      'sek',
      'sekBase64',
      'clientSecret',
      'adminToken',
      'secretsKey',
      'code',
      'accessToken',
      'accessTokenSignature',
      'refreshToken',
      'idToken',
      'launchId',
    ]) {
      expect(everythingAtRest.includes(secrets[name]!), `the database holds the ${name} in the clear`).toBe(
        false,
      );
    }
    // Private keys only encrypted: no private JWK member anywhere at rest.
    expect(everythingAtRest).not.toMatch(/"d"\s*:\s*"/);
    expect(tables.signing_keys!.length).toBeGreaterThan(0);
    // Passwords and client secrets hashed; SEKs encrypted (and still there, encrypted).
    expect(tables.users!.join()).toMatch(/scrypt|\$/);
    expect(tables.sites!.join()).not.toContain(sek.slice(4, 20));
  });
});

/** Every row of every table as text: PostgreSQL over the wire, PGlite by opening its files. */
async function dumpAllTables(
  url: string | undefined,
  dataDir: string | undefined,
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  const listSql = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`;
  if (url) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      for (const { table_name } of (await c.query<{ table_name: string }>(listSql)).rows) {
        out[table_name] = (
          await c.query<{ t: string }>(`SELECT x::text AS t FROM "${table_name}" x`)
        ).rows.map((r) => r.t);
      }
    } finally {
      await c.end();
    }
    return out;
  }
  const db = await PGlite.create(dataDir!);
  try {
    for (const { table_name } of (await db.query<{ table_name: string }>(listSql)).rows) {
      out[table_name] = (
        await db.query<{ t: string }>(`SELECT x::text AS t FROM "${table_name}" x`)
      ).rows.map((r) => r.t);
    }
  } finally {
    await db.close();
  }
  return out;
}
