/*
 * Accounts: an EHR user (src/users/) and the FHIR Practitioner they are (src/fhir/), made and
 * relinked together.
 * - creating an account validates everything first, then writes the Practitioner and the users row
 *   in ONE transaction (the caller's, when it passes one): never a user without its Practitioner
 * - the user's id (the id_token sub) never changes; relinking changes only which Practitioner
 *   fhirUser / profile name, and only to one that exists (ValidationError on `practitioner` otherwise)
 */
import { randomUUID } from 'node:crypto';
import type { Practitioner } from '@medplum/fhirtypes';
import { inTransaction, type Queryable } from '../db/database.ts';
import { putResource, readResource } from '../fhir/repository.ts';
import { ConflictError, parseInput, ValidationError } from '../http/errors.ts';
import {
  insertUserRow,
  type NewUser,
  newUserSchema,
  setPractitioner,
  type User,
  usernameTaken,
} from '../users/users.ts';

/** The Practitioner a user is (fhirUser / profile of the id_token). */
export function practitionerFor(
  practitionerId: string,
  u: {
    given_name: string;
    family_name: string;
    email?: string;
    identifiers?: { system: string; value: string }[];
  },
): Practitioner {
  return {
    resourceType: 'Practitioner',
    id: practitionerId,
    active: true,
    ...(u.identifiers?.length
      ? { identifier: u.identifiers.map((i) => ({ system: i.system, value: i.value })) }
      : {}),
    name: [
      {
        use: 'official',
        family: u.family_name,
        given: [u.given_name],
        text: `${u.given_name} ${u.family_name}`,
      },
    ],
    ...(u.email ? { telecom: [{ system: 'email', value: u.email, use: 'work' }] } : {}),
  };
}

/**
 * Creates the user and its Practitioner inside an open transaction (demo data loads several
 * users in one). Most callers want createUser.
 */
export async function insertUser(tx: Queryable, input: NewUser): Promise<User> {
  const u = parseInput(newUserSchema, input);
  if (await usernameTaken(tx, u.username)) throw new ConflictError(`username ${u.username} is already taken`);
  const practitionerId = randomUUID();
  await putResource(tx, practitionerFor(practitionerId, u));
  return insertUserRow(tx, u, practitionerId);
}

/** Creates a user and its Practitioner in one transaction. */
export async function createUser(ctx: { db: Queryable }, input: NewUser): Promise<User> {
  return inTransaction(ctx.db, (tx) => insertUser(tx, input));
}

/** Links a user to another, existing Practitioner (one imported with the chart data, say). */
export async function linkPractitioner(tx: Queryable, userId: string, reference: string): Promise<void> {
  const practitionerId = reference.slice('Practitioner/'.length);
  if (!(await readResource(tx, 'Practitioner', practitionerId))) {
    throw new ValidationError([{ path: 'practitioner', message: `${reference} does not exist` }]);
  }
  await setPractitioner(tx, userId, practitionerId);
}
