import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import type { User } from '../../src/users/users.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { BrowserSession } from './browser-session.ts';

const PASSWORD = 'lockout-test-password';

/** A browser at one client address (the server trusts X-Forwarded-For from loopback, as behind a balancer). */
class BrowserAt extends BrowserSession {
  constructor(
    baseUrl: string,
    readonly address: string,
  ) {
    super(baseUrl);
  }
  override request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('x-forwarded-for', this.address);
    return super.request(path, { ...init, headers });
  }
}

describe('sign-in throttling that an attacker cannot turn against a clinician', () => {
  let t: TestDatabase;
  let s: TestServer;
  let users: Record<string, User>;

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, {
      TRUST_PROXY: 'loopback',
      LOGIN_FAILURES_BEFORE_DELAY: '5',
      LOGIN_DELAY: '30',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '12',
      LOGIN_ACCOUNT_LOCK: '120',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '1000',
      LOGIN_THROTTLE_WINDOW: '900',
    });
    users = {};
    for (const name of ['alice', 'bruno', 'chloe', 'dmitri', 'esme', 'farah', 'gus']) {
      users[name] = await createUser(s.ctx, {
        username: name,
        password: PASSWORD,
        given_name: name,
        family_name: 'Clinician',
      });
    }
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const fail = async (b: BrowserSession, username: string, times: number) => {
    for (let i = 0; i < times; i++)
      expect((await b.signIn(username, `wrong-${i}-password`)).status).toBe(401);
  };
  const retryAfter = (res: Response) => Number(res.headers.get('retry-after'));
  const admin = (path: string, body?: unknown) =>
    fetch(`${s.url}/admin/api${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  it('keeps the clinician signing in from their own address while an attacker elsewhere is made to wait', async () => {
    const attacker = new BrowserAt(s.url, '203.0.113.66');
    await fail(attacker, 'alice', 5);
    const blocked = await attacker.signIn('alice', PASSWORD);
    expect(blocked.status).toBe(429);
    expect(retryAfter(blocked)).toBeGreaterThan(25);
    expect(retryAfter(blocked)).toBeLessThanOrEqual(30);
    const html = await blocked.text();
    expect(html).toContain('Too many failed sign-in attempts');
    expect(html).toMatch(/try again in (29|30) seconds/);
    // The finding: five wrong passwords from anywhere kept the clinician out. Not any more.
    const clinician = new BrowserAt(s.url, '10.1.2.3');
    expect((await clinician.signIn('alice', PASSWORD)).status).toBe(303);
  });

  it('makes each further failure of the same pair wait twice as long, up to the window', async () => {
    const attacker = new BrowserAt(s.url, '203.0.113.67');
    await fail(attacker, 'bruno', 5);
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      const refused = await attacker.signIn('bruno', 'still-wrong-password');
      expect(refused.status).toBe(429);
      waits.push(retryAfter(refused));
      // The wait runs out (moved in the database), and the next guess is wrong again.
      await t.db.query(
        "UPDATE login_failures SET blocked_until = now() - interval '1 second' WHERE key LIKE 'pair:%:203.0.113.67'",
      );
      expect((await attacker.signIn('bruno', 'wrong-again-password')).status).toBe(401);
    }
    const expected = [30, 60, 120, 240, 480, 900];
    waits.forEach((w, i) => {
      expect(w).toBeGreaterThan(expected[i]! - 5);
      expect(w).toBeLessThanOrEqual(expected[i]!);
    });
    // A refused attempt counts nothing: the count is the failures that were checked.
    const row = await t.db.query<{ failures: number }>(
      "SELECT failures FROM login_failures WHERE key LIKE 'pair:%:203.0.113.67'",
    );
    expect(row.rows[0]!.failures).toBe(11);
  });

  it('locks a whole account only after many more failures, spread over addresses, and for less time', async () => {
    const before = new BrowserAt(s.url, '10.9.9.9');
    expect((await before.signIn('chloe', PASSWORD)).status).toBe(303);
    // 12 failures for chloe from three addresses, none of which reaches its own wait twice.
    for (const address of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) {
      await fail(new BrowserAt(s.url, address), 'chloe', 4);
    }
    const everywhere = await new BrowserAt(s.url, '10.9.9.9').signIn('chloe', PASSWORD);
    expect(everywhere.status).toBe(429);
    // The account-wide lock ends sooner (LOGIN_ACCOUNT_LOCK) than the longest pair wait (the window).
    expect(retryAfter(everywhere)).toBeGreaterThan(100);
    expect(retryAfter(everywhere)).toBeLessThanOrEqual(120);
    expect(await everywhere.text()).toContain('ask your administrator to unlock it');
    // Other accounts are untouched.
    expect((await new BrowserAt(s.url, '10.9.9.9').signIn('dmitri', PASSWORD)).status).toBe(303);
    // When the lock ends, the count starts afresh: the clinician is in.
    await t.db.query(
      "UPDATE login_failures SET blocked_until = now() - interval '1 second' WHERE key LIKE 'account:%'",
    );
    expect((await new BrowserAt(s.url, '10.9.9.9').signIn('chloe', PASSWORD)).status).toBe(303);
  });

  it('lifts every wait and lock of a user with the admin API unlock, audited', async () => {
    for (const address of ['198.51.100.11', '198.51.100.12', '198.51.100.13']) {
      await fail(new BrowserAt(s.url, address), 'esme', 4);
    }
    const attacker = new BrowserAt(s.url, '198.51.100.11');
    expect((await attacker.signIn('esme', PASSWORD)).status).toBe(429);
    const res = await admin(`/users/${users.esme!.id}/unlock`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { username: string }).username).toBe('esme');
    // Account-wide lock and the pairs' waits are gone; the address count stays (another rule).
    expect((await new BrowserAt(s.url, '198.51.100.11').signIn('esme', PASSWORD)).status).toBe(303);
    const audit = await t.db.query(
      "SELECT 1 FROM audit_events WHERE action = 'admin.user.unlock' AND entity = $1",
      [`user/${users.esme!.id}`],
    );
    expect(audit.rowCount).toBe(1);
    expect((await admin('/users/no-such-user/unlock')).status).toBe(404);
  });

  it('lifts them with an administrator’s password reset too, as the lock-out page promises', async () => {
    const attacker = new BrowserAt(s.url, '203.0.113.80');
    await fail(attacker, 'farah', 5);
    expect((await attacker.signIn('farah', PASSWORD)).status).toBe(429);
    const reset = await admin(`/users/${users.farah!.id}/password`, { password: 'a brand new password' });
    expect(reset.status).toBe(204);
    expect((await new BrowserAt(s.url, '203.0.113.80').signIn('farah', 'a brand new password')).status).toBe(
      303,
    );
  });

  it('lifts them from the admin console with a CSRF-checked button', async () => {
    await createUser(s.ctx, {
      username: 'boss',
      password: PASSWORD,
      given_name: 'Boss',
      family_name: 'Admin',
      roles: ['admin', 'clinician'],
    });
    const attacker = new BrowserAt(s.url, '203.0.113.90');
    await fail(attacker, 'gus', 5);
    expect((await attacker.signIn('gus', PASSWORD)).status).toBe(429);
    const console = new BrowserAt(s.url, '10.0.0.5');
    expect((await console.signIn('boss', PASSWORD)).status).toBe(303);
    const page = await (await console.get('/admin/users')).text();
    expect(page).toContain(`action="/admin/users/${encodeURIComponent(users.gus!.id)}/unlock"`);
    const without = await console.postForm(`/admin/users/${encodeURIComponent(users.gus!.id)}/unlock`, {});
    expect(without.status).toBe(403);
    expect((await new BrowserAt(s.url, '203.0.113.90').signIn('gus', PASSWORD)).status).toBe(429);
    const csrf = await console.csrfFrom('/admin/users');
    const done = await console.postForm(`/admin/users/${encodeURIComponent(users.gus!.id)}/unlock`, {
      _csrf: csrf,
    });
    expect(done.status).toBe(303);
    expect((await new BrowserAt(s.url, '203.0.113.90').signIn('gus', PASSWORD)).status).toBe(303);
  });

  it('keeps every count in the database, without usernames, for all instances', async () => {
    const rows = await t.db.query<{ key: string; account: string | null }>(
      'SELECT key, account FROM login_failures',
    );
    expect(rows.rows.some((r) => r.key.startsWith('pair:') && r.account)).toBe(true);
    expect(JSON.stringify(rows.rows)).not.toMatch(/alice|bruno|chloe|esme|farah|gus/);
    // A second instance on the same database refuses the same pair.
    const other = await startTestServer(t.db, {
      TRUST_PROXY: 'loopback',
      LOGIN_FAILURES_BEFORE_DELAY: '5',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '12',
      LOGIN_ACCOUNT_LOCK: '120',
    });
    try {
      const attacker = new BrowserAt(other.url, '203.0.113.67');
      expect((await attacker.signIn('bruno', PASSWORD)).status).toBe(429);
    } finally {
      await other.stop();
    }
  });
});
