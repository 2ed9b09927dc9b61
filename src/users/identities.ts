/*
 * Accounts known by another system's identifier (table user_identities): an identity provider's
 * (iss, sub), or an EHR system's own user id.
 * - one (issuer, subject) is one account, forever: found by that pair alone — never by e-mail or
 *   username, which another system may reuse or let a person choose
 * - first sight creates the account (no local password: password sign-in refuses it), its
 *   Practitioner and the identity row in ONE transaction; two first sign-ins at once still make
 *   one account (the primary key decides, the loser retries and finds it)
 * - every later sight updates name, e-mail and roles from the other system, and the
 *   Practitioner's name and e-mail; the rest of the Practitioner (identifiers from an import…) stays
 * - the username is chosen once, from the other system's hint, made unique; it never follows the hint
 * - an inactive account is returned untouched: the caller refuses it
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ContactPoint, Practitioner } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db/database.ts';
import { sqlState, UNIQUE_VIOLATION } from '../db/database.ts';
import { putResource, readResource } from '../fhir/repository.ts';
import { COLUMNS, practitionerFor, type Role, toUser, type User, type UserRow } from './users.ts';

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
  /** Username to start from when the account is created (preferred_username, e-mail…). */
  usernameHint: string | undefined;
}

export type IdentityOutcome = 'created' | 'updated' | 'unchanged';

const USERNAME_MAX = 64;
/** Concurrent first sign-ins of one identity, or two hints making one username: a few tries settle it. */
const ATTEMPTS = 4;

export async function findOrCreateByIdentity(
  db: Database,
  identity: ExternalIdentity,
  profile: ExternalProfile,
): Promise<{ user: User; outcome: IdentityOutcome }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction((tx) => findOrCreate(tx, identity, profile, attempt > 1));
    } catch (err) {
      if (sqlState(err) !== UNIQUE_VIOLATION || attempt >= ATTEMPTS) throw err;
    }
  }
}

async function findOrCreate(
  tx: Queryable,
  identity: ExternalIdentity,
  profile: ExternalProfile,
  retry: boolean,
): Promise<{ user: User; outcome: IdentityOutcome }> {
  const found = await tx.query<UserRow>(
    `SELECT ${COLUMNS.split(', ')
      .map((c) => `u.${c}`)
      .join(', ')}
       FROM user_identities i JOIN users u ON u.id = i.user_id
      WHERE i.issuer = $1 AND i.subject = $2
      FOR UPDATE OF u`,
    [identity.issuer, identity.subject],
  );
  const row = found.rows[0];
  if (!row) return { user: await create(tx, identity, profile, retry), outcome: 'created' };
  if (!row.active) return { user: toUser(row), outcome: 'unchanged' };

  const roles = [...new Set(profile.roles)].sort();
  const updated = await tx.query<UserRow>(
    `UPDATE users SET given_name = $2, family_name = $3, email = $4, roles = $5, updated_at = now()
      WHERE id = $1 AND (given_name, family_name, email, roles) IS DISTINCT FROM ($2, $3, $4, $5::text[])
      RETURNING ${COLUMNS}`,
    [row.id, profile.givenName, profile.familyName, profile.email ?? null, roles],
  );
  const practitioner = await updatePractitioner(tx, row.practitioner_id, profile);
  const current = updated.rows[0] ?? row;
  return {
    user: toUser(current),
    outcome: updated.rowCount > 0 || practitioner !== 'unchanged' ? 'updated' : 'unchanged',
  };
}

async function create(
  tx: Queryable,
  identity: ExternalIdentity,
  profile: ExternalProfile,
  retry: boolean,
): Promise<User> {
  const id = randomUUID();
  const practitionerId = randomUUID();
  await putResource(tx, practitionerFor(practitionerId, nameAndEmail(profile)));
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

function nameAndEmail(profile: ExternalProfile) {
  return {
    given_name: profile.givenName,
    family_name: profile.familyName,
    ...(profile.email ? { email: profile.email } : {}),
  };
}

/** The Practitioner's official name and work e-mail follow the other system; nothing else is touched. */
async function updatePractitioner(
  tx: Queryable,
  practitionerId: string,
  profile: ExternalProfile,
): Promise<'created' | 'updated' | 'unchanged'> {
  const fresh = practitionerFor(practitionerId, nameAndEmail(profile));
  const stored = await readResource(tx, 'Practitioner', practitionerId);
  if (!stored) return (await putResource(tx, fresh)).outcome;
  const { meta: _meta, ...current } = stored.resource;
  const otherTelecom = (current.telecom ?? []).filter((t) => !(t.system === 'email' && t.use === 'work'));
  const telecom: ContactPoint[] = [...otherTelecom, ...(fresh.telecom ?? [])];
  const otherNames = (current.name ?? []).filter((n) => n.use !== 'official');
  const next: Practitioner = {
    ...current,
    name: [...(fresh.name ?? []), ...otherNames],
    ...(telecom.length > 0 ? { telecom } : {}),
  };
  if (telecom.length === 0) delete next.telecom;
  return (await putResource(tx, next)).outcome;
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
  if (!retry) {
    const taken = await tx.query('SELECT 1 FROM users WHERE lower(username) = lower($1)', [base]);
    if (taken.rowCount === 0) return base;
  }
  return `${base}-${randomBytes(3).toString('hex')}`;
}
