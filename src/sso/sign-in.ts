/*
 * Sign-in through the organization's identity provider (docs/CONTRACT.md §3.6).
 * - GET /login/sso: a session row (short-lived until sign-in) holds the pending request's state,
 *   nonce and PKCE verifier and where to come back to → 302 to the provider's authorize endpoint
 * - GET /login/sso/callback: no code and no error → 400; no pending request in this browser's
 *   session (forged, replayed, expired) → 400; the provider's error → 401 naming its code; an
 *   answer that fails verification (state, iss, nonce, signature, PKCE at the token endpoint) →
 *   401; provider unreachable → 502. The pending request is spent by the first callback, whatever
 *   its outcome, and every refusal changes no account
 * - success: the account of (iss, sub) found or created and updated from the claims
 *   (src/accounts/identities.ts); an inactive one is refused (403) → session id regenerated (no
 *   fixation) → userId + authTime set → back to where the person was going
 * - audit: ehr.signin with method identity_provider, success (account created / updated /
 *   unchanged) or failure (a reason code, the provider's error code; never a claim's value)
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import * as client from 'openid-client';
import type { VerifyFunctionWithRequest } from 'openid-client/passport';
import { Passport } from 'passport';
import { findOrCreateByIdentity, type IdentityOutcome } from '../accounts/identities.ts';
import type { AppContext } from '../context.ts';
import { HttpError } from '../http/errors.ts';
import type { User } from '../users/users.ts';
import { safeReturnTo } from '../web/current-user.ts';
import { beginSignedInSession } from '../web/session.ts';
import { profileFromClaims } from './claims.ts';
import { ProviderUnavailableError, type RelyingParty, STRATEGY } from './relying-party.ts';

/** A sign-in started at the provider must finish within this time (its password, MFA, a coffee). */
const PENDING_SESSION_MS = 30 * 60 * 1000;
const AUDIT_METHOD = 'identity_provider';

interface Verified {
  user: User;
  outcome: IdentityOutcome;
}

/** Why a sign-in through the provider was refused, for the audit trail and the page. */
class Refusal extends HttpError {
  constructor(
    status: number,
    readonly reason: string,
    message: string,
    readonly providerCode?: string,
    readonly userId?: string,
    /** Which check failed, in openid-client's words (fixed texts, never a value from the answer). */
    readonly check?: string,
  ) {
    super(status, reason, message);
  }
}

const NO_PENDING_REQUEST =
  'This sign-in answer does not belong to a sign-in started in this browser, or it was already used or has expired. Start again from the sign-in page.';

/** The account behind the provider's verified answer (passport verify callback). */
export function verifyWith(ctx: AppContext, rp: () => RelyingParty): VerifyFunctionWithRequest {
  return (_req, tokens, verified) => {
    (async () => {
      const idToken = tokens.claims();
      if (!idToken) throw new Refusal(401, 'no_id_token', 'The identity provider sent no id_token.');
      const userinfo = await rp().userinfo(tokens.access_token, idToken.sub);
      // The signed id_token wins; userinfo fills what the provider keeps out of it (Okta, Entra ID).
      const claims = { ...userinfo, ...idToken };
      const result = profileFromClaims(claims, rp().settings);
      if ('refused' in result) {
        throw new Refusal(
          403,
          result.refused,
          'Your organization’s sign-in did not send your name. Ask your IT team to release the profile claims (given_name, family_name or name) to this application.',
        );
      }
      const found = await findOrCreateByIdentity(
        ctx.db,
        { issuer: idToken.iss, subject: idToken.sub },
        result.profile,
      );
      if (!found.user.active) {
        throw new Refusal(
          403,
          'inactive',
          'Your account here is deactivated. Ask your administrator to reactivate it.',
          undefined,
          found.user.id,
        );
      }
      return found;
    })().then(
      (found) => verified(null, found),
      (err) => verified(err),
    );
  };
}

/** The refusal a failed callback deserves, or undefined when the fault is ours (database…). */
function refusalFor(err: unknown): Refusal | undefined {
  if (err instanceof Refusal) return err;
  if (err instanceof ProviderUnavailableError || isNetworkError(err)) {
    return new Refusal(
      502,
      'provider_unreachable',
      'Your organization’s sign-in cannot be reached right now. Try again in a moment.',
    );
  }
  if (err instanceof client.AuthorizationResponseError) {
    return new Refusal(
      401,
      'provider_error',
      `Your organization’s sign-in refused: ${errorCode(err.error)}.`,
      errorCode(err.error),
    );
  }
  if (err instanceof client.ResponseBodyError) {
    if (err.status >= 500)
      return new Refusal(
        502,
        'provider_unreachable',
        'Your organization’s sign-in failed. Try again in a moment.',
        errorCode(err.error),
      );
    return new Refusal(
      401,
      'token_refused',
      'Your organization’s sign-in did not accept this sign-in answer. Start again from the sign-in page.',
      errorCode(err.error),
    );
  }
  if (err instanceof client.ClientError) {
    return new Refusal(
      401,
      'answer_rejected',
      'The answer from your organization’s sign-in could not be verified, so you were not signed in. Start again from the sign-in page.',
      errorCode(err.code ?? 'invalid'),
      undefined,
      checkName(err),
    );
  }
  return undefined;
}

/**
 * The strategy's own refusals: the provider's access_denied (its parameters as `info`), or no
 * state, nonce and verifier in the session to check the answer against.
 */
function failureRefusal(info: unknown): Refusal {
  const error = info && typeof info === 'object' ? (info as { error?: unknown }).error : undefined;
  if (error === undefined) return new Refusal(400, 'no_pending_request', NO_PENDING_REQUEST);
  return new Refusal(
    401,
    'provider_error',
    `Your organization’s sign-in refused: ${errorCode(error)}.`,
    errorCode(error),
  );
}

/** openid-client's description of the failed check (its cause's message when it wraps one). */
function checkName(err: Error): string | undefined {
  const cause = err.cause instanceof Error ? err.cause.message : err.message;
  return /^[\w\s"'().,:-]{1,120}$/.test(cause) ? cause : undefined;
}

/** Provider error codes are ASCII words (RFC 6749 §4.1.2.1); anything else is not repeated. */
function errorCode(code: unknown): string {
  return typeof code === 'string' && /^[\w.-]{1,64}$/.test(code) ? code : 'unknown_error';
}

function isNetworkError(err: unknown): boolean {
  if (err instanceof TypeError && err.message === 'fetch failed') return true;
  return err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError');
}

export function identityProviderRoutes(ctx: AppContext, rp: RelyingParty) {
  const passport = new Passport();

  const audit = (
    req: Request,
    outcome: 'success' | 'failure',
    detail: Record<string, string>,
    userId?: string,
  ) =>
    ctx.audit.record({
      action: 'ehr.signin',
      outcome,
      userId: userId ?? null,
      requestId: String(req.id ?? ''),
      ip: req.ip ?? null,
      detail: { method: AUDIT_METHOD, ...detail },
    });

  const refuse = async (req: Request, res: Response, refusal: Refusal) => {
    await audit(
      req,
      'failure',
      {
        reason: refusal.reason,
        ...(refusal.providerCode ? { provider_error: refusal.providerCode } : {}),
        ...(refusal.check ? { check: refusal.check } : {}),
      },
      refusal.userId,
    );
    req.log?.info(
      { reason: refusal.reason, providerError: refusal.providerCode, check: refusal.check },
      'EHR sign-in through the identity provider refused',
    );
    res.setHeader('Cache-Control', 'no-store');
    res.status(refusal.status).render('sso/refused', {
      title: 'Not signed in',
      message: refusal.message,
      label: rp.settings.buttonLabel,
    });
  };

  /** Discovery done and the strategy registered; otherwise the person got the refusal page. */
  const providerReady = async (req: Request, res: Response): Promise<boolean> => {
    try {
      passport.use(STRATEGY, await rp.strategy());
      return true;
    } catch (err) {
      const refusal = refusalFor(err);
      if (!refusal) throw err;
      await refuse(req, res, refusal);
      return false;
    }
  };

  const start: RequestHandler = async (req, res, next) => {
    const returnTo = safeReturnTo(req.query.returnTo);
    if (res.locals.currentUser) {
      res.redirect(303, returnTo ?? '/');
      return;
    }
    if (!(await providerReady(req, res))) return;
    req.session.cookie.maxAge = PENDING_SESSION_MS;
    if (returnTo) req.session.returnTo = returnTo;
    else delete req.session.returnTo;
    // The strategy stores state, nonce and PKCE verifier in the session and redirects; the
    // session row is written before the redirect leaves (express-session saves on end).
    passport.authenticate(STRATEGY, { session: false })(req, res, next);
  };

  const callback: RequestHandler = async (req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    const query = req.query as Record<string, unknown>;
    // Without either, openid-client's strategy would take this for a new sign-in and leave.
    if (query.code === undefined && query.error === undefined) {
      await refuse(
        req,
        res,
        new Refusal(
          400,
          'no_code',
          'This sign-in answer carries no authorization code. Start again from the sign-in page.',
        ),
      );
      return;
    }
    // No pending request: nothing to check the answer against (and nothing to send to the provider).
    if (!req.session || !(STRATEGY in req.session)) {
      await refuse(req, res, new Refusal(400, 'no_pending_request', NO_PENDING_REQUEST));
      return;
    }
    if (!(await providerReady(req, res))) return;
    const outcome = await new Promise<{ err?: unknown; found?: Verified; info?: unknown }>((resolve) => {
      passport.authenticate(
        STRATEGY,
        { session: false },
        (err: unknown, found: Verified | false, info: unknown) =>
          resolve({ err, ...(found ? { found } : {}), info }),
      )(req, res, next as NextFunction);
    });
    if (!outcome.found) {
      const refusal = outcome.err ? refusalFor(outcome.err) : failureRefusal(outcome.info);
      if (!refusal) throw outcome.err;
      await refuse(req, res, refusal);
      return;
    }
    const { user, outcome: account } = outcome.found;
    const returnTo = safeReturnTo(req.session.returnTo);
    await beginSignedInSession(req, user.id, 'identity_provider');
    await audit(req, 'success', { account }, user.id);
    req.log?.info({ userId: user.id, account }, 'EHR sign-in through the identity provider');
    res.redirect(303, returnTo ?? '/');
  };

  return { start, callback };
}
