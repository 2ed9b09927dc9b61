/*
 * The lean dispatcher: the hottest bearer-token requests (a FHIR read) served in front of the
 * Express application, inside the same HTTP server, without walking its middleware stack.
 * - the same obligations, done once and cheaply: the security headers (helmet's, computed once:
 *   ./security-headers.ts), the request id (a valid X-Request-Id kept, else a new one; echoed),
 *   the request context for logs, the Prometheus metrics (the same middleware), and one log line
 *   per request without PHI (the same shape, URL redaction and levels as the request logger,
 *   written by the access writer: ./logger.ts accessLogger)
 * - the request and response get Express's prototypes (as Express's own init does), so the
 *   route's handlers — the FHIR guard pipeline — are the very handlers the router runs; the
 *   server's objects are born with them (./express-born.ts), which makes that a no-op
 * - only an exact match is taken (method, path shape, known type); anything else — another
 *   method, a trailing slash, an encoded character, a lower-case type — goes to the Express
 *   application, which answers it as before
 * - an error is answered by the application's error handler, in the route's vocabulary
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import { errorHandler } from './errors.ts';
import { accessLogger, REQUEST_ID, redactUrl, requestLogLevel } from './logger.ts';
import { requestContext } from './request-context.ts';
import { staticSecurityHeaders } from './security-headers.ts';

/** One hot route: an exact GET path shape and the handlers the router would run for it. */
export interface HotRoute {
  /** The route's parameters when the path (without query) is exactly one of its paths. */
  match(path: string): Record<string, string> | undefined;
  handlers: RequestHandler[];
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

const noop = () => {};

/**
 * The route's handlers from the i-th on, as the router runs them: each one's `next` runs the
 * rest, an error (thrown, rejected or passed to `next`) goes to the error handler. Written with
 * no function bound to a name per request: the build keeps function names (scripts/build.mjs,
 * keepNames), and a named function made per request had its name defined on it anew each time.
 */
function runHandlers(
  handlers: RequestHandler[],
  i: number,
  req: Request,
  res: Response,
  onError: ReturnType<typeof errorHandler>,
): void {
  const handler = handlers[i];
  if (!handler) return;
  try {
    const r = handler(req, res, ((err?: unknown) =>
      err
        ? onError(err, req, res, noop)
        : runHandlers(handlers, i + 1, req, res, onError)) as NextFunction) as unknown;
    if (r instanceof Promise) r.catch((err: unknown) => onError(err, req, res, noop));
  } catch (err) {
    onError(err, req, res, noop);
  }
}

export function leanDispatcher(ctx: AppContext, app: Express, routes: HotRoute[]): RequestListener {
  if (routes.length === 0) return app;
  const headers = staticSecurityHeaders(ctx);
  const metrics = ctx.metrics.middleware();
  const context = requestContext();
  const onError = errorHandler();
  const { logger } = ctx;
  const access = accessLogger(logger);

  const serve = (
    route: HotRoute,
    params: Record<string, string>,
    rawReq: IncomingMessage,
    rawRes: ServerResponse,
  ) => {
    const started = performance.now();
    for (const [name, value] of headers) rawRes.setHeader(name, value);
    const incoming = rawReq.headers['x-request-id'];
    const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    rawRes.setHeader('x-request-id', id);
    // What Express's init does: its request and response helpers, each knowing the other.
    const req = Object.setPrototypeOf(rawReq, app.request) as Request;
    const res = Object.setPrototypeOf(rawRes, app.response) as Response;
    req.res = res;
    req.id = id;
    req.log = logger;
    req.originalUrl = req.url;
    req.params = params;
    res.req = req;
    res.locals = Object.create(null);
    res.once('finish', () => {
      const status = res.statusCode;
      const level = requestLogLevel(status);
      if (!access.isLevelEnabled(level)) return;
      access[level](
        {
          req: { id, method: req.method, url: redactUrl(req.originalUrl) },
          res: { statusCode: status },
          responseTime: Math.round(performance.now() - started),
        },
        'request completed',
      );
    });
    context(req, res, () => metrics(req, res, () => runHandlers(route.handlers, 0, req, res, onError)));
  };

  return (req, res) => {
    if (req.method === 'GET') {
      const url = req.url ?? '';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      for (const route of routes) {
        const params = route.match(path);
        if (params) return serve(route, params, req, res);
      }
    }
    app(req as Request, res as Response);
  };
}
