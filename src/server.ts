/*
 * Composition root: config → database (migrated) → secrets → signing keys → capabilities → app.
 * What a capability needs of another is passed here by name; the order of `capabilities` is the
 * mount and start order (demo data is loaded before the admin counts its administrators).
 * main.ts adds the listening socket and signal handling; tests use buildServer() directly.
 */
import type { Express } from 'express';
import { createAdmin } from './admin/index.ts';
import { AuditTrail } from './audit/audit.ts';
import type { Config } from './config.ts';
import type { AppContext, Capability } from './context.ts';
import type { Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { openDatabase } from './db/open-database.ts';
import { createDemo } from './demo/index.ts';
import { createEhr } from './ehr/index.ts';
import { createEhrApi } from './ehr-api/index.ts';
import { createFhir } from './fhir/index.ts';
import { fhirInteraction } from './fhir/interaction-label.ts';
import { createApp } from './http/app.ts';
import { loggableError } from './http/errors.ts';
import { leanDispatcher, type RequestListener } from './http/lean-dispatch.ts';
import type { Logger } from './http/logger.ts';
import { Metrics } from './http/metrics.ts';
import { purgeRateLimits } from './http/rate-limit.ts';
import { resolveAdminToken, resolveSecretsKey } from './keys/secrets-key.ts';
import { openKeyRing, SecretsRotation } from './keys/secrets-rotation.ts';
import { SigningKeys } from './keys/signing-keys.ts';
import { createLaunch } from './launch/index.ts';
import { createOidc } from './oidc/index.ts';
import { createReferrals } from './referrals/index.ts';
import { createSso } from './sso/index.ts';
import { DatabaseSessionStore, sessionMiddleware } from './web/session.ts';

export interface BuiltServer {
  app: Express;
  /** What the HTTP server serves: the lean dispatcher of the hot routes, then `app`. */
  handler: RequestListener;
  ctx: AppContext;
  capabilities: Capability[];
  /** Stops background work, flushes the audit trail and closes the database. */
  close(): Promise<void>;
}

export interface BuildOptions {
  logger: Logger;
  /** Use this database instead of opening one from the config (tests share one). */
  db?: Database;
  /** The given database is the server's own: close() closes it (main.ts opens it early). */
  ownsDb?: boolean;
}

export async function buildServer(config: Config, options: BuildOptions): Promise<BuiltServer> {
  const { logger } = options;
  const db =
    options.db ??
    (await openDatabase(config, (err) => logger.warn({ err: loggableError(err) }, 'database client error')));
  const ownsDb = !options.db || options.ownsDb === true;
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');

    const box = await openKeyRing(db, {
      current: resolveSecretsKey(config).key,
      previous: config.secretsKeyPrevious,
    });
    const rotation = new SecretsRotation(db, box, {
      intervalSeconds: config.keyRefreshInterval,
      onError: (err) => logger.warn({ err: loggableError(err) }, 'secrets key rotation pass failed'),
      onResealed: (column, count) => logger.info({ column, count }, 'secrets re-sealed under SECRETS_KEY'),
    });
    // Registered (and the sealing key decided) before anything is sealed by this instance.
    await rotation.register();
    const keys = new SigningKeys(db, box, {
      maxTokenLifetimeSeconds: Math.max(config.ttl.accessToken, config.ttl.idToken),
      refreshIntervalSeconds: config.keyRefreshInterval,
      onError: (err) => logger.warn({ err: loggableError(err) }, 'signing key refresh failed'),
    });
    await keys.init();

    const sessionStore = new DatabaseSessionStore(db, config.ttl.session);
    const ctx: AppContext = {
      config,
      db,
      box,
      keys,
      audit: new AuditTrail(db),
      logger,
      metrics: new Metrics(db, fhirInteraction),
      adminToken: resolveAdminToken(config).token,
      sessions: { store: sessionStore, middleware: (_req, _res, next) => next() },
    };
    ctx.sessions.middleware = sessionMiddleware(ctx, sessionStore);

    // Ocean's message integrations and EHR systems are machine clients of the authorization server
    // (client_credentials only); each room answers for its own client ids.
    const referrals = createReferrals(ctx);
    const ehrApi = createEhrApi(ctx);
    const oidc = await createOidc(ctx, {
      machineClients: async (clientId) =>
        (await referrals.clientMetadata(clientId)) ?? (await ehrApi.clientMetadata(clientId)),
    });
    const sso = await createSso(ctx);
    const capabilities: Capability[] = [
      oidc,
      await createFhir(ctx, { liveTokenSql: oidc.liveTokenSql }),
      await createEhr(ctx, { signInChoices: sso.choices }),
      sso,
      await createLaunch(ctx),
      createDemo(ctx),
      referrals,
      ehrApi,
      await createAdmin(ctx, { provider: oidc.provider }),
    ];
    const app = createApp(ctx, capabilities);
    const handler = leanDispatcher(
      ctx,
      app,
      capabilities.flatMap((c) => c.hotRoutes ?? []),
    );

    keys.startRefreshing();
    rotation.start();
    for (const c of capabilities) await c.start?.();
    const housekeeping = setInterval(() => {
      purgeRateLimits(db).catch(() => {});
      sessionStore.purgeExpired().catch(() => {});
    }, 10 * 60_000);
    housekeeping.unref();

    let closed = false;
    return {
      app,
      handler,
      ctx,
      capabilities,
      async close() {
        if (closed) return;
        closed = true;
        keys.stopRefreshing();
        await rotation.stop();
        clearInterval(housekeeping);
        for (const c of [...capabilities].reverse()) await c.stop?.();
        await ctx.audit.flush();
        if (ownsDb) await db.close();
      },
    };
  } catch (err) {
    if (ownsDb) await db.close().catch(() => {});
    throw err;
  }
}
