/*
 * The EHR systems' console page (/admin/ehr-systems): an admin registers one with a JWK Set (the
 * form as the admin API's JSON), sees its sites and its last launches from the audit trail, draws
 * a new secret for a secret-holding one (shown once), removes one; a clinician is refused; a bad
 * form is shown again with the reason, nothing stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { BrowserSession } from '../ehr/browser-session.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { askLaunch, ehrKey, ehrToken } from '../helpers/ehr-backend.ts';
import { createTestClient, createTestSite } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let server: TestServer;
let admin: BrowserSession;
const PASSWORD = 'ehr systems console password';

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  for (const [username, roles] of [
    ['root.admin', ['admin']],
    ['clin.ician', ['clinician']],
  ] as const) {
    await createUser(server.ctx, {
      username,
      password: PASSWORD,
      given_name: 'A',
      family_name: 'B',
      roles: [...roles],
    });
  }
  admin = new BrowserSession(server.url);
  expect((await admin.signIn('root.admin', PASSWORD)).status).toBe(303);
});

afterAll(async () => {
  await server?.stop();
  await t?.drop();
});

const count = async () =>
  Number((await t.db.query<{ n: unknown }>('SELECT count(*) AS n FROM ehr_systems')).rows[0]!.n);

describe('/admin/ehr-systems', () => {
  it('refuses a clinician', async () => {
    const s = new BrowserSession(server.url);
    await s.signIn('clin.ician', PASSWORD);
    expect((await s.get('/admin/ehr-systems')).status).toBe(403);
  });

  it('registers an EHR system from the form, then shows its sites and its last launches', async () => {
    const ocean = await createTestClient(server.ctx);
    const site = await createTestSite(server.ctx, ocean.clientId);
    const key = await ehrKey('ES384');
    const csrf = await admin.csrfFrom('/admin/ehr-systems');
    const created = await admin.postForm('/admin/ehr-systems', {
      _csrf: csrf,
      name: 'Console EMR',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: JSON.stringify({ keys: [key.publicJwk] }),
      sites: site.siteNum,
    });
    expect(created.status).toBe(201);
    const html = await created.text();
    const clientId = /data-client-id>([^<]+)</.exec(html)![1]!;
    expect(clientId).toMatch(/^ehr-system-/);
    expect(html).not.toContain('data-client-secret');

    const token = await ehrToken(server.url, clientId, key);
    expect(
      (
        await askLaunch(server.url, token, {
          site: site.siteNum,
          action: 'viewMap',
          user: { id: 'console-u1' },
        })
      ).status,
    ).toBe(201);
    const listed = await (await admin.get('/admin/ehr-systems')).text();
    const card = listed.slice(listed.indexOf(`data-ehr-system="${clientId}"`));
    expect(card).toContain(site.siteNum);
    expect(card).toContain('Last launches');
    expect(card).toContain('viewMap');
  });

  it('shows a secret once, and a bad form again with the reason', async () => {
    const csrf = await admin.csrfFrom('/admin/ehr-systems');
    const created = await admin.postForm('/admin/ehr-systems', {
      _csrf: csrf,
      name: 'Secret EMR',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const html = await created.text();
    expect(/data-client-secret>([A-Za-z0-9_-]{43})</.test(html)).toBe(true);
    const clientId = /data-client-id>([^<]+)</.exec(html)![1]!;
    expect(await (await admin.get('/admin/ehr-systems')).text()).not.toMatch(/data-client-secret/);
    const again = await admin.postForm(`/admin/ehr-systems/${clientId}/secret`, { _csrf: csrf });
    expect(again.status).toBe(200);
    expect(await again.text()).toMatch(/data-client-secret>[A-Za-z0-9_-]{43}</);

    const before = await count();
    const bad = await admin.postForm('/admin/ehr-systems', {
      _csrf: csrf,
      name: 'Bad EMR',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: '{not json',
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('JWK Set');
    const noSite = await admin.postForm('/admin/ehr-systems', {
      _csrf: csrf,
      name: 'Typo EMR',
      token_endpoint_auth_method: 'client_secret_basic',
      sites: 'no-such-site',
    });
    expect(noSite.status).toBe(400);
    expect(await count()).toBe(before);

    const removed = await admin.postForm(`/admin/ehr-systems/${clientId}/delete`, { _csrf: csrf });
    expect(removed.status).toBe(303);
    expect(await count()).toBe(before - 1);
    expect((await admin.postForm(`/admin/ehr-systems/${clientId}/delete`, { _csrf: 'forged' })).status).toBe(
      403,
    );
  });
});
