/*
 * POST /ehr-api/launches: an EHR system asks for a launch and gets the URL its button opens
 * (CONTRACT §3.5).
 * - ONE transaction: the account of (EHR system, user.id) found or created and its Practitioner
 *   updated, the patient and chart entries sent with the launch upserted, the launch context
 *   written with its launch.created audit event. Any refusal leaves nothing behind
 * - the usual launch (a known user whose fields changed nothing, a stored patient, no chart
 *   entries) has nothing to write but the launch context: one statement (which checks the
 *   patient too), no transaction
 * - the account is keyed by the identity ('ehr-system:' + client_id, user.id), never by name or
 *   e-mail: one EHR system's user id is always the same account, Practitioner and id_token `sub`;
 *   another EHR system's same id is another account. Fields left out keep their stored values
 * - a chart entry whose id is stored in ANOTHER patient's compartment is refused, not moved
 * - the launch is single-use and lives EHR_API_LAUNCH_TTL seconds; it signs its user in at the
 *   authorization (src/oidc/interactions.ts)
 */
import type { Resource } from '@medplum/fhirtypes';
import { findOrCreateInTransaction, inIdentityTransaction } from '../accounts/identities.ts';
import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { readResource } from '../fhir/repository.ts';
import { putResources } from '../fhir/writes.ts';
import { HttpError, NotFoundError, ValidationError } from '../http/errors.ts';
import { createLaunchContext, LaunchRefusedError } from '../launch/launch-contexts.ts';
import { launchRedirectUrl } from '../launch/launch-url.ts';
import { getSite } from '../sites/sites.ts';
import { lockUserByIdentity } from '../users/identities.ts';
import type { User } from '../users/users.ts';
import { assertSiteAllowed } from './caller.ts';
import type { EhrSystemRef } from './ehr-systems.ts';
import type { LaunchRequest, LaunchUser } from './launch-request.ts';

export interface LaunchAnswer {
  launch: string;
  launch_url: string;
  expires_in: number;
}

export interface Requester {
  requestId: string | null;
  ip: string | null;
}

/** The issuer of an EHR system's users in user_identities. */
export const ehrSystemIssuer = (clientId: string) => `ehr-system:${clientId}`;

export async function createApiLaunch(
  ctx: AppContext,
  system: EhrSystemRef,
  request: LaunchRequest,
  requester: Requester,
): Promise<LaunchAnswer> {
  assertSiteAllowed(system, request.site);
  if (request.clientId !== undefined) await assertSiteClient(ctx, request.site, request.clientId);
  const ttl = ctx.config.ttl.ehrApiLaunch;
  const launchFor = async (q: Queryable, userId: string) => {
    try {
      return await createLaunchContext(
        ctx,
        {
          userId,
          patientId: request.patient?.id ?? null,
          siteNum: request.site,
          action: request.action,
          requestedBy: system.clientId,
          ttlSeconds: ttl,
        },
        requester,
        q,
      );
    } catch (err) {
      throw err instanceof LaunchRefusedError ? refusal(err, request) : err;
    }
  };
  // The usual launch — a known user, unchanged, for a stored patient — writes one row (with its
  // audit event) in one statement that checks the patient too: no transaction to open. Anything
  // to store takes the other road.
  const known =
    !request.patient?.resource && request.resources.length === 0
      ? await unchangedAccount(ctx.db, system, request.user)
      : undefined;
  const created = known
    ? await launchFor(ctx.db, known.id)
    : await inIdentityTransaction(ctx.db, async (tx, retry) => {
        const user = await accountOf(tx, system, request.user, retry);
        if (request.patient) await storeChart(tx, request.patient, request.resources);
        return launchFor(tx, user.id);
      });
  return {
    launch: created.launchId,
    launch_url: launchRedirectUrl(created.launchUrl, {
      siteNum: request.site,
      action: request.action,
      iss: ctx.config.fhirBaseUrl,
      launch: created.launchId,
    }),
    expires_in: ttl,
  };
}

/** `client_id`, when sent, must be the Ocean client the site belongs to. */
async function assertSiteClient(ctx: AppContext, siteNum: string, clientId: string): Promise<void> {
  const site = await getSite(ctx, siteNum).catch((err: unknown) => {
    if (err instanceof NotFoundError)
      throw new ValidationError([{ path: 'site', message: `no Ocean site ${siteNum} is registered here` }]);
    throw err;
  });
  if (site.clientId !== clientId) {
    throw new ValidationError([
      { path: 'client_id', message: `Ocean site ${siteNum} is not launched through that client` },
    ]);
  }
}

/**
 * The account of this EHR system's user: made on first sight, its profile following the EHR's.
 * A launch that changes nothing about the user (the usual one) costs one locking read.
 */
async function accountOf(tx: Queryable, system: EhrSystemRef, u: LaunchUser, retry: boolean): Promise<User> {
  const identity = identityOf(system, u);
  const stored = await lockUserByIdentity(tx, identity);
  if (stored && (await needsNoWrite(tx, stored, u))) return stored;
  const { user } = await findOrCreateInTransaction(
    tx,
    identity,
    {
      givenName: u.givenName ?? stored?.givenName ?? '',
      familyName: u.familyName ?? stored?.familyName ?? (u.givenName ? '' : `EHR user ${u.id}`),
      email: u.email ?? stored?.email ?? undefined,
      // Roles are ours to give (an administrator may make the account an admin); the EHR sends none.
      roles: stored?.roles ?? ['clinician'],
      usernameHint: u.email ?? `${system.name.replace(/\s+/g, '-').toLowerCase()}-${u.id}`,
      ...(u.identifiers ? { identifiers: u.identifiers } : {}),
    },
    retry,
  );
  return user;
}

/** The stored account when the launch's user fields change nothing about it; otherwise undefined. */
async function unchangedAccount(
  q: Queryable,
  system: EhrSystemRef,
  u: LaunchUser,
): Promise<User | undefined> {
  const stored = await lockUserByIdentity(q, identityOf(system, u));
  return stored && (await needsNoWrite(q, stored, u)) ? stored : undefined;
}

const identityOf = (system: EhrSystemRef, u: LaunchUser) => ({
  issuer: ehrSystemIssuer(system.clientId),
  subject: u.id,
});

/** A deactivated account (the launch refuses it) or one the launch's fields do not change. */
const needsNoWrite = async (q: Queryable, stored: User, u: LaunchUser): Promise<boolean> =>
  !stored.active || (await unchanged(q, stored, u));

/** Whether the launch's user fields say what is stored already (then nothing is written). */
async function unchanged(tx: Queryable, stored: User, u: LaunchUser): Promise<boolean> {
  if (
    (u.givenName !== undefined && u.givenName !== stored.givenName) ||
    (u.familyName !== undefined && u.familyName !== stored.familyName) ||
    (u.email !== undefined && u.email !== stored.email)
  )
    return false;
  if (!u.identifiers) return true;
  const practitioner = await readResource(tx, 'Practitioner', stored.practitionerId);
  const have = (practitioner?.resource.identifier ?? []).map((i) => `${i.system}|${i.value}`);
  const want = u.identifiers.map((i) => `${i.system}|${i.value}`);
  return have.length === want.length && want.every((x, i) => x === have[i]);
}

/** The patient exists (or is stored now, with its chart entries), each entry in its compartment. */
async function storeChart(
  tx: Queryable,
  patient: NonNullable<LaunchRequest['patient']>,
  resources: Resource[],
): Promise<void> {
  if (!patient.resource && !(await readResource(tx, 'Patient', patient.id))) throw noSuchPatient(patient.id);
  const all: Resource[] = [...(patient.resource ? [patient.resource] : []), ...resources];
  if (all.length === 0) return;
  const { rows } = await tx.query<{ key: string }>(
    `SELECT f.resource_type || '/' || f.id AS key
       FROM fhir_resources f
       JOIN jsonb_to_recordset($1::jsonb) AS k(t text, i text) ON f.resource_type = k.t AND f.id = k.i
      WHERE f.compartment_patient IS DISTINCT FROM $2 AND NOT f.deleted`,
    [JSON.stringify(all.map((r) => ({ t: r.resourceType, i: r.id }))), patient.id],
  );
  if (rows.length > 0) {
    const taken = new Set(rows.map((r) => r.key));
    const index = resources.findIndex((r) => taken.has(`${r.resourceType}/${r.id}`));
    throw new ValidationError([
      {
        path: index >= 0 ? `resources[${index}]` : 'patient.resource',
        message: `${[...taken][0]} is stored here for another patient: use your own ids for this patient's entries`,
      },
    ]);
  }
  await putResources(tx, all);
}

const noSuchPatient = (id: string) =>
  new HttpError(404, 'not_found', `patient.id: no patient ${id} is stored here`, {}, 'not-found');

/** A launch the stored configuration refuses, worded for the EHR's integrator. */
function refusal(err: LaunchRefusedError, r: LaunchRequest): HttpError {
  switch (err.reason) {
    case 'patient':
      return noSuchPatient(r.patient?.id ?? '');
    case 'site':
      return new ValidationError([{ path: 'site', message: `no Ocean site ${r.site} is registered here` }]);
    case 'action':
      return new ValidationError([
        { path: 'action', message: `Ocean site ${r.site} offers no action "${r.action}"` },
      ]);
    case 'launch_url':
      return new HttpError(409, 'not_configured', `the Ocean client of site ${r.site} has no launch URL yet`);
    case 'user':
      return new HttpError(
        403,
        'access_denied',
        "this EHR user's account is deactivated here",
        {},
        'forbidden',
      );
  }
}
