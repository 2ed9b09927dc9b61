/*
 * What capabilities are built from (AppContext) and what they hand back (Capability).
 * - AppContext holds the shared infrastructure only; what one capability needs of another is
 *   passed by name by the composition root (src/server.ts), e.g. createAdmin(ctx, { provider })
 * - a capability declares its own paths' rules (error vocabulary, body limit, rate limits), so
 *   src/http/app.ts names none of them
 */
import type { RequestHandler, Router } from 'express';
import type { AuditTrail } from './audit/audit.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import type { ErrorFormat } from './http/errors.ts';
import type { HotRoute } from './http/lean-dispatch.ts';
import type { Logger } from './http/logger.ts';
import type { Metrics } from './http/metrics.ts';
import type { LimitedRoute } from './http/rate-limit.ts';
import type { KeyRing } from './keys/key-ring.ts';
import type { SigningKeys } from './keys/signing-keys.ts';
import type { DatabaseSessionStore } from './web/session.ts';

/** What every capability is built from; made once by the composition root (src/server.ts). */
export interface AppContext {
  config: Config;
  db: Database;
  /** SECRETS_KEY (and SECRETS_KEY_PREVIOUS during a rotation): seals secrets at rest. */
  box: KeyRing;
  keys: SigningKeys;
  audit: AuditTrail;
  logger: Logger;
  /** Prometheus counters and histograms (src/http/metrics.ts). */
  metrics: Metrics;
  /** Bearer token of the admin API (from ADMIN_TOKEN, or generated under KEYS_DIR in development). */
  adminToken: string;
  /** Sign-in sessions of the people-facing screens: the store (to end sessions) and the middleware. */
  sessions: { store: DatabaseSessionStore; middleware: RequestHandler };
}

/**
 * Rules for some of a capability's paths that must hold before its router runs: refusals made by
 * the cross-cutting middleware (body too large, rate limited) speak the path's vocabulary.
 */
export interface PathRule {
  path: RegExp;
  /** The error vocabulary, where the path alone would not tell (src/http/errors.ts formatFor). */
  errorFormat?: ErrorFormat;
  /** A body limit other than BODY_LIMIT (e.g. "50mb" for the import), checked from Content-Length. */
  bodyLimit?: string;
  /**
   * Bearer tokens and client authentication, not cookies: no web session is loaded (a route here
   * that needs one, the authorization endpoint, applies ctx.sessions.middleware itself).
   */
  sessionless?: boolean;
}

/** One capability: its routes, the rules of its paths, and background work started and stopped with the server. */
export interface Capability {
  name: string;
  /** Mounted at the application root in composition order. */
  router?: Router;
  /**
   * A bearer-token API that needs no cookie session, request body or rate limit (the FHIR reads):
   * mounted right after the cross-cutting middleware, ahead of the people-facing stack, so the
   * hottest requests do not walk past routes and middleware that never apply to them.
   */
  api?: Router;
  /**
   * The hottest bearer-token requests, served by the lean dispatcher in front of the application
   * (src/http/lean-dispatch.ts) with the same handlers its router runs; everything else of the
   * capability still goes through `api`/`router`.
   */
  hotRoutes?: HotRoute[];
  paths?: PathRule[];
  rateLimits?: LimitedRoute[];
  /** Lines for the start-up banner (where to go, demo credentials), read after every start(). */
  banner?(): string[];
  start?(): Promise<void> | void;
  stop?(): Promise<void> | void;
}
