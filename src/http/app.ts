/*
 * The Express application: cross-cutting concerns in a fixed order, then the capabilities.
 * security headers → request id + logging → metrics → error vocabulary, body-size guard →
 * bearer-token APIs (FHIR) → health, /metrics, static → rate limits → EHR session →
 * capabilities (in composition order) → 404 → errors
 */

import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { AppContext, Capability } from '../context.ts';
import { ROUTES } from '../oidc/provider.ts';
import { errorHandler, HttpError, notFoundHandler } from './errors.ts';
import { healthRoutes } from './health.ts';
import { requestLogger } from './logger.ts';
import { limitedRoutes } from './rate-limit.ts';
import { requestContext } from './request-context.ts';

const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url));
const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));
const OAUTH_PATH = new RegExp(
  `^/fhir(${[ROUTES.token, ROUTES.introspection, ROUTES.revocation].join('|')})/?$`,
  'i',
);
const AUTHORIZE_PATH = new RegExp(`^/fhir${ROUTES.authorization}(/|$)`, 'i');
/** The one route that takes big bodies (a FHIR Bundle); it enforces IMPORT_BODY_LIMIT itself. */
const IMPORT_PATH = /^\/admin\/api\/import\/?$/i;

export function createApp(ctx: AppContext, capabilities: Capability[]): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', ctx.config.trustProxy);
  app.set('view engine', 'ejs');
  app.set('views', VIEWS_DIR);
  // Express 5 parses ?a=1&a=2 into arrays with "extended"; "simple" keeps it predictable for validation.
  app.set('query parser', 'simple');

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: true,
        directives: {
          // Hospitals run offline: nothing is loaded from anywhere but here.
          'default-src': ["'self'"],
          'script-src': ["'self'"],
          'style-src': ["'self'"],
          'img-src': ["'self'", 'data:'],
          'form-action': null, // the OAuth form_post response mode posts to the client's redirect_uri
          'frame-ancestors': ["'none'"],
          'upgrade-insecure-requests': ctx.config.secureCookies ? [] : null,
        },
      },
      // Discovery documents and FHIR are read cross-origin by browser apps.
      crossOriginResourcePolicy: { policy: 'cross-origin' },
      // No URL of ours (chart paths name patients) ever goes to another site; our own pages and
      // redirects do tell us where a navigation came from (src/launch/own-navigation.ts).
      referrerPolicy: { policy: 'same-origin' },
      strictTransportSecurity: ctx.config.secureCookies,
    }),
  );
  app.use(requestLogger(ctx.logger));
  app.use(requestContext());
  app.use(ctx.metrics.middleware());
  // Paths whose vocabulary the path alone does not tell, for refusals made before their router runs:
  // the provider's endpoints live under the FHIR base but speak OAuth (authorize: to people),
  // and the import under /admin/api speaks FHIR.
  app.use((req, res, next) => {
    if (AUTHORIZE_PATH.test(req.path)) res.locals.errorFormat = 'html';
    else if (OAUTH_PATH.test(req.path)) res.locals.errorFormat = 'oauth';
    else if (IMPORT_PATH.test(req.path)) res.locals.errorFormat = 'fhir';
    next();
  });
  app.use(bodySizeGuard(ctx.config));
  for (const capability of capabilities) {
    if (capability.api) app.use(capability.api);
  }
  app.use(healthRoutes(ctx.db));
  app.use(
    ctx.metrics.routes({ token: ctx.config.metricsToken, internalOnly: ctx.config.metricsInternalOnly }),
  );
  app.use('/static', express.static(PUBLIC_DIR, { index: false, maxAge: '1h', fallthrough: true }));

  const limits = ctx.config.rateLimits;
  app.use(
    limitedRoutes(ctx.db, limits.windowSeconds, [
      { name: 'login', method: 'POST', path: '/login', limit: limits.login, format: 'html' },
      { name: 'token', method: 'POST', path: `/fhir${ROUTES.token}`, limit: limits.token, format: 'oauth' },
      {
        name: 'introspection',
        method: 'POST',
        path: `/fhir${ROUTES.introspection}`,
        limit: limits.introspection,
        format: 'oauth',
      },
      { name: 'admin', path: /^\/admin\/api(\/|$)/, limit: limits.admin, format: 'json' },
    ]),
  );

  // EHR sessions for people-facing routes. The FHIR API and the provider's endpoints under /fhir
  // use bearer tokens and client auth, not cookies; a route there that needs the EHR session
  // applies ctx.sessions.middleware itself (express-session skips a request that already has one).
  app.use((req, res, next) =>
    req.path.startsWith('/fhir') ? next() : ctx.sessions.middleware(req, res, next),
  );

  for (const capability of capabilities) {
    if (capability.router) app.use(capability.router);
  }

  app.use(notFoundHandler());
  app.use(errorHandler());
  return app;
}

/**
 * 413 before any byte is read when Content-Length says the body is over BODY_LIMIT — for every
 * route, including oidc-provider's, whose own parser would answer 400 for anything over 56 kB.
 */
function bodySizeGuard(config: AppContext['config']): express.RequestHandler {
  const limit = parseSize(config.bodyLimit);
  const importLimit = parseSize(config.importBodyLimit);
  return (req, _res, next) => {
    const length = Number(req.headers['content-length'] ?? 0);
    const max = IMPORT_PATH.test(req.path) ? importLimit : limit;
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
