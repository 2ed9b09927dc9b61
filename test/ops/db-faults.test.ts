/*
 * PostgreSQL goes away mid-run (our own throwaway cluster, stopped with `pg_ctl -m immediate`,
 * never the machine's shared one):
 * - every kind of endpoint answers 503 in its own vocabulary — OperationOutcome on FHIR, OAuth
 *   error JSON on OAuth endpoints, JSON on the admin API, a page for people — never a stack trace
 * - the process stays up, /healthz says alive, /readyz says the database is unreachable
 * - when PostgreSQL is back, everything works again without a restart, tokens issued before included
 * - an import cut off halfway (the server killed, or PostgreSQL stopped, while its transaction
 *   is writing) leaves nothing behind
 * Runs in the PostgreSQL pass (skipped when DATABASE_URL is unset, to keep the embedded pass lean).
 */

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { usingPostgres } from '../helpers/database.ts';
import {
  type PrivatePostgres,
  privatePostgresUnavailable,
  startPrivatePostgres,
} from '../helpers/private-postgres.ts';
import { type Cluster, DEMO_CLINICIANS, DEMO_SITE, startCluster } from './cluster.ts';
import { opsPatients, patientBundle } from './fixtures.ts';
import {
  Clinician,
  type Discovery,
  discover,
  fhirGet,
  redeemCode,
  send,
  type TokenResponse,
} from './flow.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const skip = !usingPostgres || Boolean(privatePostgresUnavailable());

describe.skipIf(skip)('database faults (private PostgreSQL cluster; PostgreSQL pass only)', () => {
  let pgServer: PrivatePostgres;
  let c: Cluster;
  let discovery: Discovery;
  let clinician: Clinician;
  let token: TokenResponse;
  let sql: (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

  beforeAll(async () => {
    pgServer = await startPrivatePostgres();
    const url = await pgServer.createDatabase('app');
    sql = async (text, params) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query(text, params)).rows;
      } finally {
        await client.end();
      }
    };
    // Rate limits on (their store is in the database too): a limiter must not be a way around the outage.
    c = await startCluster({
      databaseUrl: url,
      instances: 1,
      env: {
        RATE_LIMIT_LOGIN: '1000',
        RATE_LIMIT_TOKEN: '1000',
        RATE_LIMIT_INTROSPECTION: '1000',
        RATE_LIMIT_ADMIN: '1000',
      },
    });
    discovery = await discover(c.fhirBase);
    clinician = new Clinician(c.publicUrl);
    await clinician.signIn(DEMO_CLINICIANS[0]!.username, DEMO_CLINICIANS[0]!.password);
    const launch = await clinician.launch(c.patients[0]!, DEMO_SITE, 'viewMap');
    const { code } = await clinician.authorize(discovery, {
      clientId: c.clientId,
      redirectUri: c.redirectUri,
      launch: launch.get('launch')!,
      pkce: false,
    });
    const redeemed = await redeemCode(discovery, { code, clientId: c.clientId, redirectUri: c.redirectUri });
    expect(redeemed.status).toBe(200);
    token = redeemed.body;
  }, 240_000);

  afterAll(async () => {
    await c?.close();
    await pgServer?.destroy();
  });

  it('answers 503 in each vocabulary while PostgreSQL is down, stays up, and recovers by itself', async () => {
    const server = c.instances[0]!;
    await pgServer.stop();

    expect((await send(`${server.url}/healthz`)).status).toBe(200);
    const ready = await send(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable', database: 'unreachable' });

    // FHIR: OperationOutcome.
    const read = await send(`${c.fhirBase}/Patient/${c.patients[0]}`, {
      headers: { authorization: `Bearer ${token.access_token}` },
    });
    expect(read.status).toBe(503);
    expect(read.headers.get('content-type')).toMatch(/application\/fhir\+json/);
    const outcome = (await read.json()) as { resourceType: string; issue: { code: string }[] };
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]!.code).toBe('transient');

    // OAuth endpoints: RFC 6749 error JSON, not a 500 server_error.
    const tokenCall = await send(discovery.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: token.refresh_token ?? 'x',
        client_id: c.clientId,
      }).toString(),
    });
    expect(tokenCall.status).toBe(503);
    expect(tokenCall.headers.get('content-type')).toMatch(/application\/json/);
    expect(((await tokenCall.json()) as { error: string }).error).toBe('temporarily_unavailable');

    const introspection = await send(discovery.introspection_endpoint!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: token.access_token, client_id: c.clientId }).toString(),
    });
    expect(introspection.status).toBe(503);
    expect(((await introspection.json()) as { error: string }).error).toBe('temporarily_unavailable');

    // Admin API: JSON.
    const admin = await c.admin('GET', '/admin/api/clients');
    expect(admin.status).toBe(503);
    expect(((await admin.json()) as { error: string }).error).toBe('temporarily_unavailable');

    // People: a page, for the signed-in clinician's screens, the launch and the authorization request.
    for (const path of ['/patients', `/launch?patient=${c.patients[1]}&site=${DEMO_SITE}&action=viewMap`]) {
      const page = await clinician.request(path);
      expect(page.status, path).toBe(503);
      expect(page.headers.get('content-type'), path).toMatch(/text\/html/);
      const html = await page.text();
      expect(html).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
    }
    // The sign-in form for someone not yet signed in: its CSRF token cannot be stored, so a page
    // saying so now rather than a form that fails when submitted.
    const signInPage = await send(`${c.publicUrl}/login`);
    expect(signInPage.status).toBe(503);
    expect(signInPage.headers.get('content-type')).toMatch(/text\/html/);

    const authorize = await clinician.request(
      `${discovery.authorization_endpoint}?${new URLSearchParams({
        response_type: 'code',
        client_id: c.clientId,
        redirect_uri: c.redirectUri,
        scope: 'openid launch',
        state: 's',
        aud: c.fhirBase,
      })}`,
    );
    expect(authorize.status).toBe(503);
    expect(authorize.headers.get('content-type')).toMatch(/text\/html/);
    expect(await authorize.text()).not.toMatch(/\n\s+at .+:\d+:\d+/);

    // Still the same process.
    expect(server.running()).toBe(true);

    // PostgreSQL comes back: no restart of ours needed.
    await pgServer.start();
    await server.waitForReady(200);
    // A token issued before the outage still reads: its reference row (checked for revocation) was
    // committed before the token was answered, so the crash did not lose it.
    const again = await fhirGet(c.fhirBase, `Patient/${c.patients[0]}`, token.access_token);
    expect(again.status).toBe(200);
    const launch = await clinician.launch(c.patients[1]!, DEMO_SITE, 'viewMap');
    const { code } = await clinician.authorize(discovery, {
      clientId: c.clientId,
      redirectUri: c.redirectUri,
      launch: launch.get('launch')!,
      pkce: false,
    });
    const redeemed = await redeemCode(discovery, { code, clientId: c.clientId, redirectUri: c.redirectUri });
    expect(redeemed.status).toBe(200);
    expect(redeemed.body.patient).toBe(c.patients[1]);
    expect(server.running()).toBe(true);
    expect(server.output()).not.toContain('unhandled promise rejection');
  });

  /** Starts a big import and resolves once its transaction has written its first row. */
  async function importUntilWriting(prefix: string) {
    const patients = opsPatients(3000, prefix);
    const pending = c
      .admin('POST', '/admin/api/import', patientBundle(patients))
      .then(async (r) => ({ status: r.status, body: await r.text() }))
      .catch((err: Error) => ({ status: 0, body: err.message }));
    for (let i = 0; i < 600; i++) {
      // backend_xid is set once a transaction has written something.
      const writing = await sql(
        `SELECT 1 FROM pg_stat_activity WHERE datname = 'app' AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
      );
      if (writing.length > 0) return { patients, pending };
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the import never started writing');
  }

  const countOf = async (prefix: string) =>
    Number(
      (
        await sql(
          `SELECT (SELECT count(*) FROM fhir_resources WHERE id LIKE $1) + (SELECT count(*) FROM fhir_resource_history WHERE id LIKE $1) AS n`,
          [`${prefix}-%`],
        )
      )[0]!.n,
    );

  it('an import whose server is killed halfway leaves nothing behind', async () => {
    const server = c.instances[0]!;
    const { pending } = await importUntilWriting('killed');
    await server.kill();
    expect((await pending).status).not.toBe(200);
    await server.start();
    expect(await countOf('killed')).toBe(0);
  });

  it('an import cut off by PostgreSQL stopping answers 503 and leaves nothing behind', async () => {
    const server = c.instances[0]!;
    const { pending } = await importUntilWriting('cutoff');
    await pgServer.stop();
    const answer = await pending;
    if (answer.status !== 503) console.log(answer, server.output().slice(-3000));
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body).resourceType).toBe('OperationOutcome');
    await pgServer.start();
    await server.waitForReady(200);
    expect(await countOf('cutoff')).toBe(0);
    // And the same import, uninterrupted, goes through whole.
    const whole = await c.admin('POST', '/admin/api/import', patientBundle(opsPatients(50, 'cutoff')));
    expect(whole.status).toBe(200);
    expect(await countOf('cutoff')).toBe(50 * 3 * 2);
  });
});
