/*
 * Ending access, in the caller's transaction: what an administrator's change must take away
 * besides its own rows (src/oidc/grant-revocation.ts names every way a grant ends).
 * - a password reset, a deactivation, or an administrator's "end this user's access"
 *   (POST /admin/api/users/{id}/revoke-grants, the console's End access button): the user's
 *   sign-in sessions end (src/web/session.ts) and every grant of the user ends — refresh tokens,
 *   and access tokens at the FHIR API and introspection alike, on every instance at once
 * - new roles end the user's grants (they were granted under the old ones), not the sessions
 * - a client's new secret ends the client's grants (the old one may have leaked); a removed site
 *   ends the grants launched for it
 * - every grant ended leaves a `grant.revoked` audit row naming the reason and the request
 * - a password reset also lifts the user's sign-in waits and locks (src/web/login-throttle.ts): the
 *   lock-out page sends people to their administrator, and whoever was guessing the old password
 *   has nothing left to guess; an administrator can lift them alone too ("unlock")
 */

import { type ClientStore, resetClientSecret } from '../clients/clients.ts';
import type { Queryable } from '../db/database.ts';
import { NotFoundError } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';
import { grantIdsOfSite } from '../launch/launch-contexts.ts';
import { type Revocation, type RevocationReason, revokeGrants } from '../oidc/grant-revocation.ts';
import { deleteSite, type SiteStore } from '../sites/sites.ts';
import { getUser, lockUser, resetPassword, type User } from '../users/users.ts';
import { unlockAccount } from '../web/login-throttle.ts';
import { endSessionsOf } from '../web/session.ts';

export interface EndedAccess {
  id: string;
  sessions_ended: number;
  grants_revoked: number;
}

/** The request that made a change (its id and client address go into the grants' audit rows). */
type Request = { requestId?: string | null; ip?: string | null };

/** The reason, and the request that made the change. */
export const revocation = (request: Request, reason: RevocationReason): Revocation => ({
  reason,
  requestId: request.requestId ?? null,
  ip: request.ip ?? null,
});

export async function endUserAccess(tx: Queryable, userId: string, why: Revocation): Promise<EndedAccess> {
  const sessions = await endSessionsOf(tx, userId);
  const grants = await revokeGrants(tx, { userId }, why);
  return { id: userId, sessions_ended: sessions, grants_revoked: grants };
}

/** The administrator's "end this user's access": 404 for an unknown user. */
export async function endAccessOf(tx: Queryable, userId: string, request: Request): Promise<EndedAccess> {
  if (!(await lockUser(tx, userId))) throw new NotFoundError('no such user');
  return endUserAccess(tx, userId, revocation(request, 'access_ended_by_admin'));
}

/** Its audit event. */
export const accessEnded = (ended: EndedAccess) => ({
  action: 'admin.user.revoke_grants',
  entity: `user/${ended.id}`,
  detail: { sessions_ended: ended.sessions_ended, grants_revoked: ended.grants_revoked },
});

/** After a user's change: a deactivation ends the user's access, new roles (as a set) their grants. */
export async function endWhatTheChangeEnds(
  tx: Queryable,
  userId: string,
  change: { active?: boolean; rolesBefore: readonly string[]; roles?: readonly string[] },
  request: Request,
): Promise<void> {
  const { active, rolesBefore: before, roles: after } = change;
  if (active === false) await endUserAccess(tx, userId, revocation(request, 'user_deactivated'));
  else if (after && (new Set(before).size !== new Set(after).size || after.some((r) => !before.includes(r))))
    await revokeGrants(tx, { userId }, revocation(request, 'roles_changed'));
}

/** A new password ends the user's access (sessions and grants) and lifts their sign-in locks. */
export async function newPasswordEndingAccess(
  store: { db: Queryable; box: SecretBox },
  userId: string,
  password: string,
  request: Request,
): Promise<void> {
  await resetPassword(store, userId, password);
  await endUserAccess(store.db, userId, revocation(request, 'password_reset'));
  await unlockSignIn(store, userId);
}

/** Deletes every sign-in wait and lock of the user (the throttle keys them by username). */
export async function unlockSignIn(store: { db: Queryable; box: SecretBox }, userId: string): Promise<User> {
  const user = await getUser(store, userId);
  if (!user) throw new NotFoundError('no such user');
  await unlockAccount(store.db, store.box, user.username);
  return user;
}

/** AdminOperations.unlockUser (console and API "unlock"), as a change: the write and its audit event. */
export const unlockChange = (userId: string) =>
  [
    (store: { db: Queryable; box: SecretBox }) => unlockSignIn(store, userId),
    () => ({ action: 'admin.user.unlock', entity: `user/${userId}` }),
  ] as const;

/** A new secret (the old one may have leaked) ends what was obtained with the old one. */
export async function newSecretEndingGrants(store: ClientStore, clientId: string, request: Request) {
  const secret = await resetClientSecret(store, clientId);
  await revokeGrants(store.db, { clientId }, revocation(request, 'client_secret_reset'));
  return secret;
}

/** A removed site ends the grants launched for it. */
export async function deleteSiteEndingGrants(
  store: Pick<SiteStore, 'db'>,
  clientId: string,
  siteNum: string,
  request: Request,
) {
  await deleteSite(store, clientId, siteNum);
  const grantIds = await grantIdsOfSite(store.db, clientId, siteNum);
  await revokeGrants(store.db, { grantIds }, revocation(request, 'site_deleted'));
}

/** What the console tells the administrator afterwards. */
export const endedAccessNotice = (username: string, ended: EndedAccess): string =>
  `Access of ${username} ended: ${ended.sessions_ended} sign-in session(s) closed, ${ended.grants_revoked} grant(s) revoked (their refresh and access tokens no longer work).`;
