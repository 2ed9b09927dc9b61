/*
 * POST /fhir/$process-message end to end on the real app and database: integration registration,
 * Basic and client_credentials Bearer authentication, filing into the chart (and $everything,
 * patient-scoped reads, ServiceRequest?patient=), updates with history, duplicates, unmatched
 * messages and their administration, refused messages, hostile input, and concurrent deliveries
 * of one message to two instances.
 */
import type { Bundle, DocumentReference, Patient, ServiceRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { issueTokens } from '../helpers/oidc.ts';
import { capturedLogger, startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { HCN_SYSTEM, referralMessage } from './messages.ts';

let t: TestDatabase;
let server: TestServer;
let other: TestServer;
let creds: {
  id: string;
  username: string;
  password: string;
  client_id: string;
  client_secret: string;
  endpoint: string;
};

const admin = () => ({ Authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
const basic = (c = creds) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

const patient = (id: string, hcn: string, version?: string): Patient => ({
  resourceType: 'Patient',
  id,
  name: [{ family: 'Tremblay', given: ['Marie'] }],
  birthDate: '1961-04-12',
  identifier: [
    {
      system: HCN_SYSTEM,
      value: hcn,
      ...(version
        ? {
            extension: [
              {
                url: 'http://ehealthontario.ca/fhir/StructureDefinition/ext-id-health-card-version-code',
                valueString: version,
              },
            ],
          }
        : {}),
    },
  ],
});

function post(s: TestServer, body: unknown, auth = basic(), type = 'application/fhir+json') {
  return request(s.app)
    .post('/fhir/$process-message')
    .set('Authorization', auth)
    .set('Content-Type', type)
    .send(typeof body === 'string' ? body : JSON.stringify(body));
}

async function inbox(outcome?: string) {
  const r = await request(server.app)
    .get(`/admin/api/ocean-messages${outcome ? `?outcome=${outcome}` : ''}`)
    .set(admin());
  expect(r.status).toBe(200);
  return r.body.messages as {
    id: string;
    outcome: string;
    problem: string | null;
    patient_id: string | null;
    message_id: string;
  }[];
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const r = await t.db.query<{ n: unknown }>(sql, params);
  return Number(r.rows[0]!.n);
}

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  other = await startTestServer(await t.connectAnother());
  await putResource(t.db, patient('pat-a', '1234567890', 'AB'));
  await putResource(t.db, patient('pat-b', '9876543210'));
  await putResource(t.db, patient('twin-1', '5555555555'));
  await putResource(t.db, patient('twin-2', '5555555555'));
  const r = await request(server.app)
    .post('/admin/api/ocean-integrations')
    .set(admin())
    .send({ site_num: '1234' });
  expect(r.status).toBe(201);
  creds = r.body;
}, 60_000);

afterAll(async () => {
  await other?.stop();
  await server?.stop();
  await t?.drop();
});

describe('integration registration', () => {
  it('answers 201 with the endpoint and four secrets, shown once and stored hashed', async () => {
    expect(creds.endpoint).toBe(`${server.config.fhirBaseUrl}/$process-message`);
    for (const k of ['username', 'password', 'client_id', 'client_secret'] as const)
      expect(creds[k]).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    const got = await request(server.app).get(`/admin/api/ocean-integrations/${creds.id}`).set(admin());
    expect(got.status).toBe(200);
    expect(got.body.password).toBeUndefined();
    expect(got.body.client_secret).toBeUndefined();
    const row = await t.db.query<Record<string, string>>('SELECT * FROM ocean_integrations WHERE id = $1', [
      creds.id,
    ]);
    expect(JSON.stringify(row.rows[0])).not.toContain(creds.password);
    expect(JSON.stringify(row.rows[0])).not.toContain(creds.client_secret);
  });

  it('refuses a second integration for the same site, bad input, and no admin token', async () => {
    expect(
      (
        await request(server.app)
          .post('/admin/api/ocean-integrations')
          .set(admin())
          .send({ site_num: '1234' })
      ).status,
    ).toBe(409);
    const bad = await request(server.app)
      .post('/admin/api/ocean-integrations')
      .set(admin())
      .send({ site_num: "1'; DROP TABLE x" });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_request');
    expect(
      (await request(server.app).post('/admin/api/ocean-integrations').send({ site_num: '9' })).status,
    ).toBe(401);
    expect(
      (await request(server.app).patch(`/admin/api/ocean-integrations/${creds.id}`).set(admin()).send({}))
        .status,
    ).toBe(405);
  });

  it('stores Ocean outbound credentials encrypted and never returns the secret', async () => {
    const r = await request(server.app)
      .post('/admin/api/ocean-integrations')
      .set(admin())
      .send({
        site_num: 'enc-1',
        ocean_oauth: {
          token_url: 'https://ocean.example.test/svc/oauth2/token',
          client_id: 'x',
          client_secret: 'very-secret-value',
        },
      });
    expect(r.status).toBe(201);
    expect(r.body.ocean_oauth).toEqual({
      token_url: 'https://ocean.example.test/svc/oauth2/token',
      client_id: 'x',
    });
    const row = await t.db.query<Record<string, string>>(
      'SELECT outbound_secret_encrypted FROM ocean_integrations WHERE id = $1',
      [r.body.id],
    );
    expect(row.rows[0]!.outbound_secret_encrypted).toMatch(/^v1\./);
    expect(JSON.stringify(r.body)).not.toContain('very-secret-value');
    expect(
      (await request(server.app).delete(`/admin/api/ocean-integrations/${r.body.id}`).set(admin())).status,
    ).toBe(204);
  });
});

describe('discovery', () => {
  it('the CapabilityStatement names $process-message', async () => {
    const r = await request(server.app).get('/fhir/metadata');
    const ops = (r.body.rest[0].operation as { name: string }[]).map((o) => o.name);
    expect(ops).toContain('process-message');
  });
});

describe('authentication', () => {
  it('answers 401 without credentials or with wrong ones, and stores nothing', async () => {
    const before = await count('SELECT count(*) AS n FROM ocean_inbox');
    const m = referralMessage({ patientRef: 'pat-a' });
    const none = await request(server.app)
      .post('/fhir/$process-message')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify(m));
    expect(none.status).toBe(401);
    expect(none.body.resourceType).toBe('OperationOutcome');
    expect(none.headers['www-authenticate']).toContain('Basic');
    expect((await post(server, m, basic({ ...creds, password: 'wrong' }))).status).toBe(401);
    expect((await post(server, m, 'Bearer not.a.jwt')).status).toBe(401);
    expect(await count('SELECT count(*) AS n FROM ocean_inbox')).toBe(before);
  });

  it('accepts a client_credentials token of the integration, and refuses a clinician token', async () => {
    const tok = await request(server.app)
      .post('/fhir/token')
      .auth(creds.client_id, creds.client_secret)
      .type('form')
      .send({ grant_type: 'client_credentials', scope: 'system/MessageHeader.c user/*.read' });
    expect(tok.status, JSON.stringify(tok.body)).toBe(200);
    expect(tok.body.scope).toBe('system/MessageHeader.c');
    const ok = await post(
      server,
      referralMessage({ patientRef: 'pat-b' }),
      `Bearer ${tok.body.access_token}`,
    );
    expect(ok.status).toBe(200);
    // The integration token reads no FHIR.
    const read = await request(server.app)
      .get('/fhir/Patient/pat-b')
      .set('Authorization', `Bearer ${tok.body.access_token}`);
    expect([401, 403]).toContain(read.status);

    const accessToken = (await issueTokens(server, { patientId: 'pat-a' })).body.access_token!;
    const refused = await post(server, referralMessage({ patientRef: 'pat-a' }), `Bearer ${accessToken}`);
    expect(refused.status).toBe(403);
    expect(refused.body.resourceType).toBe('OperationOutcome');
  });
});

describe('filing', () => {
  it('files a notify-add message into the matched chart, readable in $everything and ServiceRequest?patient=', async () => {
    const m = referralMessage({
      referralId: 'REF-FILE-1',
      patientRef: 'pat-a',
      hcn: '1234567890',
      versionCode: 'AB',
      attachments: 2,
    });
    const r = await post(server, m);
    expect(r.status).toBe(200);
    expect(r.body.resourceType).toBe('OperationOutcome');
    const [filed] = (await inbox('filed')).filter(
      (i) => i.message_id === (m.entry![0]!.resource as { id: string }).id,
    );
    expect(filed?.patient_id).toBe('pat-a');

    const accessToken = (await issueTokens(server, { patientId: 'pat-a' })).body.access_token!;
    const auth = { Authorization: `Bearer ${accessToken}` };
    const search = await request(server.app).get('/fhir/ServiceRequest?patient=pat-a').set(auth);
    expect(search.status).toBe(200);
    const srs = (search.body as Bundle).entry!.map((e) => e.resource as ServiceRequest);
    const sr = srs.find((s) => s.identifier?.some((i) => i.value === 'REF-FILE-1'))!;
    expect(sr.subject?.reference).toBe('Patient/pat-a');
    expect(sr.status).toBe('active');
    expect(sr.requester?.reference).toMatch(/^#c\d+$/);
    expect(sr.contained?.some((c) => c.resourceType === 'Practitioner')).toBe(true);
    for (const info of sr.supportingInfo ?? []) {
      const read = await request(server.app).get(`/fhir/${info.reference}`).set(auth);
      expect(read.status, info.reference).toBe(200);
    }
    const everything = await request(server.app).get('/fhir/Patient/pat-a/$everything').set(auth);
    const types = (everything.body as Bundle).entry!.map((e) => e.resource!.resourceType);
    expect(types).toContain('ServiceRequest');
    expect(types).toContain('QuestionnaireResponse');
    expect(types.filter((x) => x === 'DocumentReference').length).toBeGreaterThanOrEqual(3);
    // another patient's token does not see it
    const bToken = (await issueTokens(server, { patientId: 'pat-b' })).body.access_token!;
    const hidden = await request(server.app)
      .get(`/fhir/ServiceRequest/${sr.id}`)
      .set('Authorization', `Bearer ${bToken}`);
    expect(hidden.status).toBe(404);
  });

  it('updates the same referral on later messages, with history; revoke too', async () => {
    const first = await post(
      server,
      referralMessage({ referralId: 'REF-UPD', patientRef: 'pat-a', event: 'add-service-request' }),
    );
    expect(first.status).toBe(200);
    const upd = await post(
      server,
      referralMessage({
        referralId: 'REF-UPD',
        patientRef: 'pat-a',
        event: 'notify-update-service-request',
        status: 'on-hold',
        note: '<p>Booked for <i>Dec 3</i></p>',
      }),
    );
    expect(upd.status).toBe(200);
    const rev = await post(
      server,
      referralMessage({
        referralId: 'REF-UPD',
        patientRef: 'pat-a',
        event: 'notify-revoke-service-request',
        status: 'revoked',
      }),
    );
    expect(rev.status).toBe(200);
    const row = await t.db.query<{ service_request_id: string }>(
      'SELECT service_request_id FROM ocean_referrals WHERE referral_id = $1',
      ['REF-UPD'],
    );
    const srId = row.rows[0]!.service_request_id;
    const history = await t.db.query<{ status: string }>(
      `SELECT resource->>'status' AS status FROM fhir_resource_history WHERE resource_type = 'ServiceRequest' AND id = $1 ORDER BY version_id`,
      [srId],
    );
    expect(history.rows.map((h) => h.status)).toEqual(['active', 'on-hold', 'revoked']);
    expect(
      await count(
        `SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'ServiceRequest' AND resource #>> '{identifier,0,value}' = 'REF-UPD'`,
      ),
    ).toBe(1);
  });

  it('ignores a message older than the one already applied', async () => {
    await post(
      server,
      referralMessage({
        referralId: 'REF-OLD',
        patientRef: 'pat-a',
        status: 'completed',
        timestamp: '2026-11-25T10:00:00Z',
      }),
    );
    const late = await post(
      server,
      referralMessage({
        referralId: 'REF-OLD',
        patientRef: 'pat-a',
        status: 'active',
        timestamp: '2026-11-24T10:00:00Z',
      }),
    );
    expect(late.status).toBe(200);
    const sr = await t.db.query<{ status: string }>(
      `SELECT f.resource->>'status' AS status FROM fhir_resources f JOIN ocean_referrals r ON r.service_request_id = f.id
        WHERE f.resource_type = 'ServiceRequest' AND r.referral_id = 'REF-OLD'`,
    );
    expect(sr.rows[0]!.status).toBe('completed');
  });

  it('matches by health card when there is no external reference, respecting the version code', async () => {
    expect(
      (await post(server, referralMessage({ referralId: 'REF-HCN', hcn: '1234-567-890', versionCode: 'AB' })))
        .status,
    ).toBe(200);
    expect(
      await count(
        `SELECT count(*) AS n FROM ocean_referrals WHERE referral_id = 'REF-HCN' AND patient_id = 'pat-a'`,
      ),
    ).toBe(1);
    expect(
      (await post(server, referralMessage({ referralId: 'REF-HCN-V', hcn: '1234567890', versionCode: 'ZZ' })))
        .status,
    ).toBe(200);
    expect(await count(`SELECT count(*) AS n FROM ocean_referrals WHERE referral_id = 'REF-HCN-V'`)).toBe(0);
  });

  it('answers 200 to the same message twice and changes nothing the second time', async () => {
    const m = referralMessage({ referralId: 'REF-DUP', patientRef: 'pat-b' });
    expect((await post(server, m)).status).toBe(200);
    const versions = await count(`SELECT count(*) AS n FROM fhir_resource_history`);
    const again = await post(server, m);
    expect(again.status).toBe(200);
    expect(again.body.issue[0].diagnostics).toContain('already received');
    expect(await count(`SELECT count(*) AS n FROM fhir_resource_history`)).toBe(versions);
    expect(
      await count(`SELECT count(*) AS n FROM ocean_inbox WHERE message_id = $1`, [
        (m.entry![0]!.resource as { id: string }).id,
      ]),
    ).toBe(1);
  });

  it('files a message delivered to two instances at once exactly once', async () => {
    const m = referralMessage({ referralId: 'REF-RACE', patientRef: 'pat-b' });
    const answers = await Promise.all([post(server, m), post(other, m), post(server, m), post(other, m)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(await count(`SELECT count(*) AS n FROM ocean_inbox WHERE referral_id = 'REF-RACE'`)).toBe(1);
    const srId = (
      await t.db.query<{ s: string }>(
        `SELECT service_request_id AS s FROM ocean_referrals WHERE referral_id = 'REF-RACE'`,
      )
    ).rows[0]!.s;
    expect(
      await count(
        `SELECT count(*) AS n FROM fhir_resource_history WHERE resource_type = 'ServiceRequest' AND id = $1`,
        [srId],
      ),
    ).toBe(1);
  });

  it('applies different messages of one referral delivered concurrently, each once', async () => {
    const msgs = ['active', 'on-hold', 'completed'].map((status, i) =>
      referralMessage({
        referralId: 'REF-RACE-2',
        patientRef: 'pat-b',
        status,
        timestamp: `2026-11-26T10:00:0${i}Z`,
      }),
    );
    const answers = await Promise.all(msgs.map((m, i) => post(i % 2 ? other : server, m)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    const sr = await t.db.query<{ status: string }>(
      `SELECT f.resource->>'status' AS status FROM fhir_resources f JOIN ocean_referrals r ON r.service_request_id = f.id
        WHERE f.resource_type = 'ServiceRequest' AND r.referral_id = 'REF-RACE-2'`,
    );
    expect(sr.rows[0]!.status).toBe('completed');
  });
});

describe('unmatched messages', () => {
  it('keeps a message that matches no chart, files nothing, and lets an admin match it', async () => {
    const m = referralMessage({ referralId: 'REF-UNM', hcn: '1111111111' });
    expect((await post(server, m)).status).toBe(200);
    expect(await count(`SELECT count(*) AS n FROM ocean_referrals WHERE referral_id = 'REF-UNM'`)).toBe(0);
    const item = (await inbox('unmatched')).find(
      (i) => i.message_id === (m.entry![0]!.resource as { id: string }).id,
    )!;
    expect(item.problem).toContain('health card');
    const bad = await request(server.app)
      .post(`/admin/api/ocean-messages/${item.id}/match`)
      .set(admin())
      .send({ patient_id: 'nobody' });
    expect(bad.status).toBe(404);
    const ok = await request(server.app)
      .post(`/admin/api/ocean-messages/${item.id}/match`)
      .set(admin())
      .send({ patient_id: 'pat-b' });
    expect(ok.status).toBe(200);
    expect(ok.body.outcome).toBe('filed');
    expect(
      await count(
        `SELECT count(*) AS n FROM ocean_referrals WHERE referral_id = 'REF-UNM' AND patient_id = 'pat-b'`,
      ),
    ).toBe(1);
    const twice = await request(server.app)
      .post(`/admin/api/ocean-messages/${item.id}/match`)
      .set(admin())
      .send({ patient_id: 'pat-b' });
    expect(twice.status).toBe(409);
  });

  it('never files on a health card two patients share, and lets an admin dismiss it', async () => {
    const m = referralMessage({ referralId: 'REF-TWIN', hcn: '5555555555' });
    expect((await post(server, m)).status).toBe(200);
    const item = (await inbox('unmatched')).find(
      (i) => i.message_id === (m.entry![0]!.resource as { id: string }).id,
    )!;
    expect(item.problem).toContain('several');
    const d = await request(server.app).post(`/admin/api/ocean-messages/${item.id}/dismiss`).set(admin());
    expect(d.status).toBe(200);
    expect(d.body.outcome).toBe('dismissed');
  });

  it('does not move a filed referral into another chart', async () => {
    await post(server, referralMessage({ referralId: 'REF-MOVE', patientRef: 'pat-a' }));
    expect(
      (await post(server, referralMessage({ referralId: 'REF-MOVE', patientRef: 'pat-b' }))).status,
    ).toBe(200);
    expect(
      await count(
        `SELECT count(*) AS n FROM ocean_referrals WHERE referral_id = 'REF-MOVE' AND patient_id = 'pat-a'`,
      ),
    ).toBe(1);
    expect((await inbox('unmatched')).some((i) => i.problem?.includes('another chart'))).toBe(true);
  });
});

describe('refused messages', () => {
  const broken: [string, () => unknown][] = [
    ['not JSON', () => '{"resourceType": "Bundle", '],
    ['not a Bundle', () => ({ resourceType: 'Patient' })],
    ['not a message', () => ({ ...referralMessage(), type: 'collection' })],
    [
      'MessageHeader not first',
      () => {
        const m = referralMessage();
        m.entry!.reverse();
        return m;
      },
    ],
    [
      'unknown event system',
      () => {
        const m = referralMessage();
        (m.entry![0]!.resource as { eventCoding: { system: string } }).eventCoding.system =
          'http://example.org/events';
        return m;
      },
    ],
    [
      'focus that does not resolve',
      () => {
        const m = referralMessage();
        (m.entry![0]!.resource as { focus: { reference: string }[] }).focus = [
          { reference: 'urn:uuid:nothing' },
        ];
        return m;
      },
    ],
    [
      'ServiceRequest without the referral id',
      () => {
        const m = referralMessage({ patientRef: 'pat-a' });
        (m.entry!.at(-1)!.resource as ServiceRequest).identifier = [];
        return m;
      },
    ],
    [
      'dangling urn:uuid reference',
      () => {
        const m = referralMessage({ patientRef: 'pat-a' });
        (m.entry!.at(-1)!.resource as ServiceRequest).requester = {
          reference: 'urn:uuid:00000000-0000-0000-0000-000000000000',
        };
        return m;
      },
    ],
    ['NUL character', () => referralMessage({ patientRef: 'pat-a', note: 'a\u0000b' })],
  ];
  for (const [name, body] of broken) {
    it(`answers 400 + OperationOutcome for ${name}, keeps it as refused, files nothing`, async () => {
      const srs = await count(
        `SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'ServiceRequest'`,
      );
      const refused = await count(`SELECT count(*) AS n FROM ocean_inbox WHERE outcome = 'refused'`);
      const r = await post(server, body());
      expect(r.status).toBe(400);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0].diagnostics.length).toBeGreaterThan(5);
      expect(
        await count(`SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'ServiceRequest'`),
      ).toBe(srs);
      expect(await count(`SELECT count(*) AS n FROM ocean_inbox WHERE outcome = 'refused'`)).toBe(
        refused + 1,
      );
    });
  }

  it('answers 415 for another content type and 405 for GET', async () => {
    expect((await post(server, referralMessage(), basic(), 'text/plain')).status).toBe(415);
    const get = await request(server.app).get('/fhir/$process-message').set('Authorization', basic());
    expect(get.status).toBe(405);
    expect(get.body.resourceType).toBe('OperationOutcome');
  });

  it('answers 413 for a body over the limit', async () => {
    const r = await post(server, JSON.stringify(referralMessage({ padTo: 1_200_000 })));
    expect(r.status).toBe(413);
  });
});

describe('rotation and revocation', () => {
  it('rotating ends the old Basic credentials and Bearer tokens; deleting ends the new ones', async () => {
    const r = await request(server.app)
      .post('/admin/api/ocean-integrations')
      .set(admin())
      .send({ site_num: 'rot-1' });
    const c = r.body;
    const tok = await request(server.app)
      .post('/fhir/token')
      .auth(c.client_id, c.client_secret)
      .type('form')
      .send({ grant_type: 'client_credentials', scope: 'system/MessageHeader.c' });
    expect(tok.status).toBe(200);
    const rotated = await request(server.app)
      .post(`/admin/api/ocean-integrations/${c.id}/credentials`)
      .set(admin());
    expect(rotated.status).toBe(200);
    expect(rotated.body.password).not.toBe(c.password);
    expect((await post(server, referralMessage(), basic(c))).status).toBe(401);
    expect((await post(server, referralMessage(), `Bearer ${tok.body.access_token}`)).status).toBe(401);
    expect((await post(server, referralMessage({ patientRef: 'pat-b' }), basic(rotated.body))).status).toBe(
      200,
    );
    expect(
      (await request(server.app).delete(`/admin/api/ocean-integrations/${c.id}`).set(admin())).status,
    ).toBe(204);
    expect((await post(server, referralMessage(), basic(rotated.body))).status).toBe(401);
    const audit = await count(
      `SELECT count(*) AS n FROM audit_events WHERE action LIKE 'admin.ocean_integration.%' AND entity = $1`,
      [`ocean-integration/${c.id}`],
    );
    expect(audit).toBe(3);
  });
});

describe('the letter DocumentReference', () => {
  it('is filed with its Ocean url and shown as available in Ocean when the site has no credentials', async () => {
    await post(server, referralMessage({ referralId: 'REF-LET', patientRef: 'pat-a' }));
    const l = await t.db.query<{ status: string }>(
      `SELECT status FROM ocean_letters WHERE referral_id = 'REF-LET'`,
    );
    expect(l.rows[0]!.status).toBe('in-ocean');
    const docs = await t.db.query<{ resource: DocumentReference }>(
      `SELECT resource FROM fhir_resources WHERE resource_type = 'DocumentReference' AND compartment_patient = 'pat-a' AND resource #>> '{identifier,0,value}' = 'REF-LET'`,
    );
    expect(docs.rows[0]!.resource.content[0]!.attachment.url).toContain('REF-LET-letter');
  });
});

describe('logs', () => {
  it('carry no value from a message at trace level, filed, unmatched or refused', async () => {
    const { logger, lines } = capturedLogger('trace');
    const traced = await startTestServer(await t.connectAnother(), {}, logger);
    try {
      const secrets = ['Zebulon-Quixote', '7777-888-999', 'REF-SECRET-42', 'knee-secret-note'];
      const m = referralMessage({ referralId: secrets[2], patientRef: 'pat-a', note: secrets[3] });
      const p = m.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource as Patient;
      p.name = [{ family: secrets[0] }];
      expect((await post(traced, m)).status).toBe(200);
      const unmatched = referralMessage({ hcn: secrets[1], note: secrets[3] });
      expect((await post(traced, unmatched)).status).toBe(200);
      const refused = referralMessage({ referralId: secrets[2] });
      (refused.entry!.at(-1)!.resource as ServiceRequest).subject = { reference: 'urn:uuid:nope' };
      expect((await post(traced, refused)).status).toBe(400);
      const log = lines.join('\n');
      expect(log).toContain('ocean message');
      for (const s of secrets) expect(log).not.toContain(s);
    } finally {
      await traced.stop();
    }
  });
});
