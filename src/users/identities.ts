/*
 * External identities of users (table user_identities): an identity provider's (iss, sub), or an
 * EHR system's own user id (issuer 'ehr-system:' + client_id).
 * - one (issuer, subject) is one user, forever: looked up by that pair alone — never by e-mail
 *   or username, which another system may reuse or let a person choose
 * - such a user has no local password (password_hash NULL): password sign-in refuses them
 * - the username is chosen once, from the other system's hint, made unique; it never follows it
 * - the profile (name, e-mail, roles) is rewritten only when it changed (no write per sign-in)
 * The account as a whole (the user with its Practitioner) is src/accounts/identities.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Queryable } from '../db/database.ts';
import { COLUMNS, type Role, toUser, type User, type UserRow, usernameTaken } from './users.ts';

export interface ExternalIdentity {
  /** The other system's issuer: an identity provider's `iss`, or 'ehr-system:' + client_id. */
  issuer: string;
  /** That system's id of the person (`sub`, or the EHR's user id). */
  subject: string;
}

/** What the other system says about the person, already checked by the caller. */
export interface ExternalProfile {
  givenName: string;
  familyName: string;
  email: string | undefined;
  roles: Role[];
  /** Username to start from when the user is created (preferred_username, e-mail…). */
  usernameHint: string | undefined;
}

const USERNAME_MAX = 64;

/** The user of an identity, locked for update until the transaction ends; undefined when new. */
export async function lockUserByIdentity(
  tx: Queryable,
  identity: ExternalIdentity,
): Promise<User | undefined> {
  const r = await tx.query<UserRow>(
    `SELECT ${COLUMNS.split(', ')
      .map((c) => `u.${c}`)
      .join(', ')}
       FROM user_identities i JOIN users u ON u.id = i.user_id
      WHERE i.issuer = $1 AND i.subject = $2
      FOR UPDATE OF u`,
    [identity.issuer, identity.subject],
  );
  return r.rows[0] ? toUser(r.rows[0]) : undefined;
}

/**
 * Inserts a user without a local password and its identity row. `retry`: a unique violation
 * happened before (a race, or a username taken meanwhile), so the username gets a suffix at once.
 */
export async function insertUserWithIdentity(
  tx: Queryable,
  identity: ExternalIdentity,
  profile: ExternalProfile,
  practitionerId: string,
  retry: boolean,
): Promise<User> {
  const id = randomUUID();
  const r = await tx.query<UserRow>(
    `INSERT INTO users (id, username, password_hash, practitioner_id, given_name, family_name, email, roles)
     VALUES ($1, $2, NULL, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
    [
      id,
      await freeUsername(tx, profile.usernameHint, retry),
      practitionerId,
      profile.givenName,
      profile.familyName,
      profile.email ?? null,
      [...new Set(profile.roles)].sort(),
    ],
  );
  await tx.query('INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)', [
    identity.issuer,
    identity.subject,
    id,
  ]);
  return toUser(r.rows[0]!);
}

/** Rewrites name, e-mail and roles when they changed; the user as it now is, and whether it changed. */
export async function updateProfile(
  tx: Queryable,
  user: User,
  profile: ExternalProfile,
): Promise<{ user: User; changed: boolean }> {
  const r = await tx.query<UserRow>(
    `UPDATE users SET given_name = $2, family_name = $3, email = $4, roles = $5, updated_at = now()
      WHERE id = $1 AND (given_name, family_name, email, roles) IS DISTINCT FROM ($2, $3, $4, $5::text[])
      RETURNING ${COLUMNS}`,
    [
      user.id,
      profile.givenName,
      profile.familyName,
      profile.email ?? null,
      [...new Set(profile.roles)].sort(),
    ],
  );
  return r.rows[0] ? { user: toUser(r.rows[0]), changed: true } : { user, changed: false };
}

/**
 * A username nobody has: the hint reduced to the characters usernames allow, else "user"; a
 * random suffix when it is taken (and always on a retry, in case the collision was on it).
 */
async function freeUsername(tx: Queryable, hint: string | undefined, retry: boolean): Promise<string> {
  const base =
    (hint ?? '')
      .normalize('NFKD')
      .replace(/[^A-Za-z0-9._@-]+/g, '')
      .slice(0, USERNAME_MAX - 7) || 'user';
  if (!retry && !(await usernameTaken(tx, base))) return base;
  return `${base}-${randomBytes(3).toString('hex')}`;
}
