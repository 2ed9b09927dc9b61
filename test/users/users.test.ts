import { randomBytes, scryptSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import type { Database } from '../../src/db/database.ts';
import { readResource } from '../../src/fhir/repository.ts';
import { needsRehash, verifyPasswordHash } from '../../src/users/passwords.ts';
import {
  ConflictError,
  findByUsername,
  getUser,
  listUsers,
  NotFoundError,
  resetPassword,
  setActive,
  setRoles,
  ValidationError,
  verifyPassword,
} from '../../src/users/users.ts';
import { countingStatements, createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const base = { password: 'a long enough password', given_name: 'Grace', family_name: 'Hopper' };

describe('EHR users repository', () => {
  let t: TestDatabase;
  let ctx: { db: Database };

  beforeAll(async () => {
    t = await createTestDatabase();
    const { migrate } = await import('../../src/db/migrate.ts');
    await migrate(t.db);
    ctx = { db: t.db };
  });
  afterAll(async () => {
    await t?.drop();
  });

  const count = async (sql: string) => Number((await t.db.query<{ n: unknown }>(sql)).rows[0]!.n);

  it('creates the user and its Practitioner together, with a random id that is the sub', async () => {
    const u = await createUser(ctx, {
      ...base,
      username: 'ghopper',
      email: 'grace@clinic.example.org',
      identifiers: [
        { system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician', value: '12345' },
      ],
      roles: ['admin'],
    });
    expect(u.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(u.roles).toEqual(['admin']);
    const p = await readResource(t.db, 'Practitioner', u.practitionerId);
    expect(p?.resource).toMatchObject({
      resourceType: 'Practitioner',
      name: [{ family: 'Hopper', given: ['Grace'] }],
      telecom: [{ system: 'email', value: 'grace@clinic.example.org' }],
      identifier: [{ value: '12345' }],
    });
    expect((await getUser(ctx, u.id))?.username).toBe('ghopper');
    const row = await t.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [
      u.id,
    ]);
    expect(row.rows[0]!.password_hash).toMatch(/^scrypt\$ln=15,r=8,p=1\$[\w-]+\$[\w-]+$/);
    expect(row.rows[0]!.password_hash).not.toContain(base.password);
  });

  it('defaults to the clinician role', async () => {
    const u = await createUser(ctx, { ...base, username: 'plain' });
    expect(u.roles).toEqual(['clinician']);
  });

  it('refuses a taken username in any letter case with a ConflictError, leaving no Practitioner behind', async () => {
    const practitioners = await count(
      "SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'Practitioner'",
    );
    await expect(createUser(ctx, { ...base, username: 'GHopper' })).rejects.toBeInstanceOf(ConflictError);
    expect(await count("SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'Practitioner'")).toBe(
      practitioners,
    );
  });

  it('keeps one user when two are created with one username at once', async () => {
    const results = await Promise.allSettled([
      createUser(ctx, { ...base, username: 'racer' }),
      createUser(ctx, { ...base, username: 'RACER' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(ConflictError);
    expect(await count("SELECT count(*) AS n FROM users WHERE lower(username) = 'racer'")).toBe(1);
  });

  it.each([
    [{ ...base, username: '' }, 'username'],
    [{ ...base, username: 'has space' }, 'username'],
    [{ ...base, username: 'x', password: 'short' }, 'password'],
    [{ ...base, username: 'x', given_name: '  ' }, 'given_name'],
    [{ ...base, username: 'x', email: 'not-an-email' }, 'email'],
    [{ ...base, username: 'x', roles: ['superuser'] }, 'roles'],
    [{ ...base, username: 'x', identifiers: [{ system: 'not a uri', value: '1' }] }, 'identifiers'],
    [{ ...base, username: 'x', unexpected: true }, ''],
  ])('refuses bad input %j with a ValidationError naming %s', async (input, field) => {
    const users = await count('SELECT count(*) AS n FROM users');
    const err = await createUser(ctx, input as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).status).toBe(400);
    if (field) expect((err as ValidationError).issues.some((i) => i.path.startsWith(field))).toBe(true);
    expect(await count('SELECT count(*) AS n FROM users')).toBe(users);
  });

  it('verifies passwords: right one, wrong one, unknown user, inactive user', async () => {
    const u = await createUser(ctx, { ...base, username: 'verify-me' });
    expect((await verifyPassword(ctx, 'verify-me', base.password))?.id).toBe(u.id);
    expect(await verifyPassword(ctx, 'VERIFY-ME', base.password)).toBeDefined();
    expect(await verifyPassword(ctx, 'verify-me', 'wrong password!')).toBeUndefined();
    expect(await verifyPassword(ctx, 'nobody', base.password)).toBeUndefined();
    expect(await verifyPassword(ctx, 'verify-me', 'x'.repeat(10_000))).toBeUndefined();
    await setActive(ctx, u.id, false);
    expect(await verifyPassword(ctx, 'verify-me', base.password)).toBeUndefined();
    await setActive(ctx, u.id, true);
    expect(await verifyPassword(ctx, 'verify-me', base.password)).toBeDefined();
  });

  it('upgrades a hash made with weaker parameters at the next sign-in', async () => {
    const u = await createUser(ctx, { ...base, username: 'legacy' });
    // A genuinely weaker hash (N = 2^14), as an older release would have stored it.
    const salt = randomBytes(16).toString('base64url');
    const key = scryptSync(base.password, Buffer.from(salt, 'base64url'), 32, { N: 2 ** 14, r: 8, p: 1 });
    const legacy = `scrypt$ln=14,r=8,p=1$${salt}$${key.toString('base64url')}`;
    expect(await verifyPasswordHash(base.password, legacy)).toBe(true);
    expect(needsRehash(legacy)).toBe(true);
    await t.db.query('UPDATE users SET password_hash = $2 WHERE id = $1', [u.id, legacy]);
    expect(await verifyPassword(ctx, 'legacy', base.password)).toBeDefined();
    const row = await t.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [
      u.id,
    ]);
    expect(row.rows[0]!.password_hash).toMatch(/^scrypt\$ln=15,/);
  });

  it('treats an unreadable stored hash as a wrong password', async () => {
    expect(await verifyPasswordHash('anything at all', 'md5$abc')).toBe(false);
    expect(await verifyPasswordHash('anything at all', 'scrypt$ln=99,r=8,p=1$aa$bb')).toBe(false);
  });

  // Ending the user's sessions with a reset is the admin's transaction: test/ehr/sign-in.test.ts.
  it('resets a password (validated); the id never changes', async () => {
    const u = await createUser(ctx, { ...base, username: 'resetter' });
    await expect(resetPassword(ctx, u.id, 'short')).rejects.toBeInstanceOf(ValidationError);
    await resetPassword(ctx, u.id, 'another long password');
    expect(await verifyPassword(ctx, 'resetter', base.password)).toBeUndefined();
    expect((await verifyPassword(ctx, 'resetter', 'another long password'))?.id).toBe(u.id);
    await expect(resetPassword(ctx, 'no-such-user', 'another long password')).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('sets roles (validated) and activity; unknown ids are NotFoundError', async () => {
    const u = await createUser(ctx, { ...base, username: 'roles' });
    expect((await setRoles(ctx, u.id, ['admin', 'clinician', 'admin'])).roles.sort()).toEqual([
      'admin',
      'clinician',
    ]);
    await expect(setRoles(ctx, u.id, ['root' as never])).rejects.toBeInstanceOf(ValidationError);
    await expect(setRoles(ctx, 'missing', ['admin'])).rejects.toBeInstanceOf(NotFoundError);
    await expect(setActive(ctx, 'missing', false)).rejects.toBeInstanceOf(NotFoundError);
    expect((await findByUsername(ctx, 'ROLES'))?.id).toBe(u.id);
    expect(await findByUsername(ctx, 'nobody')).toBeUndefined();
  });

  it('the password hash leaves the database only to check a password', async () => {
    const u = await createUser(ctx, { ...base, username: 'hashstays' });
    const counting = countingStatements(t.db);
    const c = { db: counting.db };
    await getUser(c, u.id);
    await findByUsername(c, 'hashstays');
    await listUsers(c);
    await setRoles(c, u.id, ['clinician']);
    await setActive(c, u.id, true);
    expect(counting.statements.length).toBeGreaterThanOrEqual(5);
    for (const { sql } of counting.statements) expect(sql).not.toContain('password_hash');
    expect(await verifyPassword(c, 'hashstays', base.password)).toMatchObject({ id: u.id });
    expect(counting.statements.at(-1)!.sql).toContain('password_hash');
  });
});
