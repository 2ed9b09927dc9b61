import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { AdminOperations } from '../../src/admin/operations.ts';
import { setActive, type User } from '../../src/users/users.ts';
import { SESSION_COOKIE } from '../../src/web/session.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { BrowserSession } from './browser-session.ts';

const PASSWORD = 'correct horse battery';

describe('EHR sign-in', () => {
  let t: TestDatabase;
  let s: TestServer;
  let alice: User;

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, {
      LOGIN_FAILURES_BEFORE_DELAY: '3',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '100',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '1000',
    });
    alice = await createUser(s.ctx, {
      username: 'alice',
      password: PASSWORD,
      given_name: 'Alice',
      family_name: 'Nguyen',
      email: 'alice@clinic.example.org',
    });
    for (const u of ['bob', 'carol', 'dave', 'erin', 'frank']) {
      await createUser(s.ctx, { username: u, password: PASSWORD, given_name: u, family_name: 'Test' });
    }
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const sessionRows = async (userId: string) =>
    (await t.db.query('SELECT sid FROM ehr_sessions WHERE user_id = $1', [userId])).rowCount;

  it('renders the form with a CSRF token in a hidden _csrf input, never cached', async () => {
    const b = new BrowserSession(s.url);
    const res = await b.get('/login');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    expect(html).toMatch(/<input type="hidden" name="_csrf" value="[^"]{20,}">/);
    expect(html).toContain('name="username"');
    expect(html).toContain('name="password"');
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`));
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
  });

  it('keeps the pre-sign-in session (the form token) for an hour, the signed-in one for SESSION_TTL', async () => {
    const b = new BrowserSession(s.url);
    await b.get('/login');
    const lifetime = async () => {
      const sid = decodeURIComponent(b.cookies.get(SESSION_COOKIE)!).slice(2).split('.')[0]!;
      // express-session derives originalMaxAge from the clock right after setting the expiry
      // (cookie.js: expires = now + maxAge, then originalMaxAge = expires - now), so it is 1 ms
      // short whenever the millisecond ticks in between: the lifetime in whole seconds is rounded.
      const r = await t.db.query<{ secs: number }>(
        "SELECT round((data->'cookie'->>'originalMaxAge')::numeric / 1000) AS secs FROM ehr_sessions WHERE sid = $1",
        [sid],
      );
      return Number(r.rows[0]?.secs);
    };
    expect(await lifetime()).toBe(3600);
    await b.signIn('alice', PASSWORD);
    expect(await lifetime()).toBe(s.config.ttl.session);
  });

  it('signs in, regenerates the session id and stores userId and authTime', async () => {
    const b = new BrowserSession(s.url);
    await b.get('/login');
    const before = b.cookies.get(SESSION_COOKIE);
    const res = await b.signIn('alice', PASSWORD);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const after = b.cookies.get(SESSION_COOKIE);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    const rows = await t.db.query<{ data: { userId: string; authTime: number } }>(
      'SELECT data FROM ehr_sessions WHERE user_id = $1',
      [alice.id],
    );
    expect(rows.rows.length).toBeGreaterThan(0);
    expect(rows.rows.at(-1)!.data.userId).toBe(alice.id);
    expect(typeof rows.rows.at(-1)!.data.authTime).toBe('number');
    const list = await b.get('/patients');
    expect(list.status).toBe(200);
    expect(await list.text()).toContain('Alice Nguyen');
  });

  it('accepts the username in any letter case', async () => {
    const b = new BrowserSession(s.url);
    expect((await b.signIn('ALICE', PASSWORD)).status).toBe(303);
  });

  it('answers an unknown user and a wrong password the same way', async () => {
    const b1 = new BrowserSession(s.url);
    const wrong = await b1.signIn('bob', 'not the password');
    const b2 = new BrowserSession(s.url);
    const unknown = await b2.signIn('nobody-here', 'not the password');
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    const strip = (html: string) => html.replace(/value="[^"]*"/g, '');
    expect(strip(await wrong.text())).toBe(strip(await unknown.text()).replace('nobody-here', 'bob'));
    expect((await b1.get('/patients')).status).toBe(303);
  });

  it('refuses a sign-in without the CSRF token and signs nobody in', async () => {
    const b = new BrowserSession(s.url);
    await b.get('/login');
    const res = await b.postForm('/login', { username: 'carol', password: PASSWORD });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('expired');
    const wrongToken = await b.postForm('/login', { username: 'carol', password: PASSWORD, _csrf: 'forged' });
    expect(wrongToken.status).toBe(403);
    const carol = await t.db.query("SELECT id FROM users WHERE username = 'carol'");
    expect(await sessionRows(String(carol.rows[0]!.id))).toBe(0);
  });

  it('refuses a token from another session (no cross-session CSRF)', async () => {
    const attacker = new BrowserSession(s.url);
    const token = await attacker.csrfFrom('/login');
    const victim = new BrowserSession(s.url);
    await victim.get('/login');
    const res = await victim.postForm('/login', { username: 'carol', password: PASSWORD, _csrf: token });
    expect(res.status).toBe(403);
  });

  it('goes back to a local returnTo after sign-in', async () => {
    const b = new BrowserSession(s.url);
    const res = await b.signIn('alice', PASSWORD, { returnTo: '/launch?patient=p1&site=1&action=viewMap' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/launch?patient=p1&site=1&action=viewMap');
  });

  it.each([
    'https://evil.example/',
    '//evil.example/x',
    '/\\evil.example',
    'javascript:alert(1)',
    '/login',
    ' /patients',
  ])('ignores the unsafe returnTo %j (no open redirect)', async (returnTo) => {
    const b = new BrowserSession(s.url);
    const csrf = await b.csrfFrom('/login');
    const res = await b.postForm('/login', { username: 'alice', password: PASSWORD, _csrf: csrf, returnTo });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
  });

  it('sends a signed-in user on from /login straight to returnTo', async () => {
    const b = new BrowserSession(s.url);
    await b.signIn('alice', PASSWORD);
    const res = await b.get('/login?returnTo=%2Fpatients%3Fq%3Dx');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/patients?q=x');
  });

  it.each([
    '/.//evil.example',
    '/..//evil.example',
    '/%2e//evil.example',
    '/a/..//evil.example/y?z=1',
    '/\\evil.example',
    '/%2f%2fevil.example',
    '/\t/evil.example',
    'https:evil.example',
  ])('sends a signed-in user from /login?returnTo=%j home, never to another host', async (returnTo) => {
    const b = new BrowserSession(s.url);
    await b.signIn('alice', PASSWORD);
    const res = await b.get(`/login?returnTo=${encodeURIComponent(returnTo)}`);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    // And the same value posted with the sign-in form.
    const c = new BrowserSession(s.url);
    const csrf = await c.csrfFrom('/login');
    const posted = await c.postForm('/login', {
      username: 'alice',
      password: PASSWORD,
      _csrf: csrf,
      returnTo,
    });
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toBe('/');
  });

  it('sends a person who is not signed in to /login and back', async () => {
    const b = new BrowserSession(s.url);
    const res = await b.get('/patients?q=tremblay');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/login?returnTo=%2Fpatients%3Fq%3Dtremblay');
    const html = await (await b.get(res.headers.get('location')!)).text();
    expect(html).toContain('name="returnTo" value="/patients?q=tremblay"');
  });

  it('throttles a username at an address after repeated failures, with a clear message, even for the right password', async () => {
    const b = new BrowserSession(s.url);
    for (let i = 0; i < 3; i++) expect((await b.signIn('dave', `wrong-${i}-password`)).status).toBe(401);
    const blocked = await b.signIn('dave', PASSWORD);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await blocked.text()).toContain('Too many failed sign-in attempts');
    // Another account from the same address is unaffected.
    expect((await b.signIn('erin', PASSWORD)).status).toBe(303);
    // Unknown usernames are throttled exactly like known ones.
    const u = new BrowserSession(s.url);
    for (let i = 0; i < 3; i++) expect((await u.signIn('ghost', 'wrong-password')).status).toBe(401);
    expect((await u.signIn('ghost', 'wrong-password')).status).toBe(429);
  });

  it('clears an account count on success', async () => {
    const b = new BrowserSession(s.url);
    for (let i = 0; i < 2; i++) expect((await b.signIn('frank', 'wrong-password')).status).toBe(401);
    expect((await b.signIn('frank', PASSWORD)).status).toBe(303);
    const c = new BrowserSession(s.url);
    for (let i = 0; i < 2; i++) expect((await c.signIn('frank', 'wrong-password')).status).toBe(401);
    expect((await c.signIn('frank', PASSWORD)).status).toBe(303);
  });

  it('keeps failure counts in the database, shared by every instance', async () => {
    const rows = await t.db.query<{ key: string }>('SELECT key FROM login_failures');
    expect(rows.rows.some((r) => r.key.startsWith('account:'))).toBe(true);
    expect(rows.rows.some((r) => r.key.startsWith('pair:'))).toBe(true);
    // Usernames are stored only as keyed hashes.
    expect(rows.rows.some((r) => r.key.includes('dave') || r.key.includes('ghost'))).toBe(false);
  });

  it('signs out with POST /logout: the session row is gone and the cookie no longer works', async () => {
    const b = new BrowserSession(s.url);
    await b.signIn('bob', PASSWORD);
    const cookie = b.cookieHeader;
    const page = await (await b.get('/patients')).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    const bob = await t.db.query("SELECT id FROM users WHERE username = 'bob'");
    const bobId = String(bob.rows[0]!.id);
    expect(await sessionRows(bobId)).toBe(1);
    const res = await b.postForm('/logout', { _csrf: csrf });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/login?signedOut=1');
    expect(await sessionRows(bobId)).toBe(0);
    const replay = await fetch(`${s.url}/patients`, { headers: { cookie }, redirect: 'manual' });
    expect(replay.status).toBe(303);
  });

  it('refuses POST /logout without the CSRF token and keeps the session', async () => {
    const b = new BrowserSession(s.url);
    await b.signIn('erin', PASSWORD);
    const res = await b.postForm('/logout', {});
    expect(res.status).toBe(403);
    expect((await b.get('/patients')).status).toBe(200);
  });

  it('refuses inactive users and ends their sessions at once', async () => {
    const b = new BrowserSession(s.url);
    const carol = await createUser(s.ctx, {
      username: 'carol2',
      password: PASSWORD,
      given_name: 'Carol',
      family_name: 'Two',
    });
    expect((await b.signIn('carol2', PASSWORD)).status).toBe(303);
    await setActive(s.ctx, carol.id, false);
    expect((await b.get('/patients')).status).toBe(303);
    const again = await new BrowserSession(s.url).signIn('carol2', PASSWORD);
    expect(again.status).toBe(401);
    expect(await again.text()).toContain('The username or password is incorrect.');
  });

  it('ends sessions when the password is reset', async () => {
    const b = new BrowserSession(s.url);
    const u = await createUser(s.ctx, {
      username: 'reset-me',
      password: PASSWORD,
      given_name: 'R',
      family_name: 'M',
    });
    await b.signIn('reset-me', PASSWORD);
    await new AdminOperations(s.ctx, {
      provider: () => {
        throw new Error('not needed');
      },
    }).resetPassword({ via: 'api', userId: null }, u.id, {
      password: 'a brand new password',
    });
    expect((await b.get('/patients')).status).toBe(303);
    expect((await new BrowserSession(s.url).signIn('reset-me', PASSWORD)).status).toBe(401);
    expect((await new BrowserSession(s.url).signIn('reset-me', 'a brand new password')).status).toBe(303);
  });

  it('audits sign-ins without passwords or usernames', async () => {
    const r = await t.db.query<{ outcome: string; detail: unknown }>(
      "SELECT outcome, detail FROM audit_events WHERE action = 'ehr.signin'",
    );
    expect(r.rows.some((e) => e.outcome === 'success')).toBe(true);
    expect(r.rows.some((e) => e.outcome === 'failure')).toBe(true);
    const text = JSON.stringify(r.rows);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain('ghost');
  });
});

describe('EHR sign-in throttling per address', () => {
  it('refuses an address after its failures, whichever usernames it tried, and tells the person', async () => {
    const t = await createTestDatabase();
    const s = await startTestServer(t.db, {
      LOGIN_MAX_FAILURES_PER_ADDRESS: '4',
      LOGIN_FAILURES_BEFORE_DELAY: '50',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '100',
    });
    try {
      await createUser(s.ctx, { username: 'victim', password: PASSWORD, given_name: 'V', family_name: 'T' });
      const b = new BrowserSession(s.url);
      for (const u of ['a1', 'b2', 'c3', 'victim'])
        expect((await b.signIn(u, 'guess-guess-guess')).status).toBe(401);
      const blocked = await b.signIn('victim', PASSWORD);
      expect(blocked.status).toBe(429);
      expect(await blocked.text()).toContain('try again in 15 minutes');
      const audit = await t.db.query(
        "SELECT 1 FROM audit_events WHERE action = 'ehr.signin' AND outcome = 'failure' AND detail->>'reason' = 'throttled'",
      );
      expect(audit.rowCount).toBeGreaterThan(0);
    } finally {
      await s.stop();
      await t.drop();
    }
  });
});

describe('EHR session cookie behind an https proxy', () => {
  it('is Secure, HttpOnly and SameSite=Lax when PUBLIC_URL is https', async () => {
    const t = await createTestDatabase();
    const s = await startTestServer(t.db, { PUBLIC_URL: 'https://ehr.example.org', TRUST_PROXY: 'loopback' });
    try {
      const res = await fetch(`${s.url}/login`, { headers: { 'x-forwarded-proto': 'https' } });
      expect(res.status).toBe(200);
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`));
      expect(cookie).toMatch(/; Secure/i);
      expect(cookie).toMatch(/HttpOnly/i);
      expect(cookie).toMatch(/SameSite=Lax/i);
    } finally {
      await s.stop();
      await t.drop();
    }
  });
});

describe('EHR sessions across a restart', () => {
  it('keeps a signed-in session when the server restarts on the same database', async () => {
    const t = await createTestDatabase();
    try {
      const first = await startTestServer(t.db);
      await createUser(first.ctx, {
        username: 'nina',
        password: PASSWORD,
        given_name: 'Nina',
        family_name: 'Roy',
      });
      const b = new BrowserSession(first.url);
      expect((await b.signIn('nina', PASSWORD)).status).toBe(303);
      await first.stop();

      const second = await startTestServer(t.db);
      try {
        const res = await fetch(`${second.url}/patients`, {
          headers: { cookie: b.cookieHeader },
          redirect: 'manual',
        });
        expect(res.status).toBe(200);
        expect(await res.text()).toContain('Nina Roy');
      } finally {
        await second.stop();
      }
    } finally {
      await t.drop();
    }
  });

  it('shares sessions between two instances on one database', async () => {
    const t = await createTestDatabase();
    const a = await startTestServer(t.db);
    const other = await t.connectAnother();
    const c = await startTestServer(other);
    try {
      await createUser(a.ctx, {
        username: 'omar',
        password: PASSWORD,
        given_name: 'Omar',
        family_name: 'Haddad',
      });
      const b = new BrowserSession(a.url);
      expect((await b.signIn('omar', PASSWORD)).status).toBe(303);
      const res = await fetch(`${c.url}/patients`, {
        headers: { cookie: b.cookieHeader },
        redirect: 'manual',
      });
      expect(res.status).toBe(200);
    } finally {
      await c.stop();
      await a.stop();
      await t.drop();
    }
  });
});
