/*
 * Ending a user's access, in the caller's transaction: what a password reset or a deactivation
 * must take away besides the users row's own change.
 * - the user's sign-in sessions end (src/web/session.ts), and with them the online_access grants
 *   that ride on a session
 */
import type { Queryable } from '../db/database.ts';
import { endSessionsOf } from '../web/session.ts';

export async function endUserAccess(tx: Queryable, userId: string): Promise<void> {
  await endSessionsOf(tx, userId);
}
