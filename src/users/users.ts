/*
 * EHR users: the people who sign in, each linked to a FHIR Practitioner.
 * - `id` is drawn once at random and never changes: it is the id_token `sub`, and Ocean links
 *   its user to `sub@iss` (CONTRACT §2 item 5) — not on a username, password, name or e-mail change either
 * - an account is a user and its Practitioner: src/accounts/ writes both in ONE transaction
 * - passwords are scrypt hashes (src/users/passwords.ts); a password reset or deactivation also
 *   ends the user's sign-in sessions (and with them online_access refresh tokens)
 * - bad input → ValidationError (400, per-field issues), a taken username → ConflictError (409),
 *   no such user → NotFoundError (404): the refusals of src/http/errors.ts, all
 *   HttpErrors, so the admin API can simply rethrow them
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { type Queryable, sqlState, UNIQUE_VIOLATION } from '../db/database.ts';
import { ConflictError, NotFoundError, parseInput } from '../http/errors.ts';
import { hashPassword, needsRehash, verifyAgainstDummy, verifyPasswordHash } from './passwords.ts';

export const ROLES = ['admin', 'clinician'] as const;
export type Role = (typeof ROLES)[number];

export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 256;

export { ConflictError, NotFoundError, ValidationError } from '../http/errors.ts';

const password = z
  .string()
  .min(PASSWORD_MIN_LENGTH, `password must be at least ${PASSWORD_MIN_LENGTH} characters`)
  .max(PASSWORD_MAX_LENGTH, `password must be at most ${PASSWORD_MAX_LENGTH} characters`);

const name = (what: string) =>
  z
    .string()
    .trim()
    .min(1, `${what} is required`)
    .max(100, `${what} must be at most 100 characters`)
    .refine((v) => !/[\p{Cc}]/u.test(v), `${what} must not contain control characters`);

export const newUserSchema = z.strictObject({
  username: z
    .string()
    .trim()
    .min(1, 'username is required')
    .max(64, 'username must be at most 64 characters')
    .regex(/^[A-Za-z0-9._@-]+$/, 'username may hold letters, digits and . _ @ - only'),
  password,
  given_name: name('given_name'),
  family_name: name('family_name'),
  email: z.email('email must be an e-mail address').max(254).optional(),
  identifiers: z
    .array(
      z.strictObject({
        system: z.url('identifier system must be a URI').max(300),
        value: z.string().trim().min(1, 'identifier value is required').max(100),
      }),
    )
    .max(20)
    .optional(),
  roles: z
    .array(z.enum(ROLES, `roles may be ${ROLES.join(', ')}`))
    .max(ROLES.length)
    .optional(),
});

export type NewUser = z.input<typeof newUserSchema>;

export interface User {
  id: string;
  username: string;
  practitionerId: string;
  givenName: string;
  familyName: string;
  email: string | null;
  roles: Role[];
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
  passwordChangedAt: Date;
}

export interface UserRow {
  id: string;
  username: string;
  practitioner_id: string;
  given_name: string;
  family_name: string;
  email: string | null;
  roles: string[];
  active: boolean;
  created_at: Date | string;
  updated_at: Date | string;
  password_changed_at: Date | string;
}

/** A user's columns — never the password hash, which only verifyPassword reads. */
export const COLUMNS =
  'id, username, practitioner_id, given_name, family_name, email, roles, active, created_at, updated_at, password_changed_at';

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    practitionerId: row.practitioner_id,
    givenName: row.given_name,
    familyName: row.family_name,
    email: row.email,
    roles: row.roles.filter((r): r is Role => (ROLES as readonly string[]).includes(r)),
    active: row.active,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    passwordChangedAt: new Date(row.password_changed_at),
  };
}

/** Where the store runs its SQL: the database, or the caller's open transaction. */
type Ctx = { db: Queryable };

/**
 * Inserts the users row of an account whose Practitioner the caller has written in the same
 * transaction (src/accounts/accounts.ts: an account is a user and its Practitioner).
 */
export async function insertUserRow(
  tx: Queryable,
  u: z.output<typeof newUserSchema>,
  practitionerId: string,
): Promise<User> {
  try {
    const r = await tx.query<UserRow>(
      `INSERT INTO users (id, username, password_hash, practitioner_id, given_name, family_name, email, roles)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
      [
        randomUUID(),
        u.username,
        await hashPassword(u.password),
        practitionerId,
        u.given_name,
        u.family_name,
        u.email ?? null,
        [...new Set(u.roles ?? ['clinician'])],
      ],
    );
    return toUser(r.rows[0]!);
  } catch (err) {
    // Two admins creating the same username at once: the unique index decides.
    if (sqlState(err) === UNIQUE_VIOLATION)
      throw new ConflictError(`username ${u.username} is already taken`);
    throw err;
  }
}

/** Whether a username is free (case-insensitive), checked before anything else is written. */
export async function usernameTaken(q: Queryable, username: string): Promise<boolean> {
  const taken = await q.query('SELECT 1 FROM users WHERE lower(username) = lower($1)', [username]);
  return taken.rowCount > 0;
}

/** Points the user's fhirUser at another Practitioner (its existence is the caller's check). */
export async function setPractitioner(q: Queryable, userId: string, practitionerId: string): Promise<void> {
  await q.query('UPDATE users SET practitioner_id = $2, updated_at = now() WHERE id = $1', [
    userId,
    practitionerId,
  ]);
}

export async function getUser(ctx: Ctx, id: string): Promise<User | undefined> {
  const r = await ctx.db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id], {
    prepare: true,
  });
  return r.rows[0] ? toUser(r.rows[0]) : undefined;
}

export async function findByUsername(ctx: Ctx, username: string): Promise<User | undefined> {
  const r = await ctx.db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE lower(username) = lower($1)`, [
    username.trim(),
  ]);
  return r.rows[0] ? toUser(r.rows[0]) : undefined;
}

export async function listUsers(ctx: Ctx): Promise<User[]> {
  const r = await ctx.db.query<UserRow>(`SELECT ${COLUMNS} FROM users ORDER BY lower(username)`);
  return r.rows.map(toUser);
}

export async function countUsers(q: Queryable): Promise<number> {
  const r = await q.query<{ n: number | string }>('SELECT count(*) AS n FROM users');
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Checks a username and password. Resolves to the user when both are right and the user is
 * active, otherwise undefined — after the same work in every case (unknown user, wrong
 * password, inactive), so neither the answer nor its timing tells them apart.
 */
export async function verifyPassword(
  ctx: Ctx,
  username: string,
  candidate: string,
): Promise<User | undefined> {
  if (username.length > 64 || candidate.length > PASSWORD_MAX_LENGTH) {
    await verifyAgainstDummy(candidate.slice(0, PASSWORD_MAX_LENGTH));
    return undefined;
  }
  // NULL password_hash: no local password (an account of the identity provider)
  const r = await ctx.db.query<UserRow & { password_hash: string | null }>(
    `SELECT ${COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)`,
    [username.trim()],
  );
  const row = r.rows[0];
  if (!row) {
    await verifyAgainstDummy(candidate);
    return undefined;
  }
  // No hash (an identity provider's account) verifies against nothing, after the same work.
  const ok = await verifyPasswordHash(candidate, row.password_hash ?? '');
  if (!ok || !row.active || !row.password_hash) return undefined;
  if (needsRehash(row.password_hash)) {
    await ctx.db.query('UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3', [
      row.id,
      await hashPassword(candidate),
      row.password_hash,
    ]);
  }
  return toUser(row);
}

/**
 * Sets a new password. Ending the user's sessions and grants is the caller's part of the same
 * transaction (src/admin/user-access.ts): those tables belong to other rooms.
 */
/**
 * Sets a new local password. Refused (409) for an account that signs in elsewhere — through the
 * organization's identity provider or by its EHR system's launches (user_identities): a password
 * here would open a second way in that the other system does not control.
 */
export async function resetPassword(ctx: Ctx, id: string, newPassword: string): Promise<void> {
  const pw = parseInput(password, newPassword);
  const hash = await hashPassword(pw);
  const r = await ctx.db.query(
    `UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now()
      WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = $1)`,
    [id, hash],
  );
  if (r.rowCount > 0) return;
  if (!(await getUser(ctx, id))) throw new NotFoundError('no such user');
  throw new ConflictError(
    'this account signs in through its identity provider or its EHR system: it has no password here',
  );
}

/** Activates or deactivates a user (an inactive user is refused everywhere at once: see isActiveUser). */
export async function setActive(ctx: Ctx, id: string, active: boolean): Promise<User> {
  const r = await ctx.db.query<UserRow>(
    `UPDATE users SET active = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, active],
  );
  if (r.rowCount === 0) throw new NotFoundError('no such user');
  return toUser(r.rows[0]!);
}

/** Locks the user's row for the rest of the caller's transaction; false when there is no such user. */
export async function lockUser(tx: Queryable, id: string): Promise<boolean> {
  const r = await tx.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [id]);
  return r.rowCount > 0;
}

/** Whether the user exists and is active (the FHIR API refuses a deactivated user's tokens). */
export async function isActiveUser(q: Queryable, id: string): Promise<boolean> {
  const r = await q.query<{ active: boolean }>('SELECT active FROM users WHERE id = $1', [id], {
    prepare: true,
  });
  return r.rows[0]?.active === true;
}

/** Whether any active user holds the admin role (the start-up banner explains how to make one). */
export async function hasActiveAdministrator(q: Queryable): Promise<boolean> {
  const r = await q.query(`SELECT 1 FROM users WHERE active AND 'admin' = ANY (roles) LIMIT 1`);
  return r.rowCount > 0;
}

/** The ids of the users named by id or (case-insensitive) username, for filters that accept either. */
export async function findUserIds(q: Queryable, idOrUsername: string): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    'SELECT id FROM users WHERE id = $1 OR lower(username) = lower($1)',
    [idOrUsername],
  );
  return r.rows.map((row) => row.id);
}

/** Usernames by user id (removed users are absent), for lists that name the people in them. */
export async function usernamesOf(q: Queryable, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const r = await q.query<{ id: string; username: string }>(
    'SELECT id, username FROM users WHERE id = ANY($1)',
    [ids],
  );
  return new Map(r.rows.map((row) => [row.id, row.username]));
}

/**
 * SQL for "user $n is active", for a statement of another room that must check it in the same
 * round trip (a FHIR read, a launch): the users table's SQL stays in this room.
 */
export const activeUserSql = (param: string): string =>
  `EXISTS (SELECT 1 FROM users WHERE id = ${param} AND active)`;

export async function setRoles(ctx: Ctx, id: string, roles: Role[]): Promise<User> {
  const valid = parseInput(z.array(z.enum(ROLES, `roles may be ${ROLES.join(', ')}`)), roles);
  const r = await ctx.db.query<UserRow>(
    `UPDATE users SET roles = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, [...new Set(valid)]],
  );
  if (r.rowCount === 0) throw new NotFoundError('no such user');
  return toUser(r.rows[0]!);
}

export function displayName(user: Pick<User, 'givenName' | 'familyName'>): string {
  return `${user.givenName} ${user.familyName}`;
}

/** SQL for the Practitioner id of the user named by an expression, for another room's statement. */
export const practitionerIdSql = (userIdExpr: string): string =>
  `(SELECT practitioner_id FROM users WHERE id = ${userIdExpr})`;
