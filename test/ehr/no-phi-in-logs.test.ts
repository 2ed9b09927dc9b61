import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/clients/clients.ts';
import { putResource } from '../../src/fhir/repository.ts';
import { addSite } from '../../src/sites/sites.ts';
import { SESSION_COOKIE } from '../../src/web/session.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { capturedLogger, startTestServer, type TestServer } from '../helpers/server.ts';
import { BrowserSession } from './browser-session.ts';

const PASSWORD = 'Sup3r-secret-passphrase';
const SEK = 'log-test-shared-encryption-key';
const HCN = '6047936627';

describe('EHR logs carry no PHI, passwords, launch ids or cookies', () => {
  let t: TestDatabase;
  let s: TestServer;
  const { logger, lines } = capturedLogger('debug');

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, {}, logger);
    await createUser(s.ctx, {
      username: 'logwatcher',
      password: PASSWORD,
      given_name: 'Lou',
      family_name: 'Watcher',
    });
    await putResource(t.db, {
      resourceType: 'Patient',
      id: 'pat-logs',
      name: [{ family: 'Quenneville', given: ['Odette'] }],
      birthDate: '1961-04-30',
      identifier: [
        { system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn', value: HCN },
      ],
    });
    const { client } = await createClient(s.ctx, {
      name: 'Ocean',
      redirect_uris: ['https://ocean.example/cb'],
      launch_url: 'https://ocean.example/sso/smart/auth',
      token_endpoint_auth_method: 'none',
    });
    await addSite(s.ctx, client.client_id, {
      siteNum: '2468',
      sharedEncryptionKey: SEK,
      actions: ['viewMap'],
    });
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  it('signs in, searches, opens the chart and launches without any of it reaching the log', async () => {
    const b = new BrowserSession(s.url);
    expect((await b.signIn('logwatcher', 'a wrong passphrase')).status).toBe(401);
    expect((await b.signIn('logwatcher', PASSWORD)).status).toBe(303);
    expect((await b.get('/patients?q=Quenneville')).status).toBe(200);
    expect((await b.get(`/patients?q=${HCN}`)).status).toBe(200);
    expect((await b.get('/patients?birthdate=1961-04-30')).status).toBe(200);
    expect((await b.get('/patients/pat-logs')).status).toBe(200);
    const launch = await b.get('/launch?patient=pat-logs&site=2468&action=viewMap');
    expect(launch.status).toBe(302);
    const launchId = new URL(launch.headers.get('location')!).searchParams.get('launch')!;
    const cookie = b.cookies.get(SESSION_COOKIE)!;

    const log = lines.join('\n');
    expect(log.length).toBeGreaterThan(0);
    for (const secret of [
      PASSWORD,
      'a wrong passphrase',
      'Quenneville',
      'Odette',
      HCN,
      '1961-04-30',
      SEK,
      launchId,
      cookie,
    ]) {
      expect(log).not.toContain(secret);
    }
    expect(log).not.toContain(decodeURIComponent(cookie));
  });
});
