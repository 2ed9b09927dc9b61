/*
 * Demo data for a first `npm start` (never in production: config refuses DEMO_DATA there).
 * - loaded only into a database without users, all in ONE transaction: users + Practitioners,
 *   synthetic Ontario patients with charts, an Ocean client for Ocean's test environment, and a
 *   demo EHR system for the launch API's example (./ehr-system.ts)
 * - idempotent: a second start (or a second instance racing the first) loads nothing; the
 *   loser of a race hits the unique username and its transaction rolls back whole
 * - the banner prints the URL and the demo credentials; never a SEK, secret or token
 */
import { randomBytes } from 'node:crypto';
import { insertUser } from '../accounts/accounts.ts';
import { createClient } from '../clients/clients.ts';
import type { AppContext, Capability } from '../context.ts';
import { EhrSystems } from '../ehr-api/ehr-systems.ts';
import { putResource } from '../fhir/repository.ts';
import { ConflictError, loggableError } from '../http/errors.ts';
import { addSite } from '../sites/sites.ts';
import { countUsers, findByUsername, type NewUser } from '../users/users.ts';
import { DEMO_EHR_SYSTEM_ID, registerDemoEhrSystem } from './ehr-system.ts';
import { demoPatients } from './patients.ts';

/** CPSO registration numbers (Ontario physician licence), Infoway naming system. */
const CPSO_SYSTEM = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician';

export const DEMO_USERS: NewUser[] = [
  {
    username: 'dr.patel',
    password: 'demo-clinician-1',
    given_name: 'Anita',
    family_name: 'Patel',
    email: 'anita.patel@clinic.example.org',
    identifiers: [{ system: CPSO_SYSTEM, value: '87231' }],
    roles: ['clinician'],
  },
  {
    username: 'dr.lavoie',
    password: 'demo-clinician-2',
    given_name: 'Marc',
    family_name: 'Lavoie',
    email: 'marc.lavoie@clinic.example.org',
    identifiers: [{ system: CPSO_SYSTEM, value: '102934' }],
    roles: ['clinician'],
  },
  {
    username: 'admin',
    password: 'demo-administrator',
    given_name: 'Jordan',
    family_name: 'Reid',
    email: 'jordan.reid@clinic.example.org',
    identifiers: [{ system: CPSO_SYSTEM, value: '65512' }],
    roles: ['admin', 'clinician'],
  },
];

export const DEMO_PATIENT_COUNT = 30;

export const OCEAN_TEST_LAUNCH_URL = 'https://test.cognisantmd.com/sso/smart/auth';
export const DEMO_SITE_NUM = '1234';
export const DEMO_ACTIONS = [
  { action: 'viewMap', label: 'Health Map' },
  { action: 'dashboard', label: 'Patient dashboard' },
  { action: 'referDirect', label: 'Refer' },
];

export interface DemoResult {
  /** True when this start loaded the data (false: the database already had users). */
  loaded: boolean;
  bannerLines(): string[];
}

async function load(ctx: AppContext, ehrSystems: EhrSystems): Promise<boolean> {
  return ctx.db.transaction(async (tx) => {
    if ((await countUsers(tx)) > 0) return false;
    for (const u of DEMO_USERS) await insertUser(tx, u);
    for (const { patient, resources } of demoPatients(DEMO_PATIENT_COUNT)) {
      await putResource(tx, patient);
      for (const r of resources) await putResource(tx, r);
    }
    const store = { db: tx, box: ctx.box };
    // Ocean's reference client is public and sends no PKCE (CONTRACT §2 item 11): PKCE is off for this
    // one client, which the admin console flags. Replace it with Ocean's real registration before go-live.
    const { client } = await createClient(store, {
      name: 'Ocean (test environment)',
      redirect_uris: [OCEAN_TEST_LAUNCH_URL, 'https://test.cognisantmd.com/smart/auth'],
      launch_url: OCEAN_TEST_LAUNCH_URL,
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
      require_pkce: false,
      pre_authorized: true,
    });
    // A random demo SEK: the real one is shown to the Ocean site administrator and entered
    // in the admin console; it is never printed.
    await addSite(store, client.client_id, {
      siteNum: DEMO_SITE_NUM,
      sharedEncryptionKey: randomBytes(32).toString('base64'),
      actions: DEMO_ACTIONS,
    });
    await registerDemoEhrSystem(ehrSystems, tx, DEMO_SITE_NUM);
    return true;
  });
}

export async function loadDemoData(ctx: AppContext): Promise<DemoResult> {
  let loaded = false;
  try {
    loaded = await load(ctx, new EhrSystems(ctx.db, ctx.box, ctx.config.ttl.ehrSystemToken));
    if (loaded)
      ctx.logger.info({ users: DEMO_USERS.length, patients: DEMO_PATIENT_COUNT }, 'demo data loaded');
  } catch (err) {
    // Another instance loaded it at the same moment: its copy stands, ours rolled back.
    if (!(err instanceof ConflictError)) throw err;
    ctx.logger.info({ err: loggableError(err) }, 'demo data already being loaded by another instance');
  }
  // Which demo accounts still exist (an administrator may have removed or renamed them).
  const present: NewUser[] = [];
  for (const u of DEMO_USERS) {
    const found = await findByUsername(ctx, u.username);
    if (found?.active) present.push(u);
  }
  return {
    loaded,
    bannerLines() {
      if (present.length === 0) return [];
      return [
        '',
        `open          ${ctx.config.publicUrl}/login`,
        // With local passwords off the demo passwords open nothing: they are not printed.
        ...(ctx.config.localPasswords
          ? [`demo sign-in  (demo data${loaded ? ' loaded now' : ''}; passwords as first set)`]
          : [
              `demo users    ${present.map((u) => u.username).join(', ')} (their passwords are off: LOCAL_PASSWORDS=false)`,
            ]),
        ...(!ctx.config.localPasswords ? [] : present).map(
          (u) =>
            `  ${u.username.padEnd(12)} ${u.password.padEnd(20)} ${u.roles?.includes('admin') ? 'administrator' : 'clinician'}`,
        ),
        `demo EHR back end  ${DEMO_EHR_SYSTEM_ID}: npx tsx examples/ehr-backend.ts ${ctx.config.publicUrl}`,
      ];
    },
  };
}

/** The demo as a capability: loads at start when DEMO_DATA is on, and names the demo accounts in the banner. */
export function createDemo(ctx: AppContext): Capability {
  let demo: DemoResult | undefined;
  return {
    name: 'demo',
    async start() {
      if (ctx.config.demoData) demo = await loadDemoData(ctx);
    },
    banner: () => demo?.bannerLines() ?? [],
  };
}
