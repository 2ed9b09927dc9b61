/*
 * The EHR launch API end to end on a real socket and database (CONTRACT §3.5): an EHR system
 * registered through the admin API gets a SMART Backend Services token with a signed client
 * assertion, asks for a launch with its user and patient, and a browser with no session of ours
 * follows launch_url's launch through authorize to a code; the token, id_token and FHIR reads are
 * those of any launch. Then every refusal, each leaving nothing stored.
 */
import type { Patient, Resource } from '@medplum/fhirtypes';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  askLaunch,
  assertionTokenRequest,
  clientAssertion,
  type EhrKey,
  ehrKey,
  ehrToken,
  registerEhrSystem,
} from '../helpers/ehr-backend.ts';
import {
  authorize,
  CookieJar,
  clientAuth,
  createTestClient,
  createTestSite,
  createTestUser,
  issueTokens,
  pkce,
  signIn,
  type TestClient,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let server: TestServer;
let ocean: TestClient;
let site: { siteNum: string; sek: string };
let otherSite: { siteNum: string; sek: string };
let key: EhrKey;
let ehrId: string;
let token: string;

const patient = (id: string, family = 'Tremblay'): Patient => ({
  resourceType: 'Patient',
  id,
  name: [{ use: 'official', family, given: ['Marie'] }],
  gender: 'female',
  birthDate: '1961-04-12',
});
const chart = (pid: string): Resource[] => [
  {
    resourceType: 'AllergyIntolerance',
    id: `${pid}-allergy`,
    patient: { reference: `Patient/${pid}` },
    code: { text: 'Penicillin' },
  } as Resource,
  {
    resourceType: 'MedicationStatement',
    id: `${pid}-med`,
    status: 'active',
    subject: { reference: `Patient/${pid}` },
    medicationCodeableConcept: { text: 'Metformin 500 mg' },
  } as Resource,
];

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const r = await t.db.query<{ n: unknown }>(sql, params);
  return Number(r.rows[0]!.n);
}

/** What a refused request must not leave behind. */
async function snapshot() {
  return {
    launches: await count('SELECT count(*) AS n FROM launch_contexts'),
    users: await count('SELECT count(*) AS n FROM users'),
    resources: await count('SELECT count(*) AS n FROM fhir_resources'),
  };
}

/** The browser of a clinician who never signed in to us, from launch_url to the code. */
async function redeem(launchUrl: string, jar = new CookieJar(), client = ocean) {
  const launch = new URL(launchUrl).searchParams.get('launch')!;
  const p = pkce();
  const nonce = `n-${Math.random()}`;
  const result = await authorize(
    server.url,
    {
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: client.client.redirect_uris[0],
      scope: 'openid fhirUser profile launch launch/patient patient/*.read',
      state: 's1',
      aud: server.ctx.config.fhirBaseUrl,
      launch,
      nonce,
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
    },
    jar,
  );
  if (!result.code) return { result };
  const tokens = await tokenRequest(
    server.url,
    {
      grant_type: 'authorization_code',
      code: result.code,
      redirect_uri: client.client.redirect_uris[0],
      code_verifier: p.verifier,
    },
    clientAuth(client),
  );
  return { result, tokens, nonce };
}

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  ocean = await createTestClient(server.ctx);
  site = await createTestSite(server.ctx, ocean.clientId, { actions: ['viewMap', 'referDirect'] });
  otherSite = await createTestSite(server.ctx, ocean.clientId);
  key = await ehrKey('ES384');
  const reg = await registerEhrSystem(server.url, {
    name: 'Clinic EMR',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [key.publicJwk] },
    sites: [site.siteNum],
  });
  expect(reg.status).toBe(201);
  ehrId = String(reg.body.client_id);
  token = await ehrToken(server.url, ehrId, key);
});

afterAll(async () => {
  await server?.stop();
  await t?.drop();
});

describe('SMART Backend Services tokens for an EHR system', () => {
  it('registers with a JWK Set and gets a short-lived bearer token for ehr-launch, with an ES384 assertion without iat', async () => {
    expect(ehrId).toMatch(/^ehr-system-[A-Za-z0-9_-]{24}$/);
    const r = await assertionTokenRequest(server.url, ehrId, await clientAssertion(server.url, ehrId, key));
    expect(r.status).toBe(200);
    expect(r.body.token_type).toBe('bearer');
    expect(r.body.expires_in).toBe(300);
    expect(r.body.scope).toBe('ehr-launch');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body.refresh_token).toBeUndefined();
    expect(r.body.id_token).toBeUndefined();
    const claims = decodeJwt(String(r.body.access_token));
    expect(claims.client_id).toBe(ehrId);
    expect(Number(claims.exp) - Number(claims.iat)).toBe(300);
  });

  it('accepts RS384, RS256 and ES256 assertions too', async () => {
    for (const alg of ['RS384', 'RS256', 'ES256'] as const) {
      const k = await ehrKey(alg);
      const reg = await registerEhrSystem(server.url, {
        name: `EMR ${alg}`,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [k.publicJwk] },
      });
      expect(reg.status).toBe(201);
      await expect(ehrToken(server.url, String(reg.body.client_id), k)).resolves.toMatch(/^ey/);
    }
  });

  it('refuses a replayed assertion, a far exp, another audience, another key and another issuer', async () => {
    const once = await clientAssertion(server.url, ehrId, key);
    expect((await assertionTokenRequest(server.url, ehrId, once)).status).toBe(200);
    const replay = await assertionTokenRequest(server.url, ehrId, once);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('invalid_client');

    const far = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key, { expiresIn: 600 }),
    );
    expect(far.status).toBe(401);
    const issuerAud = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key, { aud: server.ctx.config.fhirBaseUrl }),
    );
    expect(issuerAud.status).toBe(401);
    const expired = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key, { expiresIn: -120 }),
    );
    expect(expired.status).toBe(401);
    const stranger = await ehrKey('ES384');
    const wrongKey = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, { ...stranger, kid: key.kid }),
    );
    expect(wrongKey.status).toBe(401);
    const otherIss = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key, { iss: 'someone-else' }),
    );
    expect(otherIss.status).toBe(401);
  });

  it('refuses another scope, another grant type and an unknown assertion type', async () => {
    const scope = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key),
      'system/*.read',
    );
    expect(scope.status).toBe(400);
    expect(scope.body.error).toBe('invalid_scope');
    const grant = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key),
      'ehr-launch',
      'authorization_code',
    );
    expect(grant.status).toBeGreaterThanOrEqual(400);
    expect(grant.status).toBeLessThan(500);
    const unknownGrant = await assertionTokenRequest(
      server.url,
      ehrId,
      await clientAssertion(server.url, ehrId, key),
      'ehr-launch',
      'urn:example:magic',
    );
    expect(unknownGrant.status).toBe(400);
    const type = await tokenRequest(
      server.url,
      {
        grant_type: 'client_credentials',
        scope: 'ehr-launch',
        client_assertion_type: 'urn:example:not-jwt-bearer',
        client_assertion: await clientAssertion(server.url, ehrId, key),
      },
      { clientId: ehrId, method: 'none' },
    );
    expect([400, 401]).toContain(type.status);
  });

  it('a client_secret_basic EHR system gets its secret once, stored hashed', async () => {
    const reg = await registerEhrSystem(server.url, {
      name: 'Hospital HIS',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(reg.status).toBe(201);
    const secret = String(reg.body.client_secret);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = await t.db.query<{ client_secret_hash: string }>(
      'SELECT client_secret_hash FROM ehr_systems WHERE client_id = $1',
      [reg.body.client_id],
    );
    expect(stored.rows[0]!.client_secret_hash).not.toContain(secret);
    const got = await tokenRequest(
      server.url,
      { grant_type: 'client_credentials', scope: 'ehr-launch' },
      { clientId: String(reg.body.client_id), clientSecret: secret },
    );
    expect(got.status).toBe(200);
    const again = await fetch(`${server.url}/admin/api/ehr-systems/${reg.body.client_id}`, {
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });
    expect(JSON.stringify(await again.json())).not.toContain(secret);
  });

  it('an EHR system can never take part in a user authorization', async () => {
    const clinician = await createTestUser(server.ctx);
    const jar = new CookieJar((await signIn(server.ctx, clinician.id)).cookie);
    const result = await authorize(
      server.url,
      {
        response_type: 'code',
        client_id: ehrId,
        redirect_uri: 'https://ehr.example.test/callback',
        scope: 'openid',
        state: 's',
        aud: server.ctx.config.fhirBaseUrl,
      },
      jar,
    );
    expect(result.code).toBeUndefined();
  });
});

describe('POST /ehr-api/launches', () => {
  it('answers launch_url; a browser that never signed in reaches Ocean with a code; token, id_token and FHIR reads are a launch’s', async () => {
    const before = await count("SELECT count(*) AS n FROM audit_events WHERE action = 'launch.created'");
    const asked = await askLaunch(server.url, token, {
      site: site.siteNum,
      action: 'referDirect',
      user: {
        id: 'emr-user-17',
        given_name: 'Ada',
        family_name: 'Lovelace',
        email: 'ada@clinic.example.test',
        identifiers: [
          {
            system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician',
            value: '12345',
          },
        ],
      },
      patient: { resource: patient('emr-p1') },
      resources: chart('emr-p1'),
    });
    expect(asked.status).toBe(201);
    expect(asked.headers.get('cache-control')).toBe('no-store');
    expect(asked.body.expires_in).toBe(60);
    const url = new URL(String(asked.body.launch_url));
    expect(url.origin + url.pathname).toBe('https://ocean.example.test/sso/smart/auth');
    expect(url.searchParams.get('siteNum')).toBe(site.siteNum);
    expect(url.searchParams.get('action')).toBe('referDirect');
    expect(url.searchParams.get('iss')).toBe(server.ctx.config.fhirBaseUrl);
    expect(url.searchParams.get('launch')).toBe(asked.body.launch);

    const { result, tokens, nonce } = await redeem(String(asked.body.launch_url));
    expect(result.code).toBeTruthy();
    // No sign-in page and no consent page on the way.
    expect(result.hops.some((h) => h.includes('/login'))).toBe(false);
    expect(tokens!.status).toBe(200);
    expect(tokens!.body.patient).toBe('emr-p1');
    expect(Buffer.from(String(tokens!.body.oceanSharedEncryptionKey), 'base64').toString('utf8')).toBe(
      site.sek,
    );
    const id = decodeJwt(String(tokens!.body.id_token));
    expect(id.nonce).toBe(nonce);
    expect(id.given_name).toBe('Ada');
    expect(id.family_name).toBe('Lovelace');
    expect(id.email).toBe('ada@clinic.example.test');
    expect(String(id.fhirUser)).toMatch(/\/fhir\/Practitioner\//);

    const at = String(tokens!.body.access_token);
    const read = await fetch(`${server.url}/fhir/Patient/emr-p1`, {
      headers: { authorization: `Bearer ${at}` },
    });
    expect(read.status).toBe(200);
    expect(((await read.json()) as Patient).birthDate).toBe('1961-04-12');
    const everything = await fetch(`${server.url}/fhir/Patient/emr-p1/$everything`, {
      headers: { authorization: `Bearer ${at}` },
    });
    const types = ((await everything.json()) as { entry: { resource: Resource }[] }).entry.map(
      (e) => e.resource.resourceType,
    );
    expect(types).toEqual(['Patient', 'AllergyIntolerance', 'MedicationStatement']);
    const practitioner = await fetch(String(id.fhirUser), { headers: { authorization: `Bearer ${at}` } });
    const pr = (await practitioner.json()) as { identifier?: { value: string }[] };
    expect(pr.identifier?.[0]?.value).toBe('12345');

    expect(await count("SELECT count(*) AS n FROM audit_events WHERE action = 'launch.created'")).toBe(
      before + 1,
    );
    const signin = await t.db.query<{ detail: Record<string, unknown> }>(
      `SELECT detail FROM audit_events WHERE action = 'ehr.signin' AND detail->>'method' = 'ehr-launch' ORDER BY id DESC LIMIT 1`,
    );
    expect(signin.rows[0]?.detail.requested_by).toBe(ehrId);

    // Single use: the same launch again gets no code.
    const again = await redeem(String(asked.body.launch_url));
    expect(again.result.code).toBeUndefined();
  });

  it('one EHR user id is one sub forever (profile changes follow); the same id at another EHR system is another account', async () => {
    const ask = async (tok: string, user: Record<string, unknown>) => {
      const r = await askLaunch(server.url, tok, {
        site: site.siteNum,
        action: 'viewMap',
        user,
        patient: { id: 'emr-p1' },
      });
      expect(r.status).toBe(201);
      const { tokens } = await redeem(String(r.body.launch_url));
      return decodeJwt(String(tokens!.body.id_token));
    };
    const first = await ask(token, { id: 'emr-user-42', name: 'Grace Brewster Hopper' });
    expect(first.given_name).toBe('Grace Brewster');
    expect(first.family_name).toBe('Hopper');
    const renamed = await ask(token, { id: 'emr-user-42', given_name: 'Grace', family_name: 'Murray' });
    expect(renamed.sub).toBe(first.sub);
    expect(renamed.family_name).toBe('Murray');
    const kept = await ask(token, { id: 'emr-user-42' });
    expect(kept.sub).toBe(first.sub);
    expect(kept.family_name).toBe('Murray');

    const k2 = await ehrKey('ES384');
    const other = await registerEhrSystem(server.url, {
      name: 'Other EMR',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [k2.publicJwk] },
    });
    const elsewhere = await ask(await ehrToken(server.url, String(other.body.client_id), k2), {
      id: 'emr-user-42',
    });
    expect(elsewhere.sub).not.toBe(first.sub);
  });

  it("the same browser's next launch for the same user gets its grant at the authorization endpoint, no page", async () => {
    const jar = new CookieJar();
    const ask = () =>
      askLaunch(server.url, token, { site: site.siteNum, action: 'viewMap', user: { id: 'emr-user-5' } });
    const first = await redeem(String((await ask()).body.launch_url), jar);
    expect(first.result.code).toBeTruthy();
    expect(first.result.hops.some((h) => h.includes('/interaction/'))).toBe(true);
    const second = await redeem(String((await ask()).body.launch_url), jar);
    expect(second.result.code).toBeTruthy();
    expect(second.result.hops.some((h) => h.includes('/interaction/'))).toBe(false);
    expect(decodeJwt(String(second.tokens!.body.id_token)).sub).toBe(
      decodeJwt(String(first.tokens!.body.id_token)).sub,
    );
    // Another user's launch in that browser: signed in as that user, never the first one.
    const other = await askLaunch(server.url, token, {
      site: site.siteNum,
      action: 'viewMap',
      user: { id: 'emr-user-6' },
    });
    const third = await redeem(String(other.body.launch_url), jar);
    expect(decodeJwt(String(third.tokens!.body.id_token)).sub).not.toBe(
      decodeJwt(String(first.tokens!.body.id_token)).sub,
    );
  });

  it("an EHR system's user cannot be given a local password (a second way in the EHR does not control)", async () => {
    await askLaunch(server.url, token, {
      site: site.siteNum,
      action: 'viewMap',
      user: { id: 'emr-user-pw' },
    });
    const { rows } = await t.db.query<{ user_id: string }>(
      'SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2',
      [`ehr-system:${ehrId}`, 'emr-user-pw'],
    );
    const r = await fetch(`${server.url}/admin/api/users/${rows[0]!.user_id}/password`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'a long enough password' }),
    });
    expect(r.status).toBe(409);
    const user = await t.db.query<{ password_hash: string | null }>(
      'SELECT password_hash FROM users WHERE id = $1',
      [rows[0]!.user_id],
    );
    expect(user.rows[0]!.password_hash).toBeNull();
  });

  it('a client that is not pre-authorized shows the launched user its consent page; Allow gives the code', async () => {
    const shy = await createTestClient(server.ctx, { pre_authorized: false });
    const shySite = await createTestSite(server.ctx, shy.clientId);
    const reg = await registerEhrSystem(server.url, {
      name: 'EMR for a shy client',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [key.publicJwk] },
      sites: [shySite.siteNum],
    });
    const shyToken = await ehrToken(server.url, String(reg.body.client_id), key);
    const asked = await askLaunch(server.url, shyToken, {
      site: shySite.siteNum,
      action: 'viewMap',
      user: { id: 'emr-user-shy', given_name: 'Shy', family_name: 'Consent' },
    });
    const jar = new CookieJar();
    const { result } = await redeem(String(asked.body.launch_url), jar, shy);
    expect(result.stoppedAt?.status).toBe(200);
    const page = result.stoppedAt!.body;
    const action = new URL(/action="([^"]+)"/.exec(page)![1]!, server.url);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    const posted = await fetch(action, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header(action.pathname), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, decision: 'allow' }).toString(),
    });
    jar.store(posted.headers.getSetCookie(), action.pathname);
    const resume = new URL(posted.headers.get('location')!, action);
    const back = await fetch(resume, {
      redirect: 'manual',
      headers: { cookie: jar.header(resume.pathname) },
    });
    const done = new URL(back.headers.get('location')!, resume);
    expect(done.origin).toBe('https://ocean.example.test');
    expect(done.searchParams.get('code')).toBeTruthy();
  });

  it('a launch for sign-on only carries no patient and grants no patient scope', async () => {
    const r = await askLaunch(server.url, token, {
      site: site.siteNum,
      action: 'viewMap',
      user: { id: 'emr-user-9' },
    });
    expect(r.status).toBe(201);
    const { tokens } = await redeem(String(r.body.launch_url));
    expect(tokens!.status).toBe(200);
    expect(tokens!.body.patient).toBeUndefined();
    expect(tokens!.body.oceanSharedEncryptionKey).toBeTruthy();
    expect(String(tokens!.body.scope)).not.toMatch(/patient\//);
    expect(decodeJwt(String(tokens!.body.access_token)).patient).toBeUndefined();
  });

  it('a browser signed in here as someone else gets a page refusing the launch, and no code', async () => {
    const r = await askLaunch(server.url, token, {
      site: site.siteNum,
      action: 'viewMap',
      user: { id: 'emr-user-77' },
    });
    const clinician = await createTestUser(server.ctx);
    const jar = new CookieJar((await signIn(server.ctx, clinician.id)).cookie);
    const { result } = await redeem(String(r.body.launch_url), jar);
    expect(result.code).toBeUndefined();
    expect(result.stoppedAt?.status).toBe(403);
    expect(result.stoppedAt?.body).toMatch(/another person/);
    // The launch is still unused: the right browser can still use it.
    const right = await redeem(String(r.body.launch_url));
    expect(right.result.code).toBeTruthy();
  });

  it('refusals: 401 without a valid token, 403 for other tokens and sites, 400 naming the field, 404 for an unknown patient — nothing stored', async () => {
    const before = await snapshot();
    const good = { site: site.siteNum, action: 'viewMap', user: { id: 'u-refused' } };
    expect((await askLaunch(server.url, undefined, good)).status).toBe(401);
    const bad = await askLaunch(server.url, 'not.a.jwt', good);
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const forged = `${token.slice(0, -4)}AAAA`;
    expect((await askLaunch(server.url, forged, good)).status).toBe(401);

    // A clinician's access token is valid here, but not for asking launches.
    const clinicianToken = await issueTokens(server, {
      client: ocean,
      siteNum: site.siteNum,
      patientId: 'emr-p1',
    });
    const notEhr = await askLaunch(server.url, String(clinicianToken.body.access_token), good);
    expect(notEhr.status).toBe(403);
    expect(notEhr.body.error).toBe('insufficient_scope');

    const otherSiteAsk = await askLaunch(server.url, token, { ...good, site: otherSite.siteNum });
    expect(otherSiteAsk.status).toBe(403);

    const cases: [unknown, number, RegExp][] = [
      [{ ...good, site: 'no-such-site' }, 403, /may not launch/],
      [{ ...good, action: 'noSuchAction' }, 400, /action/],
      [{ ...good, action: 42 }, 400, /action/],
      [{ ...good, user: {} }, 400, /user\.id/],
      [{ ...good, user: { id: 'x', email: 'not-an-email' } }, 400, /user\.email/],
      [{ ...good, user: 'x' }, 400, /user/],
      [{ site: site.siteNum, user: { id: 'x' } }, 400, /action/],
      [{ ...good, extra: true }, 400, /extra/],
      [{ ...good, patient: { id: 'no-such-patient' } }, 404, /patient\.id/],
      [{ ...good, patient: { id: "x'; DROP TABLE users; --" } }, 400, /patient\.id/],
      [{ ...good, patient: { id: 'a', resource: patient('a') } }, 400, /patient/],
      [
        { ...good, patient: { resource: { resourceType: 'Observation', id: 'o' } } },
        400,
        /patient\.resource/,
      ],
      [{ ...good, patient: { resource: { resourceType: 'Patient' } } }, 400, /patient\.resource.*id/],
      [{ ...good, resources: chart('emr-p1') }, 400, /resources.*patient/],
      [
        { ...good, patient: { resource: patient('emr-p9') }, resources: chart('emr-p1') },
        400,
        /resources\[0\].*does not belong/,
      ],
      [
        { ...good, patient: { resource: patient('emr-p9') }, resources: [{ resourceType: 'Nope', id: 'x' }] },
        400,
        /resources\[0\]/,
      ],
      [
        {
          ...good,
          patient: { resource: patient('emr-p9') },
          resources: [...chart('emr-p9'), chart('emr-p9')[0]],
        },
        400,
        /resources\[2\].*twice/,
      ],
      [{ ...good, patient: { resource: patient('emr-p9') }, resources: 'x' }, 400, /resources/],
      [[good], 400, /object/],
    ];
    for (const [body, status, message] of cases) {
      const r = await askLaunch(server.url, token, body);
      expect({ status: r.status, body }).toEqual({ status, body });
      expect(String(r.body.error_description)).toMatch(message);
    }
    // A chart entry stored for another patient is refused, not moved.
    const moved = await askLaunch(server.url, token, {
      ...good,
      patient: { resource: patient('emr-p9') },
      resources: [{ ...chart('emr-p1')[0], patient: { reference: 'Patient/emr-p9' } }],
    });
    expect(moved.status).toBe(400);
    expect(String(moved.body.error_description)).toMatch(/another patient/);

    expect((await askLaunch(server.url, token, '{"site": ', 'application/json')).status).toBe(400);
    expect((await askLaunch(server.url, token, 'site=1', 'application/x-www-form-urlencoded')).status).toBe(
      415,
    );
    const huge = await askLaunch(server.url, token, { ...good, pad: 'x'.repeat(11 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    expect(
      (await fetch(`${server.url}/ehr-api/launches`, { headers: { authorization: `Bearer ${token}` } }))
        .status,
    ).toBe(405);
    // The clinician's launch above wrote its own rows; the refused requests wrote none.
    const after = await snapshot();
    expect(after.users).toBe(before.users + 1);
    expect(after.resources).toBe(before.resources);
    expect(after.launches).toBe(before.launches + 1);
  });

  it('removing the EHR system ends its tokens at once; a new secret or key ends the old ones', async () => {
    const k = await ehrKey('ES384');
    const reg = await registerEhrSystem(server.url, {
      name: 'Short-lived EMR',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [k.publicJwk] },
    });
    const id = String(reg.body.client_id);
    const tok = await ehrToken(server.url, id, k);
    const launchBody = { site: site.siteNum, action: 'viewMap', user: { id: 'u1' } };
    expect((await askLaunch(server.url, tok, launchBody)).status).toBe(201);
    const unused = await askLaunch(server.url, tok, launchBody);

    // New keys: the old token stops counting.
    await new Promise((r) => setTimeout(r, 1100));
    const k2 = await ehrKey('ES384');
    const patch = await fetch(`${server.url}/admin/api/ehr-systems/${id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jwks: { keys: [k2.publicJwk] } }),
    });
    expect(patch.status).toBe(200);
    expect((await askLaunch(server.url, tok, launchBody)).status).toBe(401);
    await expect(ehrToken(server.url, id, k)).rejects.toThrow(/401/);
    const tok2 = await ehrToken(server.url, id, k2);
    expect((await askLaunch(server.url, tok2, launchBody)).status).toBe(201);

    const del = await fetch(`${server.url}/admin/api/ehr-systems/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });
    expect(del.status).toBe(204);
    expect((await askLaunch(server.url, tok2, launchBody)).status).toBe(401);
    // Its unused launches went with it.
    const { result } = await redeem(String(unused.body.launch_url));
    expect(result.code).toBeUndefined();
    const audit = await count(
      "SELECT count(*) AS n FROM audit_events WHERE action LIKE 'admin.ehr_system.%' AND client_id = $1",
      [id],
    );
    expect(audit).toBe(3);
  });
});
