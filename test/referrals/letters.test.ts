/*
 * The letter job against a local stand-in for Ocean's token and letter endpoints: fetched and
 * served from the chart; Ocean down → retried with backoff, status visible in the chart, then
 * fetched when Ocean is back; given up after MAX_ATTEMPTS; a letter URL off Ocean's origin is
 * never fetched; a site without credentials shows "available in Ocean" until they are set.
 */

import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource } from '../../src/fhir/repository.ts';
import type { ReferralsCapability } from '../../src/referrals/index.ts';
import { MAX_ATTEMPTS } from '../../src/referrals/letters.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createTestUser, signIn } from '../helpers/oidc.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { referralMessage } from './messages.ts';
import { OceanApiStandIn, PDF } from './ocean-api-stand-in.ts';

let t: TestDatabase;
let server: TestServer;
let ocean: OceanApiStandIn;
let basicAuth: string;
let integrationId: string;
let cookie: string;
const admin = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

const jobOf = (s: TestServer) =>
  (s.capabilities.find((c) => c.name === 'referrals') as ReferralsCapability).letters;
const letters = () => jobOf(server);

async function letterRow(referralId: string) {
  const r = await t.db.query<{ status: string; attempts: number; last_error: string | null; wait: unknown }>(
    `SELECT status, attempts, last_error, extract(epoch FROM next_attempt_at - now()) AS wait
       FROM ocean_letters WHERE referral_id = $1`,
    [referralId],
  );
  return r.rows[0]!;
}

async function deliver(referralId: string, letterUrl = ocean.letterUrl(referralId)) {
  const r = await request(server.app)
    .post('/fhir/$process-message')
    .set('Authorization', basicAuth)
    .set('Content-Type', 'application/fhir+json')
    .send(JSON.stringify(referralMessage({ referralId, patientRef: 'pat-l', letterUrl })));
  expect(r.status).toBe(200);
}

/** Waits for the pass the filing kicked off, then runs one more: deterministic for the assertions. */
async function settle() {
  await letters().stop();
  letters().start();
  await letters().runOnce();
}

const srIdOf = async (referralId: string) =>
  (
    await t.db.query<{ s: string }>(
      'SELECT service_request_id AS s FROM ocean_referrals WHERE referral_id = $1',
      [referralId],
    )
  ).rows[0]!.s;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  ocean = new OceanApiStandIn();
  await ocean.start();
  await putResource(t.db, { resourceType: 'Patient', id: 'pat-l', name: [{ family: 'Letter' }] });
  const r = await request(server.app)
    .post('/admin/api/ocean-integrations')
    .set(admin)
    .send({
      site_num: '4321',
      ocean_oauth: {
        token_url: ocean.tokenUrl,
        client_id: ocean.clientId,
        client_secret: ocean.clientSecret,
      },
    });
  expect(r.status).toBe(201);
  integrationId = r.body.id;
  basicAuth = `Basic ${Buffer.from(`${r.body.username}:${r.body.password}`).toString('base64')}`;
  const user = await createTestUser(server.ctx);
  cookie = (await signIn(server.ctx, user.id)).cookie;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await ocean?.stop();
  await t?.drop();
});

describe('the letter job', () => {
  it('fetches the letter with an Ocean token, stores it and serves it from the chart', async () => {
    await deliver('REF-L1');
    await settle();
    expect((await letterRow('REF-L1')).status).toBe('fetched');
    const srId = await srIdOf('REF-L1');
    const chart = await request(server.app).get('/patients/pat-l').set('Cookie', cookie);
    expect(chart.text).toContain(`/patients/pat-l/referrals/${srId}/letter`);
    const pdf = await request(server.app)
      .get(`/patients/pat-l/referrals/${srId}/letter`)
      .set('Cookie', cookie)
      .buffer(true);
    expect(pdf.status).toBe(200);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    expect(Buffer.compare(pdf.body as Buffer, PDF)).toBe(0);
    // not from another chart, not without a session
    expect(
      (await request(server.app).get(`/patients/other/referrals/${srId}/letter`).set('Cookie', cookie))
        .status,
    ).toBe(404);
    expect((await request(server.app).get(`/patients/pat-l/referrals/${srId}/letter`)).status).toBe(303);
  });

  it('retries with backoff while Ocean is down, shows it in the chart, and fetches when Ocean is back', async () => {
    ocean.down = true;
    await deliver('REF-L2');
    await settle();
    let row = await letterRow('REF-L2');
    expect(row.status).toBe('pending');
    expect(row.attempts).toBeGreaterThanOrEqual(1);
    expect(row.last_error).toContain('503');
    expect(Number(row.wait)).toBeGreaterThan(20); // backed off, not hammering Ocean
    const chart = await request(server.app).get('/patients/pat-l').set('Cookie', cookie);
    expect(chart.text).toContain('Being fetched from Ocean');

    ocean.down = false;
    await letters().runOnce();
    expect((await letterRow('REF-L2')).status).toBe('pending'); // still waiting out its backoff
    await t.db.query(`UPDATE ocean_letters SET next_attempt_at = now() WHERE referral_id = 'REF-L2'`);
    await letters().runOnce();
    row = await letterRow('REF-L2');
    expect(row.status).toBe('fetched');
    expect(row.last_error).toBeNull();
  });

  it('gives up after MAX_ATTEMPTS and says so', async () => {
    ocean.down = true;
    await deliver('REF-L3');
    await settle();
    await t.db.query(
      `UPDATE ocean_letters SET attempts = $1, next_attempt_at = now() WHERE referral_id = 'REF-L3'`,
      [MAX_ATTEMPTS - 1],
    );
    await letters().runOnce();
    expect((await letterRow('REF-L3')).status).toBe('failed');
    ocean.down = false;
    const chart = await request(server.app).get('/patients/pat-l').set('Cookie', cookie);
    expect(chart.text).toContain('Could not be fetched from Ocean');
  });

  it('never sends the Ocean token to a letter URL off the token URL origin', async () => {
    const before = ocean.tokenCalls;
    await deliver('REF-L4', 'https://attacker.example.test/steal.pdf');
    await settle();
    const row = await letterRow('REF-L4');
    expect(row.status).toBe('pending');
    expect(row.last_error).toContain('origin');
    expect(ocean.tokenCalls).toBe(before);
  });

  it('two job runners never fetch one letter twice (FOR UPDATE SKIP LOCKED + lease)', async () => {
    await letters().stop();
    await deliver('REF-L5');
    const calls = ocean.letterCalls;
    const other = await startTestServer(await t.connectAnother());
    try {
      await Promise.all([letters().runOnce(), jobOf(other).runOnce()]);
    } finally {
      await other.stop();
      letters().start();
    }
    expect((await letterRow('REF-L5')).status).toBe('fetched');
    expect(ocean.letterCalls - calls).toBe(1);
  });

  it('without Ocean credentials shows "available in Ocean", and fetches once they are set', async () => {
    await request(server.app)
      .delete(`/admin/api/ocean-integrations/${integrationId}/ocean-oauth`)
      .set(admin)
      .expect(200);
    await deliver('REF-L6');
    await settle();
    expect((await letterRow('REF-L6')).status).toBe('in-ocean');
    const chart = await request(server.app).get('/patients/pat-l').set('Cookie', cookie);
    expect(chart.text).toContain('Available in Ocean');
    await request(server.app)
      .put(`/admin/api/ocean-integrations/${integrationId}/ocean-oauth`)
      .set(admin)
      .send({ token_url: ocean.tokenUrl, client_id: ocean.clientId, client_secret: ocean.clientSecret })
      .expect(200);
    await settle();
    expect((await letterRow('REF-L6')).status).toBe('fetched');
  });
});
