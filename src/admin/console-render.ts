/*
 * The admin console's page helpers: who acts, rendering with the one-line notice, Post/Redirect/Get,
 * and a form shown again with its errors instead of an error page.
 */
import type { Request, Response } from 'express';
import { ValidationError } from '../http/errors.ts';
import { fieldErrors } from './console-forms.ts';
import type { Actor } from './operations.ts';

declare module 'express-session' {
  interface SessionData {
    /** One-line notice shown on the next admin page (never a secret). */
    adminNotice?: string;
  }
}

export const actorOf = (req: Request, res: Response): Actor => ({
  via: 'console',
  userId: res.locals.currentUser?.id ?? null,
  requestId: req.id != null ? String(req.id) : null,
  ip: req.ip ?? null,
});

export const param = (req: Request, name: string): string => String(req.params[name] ?? '');
export const enc = encodeURIComponent;

function takeNotice(req: Request): string | undefined {
  const notice = req.session?.adminNotice;
  if (notice) delete req.session.adminNotice;
  return notice;
}

/**
 * Post/Redirect/Get with a notice. The session is saved BEFORE the redirect is sent: express-session
 * would otherwise save it while the 303's headers are already out, and a browser following them at
 * once could load the page without the notice.
 */
export async function redirectWith(req: Request, res: Response, to: string, notice: string): Promise<void> {
  req.session.adminNotice = notice;
  await new Promise<void>((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
  res.redirect(303, to);
}

export function render(
  req: Request,
  res: Response,
  view: string,
  locals: Record<string, unknown>,
  status = 200,
): void {
  res.status(status).render(`admin/${view}`, { notice: takeNotice(req), errors: {}, ...locals });
}

/** Runs a change; a ValidationError renders the form again (400) instead of an error page. */
export async function orInvalid(
  fn: () => Promise<void>,
  onInvalid: (errors: Record<string, string>) => Promise<void>,
) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ValidationError) {
      await onInvalid(fieldErrors(err.issues));
      return;
    }
    throw err;
  }
}
