/*
 * Sign-in sessions of the people-facing screens (EHR, admin console, the provider's interactions).
 * - express-session with its rows in ehr_sessions: every instance shares them, a restart keeps them
 * - cookie: HttpOnly, SameSite=Lax (Ocean's redirect to authorize is a top-level GET and must carry it),
 *   Secure when PUBLIC_URL is https; signed with a key derived from SECRETS_KEY
 * - CSRF (synchroniser token in the session) for every state-changing form: `_csrf` field or X-CSRF-Token header
 */

import { csrfSync } from 'csrf-sync';
import type { Request, RequestHandler } from 'express';
import session, { type SessionData, Store } from 'express-session';
import type { AppContext } from '../context.ts';
import type { Database, Queryable } from '../db/database.ts';
import { HttpError } from '../http/errors.ts';

declare module 'express-session' {
  interface SessionData {
    /** users.id of the signed-in EHR user (the id_token sub). */
    userId?: string;
    /** Seconds since epoch of the sign-in (OIDC auth_time). */
    authTime?: number;
    /** How the user proved who they are: sign-out offers the identity provider's own sign-out after 'identity_provider'. */
    signInMethod?: 'password' | 'identity_provider';
    /** Where to go after sign-in (a local path only). */
    returnTo?: string;
  }
}

export const SESSION_COOKIE = 'ehr.sid';

export class DatabaseSessionStore extends Store {
  constructor(
    private readonly db: Database,
    private readonly ttlSeconds: number,
  ) {
    super();
  }

  override get(sid: string, cb: (err: unknown, session?: SessionData | null) => void): void {
    this.db
      .query<{ data: SessionData }>(
        'SELECT data FROM ehr_sessions WHERE sid = $1 AND expires_at > now()',
        [sid],
        { prepare: true },
      )
      .then((r) => cb(null, r.rows[0]?.data ?? null), cb);
  }

  override set(sid: string, data: SessionData, cb?: (err?: unknown) => void): void {
    const expires = data.cookie?.expires
      ? new Date(data.cookie.expires)
      : new Date(Date.now() + this.ttlSeconds * 1000);
    this.db
      .query(
        `INSERT INTO ehr_sessions (sid, user_id, data, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sid) DO UPDATE SET user_id = EXCLUDED.user_id, data = EXCLUDED.data, expires_at = EXCLUDED.expires_at`,
        [sid, data.userId ?? null, JSON.stringify(data), expires],
        { prepare: true },
      )
      .then(
        () => cb?.(),
        (err) => cb?.(err),
      );
  }

  override destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.db.query('DELETE FROM ehr_sessions WHERE sid = $1', [sid]).then(
      () => cb?.(),
      (err) => cb?.(err),
    );
  }

  // No touch(): sessions have an absolute lifetime (rolling: false, SESSION_TTL from sign-in), so
  // express-session's per-request touch would rewrite the same expiry — one database write per
  // page view and per launch hop, for nothing.

  /** Removes expired rows; run periodically by the EHR capability. */
  async purgeExpired(): Promise<number> {
    const r = await this.db.query('DELETE FROM ehr_sessions WHERE expires_at < now()');
    return r.rowCount;
  }
}

export function sessionMiddleware(ctx: AppContext, store: DatabaseSessionStore): RequestHandler {
  return session({
    name: SESSION_COOKIE,
    secret: ctx.box.deriveKey('ehr-session-cookie').toString('base64'),
    store,
    resave: false,
    saveUninitialized: false,
    rolling: false,
    proxy: ctx.config.trustProxy !== false,
    cookie: {
      httpOnly: true,
      sameSite: 'lax',
      secure: ctx.config.secureCookies,
      path: '/',
      maxAge: ctx.config.ttl.session * 1000,
    },
  });
}

const csrf = csrfSync({
  getTokenFromRequest: (req) => {
    const body = req.body as Record<string, unknown> | undefined;
    const fromBody = body && typeof body._csrf === 'string' ? body._csrf : undefined;
    const fromHeader = req.headers['x-csrf-token'];
    return fromBody ?? (typeof fromHeader === 'string' ? fromHeader : undefined);
  },
});

/** Refuses state-changing requests (POST, PUT, PATCH, DELETE) without the session's CSRF token. */
export const csrfProtection: RequestHandler = csrf.csrfSynchronisedProtection;
/** The session's CSRF token for a form's hidden `_csrf` input (created on first use). */
export const csrfToken = (req: Parameters<typeof csrf.generateToken>[0]): string => csrf.generateToken(req);
/** True when err is csrf-sync's refusal (mapped to a 403 page by the error handler). */
export const isCsrfError = (err: unknown): boolean => err === csrf.invalidCsrfTokenError;

/** csrfProtection whose refusal is a 403 page a person understands (EHR screens, admin console). */
export const csrfGuard: RequestHandler = (req, res, next) =>
  csrfProtection(req, res, (err?: unknown) => {
    if (err && isCsrfError(err)) {
      next(
        new HttpError(
          403,
          'invalid_csrf_token',
          'This form had expired or came from another site. Go back, reload the page and try again.',
        ),
      );
    } else next(err);
  });

/** Ends every sign-in session of a user (a password reset, a deactivation), in the caller's transaction. */
export async function endSessionsOf(q: Queryable, userId: string): Promise<number> {
  return (await q.query('DELETE FROM ehr_sessions WHERE user_id = $1', [userId])).rowCount;
}

/**
 * Signs `userId` into this browser, however they proved who they are (password, identity
 * provider): a new session id first — a session id planted before sign-in is worth nothing —
 * then userId and authTime (OIDC auth_time), saved before the caller answers.
 */
export async function beginSignedInSession(
  req: Request,
  userId: string,
  signInMethod: SessionData['signInMethod'],
): Promise<void> {
  const step = (fn: (cb: (err?: unknown) => void) => void) =>
    new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
  await step((cb) => req.session.regenerate(cb));
  req.session.userId = userId;
  req.session.authTime = Math.floor(Date.now() / 1000);
  req.session.signInMethod = signInMethod;
  await step((cb) => req.session.save(cb));
}

/** Whether a sign-in session is still live (an online_access grant lives only as long as its session). */
export async function isSessionAlive(q: Queryable, sid: string): Promise<boolean> {
  const { rows } = await q.query('SELECT 1 FROM ehr_sessions WHERE sid = $1 AND expires_at > now()', [sid]);
  return rows.length > 0;
}
