import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/clients/clients.ts';
import { deleteResource, putResource } from '../../src/fhir/repository.ts';
import { launchRedirectUrl } from '../../src/launch/launch-url.ts';
import { addSite } from '../../src/sites/sites.ts';
import { setActive } from '../../src/users/users.ts';
import { BrowserSession } from '../ehr/browser-session.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const PASSWORD = 'launch-test-password';
const LAUNCH_URL = 'https://ocean.example/sso/smart/auth?lang=en&siteNum=stale';

describe('GET /launch', () => {
  let t: TestDatabase;
  let s: TestServer;
  let userId: string;
  let clientId: string;
  const patientId = 'pat-launch-1';

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    userId = (
      await createUser(s.ctx, {
        username: 'launcher',
        password: PASSWORD,
        given_name: 'Lee',
        family_name: 'Chan',
      })
    ).id;
    await putResource(t.db, {
      resourceType: 'Patient',
      id: patientId,
      name: [{ family: 'Tremblay', given: ['Marie'] }],
    });
    await putResource(t.db, { resourceType: 'Patient', id: 'pat-gone', name: [{ family: 'Gone' }] });
    await deleteResource(t.db, 'Patient', 'pat-gone');
    const { client } = await createClient(s.ctx, {
      name: 'Ocean',
      redirect_uris: ['https://ocean.example/sso/smart/auth'],
      launch_url: LAUNCH_URL,
      token_endpoint_auth_method: 'none',
      require_pkce: false,
    });
    clientId = client.client_id;
    await addSite(s.ctx, clientId, {
      siteNum: '4321',
      sharedEncryptionKey: 'site-sek-4321-secret',
      actions: [
        { action: 'viewMap', label: 'Health Map' },
        { action: 'dashboard', label: 'Patient dashboard' },
      ],
    });
    const { client: noUrl } = await createClient(s.ctx, {
      name: 'No launch URL',
      redirect_uris: ['https://other.example/cb'],
      token_endpoint_auth_method: 'none',
    });
    await addSite(s.ctx, noUrl.client_id, {
      siteNum: '7777',
      sharedEncryptionKey: 'another-sek',
      actions: ['viewMap'],
    });
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const contexts = async () =>
    Number((await t.db.query<{ n: unknown }>('SELECT count(*) AS n FROM launch_contexts')).rows[0]!.n);
  const signedIn = async () => {
    const b = new BrowserSession(s.url);
    expect((await b.signIn('launcher', PASSWORD)).status).toBe(303);
    return b;
  };
  const path = (p: Record<string, string>) => `/launch?${new URLSearchParams(p).toString()}`;

  it('redirects to the launch URL with siteNum, action, iss and launch, keeping its own query', async () => {
    const b = await signedIn();
    const res = await b.get(path({ patient: patientId, site: '4321', action: 'viewMap' }));
    expect(res.status).toBe(302);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe('https://ocean.example/sso/smart/auth');
    expect(location.searchParams.get('lang')).toBe('en');
    expect(location.searchParams.getAll('siteNum')).toEqual(['4321']);
    expect(location.searchParams.get('action')).toBe('viewMap');
    expect(location.searchParams.get('iss')).toBe(s.ctx.config.fhirBaseUrl);
    expect(location.searchParams.get('iss')).toBe(`${s.url}/fhir`);
    const launch = location.searchParams.get('launch')!;
    expect(launch).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const row = await t.db.query<{
      user_id: string;
      patient_id: string;
      client_id: string;
      site_num: string;
      action: string;
      used_at: unknown;
      ttl: number;
    }>(
      `SELECT user_id, patient_id, client_id, site_num, action, used_at,
              extract(epoch FROM expires_at - created_at)::int AS ttl
         FROM launch_contexts WHERE id_hash = $1`,
      [createHash('sha256').update(launch).digest('hex')],
    );
    expect(row.rows).toHaveLength(1);
    expect(row.rows[0]).toMatchObject({
      user_id: userId,
      patient_id: patientId,
      client_id: clientId,
      site_num: '4321',
      action: 'viewMap',
      used_at: null,
    });
    expect(row.rows[0]!.ttl).toBeGreaterThan(0);
    expect(row.rows[0]!.ttl).toBeLessThanOrEqual(300);

    const audit = await t.db.query<{
      user_id: string;
      patient_id: string;
      client_id: string;
      detail: unknown;
    }>("SELECT user_id, patient_id, client_id, detail FROM audit_events WHERE action = 'launch.created'");
    expect(audit.rows.at(-1)).toMatchObject({ user_id: userId, patient_id: patientId, client_id: clientId });
    expect(JSON.stringify(audit.rows)).not.toContain(launch);
    expect(JSON.stringify(audit.rows)).not.toContain('Tremblay');
  });

  it('gives every launch its own context', async () => {
    const b = await signedIn();
    const a = new URL(
      (await b.get(path({ patient: patientId, site: '4321', action: 'dashboard' }))).headers.get('location')!,
    );
    const c = new URL(
      (await b.get(path({ patient: patientId, site: '4321', action: 'dashboard' }))).headers.get('location')!,
    );
    expect(a.searchParams.get('launch')).not.toBe(c.searchParams.get('launch'));
  });

  it('sends a person who is not signed in to sign in, then straight back to the launch', async () => {
    const b = new BrowserSession(s.url);
    const target = path({ patient: patientId, site: '4321', action: 'viewMap' });
    const before = await contexts();
    const first = await b.get(target);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe(`/login?returnTo=${encodeURIComponent(target)}`);
    expect(await contexts()).toBe(before);
    const signIn = await b.signIn('launcher', PASSWORD, { returnTo: target });
    expect(signIn.headers.get('location')).toBe(target);
    const launched = await b.get(signIn.headers.get('location')!);
    expect(launched.status).toBe(302);
    expect(launched.headers.get('location')).toMatch(/^https:\/\/ocean\.example\/sso\/smart\/auth\?/);
  });

  it.each([
    [{ site: '4321', action: 'viewMap' }, 400, 'incomplete'],
    [{ patient: patientId, action: 'viewMap' }, 400, 'incomplete'],
    [{ patient: patientId, site: '4321' }, 400, 'incomplete'],
    [{ patient: 'bad id!', site: '4321', action: 'viewMap' }, 400, 'not valid'],
    [{ patient: patientId, site: '43 21', action: 'viewMap' }, 400, 'not valid'],
    [{ patient: patientId, site: '4321', action: '<script>' }, 400, 'not valid'],
    [{ patient: 'no-such-patient', site: '4321', action: 'viewMap' }, 404, 'no patient'],
    [{ patient: 'pat-gone', site: '4321', action: 'viewMap' }, 404, 'no patient'],
    [{ patient: patientId, site: '9999', action: 'viewMap' }, 404, 'not configured'],
    [{ patient: patientId, site: '4321', action: 'referDirect' }, 404, 'not set up for'],
    [{ patient: patientId, site: '7777', action: 'viewMap' }, 409, 'no launch URL'],
  ])('refuses %j with %i and a page, writing no launch context', async (query, status, text) => {
    const b = await signedIn();
    const before = await contexts();
    const res = await b.get(path(query as Record<string, string>));
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain(text);
    expect(html).not.toMatch(/at .*\.ts:\d+/);
    expect(await contexts()).toBe(before);
  });

  it('refuses a repeated parameter (one patient, one site, one action)', async () => {
    const b = await signedIn();
    const before = await contexts();
    const res = await b.get(`/launch?patient=${patientId}&patient=other&site=4321&action=viewMap`);
    expect(res.status).toBe(400);
    expect(await contexts()).toBe(before);
  });

  it('does not spend a launch on HEAD', async () => {
    const b = await signedIn();
    const before = await contexts();
    const res = await b.request(path({ patient: patientId, site: '4321', action: 'viewMap' }), {
      method: 'HEAD',
    });
    expect(res.status).toBe(204);
    expect(await contexts()).toBe(before);
  });

  it('stops launching for a user who was deactivated', async () => {
    const u = await createUser(s.ctx, {
      username: 'leaver',
      password: PASSWORD,
      given_name: 'L',
      family_name: 'V',
    });
    const b = new BrowserSession(s.url);
    expect((await b.signIn('leaver', PASSWORD)).status).toBe(303);
    await setActive(s.ctx, u.id, false);
    const before = await contexts();
    const res = await b.get(path({ patient: patientId, site: '4321', action: 'viewMap' }));
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(/^\/login\?returnTo=/);
    expect(await contexts()).toBe(before);
  });

  describe('navigations that did not come from our own screens (forced launches)', () => {
    const link = () => path({ patient: patientId, site: '4321', action: 'viewMap' });

    it.each([
      ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
      ['Sec-Fetch-Site: same-site', { 'sec-fetch-site': 'same-site' }],
      ['Sec-Fetch-Site: none (a link opened from an e-mail)', { 'sec-fetch-site': 'none' }],
      ['an Origin of another site', { origin: 'https://evil.example' }],
      ['an opaque Origin', { origin: 'null' }],
      ['a Referer of another site', { referer: 'https://evil.example/page' }],
      ['a Referer of another port', { referer: 'http://127.0.0.1:1/patients' }],
      // Sign-in's redirect to a returnTo chosen by someone's link (/login?returnTo=/launch?…).
      ['our sign-in page as Referer', { 'sec-fetch-site': 'same-origin', referer: 'SELF/login?returnTo=x' }],
    ])('%s: no launch, a confirmation naming the patient and the action', async (_what, headers) => {
      const b = await signedIn();
      const before = await contexts();
      const res = await b.request(link(), {
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.replace('SELF', s.url)])),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('location')).toBeNull();
      const html = await res.text();
      expect(html).toContain('Marie Tremblay');
      expect(html).toContain('Health Map');
      expect(html).toMatch(/<form method="post" action="\/launch"/);
      expect(html).toMatch(/name="_csrf" value="[^"]{20,}"/);
      expect(await contexts()).toBe(before);
    });

    it('launches with one click on the confirmation (a CSRF-checked POST)', async () => {
      const b = await signedIn();
      const page = await (await b.request(link(), { headers: { 'sec-fetch-site': 'cross-site' } })).text();
      const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page)?.[1] ?? '';
      const before = await contexts();
      const res = await b.postForm('/launch', {
        _csrf: field('_csrf'),
        patient: field('patient'),
        site: field('site'),
        action: field('action'),
      });
      expect(res.status).toBe(303);
      const location = new URL(res.headers.get('location')!);
      expect(`${location.origin}${location.pathname}`).toBe('https://ocean.example/sso/smart/auth');
      expect(location.searchParams.get('launch')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await contexts()).toBe(before + 1);
    });

    it('refuses the confirmation POST without the session CSRF token, or with another session’s', async () => {
      const b = await signedIn();
      const other = await signedIn();
      const otherToken = await other.csrfFrom('/patients');
      const before = await contexts();
      for (const _csrf of [undefined, 'forged', otherToken]) {
        const res = await b.postForm('/launch', {
          ...(_csrf ? { _csrf } : {}),
          patient: patientId,
          site: '4321',
          action: 'viewMap',
        });
        expect(res.status).toBe(403);
      }
      expect(await contexts()).toBe(before);
    });

    it('keeps one click for our own buttons: same-origin Fetch Metadata, or our own Origin/Referer', async () => {
      const b = await signedIn();
      const own: Record<string, string>[] = [
        { 'sec-fetch-site': 'same-origin', referer: 'https://evil.example/' },
        { referer: `${s.url}/patients/${patientId}` },
        { origin: s.url },
        {},
      ];
      for (const headers of own) {
        const res = await b.request(link(), { headers });
        expect(res.status, JSON.stringify(headers)).toBe(302);
      }
    });

    it('refuses on the confirmation what the launch would refuse (unknown site, action, patient)', async () => {
      const b = await signedIn();
      const cross = { headers: { 'sec-fetch-site': 'cross-site' } };
      expect(
        (await b.request(path({ patient: patientId, site: '9999', action: 'viewMap' }), cross)).status,
      ).toBe(404);
      expect(
        (await b.request(path({ patient: patientId, site: '4321', action: 'referDirect' }), cross)).status,
      ).toBe(404);
      expect(
        (await b.request(path({ patient: 'nobody', site: '4321', action: 'viewMap' }), cross)).status,
      ).toBe(404);
    });

    it('escapes what the link put in the page', async () => {
      const b = await signedIn();
      await putResource(t.db, {
        resourceType: 'Patient',
        id: 'pat-xss',
        name: [{ family: '<script>alert(1)</script>', given: ['"><img src=x>'] }],
      });
      const res = await b.request(path({ patient: 'pat-xss', site: '4321', action: 'viewMap' }), {
        headers: { 'sec-fetch-site': 'cross-site' },
      });
      const html = await res.text();
      expect(html).not.toContain('<script>alert(1)</script>');
      expect(html).not.toContain('"><img src=x>');
      expect(html).toContain('&lt;script&gt;');
    });
  });
});

describe('launchRedirectUrl', () => {
  it('adds the launch parameters to a bare launch URL', () => {
    const u = new URL(
      launchRedirectUrl('https://test.cognisantmd.com/sso/smart/auth', {
        siteNum: '1234',
        action: 'viewMap',
        iss: 'https://ehr.example/fhir',
        launch: 'abc',
      }),
    );
    expect([...u.searchParams]).toEqual([
      ['siteNum', '1234'],
      ['action', 'viewMap'],
      ['iss', 'https://ehr.example/fhir'],
      ['launch', 'abc'],
    ]);
  });
});
