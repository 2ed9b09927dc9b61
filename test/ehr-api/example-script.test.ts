/*
 * examples/ehr-backend.ts, as the README tells an integrator to run it: a separate process
 * (`tsx`) against a server with its demo data, using the demo EHR system's published key. Its
 * launch_url must be a launch the authorization endpoint will take — so the example stays true.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_EHR_SYSTEM_ID } from '../../src/demo/ehr-system.ts';
import { apiLaunchUser } from '../../src/launch/launch-contexts.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/processes.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const run = promisify(execFile);
let t: TestDatabase;
let s: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  s = await startTestServer(t.db, { DEMO_DATA: 'true' });
});

afterAll(async () => {
  await s?.stop();
  await t?.drop();
});

describe('examples/ehr-backend.ts', () => {
  it('gets a token as the demo EHR system and prints a launch_url that authorize accepts', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/ehr-backend.ts', s.url], {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
      timeout: 120_000,
    });
    const launchUrl = new URL(/launch_url (\S+)/.exec(stdout)![1]!);
    expect(launchUrl.searchParams.get('siteNum')).toBe('1234');
    expect(launchUrl.searchParams.get('iss')).toBe(s.ctx.config.fhirBaseUrl);
    const client = (
      await t.db.query<{ client_id: string }>('SELECT client_id FROM sites WHERE site_num = $1', ['1234'])
    ).rows[0]!.client_id;
    const launched = await apiLaunchUser(t.db, launchUrl.searchParams.get('launch'), client);
    expect(launched?.requestedBy).toBe(DEMO_EHR_SYSTEM_ID);
    // The chart it sent is stored with the launch.
    const stored = await t.db.query(
      "SELECT id FROM fhir_resources WHERE compartment_patient = 'ehr-example-1'",
    );
    expect(stored.rows.length).toBe(3);
  }, 180_000);
});
