/*
 * Launch contexts: the one typed value a SMART EHR launch carries from /launch to the token.
 * - created by /launch (or by an EHR system's POST /ehr-api/launches, `requestedBy`): an opaque id
 *   with 256 random bits, stored only as its SHA-256, bound to the EHR user, the patient (none for
 *   a sign-on-only launch), the Ocean site, that site's client and a copy of the site's sealed SEK;
 *   it expires after LAUNCH_CONTEXT_TTL (≤ 5 minutes; EHR_API_LAUNCH_TTL for an EHR system's)
 * - a launch asked for by an EHR system signs its user in for its one authorization:
 *   apiLaunchUser() tells the authorization which user that is, before anyone has signed in
 * - consumed once, atomically, by the authorization that makes its grant (one UPDATE … WHERE
 *   used_at IS NULL AND expires_at > now() RETURNING): a second use, an expired id, another client
 *   or another user all find nothing
 * - launchContextMembers() is the only place that turns it into token-response members, JWT
 *   access-token claims and introspection members, so the three cannot disagree (docs/ARCHITECTURE.md rule 8)
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { auditedChange } from '../audit/audit.ts';
import { launchUrlSql } from '../clients/clients.ts';
import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { readResource, storedPatientSql } from '../fhir/reads.ts';
import { NotFoundError, parseInput } from '../http/errors.ts';
import { decryptSek, getSite, siteOfferingSql } from '../sites/sites.ts';
import { fhirUserUrl } from '../smart/fhir-user.ts';
import { smartStyleUrl } from '../smart/style.ts';
import { activeUserSql, isActiveUser, practitionerIdSql } from '../users/users.ts';

export interface LaunchContext {
  /** users.id of the EHR user who launched (the id_token sub). */
  userId: string;
  /** FHIR id of the patient in context; null for a launch for sign-on only. */
  patientId: string | null;
  clientId: string;
  /** The EHR system (client_id) that asked for this launch; null when our own screens did. */
  requestedBy: string | null;
  siteNum: string;
  action: string;
  needPatientBanner: boolean;
  /** The user's Practitioner id (fhirUser). */
  practitionerId: string;
  /** The site's SEK, sealed for "sek:<siteNum>"; opened only when a token is built. */
  sekEncrypted: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  /** The oidc-provider grant made by the authorization that consumed it. */
  grantId: string | null;
  /** The EHR session (express-session id) it was consumed under: online_access ends with it. */
  ehrSessionId: string | null;
}

interface Row {
  user_id: string;
  patient_id: string | null;
  client_id: string;
  requested_by: string | null;
  site_num: string;
  action: string;
  need_patient_banner: boolean;
  practitioner_id: string;
  sek_encrypted: string;
  created_at: Date | string;
  expires_at: Date | string;
  used_at: Date | string | null;
  grant_id: string | null;
  ehr_session_id: string | null;
}

const iso = (d: Date | string) => new Date(d).toISOString();

function toContext(r: Row): LaunchContext {
  return {
    userId: r.user_id,
    patientId: r.patient_id,
    clientId: r.client_id,
    requestedBy: r.requested_by ?? null,
    siteNum: r.site_num,
    action: r.action,
    needPatientBanner: r.need_patient_banner,
    practitionerId: r.practitioner_id,
    sekEncrypted: r.sek_encrypted,
    createdAt: iso(r.created_at),
    expiresAt: iso(r.expires_at),
    usedAt: r.used_at === null ? null : iso(r.used_at),
    grantId: r.grant_id,
    ehrSessionId: r.ehr_session_id,
  };
}

/** The stored form of a launch id. */
export const hashLaunchId = (launchId: string): string =>
  createHash('sha256').update(launchId, 'utf8').digest('hex');

/** Launch ids we issue: 43 base64url characters. Anything else cannot be one and is not looked up. */
export const LAUNCH_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export const createLaunchInput = z.strictObject({
  userId: z.string().min(1).max(200),
  patientId: z
    .string({ message: 'patient must be a FHIR id' })
    .regex(/^[A-Za-z0-9.-]{1,64}$/, {
      message: 'patient must be a FHIR id (1–64 letters, digits, "-" or ".")',
    })
    .nullable(),
  siteNum: z.string({ message: 'site must be a site number' }).min(1).max(64),
  action: z.string({ message: 'action is required' }).min(1).max(64),
  needPatientBanner: z.boolean().default(true),
  /** The EHR system asking (POST /ehr-api/launches); absent for our own screens. */
  requestedBy: z.string().min(1).max(200).optional(),
  /** Seconds the launch can be redeemed; LAUNCH_CONTEXT_TTL when absent. */
  ttlSeconds: z.number().int().min(1).max(300).optional(),
});
export type CreateLaunchInput = z.input<typeof createLaunchInput>;

/** Why a launch context could not be made; the /launch route words each one for people. */
export type LaunchRefusal = 'user' | 'patient' | 'site' | 'action' | 'launch_url';

export class LaunchRefusedError extends NotFoundError {
  constructor(
    readonly reason: LaunchRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'LaunchRefusedError';
  }
}

/** Where the launch was asked for, for its launch.created audit event. */
export interface LaunchRequester {
  requestId?: string | null;
  ip?: string | null;
}

/**
 * Records a launch for a signed-in user; the returned launchId is the only copy of the id.
 * One statement checks the user, the patient (stored, not deleted), the site, its action and its
 * client's launch URL, writes the context and its launch.created audit event; the reasons for a
 * refusal are looked up only then (LaunchRefusedError: an unknown or inactive user, an unknown
 * patient, an unknown site, an action the site does not offer, a client with no launch URL).
 */
export async function createLaunchContext(
  ctx: AppContext,
  input: CreateLaunchInput,
  requester: LaunchRequester = {},
  q: Queryable = ctx.db,
): Promise<{ launchId: string; expiresAt: string; clientId: string; launchUrl: string }> {
  const v = parseInput(createLaunchInput, input);
  const launchId = randomBytes(32).toString('base64url');
  const params: unknown[] = [
    hashLaunchId(launchId),
    v.userId,
    v.patientId,
    v.siteNum,
    v.action,
    v.needPatientBanner,
    v.ttlSeconds ?? ctx.config.ttl.launchContext,
    v.requestedBy ?? null,
  ];
  const audited = auditedChange(
    'created',
    {
      action: 'launch.created',
      userId: v.userId,
      patientId: v.patientId,
      entity: `site/${v.siteNum}`,
      requestId: requester.requestId ?? null,
      ip: requester.ip ?? null,
      detail: { action: v.action, ...(v.requestedBy ? { requested_by: v.requestedBy } : {}) },
    },
    params,
    { client_id: 'created.client_id' },
  );
  const { rows } = await q.query<{ expires_at: Date | string; client_id: string; launch_url: string }>(
    `WITH site AS (${siteOfferingSql('$4', '$5::text')}),
     created AS (
       INSERT INTO launch_contexts
         (id_hash, user_id, patient_id, client_id, site_num, action, sek_encrypted, need_patient_banner, expires_at,
          requested_by)
       SELECT $1, $2, $3, site.client_id, site.site_num, $5, site.sek_encrypted, $6, now() + make_interval(secs => $7),
              $8
         FROM site
        WHERE ${activeUserSql('$2')} AND ${launchUrlSql('site.client_id')} IS NOT NULL
          AND ($3::text IS NULL OR ${storedPatientSql('$3::text')})
       RETURNING expires_at, client_id),
     ${audited}
     SELECT created.expires_at, created.client_id, ${launchUrlSql('created.client_id')} AS launch_url
       FROM created`,
    params,
    { prepare: true },
  );
  const row = rows[0];
  if (!row) throw await explainRefusal(q, v);
  return { launchId, expiresAt: iso(row.expires_at), clientId: row.client_id, launchUrl: row.launch_url };
}

/** Why the launch was refused, asked on the caller's connection (inside its transaction). */
async function explainRefusal(
  q: Queryable,
  {
    userId,
    patientId,
    siteNum,
    action,
  }: { userId: string; patientId: string | null; siteNum: string; action: string },
): Promise<LaunchRefusedError> {
  if (!(await isActiveUser(q, userId))) return new LaunchRefusedError('user', 'no such active user');
  if (patientId !== null && !(await readResource(q, 'Patient', patientId)))
    return new LaunchRefusedError('patient', 'no such patient');
  const site = await getSite({ db: q }, siteNum).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
  if (!site) return new LaunchRefusedError('site', 'no such Ocean site');
  if (!site.actions.some((a) => a.action === action))
    return new LaunchRefusedError('action', 'this Ocean site offers no such action');
  return new LaunchRefusedError('launch_url', "this Ocean site's client has no launch URL");
}

const SELECT_CONTEXT = `SELECT lc.user_id, lc.patient_id, lc.client_id, lc.requested_by, lc.site_num, lc.action, lc.need_patient_banner,
       ${practitionerIdSql('lc.user_id')} AS practitioner_id, lc.sek_encrypted, lc.created_at, lc.expires_at,
       lc.used_at, lc.grant_id, lc.ehr_session_id
  FROM launch_contexts lc`;

/** A live, unused launch for a client: the user it was made for, and the EHR system that asked for it. */
export interface UsableLaunch {
  userId: string;
  /** The EHR system that asked for it (POST /ehr-api/launches); null for a launch from our chart. */
  requestedBy: string | null;
}

/**
 * The launch a launch id names while it is live and unused for this client (checked at the
 * authorization endpoint, before anyone has signed in); undefined for anything else. It is
 * consumed later, by consumeLaunchContext.
 */
export async function usableLaunch(
  q: Queryable,
  launchId: unknown,
  clientId: string,
): Promise<UsableLaunch | undefined> {
  if (typeof launchId !== 'string' || !LAUNCH_ID_PATTERN.test(launchId)) return undefined;
  const { rows } = await q.query<{ user_id: string; requested_by: string | null }>(
    `SELECT user_id, requested_by FROM launch_contexts
      WHERE id_hash = $1 AND client_id = $2 AND used_at IS NULL AND expires_at > now()`,
    [hashLaunchId(launchId), clientId],
    { prepare: true },
  );
  return rows[0] ? { userId: rows[0].user_id, requestedBy: rows[0].requested_by } : undefined;
}

/**
 * The user an EHR system's launch signs in, while it is live and unused for this client (the
 * authorization asks before anyone has signed in); undefined for any other launch. `known`: the
 * launch as this request already read it.
 */
export async function apiLaunchUser(
  q: Queryable,
  launchId: unknown,
  clientId: string,
  known?: UsableLaunch,
): Promise<{ userId: string; requestedBy: string } | undefined> {
  const launch = known ?? (await usableLaunch(q, launchId, clientId));
  return launch?.requestedBy ? { userId: launch.userId, requestedBy: launch.requestedBy } : undefined;
}

export interface ConsumeLaunch {
  launchId: string;
  /** Who asked and from where, for the launch.consumed audit event written with the change. */
  requestId?: string | null;
  ip?: string | null;
  clientId: string;
  /** The EHR user signed in now: a launch made by someone else is not theirs to redeem. */
  userId: string;
  grantId: string;
  /** Null for an EHR system's launch redeemed without an EHR session of ours. */
  ehrSessionId: string | null;
}

/**
 * Resolves a live, unused launch context for (client, user) and marks it used, binding the grant
 * and the EHR session, in one statement. Undefined when there is no such context.
 */
export async function consumeLaunchContext(
  ctx: AppContext,
  c: ConsumeLaunch,
  q: Queryable = ctx.db,
): Promise<LaunchContext | undefined> {
  if (!LAUNCH_ID_PATTERN.test(c.launchId)) return undefined;
  const params: unknown[] = [hashLaunchId(c.launchId), c.clientId, c.userId, c.grantId, c.ehrSessionId];
  const audited = auditedChange(
    'used',
    {
      action: 'launch.consumed',
      userId: c.userId,
      clientId: c.clientId,
      requestId: c.requestId,
      ip: c.ip,
    },
    params,
    {
      patient_id: 'used.patient_id',
      entity: `'Patient/' || used.patient_id`,
      detail: `jsonb_build_object('site', used.site_num, 'action', used.action)`,
    },
  );
  const { rows } = await q.query<Row>(
    `WITH used AS (
       UPDATE launch_contexts SET used_at = now(), grant_id = $4, ehr_session_id = $5
        WHERE id_hash = $1 AND client_id = $2 AND user_id = $3 AND used_at IS NULL AND expires_at > now()
       RETURNING *),
     ${audited}
     SELECT used.user_id, used.patient_id, used.client_id, used.requested_by, used.site_num, used.action, used.need_patient_banner,
            ${practitionerIdSql('used.user_id')} AS practitioner_id, used.sek_encrypted, used.created_at,
            used.expires_at, used.used_at, used.grant_id, used.ehr_session_id
       FROM used`,
    params,
    { prepare: true },
  );
  return rows[0] ? toContext(rows[0]) : undefined;
}

/** The context a grant was made for (token, refresh and introspection look it up this way). */
export async function findLaunchContextByGrant(
  ctx: AppContext,
  grantId: string,
): Promise<LaunchContext | undefined> {
  const { rows } = await ctx.db.query<Row>(`${SELECT_CONTEXT} WHERE lc.grant_id = $1`, [grantId], {
    prepare: true,
  });
  return rows[0] ? toContext(rows[0]) : undefined;
}

/** The grants made by launches on one Ocean site (removing the site ends them). */
export async function grantIdsOfSite(q: Queryable, clientId: string, siteNum: string): Promise<string[]> {
  const { rows } = await q.query<{ grant_id: string }>(
    'SELECT grant_id FROM launch_contexts WHERE client_id = $1 AND site_num = $2 AND grant_id IS NOT NULL',
    [clientId, siteNum],
  );
  return rows.map((r) => r.grant_id);
}

/** Drops the launches an EHR system asked for that nobody redeemed (the system is being removed). */
export async function dropUnusedLaunchesOf(q: Queryable, requestedBy: string): Promise<number> {
  const r = await q.query('DELETE FROM launch_contexts WHERE requested_by = $1 AND used_at IS NULL', [
    requestedBy,
  ]);
  return r.rowCount;
}

/** The grants redeemed under one EHR session (its online_access grants end with it). */
export async function grantIdsOfSession(q: Queryable, ehrSessionId: string): Promise<string[]> {
  const { rows } = await q.query<{ grant_id: string }>(
    'SELECT grant_id FROM launch_contexts WHERE ehr_session_id = $1 AND grant_id IS NOT NULL',
    [ehrSessionId],
  );
  return rows.map((r) => r.grant_id);
}

/**
 * Drops contexts that expired unused, and used ones whose grant has ended (revoked or expired).
 * Whether a grant lives is the authorization server's to say: `grantLivesSql` is its SQL for it.
 */
export async function purgeLaunchContexts(
  ctx: AppContext,
  grantLivesSql: (grantIdExpr: string) => string,
): Promise<number> {
  const r = await ctx.db.query(
    `DELETE FROM launch_contexts
      WHERE (used_at IS NULL AND expires_at < now())
         OR (used_at IS NOT NULL AND grant_id IS NOT NULL AND used_at < now() - interval '10 minutes'
             AND NOT ${grantLivesSql('launch_contexts.grant_id')})`,
  );
  return r.rowCount;
}

export interface LaunchContextMembers {
  /** Top-level members of the token response (SMART App Launch §"Launch context arrives with your access_token"). */
  tokenResponse: {
    patient?: string;
    need_patient_banner: boolean;
    smart_style_url: string;
    oceanSharedEncryptionKey: string;
  };
  /** Claims of the JWT access token (RFC 9068 plus SMART context; CONTRACT §2 item 6, §3.4). */
  accessTokenClaims: {
    patient?: string;
    fhirUser: string;
    need_patient_banner: boolean;
    oceanSharedEncryptionKey: string;
  };
  /** Members of an active introspection response (RFC 7662 §2.2 allows extensions). */
  introspection: {
    patient?: string;
    fhirUser: string;
    need_patient_banner: boolean;
    smart_style_url: string;
    oceanSharedEncryptionKey: string;
  };
}

/** The one mapping from a launch context to everything a client or resource server sees of it. */
export function launchContextMembers(ctx: AppContext, lc: LaunchContext): LaunchContextMembers {
  // CONTRACT §2 item 6: Base64 (standard alphabet) of the UTF-8 bytes of the site's SEK.
  const sek = Buffer.from(decryptSek(ctx, lc.siteNum, lc.sekEncrypted), 'utf8').toString('base64');
  const fhirUser = fhirUserUrl(ctx.config, lc.practitionerId);
  const style = smartStyleUrl(ctx.config);
  // A launch for sign-on only has no patient: no `patient` member anywhere, no banner needed.
  const patient = lc.patientId === null ? {} : { patient: lc.patientId };
  const banner = lc.patientId !== null && lc.needPatientBanner;
  return {
    tokenResponse: {
      ...patient,
      need_patient_banner: banner,
      smart_style_url: style,
      oceanSharedEncryptionKey: sek,
    },
    accessTokenClaims: {
      ...patient,
      fhirUser,
      need_patient_banner: banner,
      oceanSharedEncryptionKey: sek,
    },
    introspection: {
      ...patient,
      fhirUser,
      need_patient_banner: banner,
      smart_style_url: style,
      oceanSharedEncryptionKey: sek,
    },
  };
}
