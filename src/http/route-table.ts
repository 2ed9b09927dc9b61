/*
 * Route tables, one line per path: `route('/things/:id', { get: …, delete: … })`.
 * Any other method on a known path is a 405 naming the allowed ones (RFC 9110 §15.5.6), in the
 * vocabulary of the router's paths. Express 5 passes a rejected handler's error on by itself.
 */
import type { RequestHandler, Router } from 'express';
import { HttpError } from './errors.ts';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
export type Handlers = RequestHandler | RequestHandler[];

export function routeTable(router: Router) {
  return function route(path: string, methods: Partial<Record<Method, Handlers>>): void {
    const r = router.route(path);
    for (const [method, handlers] of Object.entries(methods)) r[method as Method](...[handlers].flat());
    const allow = Object.keys(methods)
      .map((m) => m.toUpperCase())
      .join(', ');
    r.all((req, _res, next) =>
      next(
        new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, {
          Allow: allow,
        }),
      ),
    );
  };
}
