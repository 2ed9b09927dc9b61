/*
 * Rate limits end to end (src/http/rate-limit.ts, wired in src/http/app.ts): sign-in, token,
 * introspection and the admin API each have a budget per client address and window, counted in
 * the database so that every instance spends the same budget; over it, 429 with Retry-After in
 * the endpoint's own vocabulary. Other endpoints are not limited.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';

// Real processes and a loaded 2-core CI machine: generous limits; nothing asserts on time.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const BUDGET = 3;
const LIMITS = {
  RATE_LIMIT_WINDOW: '3600',
  RATE_LIMIT_LOGIN: String(BUDGET),
  RATE_LIMIT_TOKEN: String(BUDGET),
  RATE_LIMIT_INTROSPECTION: String(BUDGET),
  RATE_LIMIT_ADMIN: String(BUDGET),
};

describe('rate limits on sign-in, token, introspection and the admin API', () => {
  let t: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let other: Database;

  beforeAll(async () => {
    t = await createTestDatabase();
    a = await startTestServer(t.db, LIMITS);
    other = await t.connectAnother();
    b = await startTestServer(other, LIMITS);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await t?.drop();
  });

  const form = (body: Record<string, string>) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body).toString(),
  });

  /** Spends the budget on server `first`, then asks `second` once more. */
  async function exhaust(path: string, init: () => RequestInit, first: TestServer, second: TestServer) {
    const statuses: number[] = [];
    for (let i = 0; i < BUDGET; i++) {
      const r = await fetch(`${first.url}${path}`, { ...init(), redirect: 'manual' });
      statuses.push(r.status);
      await r.arrayBuffer();
    }
    const over = await fetch(`${second.url}${path}`, { ...init(), redirect: 'manual' });
    return { statuses, over };
  }

  it('POST /login: a page with 429 and Retry-After once the budget is spent, on any instance', async () => {
    const { statuses, over } = await exhaust(
      '/login',
      () => form({ username: 'x', password: 'y', _csrf: 'z' }),
      a,
      b,
    );
    expect(statuses).not.toContain(429);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(over.headers.get('content-type')).toMatch(/text\/html/);
    expect(await over.text()).toMatch(/Too many requests/i);
  });

  it('token endpoint: OAuth error JSON with 429 and Retry-After', async () => {
    const { statuses, over } = await exhaust(
      '/fhir/token',
      () => form({ grant_type: 'authorization_code', code: 'nope', client_id: 'nobody' }),
      b,
      a,
    );
    expect(statuses).not.toContain(429);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await over.json()) as { error: string; error_description: string };
    expect(body.error).toBe('rate_limited');
    expect(body.error_description).toEqual(expect.any(String));
  });

  it('introspection endpoint: OAuth error JSON with 429', async () => {
    const { statuses, over } = await exhaust(
      '/fhir/token/introspection',
      () => form({ token: 'nothing', client_id: 'nobody' }),
      a,
      b,
    );
    expect(statuses).not.toContain(429);
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBeTruthy();
    expect(((await over.json()) as { error: string }).error).toBe('rate_limited');
  });

  it('EHR launch API: JSON with 429 on the token endpoint budget', async () => {
    const { statuses, over } = await exhaust(
      '/ehr-api/launches',
      () => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      a,
      b,
    );
    expect(statuses).not.toContain(429);
    expect(statuses.every((s) => s === 401)).toBe(true);
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBeTruthy();
    expect(((await over.json()) as { error: string }).error).toBe('rate_limited');
  });

  it('admin API: JSON with 429, whatever the path', async () => {
    const auth = () => ({ headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    for (let i = 0; i < BUDGET; i++) {
      const r = await fetch(`${a.url}/admin/api/${i % 2 ? 'clients' : 'users'}`, auth());
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    const over = await fetch(`${b.url}/admin/api/keys`, auth());
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBeTruthy();
    expect(((await over.json()) as { error: string }).error).toBe('rate_limited');
  });

  it('leaves discovery, JWKS, FHIR and the sign-in page alone', async () => {
    for (const path of [
      '/fhir/.well-known/smart-configuration',
      '/fhir/.well-known/openid-configuration',
      '/fhir/jwks',
      '/fhir/metadata',
      '/login',
      '/fhir/Patient/unknown',
    ]) {
      for (let i = 0; i < BUDGET + 1; i++) {
        const r = await fetch(`${a.url}${path}`);
        await r.arrayBuffer();
        expect(r.status, path).not.toBe(429);
      }
    }
  });

  it('keeps its counters in the database, one row per budget and address', async () => {
    const { rows } = await t.db.query<{ key: string; hits: number }>(
      'SELECT key, hits FROM rate_limit_hits ORDER BY key',
    );
    const families = rows.map((r) => r.key.split(':')[0]);
    expect(families).toEqual(
      expect.arrayContaining(['admin', 'introspection', 'login', 'token', 'ehr-launch']),
    );
    for (const r of rows) expect(r.hits).toBeGreaterThan(BUDGET);
  });
});
