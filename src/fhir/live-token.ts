/*
 * Whether a verified bearer token still counts — its grant not ended (revoked, its user
 * deactivated, its client deleted …) — asked of the database by every request, on every instance.
 * The condition is the authorization server's (src/oidc/grant-revocation.ts liveAccessToken),
 * handed to this room as SQL at wiring (server.ts → createFhir), so introspection and the FHIR
 * API evaluate one and the same condition.
 * - the read folds it into the query it makes anyway (repository readRawAsUser): no round trip of its own
 * - every other interaction runs it as a guard step right after authentication: one indexed lookup
 * - a token that no longer counts: 401 invalid_token (RFC 6750 §3.1), audited as fhir.denied
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import type { Principal } from './access.ts';
import { unauthorized } from './access-token.ts';
import { audit, principalOf } from './fhir-http.ts';

/** SQL with one row exactly while the token `jti` ($n) of user `sub` ($m) is live. */
export type LiveTokenSql = (jti: string, sub: string) => string;

/** The token's grant ended after it was issued: the token no longer counts. */
export async function endedGrant(ctx: AppContext, req: Request, p: Principal): Promise<never> {
  await audit(ctx, req, p, {
    action: 'fhir.denied',
    entity: req.path.split('/').slice(0, 3).join('/'),
    outcome: 'failure',
    detail: { status: 401, reason: 'grant ended' },
  });
  throw unauthorized('the access token has been revoked');
}

/** The guard step for interactions that make more than one query anyway. */
export function liveTokenGuard(ctx: AppContext, liveTokenSql: LiveTokenSql): RequestHandler {
  const sql = `SELECT EXISTS (${liveTokenSql('$1', '$2')}) AS live`;
  return (req: Request, res: Response, next: NextFunction) => {
    const p = principalOf(res);
    ctx.db
      .query<{ live: boolean }>(sql, [p.tokenId, p.userId], { prepare: true })
      .then(async ({ rows }) => (rows[0]?.live ? next() : endedGrant(ctx, req, p)))
      .catch(next);
  };
}
