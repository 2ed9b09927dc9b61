/*
 * Ending what a change to a user, a client or a site must end (src/oidc/grant-revocation.ts lists
 * every way a grant ends; these are the administrator's).
 * - a password reset, a deactivation, a change of roles, or an administrator's "end this user's
 *   access" (POST /admin/api/users/{id}/revoke-grants, the console's button) revokes every grant of
 *   the user — refresh tokens and access tokens, at the FHIR API too; "end this user's access"
 *   also ends the user's EHR sessions (and with them any launch in progress)
 * - a client's new secret ends the client's grants; a removed site ends the grants launched for it
 * - each runs inside the transaction of the change that causes it: both happen, or neither
 */
import type { AppContext } from '../context.ts';
import type { Database, Queryable } from '../db/database.ts';
import { endSessions } from '../ehr/session.ts';
import { NotFoundError } from '../http/errors.ts';
import { grantIdsOfSite } from '../launch/launch-contexts.ts';
import { type Revocation, revokeGrants } from '../oidc/grant-revocation.ts';

/** A context whose database is an open transaction, for stores that take a context. */
export function inTransaction<C extends { db: Database }>(ctx: C, tx: Queryable): C {
  const db: Database = {
    kind: ctx.db.kind,
    query: tx.query.bind(tx),
    exec: tx.exec.bind(tx),
    transaction: (fn) => fn(tx),
    ping: () => ctx.db.ping(),
    stats: () => ctx.db.stats(),
    close: () => Promise.reject(new Error('a transaction cannot close the database')),
  };
  return { ...ctx, db };
}

export interface EndedAccess {
  id: string;
  sessions_ended: number;
  grants_revoked: number;
}

/** "End this user's access": the EHR sessions and every grant of the user, in one transaction. */
export async function endUserAccess(ctx: AppContext, userId: string, why: Revocation): Promise<EndedAccess> {
  return ctx.db.transaction(async (tx) => {
    const user = await tx.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [userId]);
    if (user.rowCount === 0) throw new NotFoundError('no such user');
    const sessions = await endSessions(tx, userId);
    const grants = await revokeGrants(tx, { userId }, why);
    return { id: userId, sessions_ended: sessions, grants_revoked: grants };
  });
}

/** What the console tells the administrator afterwards. */
export const endedAccessNotice = (username: string, ended: EndedAccess): string =>
  `Access of ${username} ended: ${ended.sessions_ended} sign-in session(s) closed, ${ended.grants_revoked} grant(s) revoked (their refresh and access tokens no longer work).`;

/** Inside a site's removal: ends the grants launched for it. */
export async function revokeSiteGrants(
  tx: Queryable,
  clientId: string,
  siteNum: string,
  why: Revocation,
): Promise<number> {
  return revokeGrants(tx, { grantIds: await grantIdsOfSite(tx, clientId, siteNum) }, why);
}
