/*
 * Accounts known by another system's identifier: find-or-create by (issuer, subject).
 * - one (issuer, subject) is one account, forever (src/users/identities.ts): never matched on
 *   e-mail or username
 * - first sight creates the user (no local password), its Practitioner and the identity row in
 *   ONE transaction; concurrent first sightings still make one account (the primary key decides,
 *   the loser's transaction is retried and finds it)
 * - every later sight updates name, e-mail and roles, and the Practitioner's official name and
 *   work e-mail (and its identifiers, when the other system sends some); the rest of the
 *   Practitioner (identifiers from an import…) stays; nothing is written when nothing changed
 * - an inactive account is returned untouched: the caller refuses it
 */
import { randomUUID } from 'node:crypto';
import type { ContactPoint, Identifier, Practitioner } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { type Database, sqlState, UNIQUE_VIOLATION } from '../db/database.ts';
import { putResource, readResource } from '../fhir/repository.ts';
import {
  type ExternalIdentity,
  type ExternalProfile,
  insertUserWithIdentity,
  lockUserByIdentity,
  updateProfile,
} from '../users/identities.ts';
import type { User } from '../users/users.ts';
import { practitionerFor } from './accounts.ts';

export type { ExternalIdentity, ExternalProfile } from '../users/identities.ts';

/** The account's profile, plus Practitioner identifiers when the other system owns them. */
export interface AccountProfile extends ExternalProfile {
  /** Replace the Practitioner's identifiers with these; undefined leaves them as they are. */
  identifiers?: { system: string; value: string }[];
}

export type IdentityOutcome = 'created' | 'updated' | 'unchanged';

/** Concurrent first sign-ins of one identity, or two hints making one username: a few tries settle it. */
const ATTEMPTS = 4;

export async function findOrCreateByIdentity(
  db: Database,
  identity: ExternalIdentity,
  profile: AccountProfile,
): Promise<{ user: User; outcome: IdentityOutcome }> {
  return inIdentityTransaction(db, (tx, retry) => findOrCreateInTransaction(tx, identity, profile, retry));
}

/**
 * Runs `work` in one transaction, again when it lost a race on a first sighting (a unique
 * violation): `retry` tells findOrCreateInTransaction to pick a username that cannot collide.
 * For callers whose transaction does more than the account (an EHR system's launch).
 */
export async function inIdentityTransaction<T>(
  db: Database,
  work: (tx: Queryable, retry: boolean) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction((tx) => work(tx, attempt > 1));
    } catch (err) {
      if (sqlState(err) !== UNIQUE_VIOLATION || attempt >= ATTEMPTS) throw err;
    }
  }
}

/** findOrCreateByIdentity's work, on the caller's transaction (see inIdentityTransaction). */
export async function findOrCreateInTransaction(
  tx: Queryable,
  identity: ExternalIdentity,
  profile: AccountProfile,
  retry: boolean,
): Promise<{ user: User; outcome: IdentityOutcome }> {
  const found = await lockUserByIdentity(tx, identity);
  if (!found) {
    const practitionerId = randomUUID();
    await putResource(tx, practitionerFor(practitionerId, practitionerInput(profile)));
    const user = await insertUserWithIdentity(tx, identity, profile, practitionerId, retry);
    return { user, outcome: 'created' };
  }
  if (!found.active) return { user: found, outcome: 'unchanged' };
  const updated = await updateProfile(tx, found, profile);
  const practitioner = await updatePractitioner(tx, found.practitionerId, profile);
  return {
    user: updated.user,
    outcome: updated.changed || practitioner !== 'unchanged' ? 'updated' : 'unchanged',
  };
}

function practitionerInput(profile: AccountProfile) {
  return {
    given_name: profile.givenName,
    family_name: profile.familyName,
    ...(profile.email ? { email: profile.email } : {}),
    ...(profile.identifiers ? { identifiers: profile.identifiers } : {}),
  };
}

/** The Practitioner's official name, work e-mail (and identifiers, when sent) follow the other system. */
async function updatePractitioner(
  tx: Queryable,
  practitionerId: string,
  profile: AccountProfile,
): Promise<'created' | 'updated' | 'unchanged'> {
  const fresh = practitionerFor(practitionerId, practitionerInput(profile));
  const stored = await readResource(tx, 'Practitioner', practitionerId);
  if (!stored) return (await putResource(tx, fresh)).outcome;
  const { meta: _meta, ...current } = stored.resource;
  const telecom: ContactPoint[] = [
    ...(current.telecom ?? []).filter((t) => !(t.system === 'email' && t.use === 'work')),
    ...(fresh.telecom ?? []),
  ];
  const identifier: Identifier[] | undefined = profile.identifiers ? fresh.identifier : current.identifier;
  const next: Practitioner = {
    ...current,
    name: [...(fresh.name ?? []), ...(current.name ?? []).filter((n) => n.use !== 'official')],
  };
  delete next.telecom;
  delete next.identifier;
  if (identifier?.length) next.identifier = identifier;
  if (telecom.length > 0) next.telecom = telecom;
  return (await putResource(tx, next)).outcome;
}
