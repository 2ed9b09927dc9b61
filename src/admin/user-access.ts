/*
 * Ending a user's access, in the caller's transaction: what a password reset or a deactivation
 * must take away besides the users row's own change.
 * - the user's sign-in sessions end (src/web/session.ts), and with them the online_access grants
 *   that ride on a session
 * - a password reset also lifts the user's sign-in waits and locks (src/web/login-throttle.ts): the
 *   lock-out page sends people to their administrator, and whoever was guessing the old password
 *   has nothing left to guess; an administrator can lift them alone too ("unlock")
 */
import type { Queryable } from '../db/database.ts';
import { NotFoundError } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';
import { getUser, type User } from '../users/users.ts';
import { unlockAccount } from '../web/login-throttle.ts';
import { endSessionsOf } from '../web/session.ts';

export async function endUserAccess(tx: Queryable, userId: string): Promise<void> {
  await endSessionsOf(tx, userId);
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
