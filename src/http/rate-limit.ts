/*
 * Rate limits whose counters live in the database, so every instance enforces one budget.
 * - express-rate-limit does the HTTP part (429, Retry-After, RateLimit headers);
 *   PostgresRateLimitStore is its store: one fixed window per key, one upsert per request
 * - the window is computed from the database clock, so instances with skewed clocks agree
 * - when the database is down the store throws and the request gets 503, never a free pass
 * - limitedRoutes() puts several limits in front of the routes they guard, each answering 429
 *   in its endpoint's vocabulary (OAuth JSON, admin JSON, a page for people)
 */
import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, type Options, rateLimit, type Store } from 'express-rate-limit';
import type { Database } from '../db/database.ts';
import { type ErrorFormat, HttpError } from './errors.ts';

export class PostgresRateLimitStore implements Store {
  localKeys = false;
  prefix: string;
  #windowSeconds = 60;

  constructor(
    private readonly db: Database,
    name: string,
  ) {
    this.prefix = `${name}:`;
  }

  init(options: Options): void {
    this.#windowSeconds = Math.max(1, Math.round(options.windowMs / 1000));
  }

  async increment(key: string): Promise<{ totalHits: number; resetTime: Date }> {
    const { rows } = await this.db.query<{ hits: number; window_start: Date | string }>(
      `INSERT INTO rate_limit_hits AS r (key, window_start, hits)
       VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
       ON CONFLICT (key) DO UPDATE SET
         hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
         window_start = EXCLUDED.window_start
       RETURNING hits, window_start`,
      [this.prefix + key, this.#windowSeconds],
    );
    const row = rows[0]!;
    return {
      totalHits: Number(row.hits),
      resetTime: new Date(new Date(row.window_start).getTime() + this.#windowSeconds * 1000),
    };
  }

  async decrement(key: string): Promise<void> {
    await this.db.query('UPDATE rate_limit_hits SET hits = greatest(hits - 1, 0) WHERE key = $1', [
      this.prefix + key,
    ]);
  }

  async resetKey(key: string): Promise<void> {
    await this.db.query('DELETE FROM rate_limit_hits WHERE key = $1', [this.prefix + key]);
  }
}

/** Deletes counters of windows long gone; run periodically. */
export async function purgeRateLimits(db: Database): Promise<void> {
  await db.query(`DELETE FROM rate_limit_hits WHERE window_start < now() - interval '1 day'`);
}

export interface LimitOptions {
  /** Names the counter family (login, token, introspection, admin). */
  name: string;
  windowSeconds: number;
  limit: number;
  /** Default: the client address (IPv6 grouped by /56, as express-rate-limit recommends). */
  key?: (req: Request) => string;
  message?: string;
}

export function databaseRateLimit(db: Database, options: LimitOptions): RequestHandler {
  return rateLimit({
    windowMs: options.windowSeconds * 1000,
    limit: options.limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    store: new PostgresRateLimitStore(db, options.name),
    keyGenerator: options.key ?? ((req) => ipKeyGenerator(req.ip ?? 'unknown')),
    // The error handler renders 429 in the endpoint's own vocabulary (OAuth JSON, OperationOutcome, page).
    handler: (_req, res, next, opts) => {
      const retryAfter = String(Math.ceil(opts.windowMs / 1000));
      res.setHeader('Retry-After', res.getHeader('Retry-After') ?? retryAfter);
      next(
        new HttpError(429, 'rate_limited', options.message ?? 'too many requests; try again later', {
          'Retry-After': String(res.getHeader('Retry-After')),
        }),
      );
    },
  });
}

export interface LimitedRoute {
  /** Counter family: login, token, introspection, admin. */
  name: string;
  /** Only this method is counted (default: every method). */
  method?: string;
  /** Exact path (compared case-insensitively, trailing "/" ignored) or a pattern. */
  path: string | RegExp;
  /** Requests per client address per window; 0 switches the limit off. */
  limit: number;
  /** Error vocabulary of the endpoint, for the 429. */
  format: ErrorFormat;
}

/** One middleware running, for each request, the limit of the route it is for (if any). */
export function limitedRoutes(db: Database, windowSeconds: number, routes: LimitedRoute[]): RequestHandler {
  const active = routes
    .filter((r) => r.limit > 0)
    .map((r) => ({
      ...r,
      path: typeof r.path === 'string' ? r.path.toLowerCase() : r.path,
      handler: databaseRateLimit(db, { name: r.name, windowSeconds, limit: r.limit }),
    }));
  return (req, res, next) => {
    const path = req.path.length > 1 ? req.path.replace(/\/+$/, '').toLowerCase() : req.path;
    const route = active.find(
      (r) =>
        (!r.method || r.method === req.method) &&
        (typeof r.path === 'string' ? r.path === path : r.path.test(path)),
    );
    if (!route) return next();
    res.locals.errorFormat = route.format;
    route.handler(req, res, next);
  };
}
