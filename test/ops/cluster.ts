/*
 * A small deployment for operations tests: N server processes, each from its own working copy
 * with its own KEYS_DIR, sharing one database and SECRETS_KEY, behind one PUBLIC_URL (./proxy.ts).
 * - PostgreSQL when a database URL is given; otherwise ONE instance on an embedded PGlite in a
 *   temp DATA_DIR (kept across restarts of that instance)
 * - the instances load the demo data (clinicians, the Ocean test client, site 1234); the test's
 *   own patients (./fixtures.ts) go in through the real admin import
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/private-postgres.ts';
import {
  type ServerProcess,
  startServerProcess,
  type WorkingCopy,
  workingCopy,
} from '../helpers/processes.ts';
import { opsPatients, patientBundle } from './fixtures.ts';
import { send } from './flow.ts';
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
  /** Ids of the patients imported for the test. */
  patients: string[];
  /** Admin API call through the proxy. */
  admin(method: string, path: string, body?: unknown, backend?: number): Promise<Response>;
  close(): Promise<void>;
}

export async function startCluster(options: {
  /** PostgreSQL; unset = embedded PGlite (one instance only). */
  databaseUrl?: string;
  instances: number;
  env?: Record<string, string>;
  patients?: number;
}): Promise<Cluster> {
  if (!options.databaseUrl && options.instances !== 1) throw new Error('PGlite serves one instance');
  const ports = await Promise.all(Array.from({ length: options.instances }, () => freePort()));
  const proxy = await startProxy(() => ports);
  const adminToken = randomBytes(32).toString('hex');
  const secretsKey = randomBytes(32).toString('base64');
  const copies: WorkingCopy[] = [];
  const keyDirs: string[] = [];
  const instances: ServerProcess[] = [];
  const dataDir = options.databaseUrl ? undefined : mkdtempSync(join(tmpdir(), 'ops-data-'));
  if (dataDir) keyDirs.push(dataDir);
  const close = async () => {
    await Promise.all(instances.map((i) => i.stop().catch(() => null)));
    await proxy.close().catch(() => {});
    for (const c of copies) c.remove();
    for (const d of keyDirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    const envFor = (i: number): Record<string, string> => {
      const keysDir = mkdtempSync(join(tmpdir(), `keys-${i}-`));
      keyDirs.push(keysDir);
      return {
        ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : { DATA_DIR: dataDir! }),
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
    const setup = await prepareDeployment(proxy.url, adminToken, options.patients ?? 12);
    return {
      publicUrl: proxy.url,
      fhirBase: `${proxy.url}/fhir`,
      proxy,
      instances,
      adminToken,
      secretsKey,
      ...setup,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface DeploymentSetup {
  clientId: string;
  redirectUri: string;
  patients: string[];
  admin(method: string, path: string, body?: unknown, backend?: number): Promise<Response>;
}

/** The demo client (from the admin API) and the test's patients (through the admin import). */
export async function prepareDeployment(
  publicUrl: string,
  adminToken: string,
  patientCount: number,
): Promise<DeploymentSetup> {
  const admin = (method: string, path: string, body?: unknown, backend?: number) =>
    send(
      `${publicUrl}${path}`,
      {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      },
      backend,
    );
  const listed = await admin('GET', '/admin/api/clients');
  if (listed.status !== 200) throw new Error(`GET /admin/api/clients answered ${listed.status}`);
  const { clients } = (await listed.json()) as { clients: { client_id: string; redirect_uris: string[] }[] };
  const client = clients[0];
  if (!client) throw new Error('the demo data registered no client');
  const patients = opsPatients(patientCount);
  const imported = await admin('POST', '/admin/api/import', patientBundle(patients));
  if (imported.status !== 200)
    throw new Error(`import answered ${imported.status}: ${await imported.text()}`);
  return {
    clientId: client.client_id,
    redirectUri: client.redirect_uris[0]!,
    patients: patients.map((p) => p.id),
    admin,
  };
}
