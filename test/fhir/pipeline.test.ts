/*
 * The FHIR guard pipeline: whatever an interaction does or forgets, every step runs — a token is
 * required, the type must be granted before the interaction runs, the user must still be active
 * before anything is sent, and the audit row is recorded before the answer leaves.
 * Drives the real pipeline (real tokens from the real authorization server, real database) with
 * an interaction written for the test that proves nothing itself.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessTokenVerifier } from '../../src/fhir/access-token.ts';
import { fhirPipeline, type Interaction } from '../../src/fhir/pipeline.ts';
import { errorHandler, notFound, speaks } from '../../src/http/errors.ts';
import { liveAccessToken } from '../../src/oidc/grant-revocation.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  createTestClient,
  createTestSite,
  createTestUser,
  issueTokens,
  type TestUser,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let server: TestServer;
let probe: import('node:http').Server;
let probeUrl: string;
let user: TestUser;
let token: string;
const events: string[] = [];
let refuse = false;

/** Reads nothing, proves nothing about the user, and answers as soon as it is allowed to. */
const naive: Interaction = {
  action: 'fhir.read',
  interaction: 'r',
  target: (req) => ({ type: req.params.type as string, entity: `${req.params.type}/probe` }),
  async perform() {
    events.push('perform');
    if (refuse) return { refusal: notFound('Observation/probe was not found') };
    return {
      send(_req, res) {
        events.push('send');
        res.status(200).json({ ok: true });
      },
    };
  },
};

async function call(type: string, bearer?: string) {
  events.length = 0;
  const res = await fetch(`${probeUrl}/${type}`, {
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
  });
  await server.ctx.audit.flush();
  return { status: res.status, body: await res.text() };
}

async function lastAudit() {
  const { rows } = await server.ctx.db.query<{
    action: string;
    outcome: string;
    detail: Record<string, unknown>;
  }>('SELECT action, outcome, detail FROM audit_events ORDER BY id DESC LIMIT 1');
  return rows[0];
}

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer(t.db);
  user = await createTestUser(server.ctx);
  const client = await createTestClient(server.ctx);
  const { siteNum } = await createTestSite(server.ctx, client.clientId);
  token = (
    await issueTokens(server, {
      client,
      siteNum,
      user,
      patientId: 'nobody',
      scope: 'openid launch patient/Observation.rs',
    })
  ).body.access_token!;

  // the audit trail as the pipeline sees it, with the moment of each record noted
  const record = server.ctx.audit.record.bind(server.ctx.audit);
  server.ctx.audit.record = (event) => {
    events.push(`audit ${event.action}`);
    return record(event);
  };
  const app = express();
  app.use(speaks('fhir'));
  app.get('/:type', fhirPipeline(server.ctx, new AccessTokenVerifier(server.ctx), liveAccessToken)(naive));
  app.use(errorHandler());
  probe = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => probe.once('listening', resolve));
  probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
}, 180_000);

afterAll(async () => {
  probe?.close();
  await server?.stop();
  await t?.drop();
});

describe('the FHIR guard pipeline', () => {
  it('audits, then answers, after the interaction has run', async () => {
    const r = await call('Observation', token);
    expect(r.status).toBe(200);
    expect(events).toEqual(['perform', 'audit fhir.read', 'send']);
  });

  it('refuses a request without a valid token before the interaction runs', async () => {
    for (const bearer of [undefined, 'not-a-token']) {
      const r = await call('Observation', bearer);
      expect(r.status).toBe(401);
      expect(events).toEqual(['audit fhir.denied']);
    }
  });

  it('refuses a type the scopes do not grant before the interaction runs', async () => {
    const r = await call('Condition', token);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).resourceType).toBe('OperationOutcome');
    expect(events).toEqual(['audit fhir.denied']);
    expect(await lastAudit()).toMatchObject({ action: 'fhir.denied', detail: { status: 403 } });
  });

  it("audits the interaction's refusal as a failure with its status, in the FHIR format", async () => {
    refuse = true;
    try {
      const r = await call('Observation', token);
      expect(r.status).toBe(404);
      expect(JSON.parse(r.body).issue[0].code).toBe('not-found');
      expect(events).toEqual(['perform', 'audit fhir.read']);
      expect(await lastAudit()).toMatchObject({
        action: 'fhir.read',
        outcome: 'failure',
        detail: { status: 404 },
      });
    } finally {
      refuse = false;
    }
  });

  it('checks that the token still counts (its user active) when the interaction did not, and sends nothing if not', async () => {
    await server.ctx.db.query('UPDATE users SET active = false WHERE id = $1', [user.id]);
    try {
      const r = await call('Observation', token);
      expect(r.status).toBe(401);
      expect(r.body).not.toContain('"ok"');
      expect(events).toEqual(['perform', 'audit fhir.denied']);
      expect(await lastAudit()).toMatchObject({ detail: { status: 401, reason: 'grant ended' } });
    } finally {
      await server.ctx.db.query('UPDATE users SET active = true WHERE id = $1', [user.id]);
    }
  });
});
