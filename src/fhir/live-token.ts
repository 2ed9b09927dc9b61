/*
 * Whether a verified bearer token still counts — its grant not ended (revoked, its user
 * deactivated, its client deleted …) — asked of the database by every request, on every instance.
 * The condition is the authorization server's (src/oidc/grant-revocation.ts liveAccessToken),
 * handed to this room as SQL at wiring (server.ts → createFhir), so introspection and the FHIR
 * API evaluate one and the same condition.
 * - the read folds it into the query it makes anyway (reads.ts readRawAsUser): no round trip of its own
 * - every other interaction asks it in the pipeline's liveToken step (pipeline.ts): one indexed lookup
 * - a token that no longer counts: 401 invalid_token (RFC 6750 §3.1), audited as fhir.denied
 */
import type { Queryable } from '../db/database.ts';

/** SQL with one row exactly while the token `jti` ($n) of user `sub` ($m) is live. */
export type LiveTokenSql = (jti: string, sub: string) => string;

/** The standalone check, for interactions whose own queries did not ask it. */
export function tokenLiveness(liveTokenSql: LiveTokenSql) {
  const sql = `SELECT EXISTS (${liveTokenSql('$1', '$2')}) AS live`;
  return async (q: Queryable, token: { tokenId: string; userId: string }): Promise<boolean> => {
    const { rows } = await q.query<{ live: boolean }>(sql, [token.tokenId, token.userId], { prepare: true });
    return rows[0]?.live === true;
  };
}
