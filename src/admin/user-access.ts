/*
 * Ending a user's access, in the caller's transaction: what a password reset, a deactivation or
 * an administrator's "end this user's access" (POST /admin/api/users/{id}/revoke-grants, the
 * console's End access button) must take away besides the users row's own change.
 * - the user's sign-in sessions end (src/web/session.ts), and with them any launch in progress
 * - every grant of the user ends (src/oidc/grant-revocation.ts): refresh tokens, and access tokens
 *   at the FHIR API and introspection alike, on every instance at once
 */
import type { Queryable } from '../db/database.ts';
import { type Revocation, revokeGrants } from '../oidc/grant-revocation.ts';
import { endSessionsOf } from '../web/session.ts';

export interface EndedAccess {
  id: string;
  sessions_ended: number;
  grants_revoked: number;
}

export async function endUserAccess(tx: Queryable, userId: string, why: Revocation): Promise<EndedAccess> {
  const sessions = await endSessionsOf(tx, userId);
  const grants = await revokeGrants(tx, { userId }, why);
  return { id: userId, sessions_ended: sessions, grants_revoked: grants };
}

/** What the console tells the administrator afterwards. */
export const endedAccessNotice = (username: string, ended: EndedAccess): string =>
  `Access of ${username} ended: ${ended.sessions_ended} sign-in session(s) closed, ${ended.grants_revoked} grant(s) revoked (their refresh and access tokens no longer work).`;
