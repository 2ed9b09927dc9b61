/*
 * The bad-input sweep: every endpoint family gets malformed JSON and forms, wrong content types,
 * oversized bodies, huge headers, unicode and control characters, SQL metacharacters, path
 * tricks and duplicated parameters — from a signed-in clinician, an administrator and a client
 * holding a valid token, so the input reaches the handlers rather than the sign-in wall.
 * Every answer must be a clear 4xx (exactly 413 for an oversized body, 431 for oversized
 * headers) in the endpoint's own vocabulary, never a 5xx or a stack trace, and the database
 * must be unchanged afterwards (a digest of every table, minus the bookkeeping that is supposed
 * to move: rate-limit counters, sign-in failure counts, the audit trail, session expiry,
 * the instances' key heartbeats).
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  assertionForm,
  clientAssertion,
  type EhrKey,
  ehrKey,
  ehrToken,
  registerEhrSystem,
} from '../helpers/ehr-backend.ts';
import { type IdentityProvider, startIdentityProvider } from '../helpers/identity-provider.ts';
import { CookieJar } from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { DEMO_CLINICIANS, DEMO_SITE, type DeploymentSetup, prepareDeployment } from './cluster.ts';
import { Clinician, discover, redeemCode } from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

/** Tables whose rows move by design when refused requests arrive. */
const BOOKKEEPING = new Set([
  'rate_limit_hits',
  'login_failures',
  'audit_events',
  'ehr_sessions',
  'schema_migrations',
  'secrets_key_readers', // each instance's heartbeat (keys/secrets-rotation.ts)
  // Refused Ocean messages are kept for the administrator by design (CONTRACT §3.7); the sweep
  // checks that every row it adds there is `refused` and that nothing was filed.
  'ocean_inbox',
]);

/** An Observation filed under one patient, then refiled under the token's patient. */
const REFILED = 'refiled-obs';

type Vocabulary = 'fhir' | 'oauth' | 'json' | 'html' | 'any';

interface Answer {
  status: number;
  type: string;
  body: string;
  location?: string;
}

/** Raw HTTP: the path goes out byte for byte (fetch would normalise "..", "//" and %2e). */
function raw(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: {
          ...headers,
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
            ...(res.headers.location ? { location: res.headers.location } : {}),
          }),
        );
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const STACK = /\n\s+at .+[:(]\d+:\d+|node_modules|\.ts:\d+:\d+|\.js:\d+:\d+|\/work\//;

function checkVocabulary(answer: Answer, vocabulary: Vocabulary, what: string) {
  switch (vocabulary) {
    case 'fhir': {
      expect(answer.type, what).toMatch(/application\/fhir\+json/);
      expect(JSON.parse(answer.body).resourceType, what).toBe('OperationOutcome');
      break;
    }
    case 'oauth':
    case 'json': {
      expect(answer.type, what).toMatch(/application\/json/);
      expect(typeof JSON.parse(answer.body).error, what).toBe('string');
      break;
    }
    case 'html':
      expect(answer.type, what).toMatch(/text\/html/);
      break;
    case 'any':
      break;
  }
}

describe('bad-input sweep: every endpoint, every kind of bad input → a clear 4xx, nothing changed', () => {
  let t: TestDatabase;
  let s: TestServer;
  let setup: DeploymentSetup;
  let clinician: Clinician;
  let admin: Clinician;
  let accessToken: string;
  let cookie: string;
  let adminCookie: string;
  let csrf: string;
  let adminCsrf: string;
  let idp: IdentityProvider;
  let oceanBasic: string;
  let ehrId: string;
  let ehrTokenValue: string;
  let ehrKeyPair: EhrKey;
  /** An assertion already spent at the token endpoint: its replay must be refused. */
  let spentAssertion: string;

  async function digest(): Promise<Record<string, string>> {
    const { rows } = await t.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
    );
    const out: Record<string, string> = {};
    for (const { table_name } of rows) {
      if (BOOKKEEPING.has(table_name)) continue;
      if (table_name === 'oidc_models') {
        // Per model, so a failure says which one moved.
        const r = await t.db.query<{ model: string; d: string; n: number }>(
          `SELECT model, md5(string_agg(x::text, '|' ORDER BY x::text)) AS d, count(*)::int AS n FROM oidc_models x GROUP BY model`,
        );
        // oidc-provider's browser Session row is touched by every authorization request (its
        // expiry slides, like an EHR session's), and a client assertion that authenticated is
        // spent (ReplayDetection) even when the grant then refuses the request: bookkeeping.
        // Every other model must stay put.
        for (const row of r.rows)
          if (row.model !== 'Session' && row.model !== 'ReplayDetection')
            out[`oidc_models:${row.model}`] = `${row.n}:${row.d}`;
        continue;
      }
      const r = await t.db.query<{ d: string | null; n: number }>(
        `SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS d, count(*)::int AS n FROM "${table_name}" x`,
      );
      out[table_name] = `${r.rows[0]!.n}:${r.rows[0]!.d}`;
    }
    return out;
  }

  beforeAll(async () => {
    t = await createTestDatabase();
    idp = await startIdentityProvider();
    s = await startTestServer(t.db, {
      IDP_ISSUER: idp.issuer,
      IDP_CLIENT_ID: 'ehr-bad-input',
      IDP_CLIENT_SECRET: 'ehr-bad-input-secret',
      DEMO_DATA: 'true',
      BODY_LIMIT: '100kb',
      IMPORT_BODY_LIMIT: '1mb',
      RATE_LIMIT_LOGIN: '0',
      RATE_LIMIT_TOKEN: '0',
      RATE_LIMIT_INTROSPECTION: '0',
      RATE_LIMIT_ADMIN: '0',
      EHR_API_BODY_LIMIT: '200kb',
      LOGIN_FAILURES_BEFORE_DELAY: '999',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '100000',
    });
    await idp.addClient({
      client_id: 'ehr-bad-input',
      client_secret: 'ehr-bad-input-secret',
      redirect_uris: [`${s.url}/login/sso/callback`],
    });
    setup = await prepareDeployment(s.url, TEST_ADMIN_TOKEN, 2);
    const discovery = await discover(`${s.url}/fhir`);
    clinician = new Clinician(s.url);
    await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password);
    const launch = await clinician.launch(setup.patients[0]!, DEMO_SITE, 'viewMap');
    const { code } = await clinician.authorize(discovery, {
      clientId: setup.clientId,
      redirectUri: setup.redirectUri,
      launch: launch.get('launch')!,
      pkce: false,
    });
    accessToken = (
      await redeemCode(discovery, { code, clientId: setup.clientId, redirectUri: setup.redirectUri })
    ).body.access_token;
    cookie = clinician.jar.header('/');
    csrf =
      /name="_csrf" value="([^"]+)"/.exec(await (await clinician.request('/patients')).text())?.[1] ?? '';
    admin = new Clinician(s.url);
    await admin.signIn('admin', 'demo-administrator');
    adminCookie = admin.jar.header('/admin');
    adminCsrf =
      /name="_csrf" value="([^"]+)"/.exec(await (await admin.request('/admin/users')).text())?.[1] ?? '';
    expect(csrf).not.toBe('');
    expect(adminCsrf).not.toBe('');
    // A result imported under the second patient, then refiled under the first (the token's):
    // its first version must stay out of the token's reach (_history and vread).
    for (const patient of [setup.patients[1]!, setup.patients[0]!]) {
      const imported = await fetch(`${s.url}/admin/api/import`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: {
                resourceType: 'Observation',
                id: REFILED,
                status: 'final',
                code: { text: 'Potassium' },
                subject: { reference: `Patient/${patient}` },
              },
              request: { method: 'PUT', url: `Observation/${REFILED}` },
            },
          ],
        }),
      });
      expect(imported.status).toBe(200);
    }
    const integration = await fetch(`${s.url}/admin/api/ocean-integrations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ site_num: 'sweep' }),
    });
    const c = (await integration.json()) as { username: string; password: string };
    oceanBasic = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    // An EHR system asking for launches (CONTRACT §3.5), with a token and a spent assertion.
    ehrKeyPair = await ehrKey('ES384');
    ehrId = String(
      (
        await registerEhrSystem(s.url, {
          name: 'Sweep EMR',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [ehrKeyPair.publicJwk] },
          sites: [DEMO_SITE],
        })
      ).body.client_id,
    );
    ehrTokenValue = await ehrToken(s.url, ehrId, ehrKeyPair);
    spentAssertion = await clientAssertion(s.url, ehrId, ehrKeyPair);
    const spent = await fetch(`${s.url}/fhir/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(assertionForm(spentAssertion)),
    });
    expect(spent.status).toBe(200);
  });
  afterAll(async () => {
    await s?.stop();
    await idp?.stop();
    await t?.drop();
  });

  it('answers every probe with a clear 4xx in its vocabulary, no stack trace, and changes nothing', async () => {
    const before = await digest();
    const P = setup.patients[0]!;
    const C = encodeURIComponent(setup.clientId);
    const bearer = { authorization: `Bearer ${accessToken}` };
    const adminAuth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    const asClinician = { cookie };
    const asAdmin = { cookie: adminCookie };
    const json = { 'content-type': 'application/json' };
    const formType = { 'content-type': 'application/x-www-form-urlencoded' };
    const big = (n: number) => `{"x":"${'a'.repeat(n)}"}`;
    const bigForm = (n: number) => `username=${'a'.repeat(n)}`;
    const SQL = ["' OR '1'='1", "'; DROP TABLE users; --", '1) UNION SELECT * FROM users--', '%_\\'];
    const WEIRD = ['\u0000', '\u202e\u0007', '🩺💉', 'a\r\nSet-Cookie: x=1', 'ǅ\uFFFF\uD800'];
    // Percent-encodes the UTF-8 bytes (a lone surrogate becomes U+FFFD, as a browser would send it).
    const enc = (x: string) =>
      [...Buffer.from(x, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

    type Probe = [
      label: string,
      method: string,
      path: string,
      headers: Record<string, string>,
      body: string | undefined,
      vocabulary: Vocabulary,
      expected?: number | 'not5xx',
    ];
    const probes: Probe[] = [];
    const add = (...p: Probe) => probes.push(p);

    // — JSON endpoints: admin API (and the import) —
    const adminJsonEndpoints: [string, string][] = [
      ['POST', '/admin/api/clients'],
      ['PATCH', `/admin/api/clients/${C}`],
      ['POST', `/admin/api/clients/${C}/sites`],
      ['POST', '/admin/api/users'],
      ['POST', '/admin/api/keys/rotate'],
    ];
    for (const [m, p] of adminJsonEndpoints) {
      add('malformed JSON', m, p, { ...adminAuth, ...json }, '{"name": "x",', 'json');
      if (!p.endsWith('/rotate')) {
        // (rotation takes no input: a well-formed body is ignored, not refused)
        add('JSON array', m, p, { ...adminAuth, ...json }, '[1,2,3]', 'json');
        add('JSON scalar', m, p, { ...adminAuth, ...json }, '"just a string"', 'json');
      }
      add('form body', m, p, { ...adminAuth, ...formType }, 'name=x&redirect_uris=y', 'json');
      add('text/plain', m, p, { ...adminAuth, 'content-type': 'text/plain' }, '{"name":"x"}', 'json');
      add('xml', m, p, { ...adminAuth, 'content-type': 'application/xml' }, '<client/>', 'json');
      add('oversized', m, p, { ...adminAuth, ...json }, big(200 * 1024), 'json', 413);
      add('no token', m, p, json, '{}', 'json', 401);
    }
    add(
      'wrong types',
      'POST',
      '/admin/api/clients',
      { ...adminAuth, ...json },
      '{"name": 5, "redirect_uris": "x", "launch_url": []}',
      'json',
    );
    add(
      'proto pollution',
      'POST',
      '/admin/api/clients',
      { ...adminAuth, ...json },
      '{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}',
      'json',
    );
    add('SQL in client id', 'GET', `/admin/api/clients/${enc(SQL[1]!)}`, adminAuth, undefined, 'json');
    add(
      'SQL in site',
      'POST',
      `/admin/api/clients/${C}/sites`,
      { ...adminAuth, ...json },
      JSON.stringify({ site_num: SQL[0], shared_encryption_key: '' }),
      'json',
    );
    add(
      'control chars in user',
      'POST',
      '/admin/api/users',
      { ...adminAuth, ...json },
      JSON.stringify({ username: WEIRD[0], password: 'x', given_name: WEIRD[3], family_name: WEIRD[4] }),
      'json',
    );
    add(
      'duplicate keys',
      'POST',
      '/admin/api/users',
      { ...adminAuth, ...json },
      '{"username":"a","username":"b"}',
      'json',
    );
    add(
      'deep nesting',
      'POST',
      '/admin/api/clients',
      { ...adminAuth, ...json },
      `${'['.repeat(5000)}${']'.repeat(5000)}`,
      'json',
    );
    add(
      'import: malformed',
      'POST',
      '/admin/api/import',
      { ...adminAuth, ...json },
      '{"resourceType":"Bundle","entry":[{',
      'fhir',
    );
    add(
      'import: not a bundle',
      'POST',
      '/admin/api/import',
      { ...adminAuth, ...json },
      '{"resourceType":"Patient"}',
      'fhir',
    );
    add(
      'import: wrong type',
      'POST',
      '/admin/api/import',
      { ...adminAuth, 'content-type': 'text/csv' },
      'a,b',
      'fhir',
    );
    add(
      'import: oversized',
      'POST',
      '/admin/api/import',
      { ...adminAuth, ...json },
      big(1100 * 1024),
      'fhir',
      413,
    );
    add(
      'import: SQL id',
      'POST',
      '/admin/api/import',
      { ...adminAuth, ...json },
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: { resourceType: 'Patient', id: SQL[1] },
            request: { method: 'PUT', url: `Patient/${SQL[1]}` },
          },
        ],
      }),
      'fhir',
    );
    add(
      'import: half-bad bundle',
      'POST',
      '/admin/api/import',
      { ...adminAuth, ...json },
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: { resourceType: 'Patient', id: 'fine-one' },
            request: { method: 'PUT', url: 'Patient/fine-one' },
          },
          {
            resource: { resourceType: 'Patient', id: 'bad id!' },
            request: { method: 'PUT', url: 'Patient/bad id!' },
          },
        ],
      }),
      'fhir',
    );

    // — OAuth endpoints (oidc-provider) —
    for (const p of ['/fhir/token', '/fhir/token/introspection', '/fhir/token/revocation']) {
      add('malformed form', 'POST', p, formType, '%zz=%&&==&client_id=%E0%A4%A', 'oauth');
      add('JSON body', 'POST', p, json, '{"grant_type":"authorization_code"}', 'oauth');
      add('text/plain', 'POST', p, { 'content-type': 'text/plain' }, 'grant_type=x', 'oauth');
      add('oversized', 'POST', p, formType, bigForm(200 * 1024), 'oauth', 413);
      add(
        'duplicated parameters',
        'POST',
        p,
        formType,
        `client_id=${C}&client_id=other&token=a&token=b&grant_type=refresh_token&grant_type=authorization_code`,
        'oauth',
      );
      add(
        'SQL metacharacters',
        'POST',
        p,
        formType,
        `client_id=${enc(SQL[0]!)}&token=${enc(SQL[1]!)}&grant_type=authorization_code&code=${enc(SQL[2]!)}`,
        'oauth',
      );
      add(
        'control characters',
        'POST',
        p,
        formType,
        `client_id=${enc(WEIRD[0]!)}&token=${enc(WEIRD[1]!)}&code=${enc(WEIRD[3]!)}&grant_type=refresh_token&refresh_token=${enc(WEIRD[4]!)}`,
        'oauth',
      );
    }
    add('GET token', 'GET', '/fhir/token', {}, undefined, 'any');

    // — EHR systems: the token endpoint's client assertions and POST /ehr-api/launches —
    const tokenForm = (assertion: string, extra: Record<string, string> = {}) =>
      new URLSearchParams(assertionForm(assertion, extra)).toString();
    const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
    add('replayed assertion', 'POST', '/fhir/token', formHeaders, tokenForm(spentAssertion), 'oauth', 401);
    const stranger = await ehrKey('ES384');
    add(
      'assertion signed with another key',
      'POST',
      '/fhir/token',
      formHeaders,
      tokenForm(await clientAssertion(s.url, ehrId, { ...stranger, kid: ehrKeyPair.kid })),
      'oauth',
      401,
    );
    add(
      'expired assertion',
      'POST',
      '/fhir/token',
      formHeaders,
      tokenForm(await clientAssertion(s.url, ehrId, ehrKeyPair, { expiresIn: -300 })),
      'oauth',
      401,
    );
    add(
      'assertion for another audience',
      'POST',
      '/fhir/token',
      formHeaders,
      tokenForm(await clientAssertion(s.url, ehrId, ehrKeyPair, { aud: 'https://elsewhere.example/token' })),
      'oauth',
      401,
    );
    add(
      'assertion valid for an hour',
      'POST',
      '/fhir/token',
      formHeaders,
      tokenForm(await clientAssertion(s.url, ehrId, ehrKeyPair, { expiresIn: 3600 })),
      'oauth',
      401,
    );
    add(
      'EHR system asking another scope',
      'POST',
      '/fhir/token',
      formHeaders,
      tokenForm(await clientAssertion(s.url, ehrId, ehrKeyPair), { scope: 'system/*.read' }),
      'oauth',
      400,
    );
    add('garbage assertion', 'POST', '/fhir/token', formHeaders, tokenForm('a.b.c'), 'oauth');
    const ehrBearer = { authorization: `Bearer ${ehrTokenValue}`, ...json };
    const launchOf = (extra: Record<string, unknown>) =>
      JSON.stringify({ site: DEMO_SITE, action: 'viewMap', user: { id: 'sweep-user' }, ...extra });
    const launchProbes: [string, Record<string, string>, string | undefined, number?][] = [
      ['no token', json, launchOf({}), 401],
      ['clinician token', { ...bearer, ...json }, launchOf({}), 403],
      [
        'forged token',
        { authorization: `Bearer ${ehrTokenValue.slice(0, -6)}AAAAAA`, ...json },
        launchOf({}),
        401,
      ],
      ['malformed JSON', ehrBearer, '{"site": "1234",', 400],
      ['JSON array', ehrBearer, '[1,2]', 400],
      ['form body', { ...ehrBearer, ...formType }, 'site=1234', 415],
      ['oversized', ehrBearer, big(300 * 1024), 413],
      ['missing fields', ehrBearer, '{}', 400],
      ['wrong types', ehrBearer, JSON.stringify({ site: 1234, action: [], user: 'x', patient: 7 }), 400],
      ['unknown site', ehrBearer, launchOf({ site: 'no-such-site' }), 403],
      ['unknown action', ehrBearer, launchOf({ action: 'noSuchAction' }), 400],
      ['unknown patient', ehrBearer, launchOf({ patient: { id: 'no-such-patient' } }), 404],
      ['SQL in patient id', ehrBearer, launchOf({ patient: { id: SQL[1] } }), 400],
      ['control chars in user id', ehrBearer, launchOf({ user: { id: WEIRD[3] } }), 400],
      [
        "another patient's resources",
        ehrBearer,
        launchOf({
          patient: { resource: { resourceType: 'Patient', id: 'sweep-new' } },
          resources: [
            {
              resourceType: 'Observation',
              id: 'o1',
              status: 'final',
              code: { text: 'x' },
              subject: { reference: `Patient/${P}` },
            },
          ],
        }),
        400,
      ],
      [
        'resource stored for another patient',
        ehrBearer,
        launchOf({
          patient: { resource: { resourceType: 'Patient', id: 'sweep-new' } },
          resources: [
            {
              resourceType: 'Observation',
              id: REFILED,
              status: 'final',
              code: { text: 'x' },
              subject: { reference: 'Patient/sweep-new' },
            },
          ],
        }),
        400,
      ],
      [
        'unsupported resource',
        ehrBearer,
        launchOf({
          patient: { resource: { resourceType: 'Patient', id: 'sweep-new' } },
          resources: [{ resourceType: 'Spaceship', id: 'x' }],
        }),
        400,
      ],
    ];
    for (const [label, headers, body, expected] of launchProbes) {
      add(`launch API: ${label}`, 'POST', '/ehr-api/launches', headers, body, 'json', expected);
    }
    add('launch API: GET', 'GET', '/ehr-api/launches', ehrBearer, undefined, 'json', 405);
    for (const [m, p] of [
      ['POST', '/admin/api/ehr-systems'],
      ['PATCH', `/admin/api/ehr-systems/${ehrId}`],
    ] as const) {
      add('malformed JSON', m, p, { ...adminAuth, ...json }, '{"name": "x",', 'json');
      add('JSON array', m, p, { ...adminAuth, ...json }, '[1,2,3]', 'json');
      add('form body', m, p, { ...adminAuth, ...formType }, 'name=x', 'json');
      add('oversized', m, p, { ...adminAuth, ...json }, big(200 * 1024), 'json', 413);
      add('no token', m, p, json, '{}', 'json', 401);
    }
    const ehrSystemBodies = [
      { name: 'x', token_endpoint_auth_method: 'none' },
      { name: 'x', token_endpoint_auth_method: 'private_key_jwt' },
      {
        name: 'x',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] },
      },
      { name: 'x', token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'javascript:alert(1)' },
      { name: 'x', token_endpoint_auth_method: 'client_secret_basic', sites: [SQL[0]] },
      { name: 'x', token_endpoint_auth_method: 'client_secret_basic', sites: ['no-such-site'] },
      { name: '', token_endpoint_auth_method: 'client_secret_basic' },
    ];
    for (const b of ehrSystemBodies)
      add(
        'bad EHR system',
        'POST',
        '/admin/api/ehr-systems',
        { ...adminAuth, ...json },
        JSON.stringify(b),
        'json',
        400,
      );
    add(
      'unknown EHR system',
      'GET',
      `/admin/api/ehr-systems/${enc(SQL[1]!)}`,
      adminAuth,
      undefined,
      'json',
      404,
    );
    add(
      'unknown EHR system',
      'DELETE',
      '/admin/api/ehr-systems/ehr-system-nope',
      adminAuth,
      undefined,
      'json',
      404,
    );
    add(
      'secret of a key-signing EHR system',
      'POST',
      `/admin/api/ehr-systems/${ehrId}/secret`,
      adminAuth,
      undefined,
      'json',
      400,
    );
    add(
      'basic auth garbage',
      'POST',
      '/fhir/token',
      { ...formType, authorization: 'Basic %%%not-base64' },
      'grant_type=authorization_code&code=x',
      'oauth',
    );

    // — authorization endpoint (people: a page, or an error back at a registered redirect_uri) —
    const authz = (q: string) => `/fhir/auth?${q}`;
    add('no parameters', 'GET', authz(''), asClinician, undefined, 'html');
    add(
      'unknown client',
      'GET',
      authz(`response_type=code&client_id=${enc(SQL[0]!)}&redirect_uri=https://evil.example/&scope=openid`),
      asClinician,
      undefined,
      'html',
    );
    add(
      'unregistered redirect_uri',
      'GET',
      authz(`response_type=code&client_id=${C}&redirect_uri=https://evil.example/cb&scope=openid`),
      asClinician,
      undefined,
      'html',
    );
    add(
      'duplicated client_id',
      'GET',
      authz(
        `response_type=code&client_id=${C}&client_id=${C}&redirect_uri=${enc(setup.redirectUri)}&scope=openid`,
      ),
      asClinician,
      undefined,
      'html',
    );
    add(
      'control chars',
      'GET',
      authz(`response_type=code&client_id=${enc(WEIRD[3]!)}&scope=${enc(WEIRD[0]!)}`),
      asClinician,
      undefined,
      'html',
    );
    add('POST JSON', 'POST', '/fhir/auth', { ...asClinician, ...json }, '{"client_id":"x"}', 'html');
    add(
      'POST malformed form',
      'POST',
      '/fhir/auth',
      { ...asClinician, ...formType },
      '%zz&client_id=%',
      'html',
    );
    add(
      'POST oversized',
      'POST',
      '/fhir/auth',
      { ...asClinician, ...formType },
      bigForm(200 * 1024),
      'html',
      413,
    );
    add('interaction unknown', 'GET', `/interaction/${enc(SQL[1]!)}`, asClinician, undefined, 'html');
    add(
      'interaction confirm forged',
      'POST',
      '/interaction/nope/confirm',
      { ...asClinician, ...formType },
      `_csrf=${enc(csrf)}&x=1`,
      'html',
    );

    // — FHIR API —
    const fhirPaths = [
      `/fhir/Patient/${enc(SQL[1]!)}`,
      `/fhir/Patient/${enc(WEIRD[0]!)}`,
      `/fhir/Patient/${enc(WEIRD[2]!)}`,
      `/fhir/Patient/${'a'.repeat(5000)}`,
      `/fhir/Patient/${P}/..%2F..%2Fadmin`,
      `/fhir/Patient/${P}/%2e%2e/%2e%2e/admin/api/clients`,
      `/fhir/Observation/${enc("x' OR 1=1--")}`,
      `/fhir/Patient/${P}/_history/${enc(SQL[0]!)}`,
      `/fhir/Patient/${P}/$everything?_count=${enc(SQL[2]!)}`,
      `/fhir/Patient/${P}/$everything?_count=-1&_count=99999999999999999999`,
      `/fhir/Patient/${P}/$everything?_cursor=${enc(SQL[1]!)}`,
      // a cursor of the grouped order that this server could not have issued (after > upTo)
      `/fhir/Patient/${P}/$everything?_cursor=${Buffer.from('3.9.1').toString('base64url')}`,
      `/fhir/Patient/${P}/_history?_cursor=${enc(SQL[1]!)}`,
      `/fhir/Patient/${P}/_history?_count=${enc(SQL[2]!)}`,
      `/fhir/Patient/${P}/$nosuchop`,
      `/fhir/Condition?patient=${enc(SQL[0]!)}&patient=${P}`,
      `/fhir/Condition?patient=${P}&_count=abc`,
      `/fhir/Patient?name=${enc(SQL[3]!)}&_sort=${enc(SQL[1]!)}`,
      '/fhir/patient/x',
      `/fhir/${enc(SQL[1]!)}`,
      '/fhir/Patient/%',
    ];
    for (const p of fhirPaths)
      add(
        'FHIR read',
        'GET',
        p,
        bearer,
        undefined,
        'fhir',
        p.includes('name=') || p.includes('patient=') ? 'not5xx' : undefined,
      );
    // another chart's version of a resource now in the token's chart: exactly a 404
    add(
      'FHIR vread across charts',
      'GET',
      `/fhir/Observation/${REFILED}/_history/1`,
      bearer,
      undefined,
      'fhir',
      404,
    );
    add(
      'FHIR write refused',
      'POST',
      '/fhir/Patient',
      { ...bearer, 'content-type': 'application/fhir+json' },
      '{"resourceType":"Patient"',
      'fhir',
    );
    add(
      'FHIR PUT refused',
      'PUT',
      `/fhir/Patient/${P}`,
      { ...bearer, 'content-type': 'application/fhir+json' },
      '{"resourceType":"Patient","id":"x"}',
      'fhir',
    );
    add('FHIR DELETE refused', 'DELETE', `/fhir/Patient/${P}`, bearer, undefined, 'fhir');
    add(
      'FHIR oversized',
      'POST',
      '/fhir/Patient',
      { ...bearer, 'content-type': 'application/fhir+json' },
      big(200 * 1024),
      'fhir',
      413,
    );
    add(
      'FHIR xml accept',
      'GET',
      `/fhir/Patient/${P}?_format=${enc(SQL[0]!)}`,
      { ...bearer, accept: 'application/fhir+xml' },
      undefined,
      'fhir',
      'not5xx',
    );
    add(
      'FHIR garbage token',
      'GET',
      `/fhir/Patient/${P}`,
      { authorization: `Bearer ${SQL[1]}.x.y` },
      undefined,
      'fhir',
      401,
    );
    add(
      'FHIR two tokens',
      'GET',
      `/fhir/Patient/${P}`,
      { authorization: `Bearer ${accessToken}, Bearer ${accessToken}` },
      undefined,
      'fhir',
      401,
    );
    add(
      'FHIR alg none token',
      'GET',
      `/fhir/Patient/${P}`,
      {
        authorization: `Bearer ${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${accessToken.split('.')[1]}.`,
      },
      undefined,
      'fhir',
      401,
    );

    // — EHR screens and sign-in (people) —
    add('login JSON', 'POST', '/login', { ...asClinician, ...json }, '{"username":"a"}', 'html');
    add(
      'login malformed form',
      'POST',
      '/login',
      { ...asClinician, ...formType },
      '%zz&username=%&password',
      'html',
    );
    add('login oversized', 'POST', '/login', formType, bigForm(200 * 1024), 'html', 413);
    add(
      'login SQL',
      'POST',
      '/login',
      { ...asClinician, ...formType },
      `username=${enc(SQL[0]!)}&password=${enc(SQL[1]!)}&_csrf=${enc(csrf)}`,
      'html',
    );
    add(
      'login duplicated',
      'POST',
      '/login',
      { ...asClinician, ...formType },
      `username=a&username=b&password=x&password=y&_csrf=${enc(csrf)}&_csrf=x`,
      'html',
    );
    add(
      'login control chars',
      'POST',
      '/login',
      { ...asClinician, ...formType },
      `username=${enc(WEIRD[0]!)}&password=${enc(WEIRD[4]!)}&_csrf=${enc(csrf)}`,
      'html',
    );
    add('login no CSRF', 'POST', '/login', formType, 'username=dr.patel&password=demo-clinician-1', 'html');
    add('logout no CSRF', 'POST', '/logout', { ...asClinician, ...formType }, '', 'html');
    add(
      'launch SQL patient',
      'GET',
      `/launch?patient=${enc(SQL[0]!)}&site=${DEMO_SITE}&action=viewMap`,
      asClinician,
      undefined,
      'html',
    );
    add(
      'launch duplicated',
      'GET',
      `/launch?patient=${P}&patient=${setup.patients[1]}&site=${DEMO_SITE}&action=viewMap`,
      asClinician,
      undefined,
      'html',
    );
    add(
      'launch control chars',
      'GET',
      `/launch?patient=${P}&site=${enc(WEIRD[1]!)}&action=${enc(WEIRD[3]!)}`,
      asClinician,
      undefined,
      'html',
    );
    add(
      'launch unknown action',
      'GET',
      `/launch?patient=${P}&site=${DEMO_SITE}&action=${enc('<script>alert(1)</script>')}`,
      asClinician,
      undefined,
      'html',
    );
    add(
      'launch SQL site',
      'GET',
      `/launch?patient=${P}&site=${enc(SQL[1]!)}&action=viewMap`,
      asClinician,
      undefined,
      'html',
    );
    add('chart SQL', 'GET', `/patients/${enc(SQL[1]!)}`, asClinician, undefined, 'html');
    add('chart traversal', 'GET', '/patients/..%2F..%2Fetc%2Fpasswd', asClinician, undefined, 'html');
    add(
      'document traversal',
      'GET',
      `/patients/${P}/documents/..%2F..%2F..%2Fetc%2Fpasswd`,
      asClinician,
      undefined,
      'html',
    );
    add(
      'patient search SQL',
      'GET',
      `/patients?q=${enc(SQL[0]!)}&q=${enc(SQL[1]!)}&page=${enc(SQL[2]!)}`,
      asClinician,
      undefined,
      'html',
      'not5xx',
    );
    add(
      'patient search control',
      'GET',
      `/patients?q=${enc(WEIRD.join(''))}&page=-5`,
      asClinician,
      undefined,
      'html',
      'not5xx',
    );
    add('static traversal', 'GET', '/static/..%2F..%2Fpackage.json', {}, undefined, 'any');
    add('static dotdot', 'GET', '/static/../../package.json', {}, undefined, 'any');
    add('double slash', 'GET', '//admin/api/clients', {}, undefined, 'any');
    add('encoded admin', 'GET', '/%61dmin/api/clients', {}, undefined, 'any');
    add('long path', 'GET', `/${'x/'.repeat(4000)}`, {}, undefined, 'html');
    add('bad percent', 'GET', '/patients/%E0%A4%A', asClinician, undefined, 'html');
    add('invalid UTF-8', 'GET', `/fhir/Patient/%C0%AF%FF%FE`, bearer, undefined, 'fhir');
    add('invalid UTF-8 search', 'GET', `/patients?q=%C0%AF%FF%FE`, asClinician, undefined, 'html', 'not5xx');

    // — admin console (people, CSRF) —
    add('console no CSRF', 'POST', '/admin/clients', { ...asAdmin, ...formType }, 'name=x', 'html');
    add(
      'console SQL',
      'POST',
      '/admin/clients',
      { ...asAdmin, ...formType },
      `_csrf=${enc(adminCsrf)}&name=${enc(SQL[1]!)}&redirect_uris=${enc(SQL[0]!)}&launch_url=${enc(WEIRD[3]!)}`,
      'html',
    );
    add('console JSON', 'POST', '/admin/users', { ...asAdmin, ...json }, '{"username":"x"}', 'html');
    add(
      'console oversized',
      'POST',
      '/admin/users',
      { ...asAdmin, ...formType },
      bigForm(200 * 1024),
      'html',
      413,
    );
    add(
      'console duplicated',
      'POST',
      '/admin/users',
      { ...asAdmin, ...formType },
      `_csrf=${enc(adminCsrf)}&_csrf=x&username=a&username=b&password=p`,
      'html',
    );
    add(
      'console traversal',
      'GET',
      `/admin/clients/${enc('../../../etc/passwd')}`,
      asAdmin,
      undefined,
      'html',
    );
    add('console not admin', 'GET', '/admin/users', asClinician, undefined, 'html');

    // — Ocean's $process-message (FHIR vocabulary; refused messages are kept, nothing filed) —
    const PM = '/fhir/$process-message';
    const ocean = { authorization: oceanBasic, 'content-type': 'application/fhir+json' };
    const header = (extra: Record<string, unknown>) => ({
      fullUrl: 'urn:uuid:1',
      resource: {
        resourceType: 'MessageHeader',
        id: 'm1',
        eventCoding: {
          system: 'https://ehealthontario.ca/fhir/CodeSystem/message-event-code',
          code: 'notify-add-service-request',
        },
        focus: [{ reference: 'urn:uuid:2' }],
        ...extra,
      },
    });
    add('message malformed JSON', 'POST', PM, ocean, '{"resourceType":"Bundle",', 'fhir', 400);
    add('message JSON array', 'POST', PM, ocean, '[1,2]', 'fhir', 400);
    add('message scalar', 'POST', PM, ocean, '"Bundle"', 'fhir', 400);
    add('message empty', 'POST', PM, ocean, '', 'fhir', 400);
    add('message form body', 'POST', PM, { ...ocean, ...formType }, 'a=b', 'fhir', 415);
    add(
      'message xml',
      'POST',
      PM,
      { ...ocean, 'content-type': 'application/fhir+xml' },
      '<Bundle/>',
      'fhir',
      415,
    );
    add('message oversized', 'POST', PM, ocean, big(200 * 1024), 'fhir', 413);
    add('message no credentials', 'POST', PM, { 'content-type': 'application/fhir+json' }, '{}', 'fhir', 401);
    add(
      'message clinician token',
      'POST',
      PM,
      { ...bearer, 'content-type': 'application/fhir+json' },
      '{}',
      'fhir',
      403,
    );
    add(
      'message admin token',
      'POST',
      PM,
      { ...adminAuth, 'content-type': 'application/fhir+json' },
      '{}',
      'fhir',
      401,
    );
    add(
      'message bad Basic',
      'POST',
      PM,
      { ...ocean, authorization: `Basic ${enc(SQL[1]!)}` },
      '{}',
      'fhir',
      401,
    );
    add('message GET', 'GET', PM, ocean, undefined, 'fhir', 405);
    add(
      'message wrong types',
      'POST',
      PM,
      ocean,
      JSON.stringify({ resourceType: 'Bundle', type: 'message', entry: 'x' }),
      'fhir',
      400,
    );
    add(
      'message entry nulls',
      'POST',
      PM,
      ocean,
      JSON.stringify({ resourceType: 'Bundle', type: 'message', entry: [null, 5] }),
      'fhir',
      400,
    );
    add(
      'message proto pollution',
      'POST',
      PM,
      ocean,
      '{"resourceType":"Bundle","type":"message","entry":[{"__proto__":{"resource":1}}]}',
      'fhir',
      400,
    );
    add(
      'message SQL ids',
      'POST',
      PM,
      ocean,
      JSON.stringify({ resourceType: 'Bundle', type: 'message', entry: [header({ id: SQL[1] })] }),
      'fhir',
      400,
    );
    add(
      'message control chars',
      'POST',
      PM,
      ocean,
      JSON.stringify({ resourceType: 'Bundle', type: 'message', entry: [header({ id: WEIRD[0] })] }),
      'fhir',
      400,
    );
    add(
      'message dangling focus',
      'POST',
      PM,
      ocean,
      JSON.stringify({ resourceType: 'Bundle', type: 'message', entry: [header({})] }),
      'fhir',
      400,
    );
    add(
      'message huge event code',
      'POST',
      PM,
      ocean,
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'message',
        entry: [
          header({
            eventCoding: {
              system: 'https://ehealthontario.ca/fhir/CodeSystem/message-event-code',
              code: 'x'.repeat(5000),
            },
          }),
        ],
      }),
      'fhir',
      400,
    );
    add('message deep nesting', 'POST', PM, ocean, `${'['.repeat(5000)}${']'.repeat(5000)}`, 'fhir', 400);
    add(
      'message admin match SQL',
      'POST',
      `/admin/api/ocean-messages/${enc(SQL[1]!)}/match`,
      { ...adminAuth, ...json },
      '{"patient_id":"x"}',
      'json',
      404,
    );
    add(
      'message admin match bad id',
      'POST',
      `/admin/api/ocean-messages/x/match`,
      { ...adminAuth, ...json },
      JSON.stringify({ patient_id: SQL[0] }),
      'json',
      400,
    );
    add(
      'message admin list bad filter',
      'GET',
      `/admin/api/ocean-messages?outcome=${enc(SQL[0]!)}&limit=-1`,
      adminAuth,
      undefined,
      'json',
      400,
    );
    add(
      'integration SQL site',
      'POST',
      '/admin/api/ocean-integrations',
      { ...adminAuth, ...json },
      JSON.stringify({ site_num: SQL[1] }),
      'json',
      400,
    );
    add(
      'integration bad oauth',
      'PUT',
      `/admin/api/ocean-integrations/${enc(SQL[2]!)}/ocean-oauth`,
      { ...adminAuth, ...json },
      JSON.stringify({ token_url: 'javascript:alert(1)', client_id: 1 }),
      'json',
      400,
    );
    add(
      'integration unknown',
      'DELETE',
      `/admin/api/ocean-integrations/${enc(SQL[0]!)}`,
      adminAuth,
      undefined,
      'json',
      404,
    );
    add(
      'ocean console no CSRF',
      'POST',
      '/admin/ocean/integrations',
      { ...asAdmin, ...formType },
      'site_num=1',
      'html',
      403,
    );
    add(
      'referral letter SQL',
      'GET',
      `/patients/${P}/referrals/${enc(SQL[1]!)}/letter`,
      asClinician,
      undefined,
      'html',
      404,
    );

    // — issue 16: forced launches, sign-in unlock, advertised-but-missing endpoints —
    const launchForm = `patient=${P}&site=${DEMO_SITE}&action=viewMap`;
    // Another site's page (or an e-mailed link) gets a confirmation page: 200, and nothing written.
    for (const [label, h] of [
      ['launch cross-site', { 'sec-fetch-site': 'cross-site' }],
      ['launch same-site', { 'sec-fetch-site': 'same-site' }],
      ['launch from an e-mail', { 'sec-fetch-site': 'none' }],
      ['launch foreign Referer', { referer: 'https://evil.example/' }],
      ['launch foreign Origin', { origin: 'https://evil.example' }],
    ] as const)
      add(label, 'GET', `/launch?${launchForm}`, { ...asClinician, ...h }, undefined, 'html', 200);
    add(
      'launch confirm no CSRF',
      'POST',
      '/launch',
      { ...asClinician, ...formType },
      launchForm,
      'html',
      403,
    );
    add(
      'launch confirm forged CSRF',
      'POST',
      '/launch',
      { ...asClinician, ...formType },
      `${launchForm}&_csrf=forged`,
      'html',
      403,
    );
    add(
      'launch confirm SQL patient',
      'POST',
      '/launch',
      { ...asClinician, ...formType },
      `patient=${enc(SQL[0]!)}&site=${DEMO_SITE}&action=viewMap&_csrf=${enc(csrf)}`,
      'html',
    );
    add(
      'launch confirm unknown site',
      'POST',
      '/launch',
      { ...asClinician, ...formType },
      `patient=${P}&site=${enc(SQL[1]!)}&action=viewMap&_csrf=${enc(csrf)}`,
      'html',
    );
    add(
      'unlock unknown user',
      'POST',
      '/admin/api/users/no-such-user/unlock',
      adminAuth,
      undefined,
      'json',
      404,
    );
    add(
      'unlock SQL user',
      'POST',
      `/admin/api/users/${enc(SQL[0]!)}/unlock`,
      adminAuth,
      undefined,
      'json',
      404,
    );
    add('unlock no token', 'POST', '/admin/api/users/x/unlock', {}, undefined, 'json', 401);
    add('unlock GET', 'GET', '/admin/api/users/x/unlock', adminAuth, undefined, 'json', 405);
    add(
      'unlock console no CSRF',
      'POST',
      '/admin/users/x/unlock',
      { ...asAdmin, ...formType },
      '',
      'html',
      403,
    );
    // Discovery advertised a pushed-authorization endpoint that was never served: no longer.
    add('PAR endpoint', 'POST', '/fhir/request', formType, 'client_id=x', 'any', 404);

    const failures: string[] = [];
    for (const [label, method, path, headers, body, vocabulary, expected] of probes) {
      const what = `${label}: ${method} ${path.slice(0, 120)}`;
      let answer: Answer;
      try {
        answer = await raw(s.url, method, path, headers, body);
      } catch (err) {
        failures.push(`${what} → connection error ${(err as Error).message}`);
        continue;
      }
      const okStatus =
        expected === 'not5xx'
          ? answer.status < 500
          : typeof expected === 'number'
            ? answer.status === expected
            : answer.status >= 400 && answer.status < 500;
      // A 303 to sign-in or an OAuth error sent back to the client's registered redirect_uri is a clear refusal too.
      const refusedByRedirect =
        expected === undefined && answer.status >= 300 && answer.status < 400 && vocabulary === 'html';
      if (!okStatus && !refusedByRedirect) {
        failures.push(`${what} → ${answer.status} ${answer.body.slice(0, 160).replace(/\s+/g, ' ')}`);
        continue;
      }
      if (STACK.test(answer.body)) failures.push(`${what} → stack trace or path in body`);
      if (answer.status >= 400 && answer.status < 500 && answer.body.length > 0) {
        try {
          checkVocabulary(answer, vocabulary, what);
        } catch (err) {
          failures.push(
            `${what} → wrong vocabulary (${answer.type}): ${(err as Error).message.split('\n')[0]}`,
          );
        }
      }
    }

    // Huge headers: Node refuses them before any of our code runs.
    const huge = await raw(s.url, 'GET', '/fhir/metadata', { 'x-filler': 'h'.repeat(64 * 1024) });
    expect(huge.status).toBe(431);
    const manyCookies = await raw(s.url, 'GET', '/patients', {
      cookie: Array.from({ length: 3000 }, (_, i) => `c${i}=v`).join('; '),
    });
    expect(manyCookies.status).toBe(431);
    // A bad header value is still a clear 4xx.
    const badHost = await raw(s.url, 'GET', '/fhir/metadata', { host: "'; DROP TABLE users; --" });
    expect(badHost.status).toBeLessThan(500);

    // Open redirects after sign-in (issue 16): every trick lands at home, never on another host.
    for (const trick of [
      '/.//evil.example',
      '/..//evil.example',
      '/%2e//evil.example',
      '/a/..//evil.example/y?z=1',
      '/\\evil.example',
      '/%2f%2fevil.example',
      '/%5cevil.example',
      '/\t/evil.example',
      'https:evil.example',
      '//evil.example',
    ]) {
      const r = await raw(s.url, 'GET', `/login?returnTo=${encodeURIComponent(trick)}`, asClinician);
      if (r.status !== 303 || r.location !== '/')
        failures.push(`returnTo ${trick} → ${r.status} ${r.location}`);
    }
    // Discovery and every URL in it from PUBLIC_URL, whatever Host or X-Forwarded-Host says.
    const forged: Record<string, string>[] = [
      { host: 'evil.example' },
      { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    ];
    for (const h of forged) {
      for (const path of [
        '/fhir/.well-known/openid-configuration',
        '/fhir/.well-known/smart-configuration',
      ]) {
        const r = await raw(s.url, 'GET', path, h);
        if (r.status !== 200 || r.body.includes('evil.example'))
          failures.push(`${path} with ${JSON.stringify(h)}`);
      }
    }

    expect(failures).toEqual([]);
    expect(probes.length).toBeGreaterThan(100);

    // Nothing changed: same rows in every table; Ocean's inbox holds only the refused messages.
    expect(await digest()).toEqual(before);
    const inbox = await t.db.query<{ outcome: string }>('SELECT DISTINCT outcome FROM ocean_inbox');
    expect(inbox.rows.map((r) => r.outcome)).toEqual(['refused']);
    // And the server still works.
    expect((await raw(s.url, 'GET', `/fhir/Patient/${P}`, bearer)).status).toBe(200);
    // The history of the refiled result lists the token's own version only.
    const history = await raw(s.url, 'GET', `/fhir/Observation/${REFILED}/_history`, bearer);
    expect(history.status).toBe(200);
    expect(JSON.parse(history.body)).toMatchObject({ total: 1, entry: [{ response: { etag: 'W/"2"' } }] });
    expect(history.body).not.toContain(setup.patients[1]!);
  });
  it('refuses forged, incomplete and refused answers at the identity provider’s callback, changing nothing', async () => {
    const before = await digest();
    /** A browser that pressed the provider's button: its session row holds state, nonce and PKCE verifier. */
    const pending = async () => {
      const jar = new CookieJar();
      const res = await fetch(`${s.url}/login/sso`, { redirect: 'manual' });
      expect(res.status).toBe(302);
      jar.store(res.headers.getSetCookie(), '/login/sso');
      const state = new URL(res.headers.get('location')!).searchParams.get('state')!;
      return { cookie: jar.header('/login/sso/callback'), state };
    };
    const iss = `iss=${encodeURIComponent(idp.issuer)}`;
    const SQL = encodeURIComponent("'; DROP TABLE users; --");
    const CONTROL = encodeURIComponent('\u0000\u202e<script>alert(1)</script>\r\nSet-Cookie: x=1');
    type Case = [label: string, query: (state: string) => string, withPending: boolean, status: number];
    const cases: Case[] = [
      ['no parameters', () => '', true, 400],
      ['state but no code', (st) => `state=${st}&${iss}`, true, 400],
      ['a code with no sign-in pending in this browser', () => `code=abc&state=abc&${iss}`, false, 400],
      ['forged state', () => `code=abc&state=forged-state-value&${iss}`, true, 401],
      ['no state', () => `code=abc&${iss}`, true, 401],
      ['no iss from a provider that sends it (RFC 9207)', (st) => `code=abc&state=${st}`, true, 401],
      ['duplicated code', (st) => `code=a&code=b&state=${st}&${iss}`, true, 401],
      ['a code the provider never issued', (st) => `code=not-a-real-code&state=${st}&${iss}`, true, 401],
      ['SQL in the code', (st) => `code=${SQL}&state=${st}&${iss}`, true, 401],
      ['huge code', (st) => `code=${'x'.repeat(6000)}&state=${st}&${iss}`, true, 401],
      [
        'provider error access_denied',
        (st) => `error=access_denied&error_description=no&state=${st}&${iss}`,
        true,
        401,
      ],
      ['provider error server_error', (st) => `error=server_error&state=${st}&${iss}`, true, 401],
      [
        'provider error with SQL and markup',
        (st) => `error=${SQL}&error_description=${CONTROL}&state=${st}&${iss}`,
        true,
        401,
      ],
      ['provider error without state', () => `error=access_denied&${iss}`, true, 401],
    ];
    const failures: string[] = [];
    for (const [label, query, withPending, status] of cases) {
      const p = withPending ? await pending() : { cookie: '', state: '' };
      const answer = await raw(
        s.url,
        'GET',
        `/login/sso/callback?${query(p.state)}`,
        p.cookie ? { cookie: p.cookie } : {},
      );
      if (answer.status !== status) failures.push(`${label} → ${answer.status} ${answer.body.slice(0, 160)}`);
      if (!/text\/html/.test(answer.type)) failures.push(`${label} → not a page (${answer.type})`);
      if (STACK.test(answer.body)) failures.push(`${label} → stack trace or path in body`);
      if (/DROP TABLE|<script>/i.test(answer.body)) failures.push(`${label} → reflects the input`);
      // The pending sign-in is spent by any answer: the same browser cannot try again with it.
      if (withPending && query(p.state).includes('code=')) {
        const again = await raw(s.url, 'GET', `/login/sso/callback?code=abc&state=${p.state}&${iss}`, {
          cookie: p.cookie,
        });
        if (again.status !== 400) failures.push(`${label} → pending sign-in not spent (${again.status})`);
      }
    }
    expect(failures).toEqual([]);
    // Nothing but bookkeeping moved (sessions of the pending sign-ins, audit rows).
    expect(await digest()).toEqual(before);
    const refusals = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'ehr.signin' AND outcome = 'failure' AND detail->>'method' = 'identity_provider'`,
    );
    expect(refusals.rows[0]!.n).toBeGreaterThanOrEqual(cases.length);
  });
});
