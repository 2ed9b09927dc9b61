/*
 * A small deployment for operations tests: N server processes, each from its own working copy
 * with its own KEYS_DIR, sharing one database and SECRETS_KEY, behind one PUBLIC_URL (./proxy.ts).
 * The first instance loads the demo data (users, 30 patients, the Ocean test client, site 1234).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../helpers/private-postgres.ts';
import {
  type ServerProcess,
  startServerProcess,
  type WorkingCopy,
  workingCopy,
} from '../helpers/processes.ts';
import { type LoadBalancer, startProxy } from './proxy.ts';

export const DEMO_SITE = '1234';
export const DEMO_CLINICIANS = [
  { username: 'dr.patel', password: 'demo-clinician-1' },
  { username: 'dr.lavoie', password: 'demo-clinician-2' },
];

export interface Cluster {
  publicUrl: string;
  fhirBase: string;
  proxy: LoadBalancer;
  instances: ServerProcess[];
  adminToken: string;
  secretsKey: string;
  /** The Ocean test client the demo data registered (public, PKCE off) and its registered redirect_uri. */
  clientId: string;
  redirectUri: string;
  /** Demo patients' ids. */
  patients: string[];
  /** A connection to the shared database, for checks. */
  sql: pg.Client;
  close(): Promise<void>;
}

export async function startCluster(options: {
  databaseUrl: string;
  instances: number;
  env?: Record<string, string>;
}): Promise<Cluster> {
  const ports = await Promise.all(Array.from({ length: options.instances }, () => freePort()));
  const proxy = await startProxy(() => ports);
  const adminToken = randomBytes(32).toString('hex');
  const secretsKey = randomBytes(32).toString('base64');
  const copies: WorkingCopy[] = [];
  const keyDirs: string[] = [];
  const instances: ServerProcess[] = [];
  const sql = new pg.Client({ connectionString: options.databaseUrl });
  const close = async () => {
    await Promise.all(instances.map((i) => i.stop().catch(() => null)));
    await proxy.close().catch(() => {});
    await sql.end().catch(() => {});
    for (const c of copies) c.remove();
    for (const d of keyDirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    const envFor = (i: number): Record<string, string> => {
      const keysDir = mkdtempSync(join(tmpdir(), `keys-${i}-`));
      keyDirs.push(keysDir);
      return {
        DATABASE_URL: options.databaseUrl,
        DATABASE_POOL_MAX: '5',
        PUBLIC_URL: proxy.url,
        SECRETS_KEY: secretsKey,
        ADMIN_TOKEN: adminToken,
        KEYS_DIR: keysDir,
        DEMO_DATA: 'true',
        RATE_LIMIT_LOGIN: '0',
        RATE_LIMIT_TOKEN: '0',
        RATE_LIMIT_INTROSPECTION: '0',
        RATE_LIMIT_ADMIN: '0',
        ...options.env,
      };
    };
    for (let i = 0; i < options.instances; i++) copies.push(workingCopy(`i${i}`));
    // Started together, like replicas of one deployment: migrations and demo data must not race.
    const started = await Promise.all(
      copies.map((c, i) => startServerProcess({ cwd: c.dir, env: envFor(i), port: ports[i] })),
    );
    instances.push(...started);
    await sql.connect();
    const client = await sql.query<{ client_id: string; redirect_uris: string[] }>(
      `SELECT client_id, metadata->'redirect_uris' AS redirect_uris FROM clients ORDER BY created_at LIMIT 1`,
    );
    const patients = await sql.query<{ id: string }>(
      `SELECT id FROM fhir_resources WHERE resource_type = 'Patient' AND NOT deleted ORDER BY id`,
    );
    const row = client.rows[0];
    if (!row) throw new Error('the demo data registered no client');
    return {
      publicUrl: proxy.url,
      fhirBase: `${proxy.url}/fhir`,
      proxy,
      instances,
      adminToken,
      secretsKey,
      clientId: row.client_id,
      redirectUri: row.redirect_uris[0]!,
      patients: patients.rows.map((r) => r.id),
      sql,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
