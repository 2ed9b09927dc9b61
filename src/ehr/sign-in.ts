/*
 * Clinician sign-in and sign-out (passport, local strategy).
 * - GET /login: the form, with the session's CSRF token in a hidden `_csrf` input
 * - POST /login: CSRF checked → throttle checked (per account and address, per account, per
 *   address: ../web/login-throttle.ts; a refusal is a 429 with Retry-After and when to try again) → credentials
 *   verified → session id regenerated (no fixation) → userId + authTime set → back to returnTo
 * - an unknown user, a wrong password and an inactive user get the same answer after the same work
 * - POST /logout destroys the session row (online_access refresh tokens check it, so they end too);
 *   after a sign-in through the identity provider, the page then offers the provider's sign-out
 * - with LOCAL_PASSWORDS=false the form is gone and POST /login is refused (403) before anything
 *   is read; the identity provider's button (src/sso/) is offered when one is configured
 * - audit: ehr.signin (success / failure, with the reason code only), ehr.signout
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { Passport } from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import type { AppContext } from '../context.ts';
import { loggableError, sendError, toHttpError } from '../http/errors.ts';
import { revokeSessionGrants } from '../oidc/grant-revocation.ts';
import { type User, verifyPassword } from '../users/users.ts';
import { safeReturnTo } from '../web/current-user.ts';
import { LoginThrottle, type ThrottleScope } from '../web/login-throttle.ts';
import {
  beginSignedInSession,
  csrfProtection,
  csrfToken,
  isCsrfError,
  SESSION_COOKIE,
} from '../web/session.ts';

const INCORRECT = 'The username or password is incorrect.';
/**
 * The sign-in form's CSRF token lives in a session row made before anyone signs in; such rows
 * expire after an hour rather than a clinic day, so a flood of GET /login leaves little behind.
 */
const ANONYMOUS_SESSION_MS = 60 * 60 * 1000;

/** How people may sign in here: the password form, and the identity provider's button (src/sso/). */
export interface SignInChoices {
  localPasswords: boolean;
  identityProvider?: {
    label: string;
    /** Where the button goes, coming back to returnTo after sign-in. */
    href(returnTo: string | undefined): string;
    /** The provider's end-session URL, offered after sign-out; undefined when it has none. */
    endSessionUrl(): Promise<string | undefined>;
  };
}

interface FormState {
  status?: number;
  username?: string;
  returnTo?: string;
  error?: string;
  notice?: string;
  endSessionUrl?: string;
}

function renderForm(req: Request, res: Response, choices: SignInChoices, state: FormState): void {
  res.setHeader('Cache-Control', 'no-store');
  if (!req.session.userId) req.session.cookie.maxAge = ANONYMOUS_SESSION_MS;
  const token = csrfToken(req);
  // Save before showing the form: a form whose CSRF token was never stored (database down)
  // could not be submitted, so the person gets the 503 page now instead of a failure later.
  req.session.save((err) => {
    if (err) {
      sendError(req, res, toHttpError(err));
      return;
    }
    res.status(state.status ?? 200).render('ehr/login', {
      title: 'Sign in',
      csrfToken: token,
      username: state.username ?? '',
      returnTo: state.returnTo ?? '',
      error: state.error,
      notice: state.notice,
      localPasswords: choices.localPasswords,
      provider: choices.identityProvider
        ? { label: choices.identityProvider.label, href: choices.identityProvider.href(state.returnTo) }
        : undefined,
      endSessionUrl: state.endSessionUrl,
    });
  });
}

function duration(seconds: number): string {
  if (seconds < 60) return seconds === 1 ? '1 second' : `${seconds} seconds`;
  const m = Math.ceil(seconds / 60);
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/** When to try again, and what else helps, for each kind of refusal (src/web/login-throttle.ts). */
function throttledMessage(scope: ThrottleScope | undefined, retryAfterSeconds: number): string {
  const when = `try again in ${duration(retryAfterSeconds)}`;
  switch (scope) {
    case 'account':
      return `Too many failed sign-in attempts for this username, from several places. For your security it is locked for a short while; ${when}, or ask your administrator to unlock it.`;
    case 'address':
      return `Too many failed sign-in attempts from this network address. Sign-in from here is paused; ${when}.`;
    default:
      return `Too many failed sign-in attempts for this username on this computer. Sign-in here is paused; ${when}, or ask your administrator to unlock it.`;
  }
}

function promisify(fn: (cb: (err?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

export function signInRoutes(ctx: AppContext, choices: SignInChoices) {
  const throttle = new LoginThrottle(ctx.db, ctx.box, ctx.config.loginThrottle);
  const passport = new Passport();
  passport.use(
    'local',
    new LocalStrategy(
      { usernameField: 'username', passwordField: 'password', session: false },
      (username, password, done) => {
        verifyPassword(ctx, username, password).then(
          (user) => done(null, user ?? false),
          (err) => done(err),
        );
      },
    ),
  );

  const authenticate = (req: Request, res: Response, next: NextFunction) =>
    new Promise<User | undefined>((resolve, reject) => {
      passport.authenticate('local', { session: false }, (err: unknown, user: User | false) => {
        if (err) reject(err);
        else resolve(user || undefined);
      })(req, res, next);
    });

  const form: RequestHandler = async (req, res) => {
    const returnTo = safeReturnTo(req.query.returnTo);
    if (res.locals.currentUser) {
      res.redirect(303, returnTo ?? '/');
      return;
    }
    const signedOut = req.query.signedOut;
    renderForm(req, res, choices, {
      returnTo,
      ...(signedOut === '1' || signedOut === 'sso' ? { notice: 'You have signed out.' } : {}),
      ...(signedOut === 'provider'
        ? { notice: 'You have signed out, here and at your organization’s sign-in.' }
        : {}),
      ...(signedOut === 'sso' && choices.identityProvider
        ? { endSessionUrl: await choices.identityProvider.endSessionUrl() }
        : {}),
    });
  };

  const submit: RequestHandler = (req, res, next) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof body.username === 'string' ? body.username.trim().slice(0, 200) : '';
    const password = typeof body.password === 'string' ? body.password : '';
    const returnTo = safeReturnTo(body.returnTo) ?? safeReturnTo(req.session.returnTo);
    const ip = req.ip ?? 'unknown';
    const audit = (outcome: 'success' | 'failure', reason: string | null, userId?: string) =>
      ctx.audit.record({
        action: 'ehr.signin',
        outcome,
        userId: userId ?? null,
        requestId: String(req.id ?? ''),
        ip,
        detail: reason ? { reason } : null,
      });

    if (!choices.localPasswords) {
      audit('failure', 'local_passwords_off').then(() => {
        renderForm(req, res, choices, {
          status: 403,
          returnTo,
          error: 'Passwords kept here are turned off: sign in through your organization.',
        });
      }, next);
      return;
    }
    csrfProtection(req, res, async (csrfErr?: unknown) => {
      try {
        if (csrfErr) {
          if (!isCsrfError(csrfErr)) throw csrfErr;
          await audit('failure', 'csrf');
          renderForm(req, res, choices, {
            status: 403,
            username,
            returnTo,
            error: 'This sign-in form had expired or was opened in another window. Please sign in again.',
          });
          return;
        }
        if (!username || !password) {
          renderForm(req, res, choices, {
            status: 400,
            username,
            returnTo,
            error: 'Enter your username and password.',
          });
          return;
        }
        const verdict = await throttle.check(username, ip);
        if (verdict.blocked) {
          await audit('failure', 'throttled');
          res.setHeader('Retry-After', String(verdict.retryAfterSeconds));
          renderForm(req, res, choices, {
            status: 429,
            username,
            returnTo,
            error: throttledMessage(verdict.scope, verdict.retryAfterSeconds),
          });
          return;
        }
        const user = await authenticate(req, res, next);
        if (!user) {
          await throttle.recordFailure(username, ip);
          await audit('failure', 'bad_credentials');
          renderForm(req, res, choices, { status: 401, username, returnTo, error: INCORRECT });
          return;
        }
        await throttle.recordSuccess(username, ip);
        await beginSignedInSession(req, user.id, 'password');
        await audit('success', null, user.id);
        req.log?.info({ userId: user.id }, 'EHR sign-in');
        res.redirect(303, returnTo ?? '/');
      } catch (err) {
        next(err);
      }
    });
  };

  const signOut: RequestHandler = async (req, res, next) => {
    try {
      const userId = req.session.userId;
      const why = { reason: 'signed_out' as const, requestId: String(req.id ?? ''), ip: req.ip ?? null };
      await revokeSessionGrants(ctx.db, req.sessionID, why);
      // Signed in through the provider: the page after sign-out offers its sign-out too.
      const viaProvider = req.session.signInMethod === 'identity_provider';
      await promisify((cb) => req.session.destroy(cb));
      res.clearCookie(SESSION_COOKIE, {
        path: '/',
        httpOnly: true,
        sameSite: 'lax',
        secure: ctx.config.secureCookies,
      });
      if (userId) {
        await ctx.audit.record({
          action: 'ehr.signout',
          userId,
          requestId: String(req.id ?? ''),
          ip: req.ip ?? null,
        });
      }
      res.redirect(303, viaProvider ? '/login?signedOut=sso' : '/login?signedOut=1');
    } catch (err) {
      next(err);
    }
  };

  return {
    form,
    submit,
    signOut,
    throttle,
    /** Periodic clean-up of ended throttle windows. */
    purge: () =>
      throttle
        .purgeExpired()
        .catch((err) => ctx.logger.warn({ err: loggableError(err) }, 'login throttle purge failed')),
  };
}
