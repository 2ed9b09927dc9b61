/*
 * The Express application: cross-cutting concerns in a fixed order, then the capabilities.
 * security headers → request id + logging → health → capabilities (in composition order) → 404 → errors
 */

import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { AppContext, Capability } from '../context.ts';
import { errorHandler, notFoundHandler } from './errors.ts';
import { healthRoutes } from './health.ts';
import { requestLogger } from './logger.ts';

const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url));
const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

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
      strictTransportSecurity: ctx.config.secureCookies,
    }),
  );
  app.use(requestLogger(ctx.logger));
  app.use(ctx.metrics.middleware());
  app.use(healthRoutes(ctx.db));
  app.use(ctx.metrics.routes(ctx.config.metricsToken));
  app.use('/static', express.static(PUBLIC_DIR, { index: false, maxAge: '1h', fallthrough: true }));

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
