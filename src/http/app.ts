/*
 * The Express application: cross-cutting concerns in a fixed order, then the capabilities.
 * security headers → request id + logging → metrics → error vocabulary, body-size guard →
 * bearer-token APIs (FHIR) → health, /metrics, static → rate limits → web session →
 * capabilities (in composition order) → 404 → errors
 * - it names no capability's paths: each declares its own rules (Capability.paths, .rateLimits)
 */

import express, { type Express } from 'express';
import type { AppContext, Capability, PathRule } from '../context.ts';
import { rotationSummary } from '../keys/key-ring.ts';
import { PUBLIC_DIR, VIEWS_DIR } from '../paths.ts';
import { errorHandler, HttpError, notFoundHandler } from './errors.ts';
import { healthRoutes } from './health.ts';
import { requestLogger } from './logger.ts';
import { limitedRoutes } from './rate-limit.ts';
import { requestContext } from './request-context.ts';
import { securityHeaders } from './security-headers.ts';

export function createApp(ctx: AppContext, capabilities: Capability[]): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', ctx.config.trustProxy);
  app.set('view engine', 'ejs');
  app.set('views', VIEWS_DIR);
  // Templates compiled once, in every environment (Express caches them only in production): a
  // page compiled per request was a measurable part of a launch's consent hop. `npm run dev`
  // restarts on a view's change instead.
  app.set('view cache', true);
  // Express 5 parses ?a=1&a=2 into arrays with "extended"; "simple" keeps it predictable for validation.
  app.set('query parser', 'simple');

  app.use(securityHeaders(ctx));
  app.use(requestLogger(ctx.logger));
  app.use(requestContext());
  app.use(ctx.metrics.middleware());
  // Paths whose vocabulary the path alone does not tell, for refusals made before their router
  // runs (the provider's endpoints under the FHIR base speak OAuth, say): each capability's rules.
  const rules = capabilities.flatMap((c) => c.paths ?? []);
  const vocabularies = rules.filter((r) => r.errorFormat);
  app.use((req, res, next) => {
    const rule = vocabularies.find((r) => r.path.test(req.path));
    if (rule) res.locals.errorFormat = rule.errorFormat;
    next();
  });
  app.use(bodySizeGuard(ctx.config.bodyLimit, rules));
  for (const capability of capabilities) {
    if (capability.api) app.use(capability.api);
  }
  app.use(healthRoutes(ctx.db, () => ({ secretsKey: rotationSummary(ctx.box.status) })));
  app.use(
    ctx.metrics.routes({ token: ctx.config.metricsToken, internalOnly: ctx.config.metricsInternalOnly }),
  );
  app.use('/static', express.static(PUBLIC_DIR, { index: false, maxAge: '1h', fallthrough: true }));

  app.use(
    limitedRoutes(
      ctx.db,
      ctx.config.rateLimits.windowSeconds,
      capabilities.flatMap((c) => c.rateLimits ?? []),
    ),
  );

  // Web sessions for people-facing routes, not for the paths a capability declares sessionless
  // (express-session skips a request that already has one, if such a route applies it itself).
  const sessionless = rules.filter((r) => r.sessionless);
  app.use((req, res, next) =>
    sessionless.some((r) => r.path.test(req.path)) ? next() : ctx.sessions.middleware(req, res, next),
  );

  for (const capability of capabilities) {
    if (capability.router) app.use(capability.router);
  }

  app.use(notFoundHandler());
  app.use(errorHandler());
  return app;
}

/**
 * 413 before any byte is read when Content-Length says the body is over BODY_LIMIT (or the
 * path's own limit) — for every route, including oidc-provider's, whose own parser would answer
 * 400 for anything over 56 kB.
 */
function bodySizeGuard(bodyLimit: string, rules: PathRule[]): express.RequestHandler {
  const limit = parseSize(bodyLimit);
  const own = rules.flatMap((r) => (r.bodyLimit ? [{ path: r.path, max: parseSize(r.bodyLimit) }] : []));
  return (req, _res, next) => {
    const length = Number(req.headers['content-length'] ?? 0);
    const max = own.find((r) => r.path.test(req.path))?.max ?? limit;
    if (Number.isFinite(length) && length > max) {
      next(new HttpError(413, 'payload_too_large', 'request body is larger than this endpoint accepts'));
      return;
    }
    next();
  };
}

function parseSize(size: string): number {
  const m = /^(\d+)(b|kb|mb|gb)$/i.exec(size);
  if (!m) throw new Error(`bad size ${size}`);
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[
    m[2]!.toLowerCase() as 'b' | 'kb' | 'mb' | 'gb'
  ];
  return Number(m[1]) * unit;
}
