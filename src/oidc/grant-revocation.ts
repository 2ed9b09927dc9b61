/*
 * How a grant ends, and how everything that honours its tokens learns it at once (docs/CONTRACT.md §3.4 point 8).
 *
 * A grant is oidc-provider's Grant row (model "Grant" in oidc_models) and every artefact carrying
 * its grant_id: authorization codes, refresh tokens, and the reference row each JWT access token
 * leaves (model "JwtAccessToken", ./token-hooks.ts). A grant ends when:
 *   1. its authorization code is replayed (RFC 6749 §4.1.2): oidc-provider revokes the grant through
 *      the adapter's revokeByGrantId and destroys the Grant row (./adapter.ts)
 *   2. its refresh token is revoked (RFC 7009): the same, by oidc-provider's revokeGrantPolicy
 *   3. one of its access tokens is revoked (RFC 7009): ./token-hooks.ts → revokeGrants
 *   4. its user is deactivated, gets a new password or new roles, or an administrator ends the
 *      user's access (POST /admin/api/users/{id}/revoke-grants, the console's button): every grant
 *      of the user, and the user's EHR sessions with them (src/admin/)
 *   5. its client is deleted, or the client's secret is reset (src/admin/)
 *   6. the Ocean site it was launched for is removed (src/admin/)
 *   7. online_access (and no offline_access): the EHR session it was redeemed under ends — the
 *      user signs out (src/ehr/sign-in.ts → revokeSessionGrants), or an administrator ends the
 *      user's sessions (4); a refresh token of a session that merely expired stops too (./token-hooks.ts)
 *   8. the user ends it under "Connected apps" (GET /account/apps, ./connected-apps.ts)
 *   9. it expires (the Grant lives REFRESH_TOKEN_TTL)
 * Rules:
 * - a grant has ended exactly when its Grant row is gone or expired; revokeGrants deletes the Grant
 *   row and every artefact of it in ONE statement, which also writes one `grant.revoked` audit row
 *   per grant it ended
 * - an access token counts only while its reference row and its Grant row exist unexpired and its
 *   user is active: liveAccessToken() is that one condition, which introspection evaluates and the
 *   FHIR API (given it at wiring: src/fhir/live-token.ts) folds into the query it makes anyway —
 *   so they cannot disagree, and a token issued while its grant was being revoked is dead too
 *   (its Grant row is gone)
 * - nothing lives in process memory (STYLE habit 6): every instance sees a revocation at its next
 *   query (the FHIR verifier's memory holds signature checks only, never whether a token is live)
 */
import { type AuditEvent, auditedChange } from '../audit/audit.ts';
import type { Queryable } from '../db/database.ts';
import { grantIdsOfSession } from '../launch/launch-contexts.ts';
import { activeUserSql } from '../users/users.ts';

/** The model name of a JWT access token's reference row in oidc_models. */
export const JWT_ACCESS_TOKEN_MODEL = 'JwtAccessToken';

/**
 * SQL whose one row (the grant_id) exists exactly while the access token `jti` of user `sub` is
 * live. `jti` and `sub` are placeholders ($n). Embed it as `EXISTS (…)`, or run it alone.
 */
export function liveAccessToken(jti: string, sub: string): string {
  return `SELECT t.grant_id FROM oidc_models t
      JOIN oidc_models g ON g.model = 'Grant' AND g.id = t.grant_id AND (g.expires_at IS NULL OR g.expires_at > now())
     WHERE t.model = '${JWT_ACCESS_TOKEN_MODEL}' AND t.id = ${jti} AND t.expires_at > now()
       AND ${activeUserSql(sub)}`;
}

const LIVE_GRANT = liveAccessToken('$1', '$2');

/** The grant of a live access token; undefined when the token (or its grant, or its user) has ended. */
export async function liveAccessTokenGrant(
  q: Queryable,
  jti: string,
  sub: string,
): Promise<string | undefined> {
  const { rows } = await q.query<{ grant_id: string }>(LIVE_GRANT, [jti, sub], { prepare: true });
  return rows[0]?.grant_id;
}

const HOLDS_OFFLINE_ACCESS = '$.resources.* ? (@ like_regex "(^| )offline_access( |$)")';

/**
 * Which grants end: some by id (only the user's own, when a user is named; only those without
 * offline_access, when `onlineOnly`), or every grant of one user or one client.
 */
export type GrantSelection =
  | { grantIds: readonly string[]; userId?: string; onlineOnly?: boolean }
  | { userId: string }
  | { clientId: string };

export type RevocationReason =
  | 'access_token_revoked'
  | 'user_deactivated'
  | 'password_reset'
  | 'roles_changed'
  | 'access_ended_by_admin'
  | 'revoked_by_user'
  | 'signed_out'
  | 'client_deleted'
  | 'client_secret_reset'
  | 'site_deleted';

/** Why, and the request that caused it (for the audit rows). */
export interface Revocation {
  reason: RevocationReason;
  requestId?: string | null;
  ip?: string | null;
}

/**
 * Ends the selected live grants — the Grant rows, their codes, refresh tokens and access-token
 * reference rows — and audits each, in one statement (run it inside the caller's transaction when
 * it is part of a larger change). Resolves to the number of grants ended.
 */
export async function revokeGrants(q: Queryable, which: GrantSelection, why: Revocation): Promise<number> {
  const params: unknown[] = [];
  let selected: string;
  if ('grantIds' in which) {
    if (which.grantIds.length === 0) return 0;
    params.push([...which.grantIds]);
    selected = 'id = ANY($1::text[])';
    if (which.userId !== undefined) {
      params.push(which.userId);
      selected += ` AND payload->>'accountId' = $${params.length}`;
    }
    // Every granted scope is a scope of the FHIR resource (./launch-grant.ts), so one look suffices.
    if (which.onlineOnly) selected += ` AND NOT jsonb_path_exists(payload, '${HOLDS_OFFLINE_ACCESS}')`;
  } else if ('userId' in which) {
    params.push(which.userId);
    selected = `payload->>'accountId' = $1`; // index oidc_grants_account
  } else {
    params.push(which.clientId);
    selected = `payload->>'clientId' = $1`; // index oidc_grants_client
  }
  const event: AuditEvent = {
    action: 'grant.revoked',
    requestId: why.requestId ?? null,
    ip: why.ip ?? null,
    detail: { reason: why.reason },
  };
  const audited = auditedChange('ended', event, params, {
    user_id: 'ended.account_id',
    client_id: 'ended.client_id',
    entity: `'grant/' || ended.id`,
  });
  const { rows } = await q.query<{ n: number | string }>(
    `WITH ended AS (
       SELECT id, payload->>'accountId' AS account_id, payload->>'clientId' AS client_id
         FROM oidc_models
        WHERE model = 'Grant' AND ${selected} AND (expires_at IS NULL OR expires_at > now())),
     gone AS (
       DELETE FROM oidc_models m USING ended
        WHERE m.grant_id = ended.id OR (m.model = 'Grant' AND m.id = ended.id)),
     ${audited}
     SELECT count(*) AS n FROM ended`,
    params,
  );
  return Number(rows[0]?.n ?? 0);
}

/** Sign-out: the online_access grants redeemed under this EHR session end with it (SMART 2.2 online_access). */
export async function revokeSessionGrants(
  q: Queryable,
  ehrSessionId: string,
  why: Revocation,
): Promise<number> {
  const grantIds = await grantIdsOfSession(q, ehrSessionId);
  return revokeGrants(q, { grantIds, onlineOnly: true }, why);
}
