/*
 * The admin console over real HTTP with a real session: who may enter, CSRF on every form,
 * and each screen's change going through the same validation and audit as the API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { BrowserSession } from '../ehr/browser-session.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let admin: BrowserSession;
let adminId: string;

const PASSWORD = 'admin console password';

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startTestServer(tdb.db);
  const u = await createUser(server.ctx, {
    username: 'root.admin',
    password: PASSWORD,
    given_name: 'Ada',
    family_name: 'Root',
    roles: ['admin'],
  });
  adminId = u.id;
  await createUser(server.ctx, {
    username: 'clin.ician',
    password: PASSWORD,
    given_name: 'Cli',
    family_name: 'Nician',
    roles: ['clinician'],
  });
  admin = new BrowserSession(server.url);
  const r = await admin.signIn('root.admin', PASSWORD);
  expect(r.status).toBe(303);
});

afterAll(async () => {
  await server?.stop();
  await tdb?.drop();
});

const csrfOf = (html: string): string => {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error('no _csrf on the page');
  return m[1]!;
};

async function page(s: BrowserSession, path: string): Promise<{ status: number; html: string }> {
  const r = await s.get(path);
  return { status: r.status, html: await r.text() };
}

const decode = (s: string) =>
  s
    .replace(/&#34;|&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');

describe('who may enter', () => {
  it('sends a stranger to sign in', async () => {
    const r = await new BrowserSession(server.url).get('/admin/clients');
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toBe('/login?returnTo=%2Fadmin%2Fclients');
  });

  it('refuses a signed-in clinician without the admin role (403 page)', async () => {
    const s = new BrowserSession(server.url);
    await s.signIn('clin.ician', PASSWORD);
    const r = await page(s, '/admin');
    expect(r.status).toBe(403);
    expect(r.html).toContain('admin role');
  });

  it('shows an admin every screen, no-store', async () => {
    for (const path of [
      '/admin',
      '/admin/clients',
      '/admin/clients/new',
      '/admin/users',
      '/admin/keys',
      '/admin/import',
      '/admin/audit',
    ]) {
      const r = await admin.get(path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('cache-control'), path).toContain('no-store');
      expect(await r.text(), path).toContain('name="_csrf"');
    }
  });
});

describe('clients and sites through the console', () => {
  let clientId: string;

  it('refuses a form without the CSRF token and changes nothing', async () => {
    const r = await admin.postForm('/admin/clients', {
      name: 'No CSRF',
      redirect_uris: 'https://x.example/cb',
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
    });
    expect(r.status).toBe(403);
    const { rows } = await tdb.db.query(`SELECT 1 FROM clients WHERE name = 'No CSRF'`);
    expect(rows).toHaveLength(0);
  });

  it('shows a bad form again with each field named, keeping what was typed', async () => {
    const csrf = csrfOf((await page(admin, '/admin/clients/new')).html);
    const r = await admin.postForm('/admin/clients', {
      _csrf: csrf,
      name: 'Ocean typo',
      redirect_uris: 'not-a-url',
      launch_url: 'ftp://nope',
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'HS256',
    });
    expect(r.status).toBe(400);
    const html = await r.text();
    expect(html).toContain('redirect_uri must be an absolute http(s) URL');
    expect(html).toContain('launch_url must be an absolute http(s) URL');
    expect(html).toContain('id_token_signed_response_alg must be RS256 or ES256');
    expect(html).toContain('value="Ocean typo"');
  });

  it('registers a confidential client and shows the secret once', async () => {
    const csrf = csrfOf((await page(admin, '/admin/clients/new')).html);
    const r = await admin.postForm('/admin/clients', {
      _csrf: csrf,
      name: 'Ocean prod',
      redirect_uris:
        'https://ocean.cognisantmd.com/sso/smart/callback\r\nhttps://ocean.cognisantmd.com/sso/smart/callback2',
      launch_url: 'https://ocean.cognisantmd.com/sso/smart/auth',
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    });
    expect(r.status).toBe(200);
    const html = await r.text();
    const secret = /id="client-secret-value">([^<]+)</.exec(html)?.[1];
    clientId = /id="client-id-value">([^<]+)</.exec(html)![1]!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    const { rows } = await tdb.db.query<{
      metadata: { id_token_signed_response_alg: string; redirect_uris: string[] };
      require_pkce: boolean;
    }>('SELECT metadata, require_pkce FROM clients WHERE client_id = $1', [clientId]);
    // An unticked checkbox is "off": PKCE was not ticked in this form.
    expect(rows[0]!.require_pkce).toBe(false);
    expect(rows[0]!.metadata.id_token_signed_response_alg).toBe('ES256');
    expect(rows[0]!.metadata.redirect_uris).toHaveLength(2);
    const detail = await page(admin, `/admin/clients/${clientId}`);
    expect(detail.html).not.toContain(secret!);
    expect(detail.html).toContain('PKCE is off for this client');
    const audit = await tdb.db.query<{ user_id: string; detail: Record<string, unknown> }>(
      `SELECT user_id, detail FROM audit_events WHERE action = 'admin.client.create' AND client_id = $1`,
      [clientId],
    );
    expect(audit.rows[0]!.user_id).toBe(adminId);
    expect(audit.rows[0]!.detail.via).toBe('console');
  });

  it('edits a client (PKCE back on)', async () => {
    const csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    const r = await admin.postForm(`/admin/clients/${clientId}`, {
      _csrf: csrf,
      name: 'Ocean production',
      redirect_uris: 'https://ocean.cognisantmd.com/sso/smart/callback',
      launch_url: 'https://ocean.cognisantmd.com/sso/smart/auth',
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      require_pkce: 'on',
    });
    expect(r.status).toBe(303);
    const after = await page(admin, `/admin/clients/${clientId}`);
    expect(after.html).toContain('Client saved.');
    expect(after.html).toContain('Ocean production');
    expect(after.html).toMatch(/id="pkce-warning" role="note" hidden/);
  });

  it('adds a site; the SEK is never shown again, only a masked hint', async () => {
    const sek = 'the-sites-shared-encryption-key-7781';
    const csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    const r = await admin.postForm(`/admin/clients/${clientId}/sites`, {
      _csrf: csrf,
      site_num: '2468',
      shared_encryption_key: sek,
      actions: 'viewMap | Ocean Health Map\nreferDirect | Refer',
    });
    expect(r.status).toBe(303);
    const after = await page(admin, `/admin/clients/${clientId}`);
    expect(after.html).toContain('Site 2468 added');
    expect(after.html).toContain('••••••7781');
    expect(after.html).toContain('Ocean Health Map');
    expect(after.html).not.toContain(sek);
  });

  it('refuses an empty SEK by name and keeps the site number typed', async () => {
    const csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    const r = await admin.postForm(`/admin/clients/${clientId}/sites`, {
      _csrf: csrf,
      site_num: '1357',
      shared_encryption_key: '',
    });
    expect(r.status).toBe(400);
    const html = await r.text();
    expect(html).toContain('shared_encryption_key is required');
    expect(html).toContain('value="1357"');
  });

  it("changes a site's buttons, then deletes the site", async () => {
    let csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    let r = await admin.postForm(`/admin/clients/${clientId}/sites/2468`, {
      _csrf: csrf,
      actions: 'dashboard | Ocean dashboard',
      shared_encryption_key: '',
    });
    expect(r.status).toBe(303);
    const { rows } = await tdb.db.query<{ actions: unknown }>(
      `SELECT actions FROM sites WHERE site_num = '2468'`,
    );
    expect(rows[0]!.actions).toEqual([{ action: 'dashboard', label: 'Ocean dashboard' }]);
    csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    r = await admin.postForm(`/admin/clients/${clientId}/sites/2468/delete`, { _csrf: csrf });
    expect(r.status).toBe(303);
    expect((await tdb.db.query(`SELECT 1 FROM sites WHERE site_num = '2468'`)).rows).toHaveLength(0);
  });

  it('resets the secret (shown once) and shows the allowlist with a download', async () => {
    const csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    const r = await admin.postForm(`/admin/clients/${clientId}/secret`, { _csrf: csrf });
    expect(r.status).toBe(200);
    expect(await r.text()).toMatch(/id="client-secret-value">[A-Za-z0-9_-]{32,}</);
    const allow = await page(admin, `/admin/clients/${clientId}/allowlist`);
    expect(allow.status).toBe(200);
    const fhir = `${server.url}/fhir`;
    for (const v of [
      fhir,
      clientId,
      `${fhir}/auth`,
      `${fhir}/token`,
      `${fhir}/.well-known/smart-configuration`,
      `${fhir}/.well-known/openid-configuration`,
    ]) {
      expect(allow.html).toContain(v);
    }
    const text = decode(/<textarea id="allowlist-text"[^>]*>([\s\S]*?)<\/textarea>/.exec(allow.html)![1]!);
    expect(text).toContain(`"issuer": "${fhir}"`);
    const dl = await admin.get(`/admin/clients/${clientId}/allowlist.txt`);
    expect(dl.headers.get('content-disposition')).toContain('attachment');
    const withoutTime = (t: string) => t.replace(/\(generated [^)]+\)/, '');
    expect(withoutTime(await dl.text())).toBe(withoutTime(text));
  });

  it('deletes a client', async () => {
    const csrf = csrfOf((await page(admin, `/admin/clients/${clientId}`)).html);
    const r = await admin.postForm(`/admin/clients/${clientId}/delete`, { _csrf: csrf });
    expect(r.status).toBe(303);
    expect((await admin.get(`/admin/clients/${clientId}`)).status).toBe(404);
  });
});

describe('users, keys and audit through the console', () => {
  it('creates a user with a Practitioner, resets a password, changes roles, deactivates', async () => {
    let csrf = csrfOf((await page(admin, '/admin/users')).html);
    const bad = await admin.postForm('/admin/users', {
      _csrf: csrf,
      username: 'nurse.joy',
      password: 'short',
      given_name: 'Joy',
      family_name: '',
    });
    expect(bad.status).toBe(400);
    const badHtml = await bad.text();
    expect(badHtml).toContain('password must be at least');
    expect(badHtml).toContain('family_name is required');
    expect(badHtml).toContain('value="nurse.joy"');
    expect(badHtml).not.toContain('value="short"');
    const r = await admin.postForm('/admin/users', {
      _csrf: csrf,
      username: 'nurse.joy',
      password: 'a long enough password',
      given_name: 'Joy',
      family_name: 'Nurse',
      role_clinician: 'on',
    });
    expect(r.status).toBe(303);
    const { rows } = await tdb.db.query<{ id: string; practitioner_id: string }>(
      `SELECT id, practitioner_id FROM users WHERE username = 'nurse.joy'`,
    );
    const joy = rows[0]!;
    expect(
      (
        await tdb.db.query(`SELECT 1 FROM fhir_resources WHERE resource_type = 'Practitioner' AND id = $1`, [
          joy.practitioner_id,
        ])
      ).rows,
    ).toHaveLength(1);
    csrf = csrfOf((await page(admin, '/admin/users')).html);
    expect(
      (
        await admin.postForm(`/admin/users/${joy.id}/password`, {
          _csrf: csrf,
          password: 'another long password',
        })
      ).status,
    ).toBe(303);
    expect(
      (
        await admin.postForm(`/admin/users/${joy.id}/roles`, {
          _csrf: csrf,
          role_admin: 'on',
          role_clinician: 'on',
        })
      ).status,
    ).toBe(303);
    expect(
      (await admin.postForm(`/admin/users/${joy.id}/active`, { _csrf: csrf, active: 'false' })).status,
    ).toBe(303);
    const after = await tdb.db.query<{ roles: string[]; active: boolean }>(
      'SELECT roles, active FROM users WHERE id = $1',
      [joy.id],
    );
    expect(after.rows[0]).toEqual({ roles: ['admin', 'clinician'], active: false });
    const adminPractitioner = (
      await tdb.db.query<{ p: string }>('SELECT practitioner_id AS p FROM users WHERE id = $1', [adminId])
    ).rows[0]!.p;
    csrf = csrfOf((await page(admin, '/admin/users')).html);
    expect(
      (
        await admin.postForm(`/admin/users/${joy.id}/practitioner`, {
          _csrf: csrf,
          practitioner: 'Practitioner/nope',
        })
      ).status,
    ).toBe(303);
    expect((await page(admin, '/admin/users')).html).toContain(
      'Practitioner not changed: Practitioner/nope does not exist',
    );
    csrf = csrfOf((await page(admin, '/admin/users')).html);
    expect(
      (
        await admin.postForm(`/admin/users/${joy.id}/practitioner`, {
          _csrf: csrf,
          practitioner: `Practitioner/${adminPractitioner}`,
        })
      ).status,
    ).toBe(303);
    const linked = await tdb.db.query<{ p: string }>('SELECT practitioner_id AS p FROM users WHERE id = $1', [
      joy.id,
    ]);
    expect(linked.rows[0]!.p).toBe(adminPractitioner);
  });

  it('will not let an admin remove their own admin role or deactivate themselves', async () => {
    const csrf = csrfOf((await page(admin, '/admin/users')).html);
    await admin.postForm(`/admin/users/${adminId}/roles`, { _csrf: csrf, role_clinician: 'on' });
    await admin.postForm(`/admin/users/${adminId}/active`, { _csrf: csrf, active: 'false' });
    const { rows } = await tdb.db.query<{ roles: string[]; active: boolean }>(
      'SELECT roles, active FROM users WHERE id = $1',
      [adminId],
    );
    expect(rows[0]).toEqual({ roles: ['admin'], active: true });
  });

  it('rotates keys from the keys screen', async () => {
    const before = await server.ctx.keys.list();
    const csrf = csrfOf((await page(admin, '/admin/keys')).html);
    const r = await admin.postForm('/admin/keys/rotate', { _csrf: csrf });
    expect(r.status).toBe(303);
    const after = await server.ctx.keys.list();
    for (const k of before.filter((k) => k.state === 'next'))
      expect(after.find((a) => a.kid === k.kid)?.state).toBe('active');
    const html = (await page(admin, '/admin/keys')).html;
    expect(html).toContain('Keys rotated');
    expect(html).toContain('retired');
    expect(html).not.toMatch(/"d"\s*:/);
  });

  it('filters the audit trail by user and action, and names a bad date', async () => {
    const mine = await page(admin, '/admin/audit?user=root.admin&action=admin.keys');
    expect(mine.status).toBe(200);
    expect(mine.html).toContain('admin.keys.rotate');
    expect(mine.html).not.toContain('admin.user.create');
    const bad = await page(admin, '/admin/audit?from=31/12/2026');
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('from must be a date');
  });
});

describe('import through the console', () => {
  it('needs the CSRF header, then loads a bundle and answers with the response Bundle', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        {
          fullUrl: 'urn:uuid:6f1e3c2a-9f0b-4a55-8a1d-0c1a2b3c4d5e',
          resource: { resourceType: 'Patient', name: [{ family: 'Imported', given: ['Ina'] }] },
        },
      ],
    };
    const denied = await admin.request('/admin/import', {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(bundle),
    });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    const csrf = csrfOf((await page(admin, '/admin/import')).html);
    const r = await admin.request('/admin/import', {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-csrf-token': csrf },
      body: JSON.stringify(bundle),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { resourceType: string; entry: unknown[] };
    expect(body.resourceType).toBe('Bundle');
    expect(body.entry).toHaveLength(1);
    const bad = await admin.request('/admin/import', {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-csrf-token': csrf },
      body: JSON.stringify({ resourceType: 'Patient' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    // Written when each answer has been sent: wait for both rows.
    await expect
      .poll(async () => {
        const { rows } = await tdb.db.query<{ user_id: string; outcome: string }>(
          `SELECT user_id, outcome FROM audit_events WHERE action = 'admin.import.console' ORDER BY id`,
        );
        return rows.map((r) => [r.user_id, r.outcome]);
      })
      .toEqual([
        [adminId, 'success'],
        [adminId, 'failure'],
      ]);
  });
});
