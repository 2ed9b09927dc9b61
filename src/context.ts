import type { RequestHandler, Router } from 'express';
import type { AuditTrail } from './audit/audit.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import type { Logger } from './http/logger.ts';
import type { Metrics } from './http/metrics.ts';
import type { SecretBox } from './keys/secret-box.ts';
import type { SigningKeys } from './keys/signing-keys.ts';
import type { DatabaseSessionStore } from './web/session.ts';

/** What every capability is built from; made once by the composition root (src/server.ts). */
export interface AppContext {
  config: Config;
  db: Database;
  box: SecretBox;
  keys: SigningKeys;
  audit: AuditTrail;
  logger: Logger;
  /** Prometheus counters and histograms (src/http/metrics.ts). */
  metrics: Metrics;
  /** Bearer token of the admin API (from ADMIN_TOKEN, or generated under KEYS_DIR in development). */
  adminToken: string;
  /** EHR sign-in sessions: the store (to end sessions) and the express-session middleware. */
  sessions: { store: DatabaseSessionStore; middleware: RequestHandler };
  /** Shared by capabilities that need something from another one, set during composition. */
  services: Services;
}

/**
 * Cross-capability services, filled in by the capability that owns them during composition
 * (capabilities are created in dependency order: oidc → fhir → ehr/launch → admin).
 */
export interface Services {
  [name: string]: unknown;
}

/** One capability: its routes plus optional background work started and stopped with the server. */
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
  start?(): Promise<void> | void;
  stop?(): Promise<void> | void;
}
