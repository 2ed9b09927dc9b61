/*
 * The FHIR API over HTTP with access tokens minted by the real authorization server
 * (launch → authorize → token): reads, version headers, access rules, searches, $everything
 * paging, metadata, errors and the audit trail. Negative token cases that no provider would
 * issue (expired, foreign key, alg none …) are signed here.
 */
import type { Bundle, Observation, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteResource, putResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  createTestClient,
  createTestSite,
  createTestUser,
  issueTokens,
  type TestUser,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { signedToken, unsignedToken } from './tokens.ts';

const HCN = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';
let t: TestDatabase;
let server: TestServer;
let base: string;
let user: TestUser;
/** patient/*.read for patient A */
let patientToken: string;
/** openid fhirUser launch patient/Patient.read only */
let patientOnlyToken: string;
/** v2 patient/Observation.rs?category=laboratory plus patient/Patient.rs */
let labOnlyToken: string;
/** user/*.read (launch for A, but user-level access) */
let userToken: string;
let idToken: string;

const patient = (
  id: string,
  family: string,
  given: string,
  hcn: string,
  birthDate: string,
  gender: Patient['gender'],
): Patient => ({
  resourceType: 'Patient',
  id,
  name: [{ family, given: [given] }],
  gender,
  birthDate,
  identifier: [
    {
      system: HCN,
      value: hcn,
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'JHN' }] },
    },
  ],
});

const observation = (id: string, patientId: string, category: string): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  category: [
    { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] },
  ],
  code: { text: `${category} ${id}` },
  subject: { reference: `Patient/${patientId}` },
});

async function get(path: string, token: string | undefined, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, {
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  base = server.config.fhirBaseUrl;
  const db = server.ctx.db;
  user = await createTestUser(server.ctx, { givenName: 'Grace', familyName: 'Hopper' });
  await putResource(db, {
    resourceType: 'Practitioner',
    id: user.practitionerId,
    name: [{ family: 'Hopper', given: ['Grace'] }],
  });
  await putResource(db, { resourceType: 'Practitioner', id: 'other-doctor', name: [{ family: 'Other' }] });
  await putResource(db, patient('pat-a', 'Tremblay', 'Émilie', '1234567890', '1984-03-09', 'female'));
  await putResource(db, patient('pat-b', 'Singh', 'Arjun', '9876543210', '1950-11-30', 'male'));
  await putResource(db, observation('obs-a-lab', 'pat-a', 'laboratory'));
  await putResource(db, observation('obs-a-vital', 'pat-a', 'vital-signs'));
  await putResource(db, observation('obs-b-lab', 'pat-b', 'laboratory'));
  await putResource(db, {
    resourceType: 'Condition',
    id: 'cond-a',
    subject: { reference: 'Patient/pat-a' },
    code: { text: 'Asthma' },
  });

  const client = await createTestClient(server.ctx);
  const { siteNum } = await createTestSite(server.ctx, client.clientId);
  const launch = async (scope: string) => {
    const r = await issueTokens(server, { client, siteNum, user, patientId: 'pat-a', scope });
    expect(r.status).toBe(200);
    return r.body;
  };
  const p = await launch('openid fhirUser launch patient/*.read');
  patientToken = p.access_token!;
  idToken = p.id_token!;
  patientOnlyToken = (await launch('openid fhirUser launch patient/Patient.read')).access_token!;
  labOnlyToken = (await launch('openid launch patient/Patient.rs patient/Observation.rs?category=laboratory'))
    .access_token!;
  userToken = (await launch('openid fhirUser launch user/*.read')).access_token!;
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await t?.drop();
});

describe('metadata', () => {
  it('answers without a token, with SMART security and the provider’s own endpoints, to any origin', async () => {
    const r = await get('/fhir/metadata', undefined, { origin: 'https://ocean.example.test' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.json.resourceType).toBe('CapabilityStatement');
    expect(r.json.fhirVersion).toBe('4.0.1');
    const rest = r.json.rest[0];
    expect(rest.security.service[0].coding[0]).toMatchObject({
      system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
      code: 'SMART-on-FHIR',
    });
    const uris = Object.fromEntries(
      rest.security.extension[0].extension.map((e: { url: string; valueUri: string }) => [e.url, e.valueUri]),
    );
    const smart = (await get('/fhir/.well-known/smart-configuration', undefined)).json;
    expect(uris).toMatchObject({
      authorize: smart.authorization_endpoint,
      token: smart.token_endpoint,
      introspect: smart.introspection_endpoint,
      revoke: smart.revocation_endpoint,
    });
    const types = rest.resource.map((x: { type: string }) => x.type);
    for (const type of [
      'Patient',
      'Practitioner',
      'PractitionerRole',
      'Encounter',
      'AllergyIntolerance',
      'Condition',
      'MedicationRequest',
      'MedicationStatement',
      'Observation',
      'Immunization',
      'Procedure',
      'DocumentReference',
    ]) {
      expect(types).toContain(type);
    }
    const pat = rest.resource.find((x: { type: string }) => x.type === 'Patient');
    expect(pat.operation[0].name).toBe('everything');
    expect(pat.searchParam.map((s: { name: string }) => s.name)).toEqual(
      expect.arrayContaining(['identifier', 'name', 'family', 'given', 'birthdate', 'gender', '_id']),
    );
  });

  it('answers a CORS preflight for FHIR reads', async () => {
    const res = await fetch(`${server.url}/fhir/Patient/pat-a`, {
      method: 'OPTIONS',
      headers: { origin: 'https://ocean.example.test', 'access-control-request-headers': 'authorization' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
  });
});

describe('read and vread', () => {
  it('reads the launch patient with version headers and answers 304 to a current copy', async () => {
    const r = await get('/fhir/Patient/pat-a', patientToken, { origin: 'https://ocean.example.test' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.headers.get('etag')).toBe('W/"1"');
    expect(r.headers.get('last-modified')).toBe(new Date(r.json.meta.lastUpdated).toUTCString());
    expect(r.json).toMatchObject({ resourceType: 'Patient', id: 'pat-a', birthDate: '1984-03-09' });
    expect(r.json.identifier[0].value).toBe('1234567890');

    const again = await get('/fhir/Patient/pat-a', patientToken, { 'if-none-match': 'W/"1"' });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    const stale = await get('/fhir/Patient/pat-a', patientToken, { 'if-none-match': 'W/"0"' });
    expect(stale.status).toBe(200);
    const json = await get('/fhir/Patient/pat-a?_format=json', patientToken);
    expect(json.status).toBe(200);
    const xml = await get('/fhir/Patient/pat-a?_format=xml', patientToken);
    expect(xml.status).toBe(406);
    expect(xml.json.resourceType).toBe('OperationOutcome');
    const acceptXml = await get('/fhir/Patient/pat-a', patientToken, { accept: 'application/fhir+xml' });
    expect(acceptXml.status).toBe(406);
  });

  it('reads old versions and the history; a deleted resource is 410', async () => {
    await putResource(server.ctx.db, {
      ...observation('obs-a-hist', 'pat-a', 'laboratory'),
      status: 'preliminary',
    });
    await putResource(server.ctx.db, observation('obs-a-hist', 'pat-a', 'laboratory'));
    const v1 = await get('/fhir/Observation/obs-a-hist/_history/1', patientToken);
    expect(v1.status).toBe(200);
    expect(v1.json.status).toBe('preliminary');
    expect(v1.headers.get('etag')).toBe('W/"1"');
    const current = await get('/fhir/Observation/obs-a-hist', patientToken);
    expect(current.json.meta.versionId).toBe('2');
    const history = await get('/fhir/Observation/obs-a-hist/_history', patientToken);
    expect(history.json.type).toBe('history');
    expect(history.json.entry.map((e: { resource: Observation }) => e.resource.meta?.versionId)).toEqual([
      '2',
      '1',
    ]);
    expect((await get('/fhir/Observation/obs-a-hist/_history/3', patientToken)).status).toBe(404);
    expect((await get('/fhir/Observation/obs-a-hist/_history/x', patientToken)).status).toBe(404);

    await deleteResource(server.ctx.db, 'Observation', 'obs-a-hist');
    const gone = await get('/fhir/Observation/obs-a-hist', patientToken);
    expect(gone.status).toBe(410);
    expect(gone.json.issue[0].code).toBe('deleted');
    // and a token that cannot see it still gets 404, not 410
    const other = await issueTokens(server, {
      user,
      patientId: 'pat-b',
      scope: 'openid launch patient/*.read',
    });
    expect((await get('/fhir/Observation/obs-a-hist', other.body.access_token!)).status).toBe(404);
  });

  it('refuses ids outside [A-Za-z0-9-.]{1,64} with 400', async () => {
    for (const id of ['a_b', 'x'.repeat(65), 'a%20b', 'a$b']) {
      const r = await get(`/fhir/Patient/${id}`, patientToken);
      expect(r.status, id).toBe(400);
      expect(r.json.resourceType).toBe('OperationOutcome');
    }
  });

  it('is read-only: writes are 405, unknown types 404', async () => {
    const res = await fetch(`${server.url}/fhir/Patient/pat-a`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${patientToken}`, 'content-type': 'application/fhir+json' },
      body: '{"resourceType":"Patient","id":"pat-a"}',
    });
    expect(res.status).toBe(405);
    expect(((await res.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    expect((await get('/fhir/Spaceship/1', patientToken)).status).toBe(404);
  });
});

describe('access', () => {
  it('refuses missing and bad tokens with 401, WWW-Authenticate and an OperationOutcome', async () => {
    const sub = user.id;
    const claims = { sub, scope: 'launch patient/*.read', patient: 'pat-a' };
    const cases: [string, string | undefined][] = [
      ['missing', undefined],
      ['garbage', 'not-a-jwt'],
      ['expired', await signedToken(server, claims, { expiresIn: -120 })],
      ['wrong audience', await signedToken(server, claims, { aud: 'https://elsewhere.example/fhir' })],
      ['wrong issuer', await signedToken(server, claims, { iss: 'https://elsewhere.example/fhir' })],
      ['wrong typ', await signedToken(server, claims, { typ: 'JWT' })],
      ['alg none', unsignedToken(server, claims)],
      ['foreign key', await signedToken(server, claims, { foreignKey: true })],
      ['an id_token', idToken],
      ['tampered', `${patientToken.slice(0, -4)}AAAA`],
    ];
    for (const [name, token] of cases) {
      const r = await get('/fhir/Patient/pat-a', token);
      expect(r.status, name).toBe(401);
      expect(r.headers.get('www-authenticate'), name).toMatch(/^Bearer /);
      expect(r.json.resourceType, name).toBe('OperationOutcome');
      expect(r.text, name).not.toContain('Tremblay');
    }
  });

  it('a patient token sees its compartment and its own Practitioner; anything else answers like an absent resource', async () => {
    expect((await get('/fhir/Observation/obs-a-lab', patientToken)).status).toBe(200);
    expect((await get('/fhir/Condition/cond-a', patientToken)).status).toBe(200);
    expect((await get(`/fhir/Practitioner/${user.practitionerId}`, patientToken)).status).toBe(200);

    const absent = await get('/fhir/Patient/no-such-patient', patientToken);
    const foreign = await get('/fhir/Patient/pat-b', patientToken);
    expect(absent.status).toBe(404);
    expect(foreign.status).toBe(404);
    expect(foreign.json.issue[0].code).toBe(absent.json.issue[0].code);
    expect(foreign.json.issue[0].diagnostics.replace('pat-b', 'X')).toBe(
      absent.json.issue[0].diagnostics.replace('no-such-patient', 'X'),
    );
    expect((await get('/fhir/Observation/obs-b-lab', patientToken)).status).toBe(404);
    expect((await get('/fhir/Practitioner/other-doctor', patientToken)).status).toBe(404);
    expect((await get('/fhir/Patient/pat-b/$everything', patientToken)).status).toBe(404);
  });

  it('limits resource types to the granted scopes', async () => {
    expect((await get('/fhir/Patient/pat-a', patientOnlyToken)).status).toBe(200);
    const denied = await get('/fhir/Observation/obs-a-lab', patientOnlyToken);
    expect(denied.status).toBe(403);
    expect(denied.json.issue[0].code).toBe('forbidden');
    expect((await get('/fhir/Observation?patient=pat-a', patientOnlyToken)).status).toBe(403);
    const everything = await get('/fhir/Patient/pat-a/$everything', patientOnlyToken);
    expect(
      everything.json.entry.map((e: { resource: { resourceType: string } }) => e.resource.resourceType),
    ).toEqual(['Patient']);
    // fhirUser scope: the user's own Practitioner is readable even without a Practitioner scope
    expect((await get(`/fhir/Practitioner/${user.practitionerId}`, patientOnlyToken)).status).toBe(200);
  });

  it('applies a v2 query restriction (patient/Observation.rs?category=laboratory)', async () => {
    expect((await get('/fhir/Observation/obs-a-lab', labOnlyToken)).status).toBe(200);
    expect((await get('/fhir/Observation/obs-a-vital', labOnlyToken)).status).toBe(404);
    const search = await get('/fhir/Observation?patient=pat-a', labOnlyToken);
    expect(search.json.entry.map((e: { resource: Observation }) => e.resource.id)).toEqual(['obs-a-lab']);
    const everything = await get('/fhir/Patient/pat-a/$everything', labOnlyToken);
    expect(everything.json.entry.map((e: { resource: Observation }) => e.resource.id)).toEqual([
      'pat-a',
      'obs-a-lab',
    ]);
  });

  it('a user token sees what the EHR user sees: every chart', async () => {
    expect((await get('/fhir/Patient/pat-b', userToken)).status).toBe(200);
    expect((await get('/fhir/Observation/obs-b-lab', userToken)).status).toBe(200);
    expect((await get('/fhir/Practitioner/other-doctor', userToken)).status).toBe(200);
  });

  it('stops honouring the tokens of a user deactivated after they were issued', async () => {
    const other = await createTestUser(server.ctx);
    const issued = await issueTokens(server, {
      user: other,
      patientId: 'pat-a',
      scope: 'openid launch patient/*.read',
    });
    const token = issued.body.access_token!;
    expect((await get('/fhir/Patient/pat-a', token)).status).toBe(200);
    await server.ctx.db.query('UPDATE users SET active = false WHERE id = $1', [other.id]);
    for (const path of [
      '/fhir/Patient/pat-a',
      '/fhir/Observation?patient=pat-a',
      '/fhir/Patient/pat-a/$everything',
      '/fhir/Patient/pat-a/_history',
    ]) {
      const r = await get(path, token);
      expect(r.status, path).toBe(401);
      expect(r.headers.get('www-authenticate'), path).toMatch(/^Bearer .*invalid_token/);
    }
  });

  it('audits every read, search and $everything with user, client and patient but no bodies', async () => {
    await get('/fhir/Patient/pat-a', patientToken);
    await get('/fhir/Patient?family=tremblay', patientToken);
    await get('/fhir/Patient/pat-a/$everything', patientToken);
    await get('/fhir/Patient/pat-b', patientToken);
    await server.ctx.audit.flush();
    const { rows } = await server.ctx.db.query<{
      action: string;
      outcome: string;
      user_id: string;
      client_id: string;
      patient_id: string;
      entity: string;
      detail: unknown;
    }>(
      `SELECT action, outcome, user_id, client_id, patient_id, entity, detail FROM audit_events WHERE action LIKE 'fhir.%' ORDER BY id`,
    );
    const find = (action: string, entity: string) =>
      rows.filter((r) => r.action === action && r.entity === entity).at(-1);
    expect(find('fhir.read', 'Patient/pat-a')).toMatchObject({
      outcome: 'success',
      user_id: user.id,
      patient_id: 'pat-a',
    });
    expect(find('fhir.read', 'Patient/pat-a')?.client_id).toBeTruthy();
    expect(find('fhir.search', 'Patient?family')).toMatchObject({ outcome: 'success', user_id: user.id });
    expect(find('fhir.everything', 'Patient/pat-a/$everything')).toMatchObject({
      outcome: 'success',
      patient_id: 'pat-a',
    });
    expect(find('fhir.read', 'Patient/pat-b')).toMatchObject({ outcome: 'failure' });
    expect(find('fhir.denied', '/Patient/pat-a')).toMatchObject({ outcome: 'failure' });
    const all = JSON.stringify(rows);
    for (const phi of ['Tremblay', 'tremblay', 'Émilie', '1234567890', '1984-03-09'])
      expect(all).not.toContain(phi);
  });
});

describe('search', () => {
  const ids = (b: Bundle) => (b.entry ?? []).map((e) => e.resource?.id).sort();

  it('finds Patients by identifier, name, family, given, birthdate, gender and _id', async () => {
    const q = async (query: string) => {
      const r = await get(`/fhir/Patient?${query}`, userToken);
      expect(r.status, query).toBe(200);
      expect(r.json.type).toBe('searchset');
      return ids(r.json);
    };
    expect(await q(`identifier=${encodeURIComponent(`${HCN}|1234567890`)}`)).toEqual(['pat-a']);
    expect(await q('identifier=9876543210')).toEqual(['pat-b']);
    expect(await q(`identifier=${encodeURIComponent(`${HCN}|`)}`)).toEqual(['pat-a', 'pat-b']);
    expect(await q('identifier=https://other.example|1234567890')).toEqual([]);
    expect(await q('name=emil')).toEqual(['pat-a']);
    expect(await q('name=EMILIE')).toEqual(['pat-a']);
    expect(await q('family=singh')).toEqual(['pat-b']);
    expect(await q('family:exact=sing')).toEqual([]);
    expect(await q('family:contains=ing')).toEqual(['pat-b']);
    expect(await q('given=arj')).toEqual(['pat-b']);
    expect(await q('name=tremblay,singh')).toEqual(['pat-a', 'pat-b']);
    expect(await q('name=tremblay&gender=male')).toEqual([]);
    expect(await q('birthdate=1984-03-09')).toEqual(['pat-a']);
    expect(await q('birthdate=1984')).toEqual(['pat-a']);
    expect(await q('birthdate=lt1960-01-01')).toEqual(['pat-b']);
    expect(await q('birthdate=ge1984-03')).toEqual(['pat-a']);
    expect(await q('gender=female')).toEqual(['pat-a']);
    expect(await q('_id=pat-b')).toEqual(['pat-b']);
    expect(await q('_id=pat-a,pat-b')).toEqual(['pat-a', 'pat-b']);
  });

  it('refuses malformed search values with 400 and, with handling=strict, unknown parameters', async () => {
    for (const query of [
      'birthdate=yesterday',
      'gender=robot',
      '_id=a_b',
      '_count=-1',
      '_count=abc',
      '_cursor=zzz',
      'name=',
    ]) {
      const r = await get(`/fhir/Patient?${query}`, userToken);
      expect(r.status, query).toBe(400);
      expect(r.json.resourceType).toBe('OperationOutcome');
    }
    const lenient = await get('/fhir/Patient?frobnicate=1&family=singh', userToken);
    expect(ids(lenient.json)).toEqual(['pat-b']);
    expect(lenient.json.link[0].url).not.toContain('frobnicate');
    const strict = await get('/fhir/Patient?frobnicate=1', userToken, { prefer: 'handling=strict' });
    expect(strict.status).toBe(400);
  });

  it('keeps a patient token inside its compartment', async () => {
    const all = await get('/fhir/Patient', patientToken);
    expect(ids(all.json)).toEqual(['pat-a']);
    const byName = await get('/fhir/Patient?family=singh', patientToken);
    expect(ids(byName.json)).toEqual([]);
    const obs = await get('/fhir/Observation?patient=pat-a', patientToken);
    expect(ids(obs.json)).toEqual(['obs-a-lab', 'obs-a-vital']);
    const foreign = await get('/fhir/Observation?patient=pat-b', patientToken);
    expect(foreign.status).toBe(200);
    expect(ids(foreign.json)).toEqual([]);
    const implicit = await get('/fhir/Observation', patientToken);
    expect(ids(implicit.json)).toEqual(['obs-a-lab', 'obs-a-vital']);
    const subject = await get('/fhir/Condition?subject=Patient/pat-a', patientToken);
    expect(ids(subject.json)).toEqual(['cond-a']);
  });

  it('pages with _count and next links', async () => {
    const db = server.ctx.db;
    for (let i = 0; i < 5; i++) await putResource(db, observation(`page-${i}`, 'pat-b', 'laboratory'));
    const seen: string[] = [];
    let url: string | undefined = `${base}/Observation?patient=pat-b&_count=2`;
    let pages = 0;
    while (url) {
      const r = await get(url.slice(server.url.length), userToken);
      expect(r.status).toBe(200);
      seen.push(...r.json.entry.map((e: { resource: Observation }) => e.resource.id));
      url = r.json.link.find((l: { relation: string }) => l.relation === 'next')?.url;
      pages++;
    }
    expect(seen).toEqual(['obs-b-lab', 'page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(pages).toBe(3); // 6 at 2 a page: exactly three pages, no empty fourth
  });
});

describe('$everything', () => {
  async function allPages(path: string, token: string, between?: (page: number) => Promise<void>) {
    const entries: { type: string; id: string; version: string }[] = [];
    const pageSizes: number[] = [];
    let url: string | undefined = path;
    while (url) {
      const r = await get(url, token);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
      const page = (r.json.entry ?? []).map(
        (e: {
          fullUrl: string;
          resource: { resourceType: string; id: string; meta: { versionId: string } };
        }) => {
          expect(e.fullUrl).toBe(`${base}/${e.resource.resourceType}/${e.resource.id}`);
          return { type: e.resource.resourceType, id: e.resource.id, version: e.resource.meta.versionId };
        },
      );
      entries.push(...page);
      pageSizes.push(page.length);
      const next = r.json.link.find((l: { relation: string }) => l.relation === 'next')?.url as
        | string
        | undefined;
      url = next?.slice(server.url.length);
      if (url && between) await between(pageSizes.length);
    }
    return { entries, pageSizes };
  }

  it('returns the Patient first and its whole compartment; pages end exactly at the boundary', async () => {
    const db = server.ctx.db;
    await putResource(db, patient('pat-c', 'Chen', 'Li', '5555555555', '1990-01-01', 'other'));
    // 1 Patient + 9 others = 10 = two full pages of 5
    for (let i = 0; i < 9; i++) await putResource(db, observation(`c-${i}`, 'pat-c', 'laboratory'));
    const { entries, pageSizes } = await allPages('/fhir/Patient/pat-c/$everything?_count=5', userToken);
    expect(pageSizes).toEqual([5, 5]);
    expect(entries[0]).toMatchObject({ type: 'Patient', id: 'pat-c' });
    expect(entries.map((e) => e.id)).toEqual(['pat-c', ...Array.from({ length: 9 }, (_, i) => `c-${i}`)]);
    expect(new Set(entries.map((e) => `${e.type}/${e.id}`)).size).toBe(10);
  });

  it('stays stable while the chart changes between pages: no repeats, no gaps', async () => {
    const db = server.ctx.db;
    await putResource(db, patient('pat-d', 'Diaz', 'Rosa', '4444444444', '1970-07-07', 'female'));
    for (let i = 0; i < 12; i++) await putResource(db, observation(`d-${i}`, 'pat-d', 'laboratory'));
    const { entries } = await allPages(
      '/fhir/Patient/pat-d/$everything?_count=4',
      userToken,
      async (page) => {
        // after each page: a new resource, an update of a seen one and of an unseen one
        await putResource(db, observation(`d-new-${page}`, 'pat-d', 'vital-signs'));
        await putResource(db, { ...observation(`d-${page - 1}`, 'pat-d', 'laboratory'), status: 'amended' });
        await putResource(db, { ...observation(`d-${page + 6}`, 'pat-d', 'laboratory'), status: 'amended' });
      },
    );
    const ids = entries.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(['pat-d', ...Array.from({ length: 12 }, (_, i) => `d-${i}`)]);
    // a resource updated before its page was reached is served in its new version
    expect(entries.find((e) => e.id === 'd-7')?.version).toBe('2');
  });

  it('honours _type, _since and _count limits, and refuses bad parameters', async () => {
    const cond = await get('/fhir/Patient/pat-a/$everything?_type=Condition', patientToken);
    expect(cond.json.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['cond-a']);
    const withPatient = await get('/fhir/Patient/pat-a/$everything?_type=Patient,Condition', patientToken);
    expect(withPatient.json.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
      'pat-a',
      'cond-a',
    ]);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const since = await get(
      `/fhir/Patient/pat-a/$everything?_since=${encodeURIComponent(future)}`,
      patientToken,
    );
    expect(since.json.entry).toEqual([]);
    const big = await get('/fhir/Patient/pat-a/$everything?_count=5000', patientToken);
    expect(big.json.link[0].url).toContain('_count=1000');
    for (const q of ['_since=yesterday', '_type=Spaceship', '_count=x', '_cursor=bad!']) {
      expect((await get(`/fhir/Patient/pat-a/$everything?${q}`, patientToken)).status, q).toBe(400);
    }
  });
});
