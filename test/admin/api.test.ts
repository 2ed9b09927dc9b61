/*
 * The admin API (CONTRACT §3.3) over real HTTP on the real app and database: every endpoint, and
 * every refusal the issue names (401, 400 naming each bad field, 404, 409, 413, 415).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/users/users.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

let tdb: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startTestServer(tdb.db);
});

afterAll(async () => {
  await server?.stop();
  await tdb?.drop();
});

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are checked field by field
type Json = any;

interface Answer {
  status: number;
  body: Json;
  headers: Headers;
}

async function api(
  method: string,
  path: string,
  body?: unknown,
  init: { token?: string | null; raw?: string; type?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TEST_ADMIN_TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (init.raw !== undefined || body !== undefined) {
    headers['content-type'] = init.type ?? 'application/json';
    payload = init.raw ?? JSON.stringify(body);
  }
  const res = await fetch(`${server.url}/admin/api${path}`, { method, headers, body: payload });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const OCEAN = {
  name: 'Ocean (test)',
  redirect_uris: ['https://test.cognisantmd.com/sso/smart/callback'],
  launch_url: 'https://test.cognisantmd.com/sso/smart/auth',
  token_endpoint_auth_method: 'none',
};

async function auditRows(action: string) {
  const { rows } = await tdb.db.query<Record<string, unknown>>(
    'SELECT * FROM audit_events WHERE action = $1 ORDER BY id',
    [action],
  );
  return rows;
}

describe('admin token', () => {
  it('refuses a request without a token with 401 and WWW-Authenticate', async () => {
    const r = await api('GET', '/clients', undefined, { token: null });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(r.body.error).toBe('invalid_token');
  });

  it('refuses a wrong token, and a token in the wrong scheme', async () => {
    expect((await api('GET', '/clients', undefined, { token: `${TEST_ADMIN_TOKEN}x` })).status).toBe(401);
    const res = await fetch(`${server.url}/admin/api/clients`, {
      headers: { authorization: `Basic ${TEST_ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(401);
  });

  it('checks the token before reading the body (no 400 leaks to a stranger)', async () => {
    const r = await api('POST', '/clients', undefined, { token: 'nope', raw: '{not json' });
    expect(r.status).toBe(401);
  });

  it('answers unknown admin routes with a JSON 404', async () => {
    const r = await api('GET', '/nothing-here');
    expect(r.status).toBe(404);
    expect(r.body.error).toBe('not_found');
  });

  it('answers a known path with another method with a JSON 405 naming the allowed ones, changing nothing', async () => {
    const before = (await api('GET', '/clients')).body.clients.length;
    const put = await api('PUT', '/clients', OCEAN);
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST');
    expect(put.body.error).toBe('method_not_allowed');
    const del = await api('DELETE', '/keys/rotate');
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('POST');
    // the token is still checked first: a stranger learns nothing about the routes
    expect((await api('PUT', '/clients', OCEAN, { token: null })).status).toBe(401);
    expect((await api('GET', '/clients')).body.clients.length).toBe(before);
  });
});

describe('clients', () => {
  it('registers a public client with the defaults: RS256, PKCE on, a random client_id, no secret', async () => {
    const r = await api('POST', '/clients', OCEAN);
    expect(r.status).toBe(201);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body.client_id).toMatch(/^[A-Za-z0-9_-]{22,}$/); // ≥128 bits, URL-safe
    expect(r.headers.get('location')).toBe(`/admin/api/clients/${r.body.client_id}`);
    expect(r.body).toMatchObject({
      name: 'Ocean (test)',
      redirect_uris: OCEAN.redirect_uris,
      launch_url: OCEAN.launch_url,
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
      require_pkce: true,
      has_secret: false,
    });
    expect(r.body.client_secret).toBeUndefined();
    const again = await api('POST', '/clients', OCEAN);
    expect(again.body.client_id).not.toBe(r.body.client_id);
  });

  it('shows a confidential client its secret once, URL-safe, and stores only a hash', async () => {
    const r = await api('POST', '/clients', {
      ...OCEAN,
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    });
    expect(r.status).toBe(201);
    const secret: string = r.body.client_secret;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(r.body.id_token_signed_response_alg).toBe('ES256');
    const read = await api('GET', `/clients/${r.body.client_id}`);
    expect(read.status).toBe(200);
    expect(read.body.has_secret).toBe(true);
    expect(JSON.stringify(read.body)).not.toContain(secret);
    expect(read.body.client_secret).toBeUndefined();
    const list = await api('GET', '/clients');
    expect(JSON.stringify(list.body)).not.toContain(secret);
    const { rows } = await tdb.db.query<{ t: string }>(
      'SELECT row_to_json(c)::text AS t FROM clients c WHERE client_id = $1',
      [r.body.client_id],
    );
    expect(rows[0]!.t).not.toContain(secret);
  });

  it('takes a client_id the administrator gives, and refuses it twice with 409', async () => {
    const r = await api('POST', '/clients', { ...OCEAN, client_id: 'ocean-given-id-1' });
    expect(r.status).toBe(201);
    expect(r.body.client_id).toBe('ocean-given-id-1');
    const dup = await api('POST', '/clients', { ...OCEAN, client_id: 'ocean-given-id-1' });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toBe('conflict');
  });

  it('refuses malformed JSON with 400 and a non-JSON body with 415', async () => {
    const bad = await api('POST', '/clients', undefined, { raw: '{"name": "x",' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_request');
    const form = await api('POST', '/clients', undefined, {
      raw: 'name=x',
      type: 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(415);
    const array = await api('POST', '/clients', undefined, { raw: '[1,2]' });
    expect(array.status).toBe(400);
    const empty = await api('POST', '/clients', undefined, { raw: '' });
    expect(empty.status).toBe(400);
    expect(empty.body.error_description).toContain('empty');
  });

  it('names each bad field: wrong types, unknown alg, redirect_uris not absolute URLs, unknown fields', async () => {
    const r = await api('POST', '/clients', {
      name: 5,
      redirect_uris: 'https://x.example/cb',
      token_endpoint_auth_method: 'magic',
      id_token_signed_response_alg: 'HS256',
      require_pkce: 'no',
      colour: 'blue',
    });
    expect(r.status).toBe(400);
    for (const field of [
      'name',
      'redirect_uris',
      'token_endpoint_auth_method',
      'id_token_signed_response_alg',
      'require_pkce',
      'colour',
    ]) {
      expect(r.body.error_description).toContain(field);
    }
    const rel = await api('POST', '/clients', {
      ...OCEAN,
      redirect_uris: ['/callback', 'https://ok.example/cb'],
    });
    expect(rel.status).toBe(400);
    expect(rel.body.error_description).toContain('redirect_uris.0');
    const empty = await api('POST', '/clients', { ...OCEAN, redirect_uris: [] });
    expect(empty.status).toBe(400);
    const { rows } = await tdb.db.query<{ n: string }>(`SELECT count(*) AS n FROM clients WHERE name = '5'`);
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('refuses a body over the size limit with 413', async () => {
    const r = await api('POST', '/clients', { ...OCEAN, name: 'x'.repeat(1_200_000) });
    expect(r.status).toBe(413);
    expect(r.body.error).toBe('payload_too_large');
  });

  it('updates a client, refuses a bad patch field by name, and 404s an unknown one', async () => {
    const created = await api('POST', '/clients', OCEAN);
    const id = created.body.client_id;
    const r = await api('PATCH', `/clients/${id}`, {
      name: 'Ocean production',
      require_pkce: false,
      id_token_signed_response_alg: 'ES256',
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      name: 'Ocean production',
      require_pkce: false,
      id_token_signed_response_alg: 'ES256',
    });
    const bad = await api('PATCH', `/clients/${id}`, { launch_url: 'not a url' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toContain('launch_url');
    expect((await api('GET', `/clients/${id}`)).body.launch_url).toBe(OCEAN.launch_url);
    expect((await api('PATCH', '/clients/no-such-client-x', { name: 'y' })).status).toBe(404);
    expect((await api('GET', '/clients/no-such-client-x')).status).toBe(404);
  });

  it('draws a new secret on switching to a secret auth method, shown in that answer only', async () => {
    const created = await api('POST', '/clients', OCEAN);
    const r = await api('PATCH', `/clients/${created.body.client_id}`, {
      token_endpoint_auth_method: 'client_secret_post',
    });
    expect(r.status).toBe(200);
    expect(r.body.client_secret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
  });

  it('resets a secret: a new one, once; refuses it for a public client; 404 for an unknown one', async () => {
    const created = await api('POST', '/clients', {
      ...OCEAN,
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const id = created.body.client_id;
    const r = await api('POST', `/clients/${id}/secret`);
    expect(r.status).toBe(200);
    expect(r.body.client_id).toBe(id);
    expect(r.body.client_secret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(r.body.client_secret).not.toBe(created.body.client_secret);
    const pub = await api('POST', '/clients', OCEAN);
    const refused = await api('POST', `/clients/${pub.body.client_id}/secret`);
    expect(refused.status).toBe(400);
    expect(refused.body.error_description).toContain('token_endpoint_auth_method');
    expect((await api('POST', '/clients/no-such-client-x/secret')).status).toBe(404);
  });

  it('deletes a client with its sites, then 404s it', async () => {
    const created = await api('POST', '/clients', OCEAN);
    const id = created.body.client_id;
    await api('POST', `/clients/${id}/sites`, {
      site_num: '9001',
      shared_encryption_key: 'delete-me-sek-value',
    });
    const r = await api('DELETE', `/clients/${id}`);
    expect(r.status).toBe(204);
    expect((await api('GET', `/clients/${id}`)).status).toBe(404);
    expect((await api('DELETE', `/clients/${id}`)).status).toBe(404);
    const { rows } = await tdb.db.query(`SELECT 1 FROM sites WHERE site_num = '9001'`);
    expect(rows).toHaveLength(0);
  });
});

describe('sites', () => {
  let clientId: string;
  const SEK = 'Ocean-Site-SEK/with+base64ish=chars 42';

  beforeAll(async () => {
    clientId = (await api('POST', '/clients', OCEAN)).body.client_id;
  });

  it('adds a site: 201, the SEK never in the answer (a masked hint only), stored encrypted', async () => {
    const r = await api('POST', `/clients/${clientId}/sites`, {
      site_num: '1234',
      shared_encryption_key: SEK,
      actions: ['viewMap', { action: 'referDirect', label: 'Refer with Ocean' }],
    });
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe(`/admin/api/clients/${clientId}/sites/1234`);
    expect(r.body).toMatchObject({
      site_num: '1234',
      client_id: clientId,
      actions: [
        { action: 'viewMap', label: 'viewMap' },
        { action: 'referDirect', label: 'Refer with Ocean' },
      ],
    });
    expect(r.body.shared_encryption_key_hint).toMatch(/^•+/);
    expect(JSON.stringify(r.body)).not.toContain(SEK);
    expect(r.body.shared_encryption_key).toBeUndefined();
    const { rows } = await tdb.db.query<{ t: string }>(
      `SELECT row_to_json(s)::text AS t FROM sites s WHERE site_num = '1234'`,
    );
    expect(rows[0]!.t).not.toContain(SEK);
    const read = await api('GET', `/clients/${clientId}/sites/1234`);
    expect(read.status).toBe(200);
    expect(JSON.stringify(read.body)).not.toContain(SEK);
    const client = await api('GET', `/clients/${clientId}`);
    expect(client.body.sites.map((s: { site_num: string }) => s.site_num)).toEqual(['1234']);
    expect(JSON.stringify(client.body)).not.toContain(SEK);
  });

  it('gives a new site the default chart buttons, and accepts a numeric site_num', async () => {
    const r = await api('POST', `/clients/${clientId}/sites`, {
      site_num: 5678,
      shared_encryption_key: 'another-sek-value',
    });
    expect(r.status).toBe(201);
    expect(r.body.site_num).toBe('5678');
    expect(r.body.actions.length).toBeGreaterThan(0);
  });

  it('refuses a site number already registered with 409 (under any client)', async () => {
    const other = (await api('POST', '/clients', OCEAN)).body.client_id;
    const r = await api('POST', `/clients/${other}/sites`, {
      site_num: '1234',
      shared_encryption_key: 'x-sek-value',
    });
    expect(r.status).toBe(409);
  });

  it('names each bad field: empty SEK, bad site_num, bad actions, unknown fields', async () => {
    const r = await api('POST', `/clients/${clientId}/sites`, {
      site_num: 'has space',
      shared_encryption_key: '',
      actions: [''],
      sek: 'x',
    });
    expect(r.status).toBe(400);
    for (const field of ['site_num', 'shared_encryption_key', 'actions', 'sek'])
      expect(r.body.error_description).toContain(field);
    const blank = await api('POST', `/clients/${clientId}/sites`, {
      site_num: '777',
      shared_encryption_key: '   ',
    });
    expect(blank.status).toBe(400);
    expect(blank.body.error_description).toContain('shared_encryption_key');
    const missing = await api('POST', `/clients/${clientId}/sites`, { site_num: '777' });
    expect(missing.status).toBe(400);
    expect(missing.body.error_description).toContain('shared_encryption_key');
    expect((await api('GET', `/clients/${clientId}/sites/777`)).status).toBe(404);
  });

  it('404s a site under an unknown client', async () => {
    const r = await api('POST', '/clients/no-such-client-x/sites', {
      site_num: '4321',
      shared_encryption_key: 'sek-sek-sek',
    });
    expect(r.status).toBe(404);
    expect((await api('GET', '/clients/no-such-client-x/sites')).status).toBe(404);
  });

  it('changes the chart buttons and replaces the SEK without showing it', async () => {
    const newSek = 'a-brand-new-shared-key-0042';
    const r = await api('PATCH', `/clients/${clientId}/sites/1234`, {
      actions: [{ action: 'dashboard', label: 'Ocean dashboard' }],
      shared_encryption_key: newSek,
    });
    expect(r.status).toBe(200);
    expect(r.body.actions).toEqual([{ action: 'dashboard', label: 'Ocean dashboard' }]);
    expect(r.body.shared_encryption_key_hint).toBe('••••••0042');
    expect(JSON.stringify(r.body)).not.toContain(newSek);
    const bad = await api('PATCH', `/clients/${clientId}/sites/1234`, { actions: 'dashboard' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toContain('actions');
    expect((await api('PATCH', `/clients/${clientId}/sites/9999`, { actions: [] })).status).toBe(404);
  });

  it('deletes a site, then 404s it', async () => {
    expect((await api('DELETE', `/clients/${clientId}/sites/5678`)).status).toBe(204);
    expect((await api('DELETE', `/clients/${clientId}/sites/5678`)).status).toBe(404);
    expect((await api('GET', `/clients/${clientId}/sites/5678`)).status).toBe(404);
  });
});

describe('allowlist packet', () => {
  it('holds the seven values, with the URL and current body of both discovery documents', async () => {
    const id = (await api('POST', '/clients', OCEAN)).body.client_id;
    const r = await api('GET', `/clients/${id}/allowlist`);
    expect(r.status).toBe(200);
    const fhirBase = `${server.url}/fhir`;
    expect(r.body.server_url).toBe(fhirBase);
    expect(r.body.client_id).toBe(id);
    expect(r.body.token_issuer_url).toBe(fhirBase);
    const oidcUrl = `${fhirBase}/.well-known/openid-configuration`;
    const smartUrl = `${fhirBase}/.well-known/smart-configuration`;
    expect(r.body.openid_configuration.url).toBe(oidcUrl);
    expect(r.body.smart_configuration.url).toBe(smartUrl);
    // The bodies are what the server serves right now.
    const oidc = (await (await fetch(oidcUrl)).json()) as Json;
    const smart = (await (await fetch(smartUrl)).json()) as Json;
    expect(r.body.openid_configuration.body).toEqual(oidc);
    expect(r.body.smart_configuration.body).toEqual(smart);
    expect(r.body.authorization_endpoint).toBe(oidc.authorization_endpoint);
    expect(r.body.token_endpoint).toBe(oidc.token_endpoint);
    expect(r.body.authorization_endpoint).toBe(smart.authorization_endpoint);
    expect(r.body.token_endpoint).toBe(smart.token_endpoint);
    expect(oidc.issuer).toBe(fhirBase);
  });

  it('404s an unknown client', async () => {
    expect((await api('GET', '/clients/no-such-client-x/allowlist')).status).toBe(404);
  });
});

describe('users', () => {
  const ALICE = {
    username: 'alice.admin',
    password: 'correct horse battery',
    given_name: 'Alice',
    family_name: 'Admin',
    email: 'alice@clinic.example',
    identifiers: [
      { system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician', value: '12345' },
    ],
    roles: ['admin'],
  };
  let aliceId: string;

  it('creates a user with a Practitioner in one go: 201 { id, practitioner }', async () => {
    const r = await api('POST', '/users', ALICE);
    expect(r.status).toBe(201);
    expect(r.body.id).toEqual(expect.any(String));
    expect(r.body.practitioner).toMatch(/^Practitioner\/.+/);
    expect(r.body.roles).toEqual(['admin']);
    expect(JSON.stringify(r.body)).not.toContain(ALICE.password);
    aliceId = r.body.id;
    const [, pid] = r.body.practitioner.split('/');
    const { rows } = await tdb.db.query<{ resource: Json }>(
      `SELECT resource FROM fhir_resources WHERE resource_type = 'Practitioner' AND id = $1`,
      [pid],
    );
    expect(rows[0]!.resource.name[0].family).toBe('Admin');
    expect(rows[0]!.resource.identifier[0].value).toBe('12345');
    expect((await api('GET', `/users/${aliceId}`)).body.username).toBe('alice.admin');
    expect((await api('GET', '/users')).body.users.some((u: { id: string }) => u.id === aliceId)).toBe(true);
  });

  it('refuses a taken username (any case) with 409 and writes nothing', async () => {
    const before = await tdb.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'Practitioner'`,
    );
    const r = await api('POST', '/users', { ...ALICE, username: 'Alice.Admin' });
    expect(r.status).toBe(409);
    const after = await tdb.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'Practitioner'`,
    );
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  });

  it('names each bad field of a new user', async () => {
    const r = await api('POST', '/users', {
      username: 'bad name!',
      password: 'short',
      given_name: '',
      family_name: 7,
      roles: ['root'],
    });
    expect(r.status).toBe(400);
    for (const field of ['username', 'password', 'given_name', 'family_name', 'roles'])
      expect(r.body.error_description).toContain(field);
  });

  it('resets a password (204), refuses a short one by name, 404s an unknown user', async () => {
    expect(
      (await api('POST', `/users/${aliceId}/password`, { password: 'a whole new password' })).status,
    ).toBe(204);
    expect(await verifyPassword(server.ctx, 'alice.admin', 'a whole new password')).toBeDefined();
    expect(await verifyPassword(server.ctx, 'alice.admin', ALICE.password)).toBeUndefined();
    const short = await api('POST', `/users/${aliceId}/password`, { password: 'x' });
    expect(short.status).toBe(400);
    expect(short.body.error_description).toContain('password');
    expect(
      (await api('POST', '/users/no-such-user/password', { password: 'long enough password' })).status,
    ).toBe(404);
  });

  it('changes roles and deactivates; a deactivated user cannot sign in', async () => {
    const roles = await api('PATCH', `/users/${aliceId}`, { roles: ['admin', 'clinician'] });
    expect(roles.status).toBe(200);
    expect(roles.body.roles).toEqual(['admin', 'clinician']);
    const bad = await api('PATCH', `/users/${aliceId}`, { roles: ['root'], active: 'no' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toContain('roles');
    expect(bad.body.error_description).toContain('active');
    const off = await api('POST', `/users/${aliceId}/deactivate`);
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    expect(await verifyPassword(server.ctx, 'alice.admin', 'a whole new password')).toBeUndefined();
    const on = await api('PATCH', `/users/${aliceId}`, { active: true });
    expect(on.body.active).toBe(true);
    expect((await api('PATCH', '/users/no-such-user', { active: false })).status).toBe(404);
    expect((await api('POST', '/users/no-such-user/deactivate')).status).toBe(404);
  });
});

describe('signing keys', () => {
  it('lists kid, alg, state and dates — never a private part', async () => {
    const r = await api('GET', '/keys');
    expect(r.status).toBe(200);
    expect(r.body.keys.length).toBeGreaterThanOrEqual(4);
    for (const k of r.body.keys) {
      expect(Object.keys(k).sort()).toEqual([
        'activated_at',
        'alg',
        'created_at',
        'kid',
        'publish_until',
        'retired_at',
        'state',
      ]);
    }
    expect(
      r.body.keys
        .filter((k: { state: string }) => k.state === 'active')
        .map((k: { alg: string }) => k.alg)
        .sort(),
    ).toEqual(['ES256', 'RS256']);
  });

  it('rotates: the next key signs, the old active one stays in the JWKS, retired', async () => {
    const before = (await api('GET', '/keys')).body.keys as { kid: string; alg: string; state: string }[];
    const oldActive = before.filter((k) => k.state === 'active');
    const next = before.filter((k) => k.state === 'next');
    const r = await api('POST', '/keys/rotate');
    expect(r.status).toBe(200);
    const after = r.body.keys as { kid: string; state: string; publish_until: string | null }[];
    for (const k of next) expect(after.find((a) => a.kid === k.kid)?.state).toBe('active');
    for (const k of oldActive) {
      const now = after.find((a) => a.kid === k.kid);
      expect(now?.state).toBe('retired');
      expect(now?.publish_until).toEqual(expect.any(String));
    }
    const jwks = (await (await fetch(`${server.url}/fhir/jwks`)).json()) as Json;
    const kids = jwks.keys.map((k: { kid: string }) => k.kid);
    for (const k of [...oldActive, ...next]) expect(kids).toContain(k.kid);
    for (const k of jwks.keys) expect(k.d).toBeUndefined();
    expect((await api('POST', '/keys/rotate', undefined, { raw: 'x', type: 'text/plain' })).status).toBe(415);
  });
});

describe('audit of admin changes', () => {
  it('records who, what and when for every change, without a secret, SEK or password', async () => {
    const created = await api('POST', '/clients', {
      ...OCEAN,
      token_endpoint_auth_method: 'client_secret_post',
    });
    const id = created.body.client_id;
    const reset = await api('POST', `/clients/${id}/secret`);
    const sek = 'audit-check-sek-never-logged';
    await api('POST', `/clients/${id}/sites`, { site_num: '31337', shared_encryption_key: sek });
    const rows = await auditRows('admin.client.create');
    const row = rows.find((r) => r.client_id === id)!;
    expect(row).toBeDefined();
    expect(row.entity).toBe(`client/${id}`);
    expect(row.at).toBeTruthy();
    expect((row.detail as Record<string, unknown>).actor).toBe('admin-token');
    for (const action of [
      'admin.client.secret_reset',
      'admin.site.create',
      'admin.client.update',
      'admin.client.delete',
      'admin.site.update',
      'admin.site.delete',
      'admin.user.create',
      'admin.user.password_reset',
      'admin.user.update',
      'admin.keys.rotate',
    ]) {
      expect((await auditRows(action)).length, action).toBeGreaterThan(0);
    }
    const all = await tdb.db.query<{ t: string }>('SELECT row_to_json(e)::text AS t FROM audit_events e');
    const text = all.rows.map((r) => r.t).join('\n');
    for (const secret of [
      created.body.client_secret,
      reset.body.client_secret,
      sek,
      'correct horse battery',
      'a whole new password',
    ]) {
      expect(text).not.toContain(secret);
    }
  });

  it('is searchable by action prefix, client and user, and refuses a bad filter by name', async () => {
    const r = await api('GET', '/audit?action=admin.site.');
    expect(r.status).toBe(200);
    expect(r.body.events.length).toBeGreaterThan(0);
    for (const e of r.body.events) expect(e.action.startsWith('admin.site.')).toBe(true);
    const bad = await api('GET', '/audit?from=yesterday&limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toContain('from');
    expect(bad.body.error_description).toContain('limit');
    const clientId = (await api('POST', '/clients', OCEAN)).body.client_id as string;
    const byClient = await api('GET', `/audit?client=${clientId}`);
    expect(byClient.body.events.map((e: { action: string }) => e.action)).toEqual(['admin.client.create']);
    await server.ctx.audit.record({
      action: 'fhir.read',
      patientId: 'pat-audit-1',
      entity: 'Patient/pat-audit-1',
    });
    const byPatient = await api('GET', '/audit?patient=pat-audit-1');
    expect(byPatient.body.events).toHaveLength(1);
    expect(byPatient.body.events[0].entity).toBe('Patient/pat-audit-1');
    const user = (
      await api('POST', '/users', {
        username: 'audit.user',
        password: 'audit user password',
        given_name: 'Au',
        family_name: 'Dit',
      })
    ).body;
    await server.ctx.audit.record({ action: 'ehr.chart.view', userId: user.id, patientId: 'pat-audit-1' });
    const byUsername = await api('GET', '/audit?user=audit.user');
    expect(
      byUsername.body.events.map((e: { action: string; username: string }) => [e.action, e.username]),
    ).toEqual([['ehr.chart.view', 'audit.user']]);
    expect((await api('GET', `/audit?user=${user.id}`)).body.events).toHaveLength(1);
    // Dates: a day long past has nothing; a range that covers every plausible "now" has it all.
    expect((await api('GET', '/audit?from=2000-01-01&to=2000-01-02')).body.events).toHaveLength(0);
    expect(
      (await api('GET', `/audit?client=${clientId}&from=2000-01-01&to=2999-12-31`)).body.events,
    ).toHaveLength(1);
    expect((await api('GET', '/audit?action=admin.%25')).body.events).toHaveLength(0); // % is literal, not a wildcard
    const paged = await api('GET', '/audit?limit=2');
    expect(paged.body.events).toHaveLength(2);
    const older = await api('GET', `/audit?limit=2&before=${paged.body.next_before}`);
    expect(Number(older.body.events[0].id)).toBeLessThan(Number(paged.body.events[1].id));
  });
});

describe('allowlist packet behind a load balancer', () => {
  it('names PUBLIC_URL (https) in every value, without the server reaching PUBLIC_URL', async () => {
    const db2 = await createTestDatabase();
    // PUBLIC_URL points nowhere reachable: the packet must be built in-process.
    const lb = await startTestServer(db2.db, { PUBLIC_URL: 'https://ehr.unreachable.invalid' });
    try {
      const res = await fetch(`${lb.url}/admin/api/clients`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(OCEAN),
      });
      const { client_id } = (await res.json()) as { client_id: string };
      const r = await fetch(`${lb.url}/admin/api/clients/${client_id}/allowlist`, {
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      });
      expect(r.status).toBe(200);
      const p = (await r.json()) as Json;
      const base = 'https://ehr.unreachable.invalid/fhir';
      expect(p.server_url).toBe(base);
      expect(p.token_issuer_url).toBe(base);
      expect(p.openid_configuration.body.issuer).toBe(base);
      expect(p.openid_configuration.url).toBe(`${base}/.well-known/openid-configuration`);
      expect(p.smart_configuration.body.issuer).toBe(base);
      for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri']) {
        expect(p.openid_configuration.body[key], key).toMatch(/^https:\/\/ehr\.unreachable\.invalid\//);
      }
      expect(p.authorization_endpoint).toBe(p.smart_configuration.body.authorization_endpoint);
      expect(p.token_endpoint).toBe(p.smart_configuration.body.token_endpoint);
    } finally {
      await lb.stop();
      await db2.drop();
    }
  });
});

describe('linking a user to an existing Practitioner', () => {
  it('relinks to a Practitioner that exists, refuses one that does not (400, nothing changed)', async () => {
    const u = await api('POST', '/users', {
      username: 'relink.me',
      password: 'relink password 1',
      given_name: 'Re',
      family_name: 'Link',
    });
    const other = await api('POST', '/users', {
      username: 'other.one',
      password: 'relink password 2',
      given_name: 'Ot',
      family_name: 'Her',
    });
    const bad = await api('PATCH', `/users/${u.body.id}`, {
      practitioner: 'Practitioner/does-not-exist',
      roles: ['admin'],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toContain('practitioner');
    const unchanged = await api('GET', `/users/${u.body.id}`);
    expect(unchanged.body.practitioner).toBe(u.body.practitioner);
    expect(unchanged.body.roles).toEqual(['clinician']);
    const malformed = await api('PATCH', `/users/${u.body.id}`, { practitioner: 'Patient/1' });
    expect(malformed.status).toBe(400);
    const r = await api('PATCH', `/users/${u.body.id}`, { practitioner: other.body.practitioner });
    expect(r.status).toBe(200);
    expect(r.body.practitioner).toBe(other.body.practitioner);
    expect(r.body.id).toBe(u.body.id);
  });
});

describe('client secrets at the authorization server', () => {
  it('the secret shown at creation authenticates; after a reset only the new one does', async () => {
    const created = await api('POST', '/clients', {
      ...OCEAN,
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const id: string = created.body.client_id;
    const introspect = (secret: string) =>
      fetch(`${server.url}/fhir/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'token=not-a-real-token',
      });
    expect((await introspect(created.body.client_secret)).status).toBe(200);
    const reset = await api('POST', `/clients/${id}/secret`);
    expect((await introspect(created.body.client_secret)).status).toBe(401);
    const fresh = await introspect(reset.body.client_secret);
    expect(fresh.status).toBe(200);
    expect(await fresh.json()).toEqual({ active: false });
  });
});
