/*
 * Who is signed in, for people-facing routes.
 * - the session holds only users.id; the user is re-read on every request, so a deactivated
 *   user or one whose password was reset is out at once (their session row is gone too)
 * - a session naming a user that no longer exists or is inactive is destroyed
 * - requireUser sends a person who is not signed in to /login and straight back afterwards
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import { HttpError } from '../http/errors.ts';
import { localPath } from '../http/local-redirect.ts';
import { type User as EhrUser, getUser } from '../users/users.ts';
import { csrfToken } from './session.ts';

declare global {
  namespace Express {
    interface Locals {
      /** The signed-in EHR user, when there is one (set by loadCurrentUser). */
      currentUser?: EhrUser;
    }
  }
}

/** Sets res.locals.currentUser (and the CSRF token the layout's sign-out form needs). */
export function loadCurrentUser(ctx: AppContext): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const userId = req.session?.userId;
      if (userId) {
        const user = await getUser(ctx, userId);
        if (user?.active) {
          res.locals.currentUser = user;
          res.locals.csrfToken = csrfToken(req);
        } else {
          await new Promise<void>((resolve, reject) =>
            req.session.destroy((err) => (err ? reject(err) : resolve())),
          );
        }
      }
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** A local path to come back to after sign-in, or undefined (no open redirect: ../http/local-redirect.ts). */
export function safeReturnTo(value: unknown): string | undefined {
  const path = localPath(value);
  if (path === undefined) return undefined;
  // Coming back to the sign-in or sign-out page would loop.
  const pathname = path.split(/[?#]/, 1)[0];
  return pathname === '/login' || pathname === '/logout' ? undefined : path;
}

export function loginUrl(returnTo: string | undefined): string {
  const safe = safeReturnTo(returnTo);
  return safe && safe !== '/' ? `/login?returnTo=${encodeURIComponent(safe)}` : '/login';
}

/** Pages for signed-in users: anyone else goes to /login (GET comes straight back afterwards). */
export const requireUser: RequestHandler = (req, res, next) => {
  if (res.locals.currentUser) {
    next();
    return;
  }
  res.setHeader('Cache-Control', 'no-store');
  res.redirect(303, loginUrl(req.method === 'GET' ? req.originalUrl : undefined));
};

/** Pages that show PHI must not be kept by shared browsers or proxies. */
/** Administration: a signed-in user without the admin role gets a 403 page (after requireUser). */
export const requireAdminRole: RequestHandler = (_req, res, next) =>
  next(
    res.locals.currentUser?.roles.includes('admin')
      ? undefined
      : new HttpError(
          403,
          'forbidden',
          'Administration needs the admin role. Ask an administrator to grant it.',
        ),
  );

export const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
  next();
};
