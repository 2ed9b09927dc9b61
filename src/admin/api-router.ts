/*
 * The admin API's shell for a room that serves its own paths under /admin/api (Ocean's message
 * integrations, EHR systems): JSON errors, the admin token checked before any body is read,
 * no-store answers, a route table (one line per path, 405 for another method) and the two body
 * parsers of the admin API (a JSON object required, or none).
 */
import express, { Router } from 'express';
import type { AppContext } from '../context.ts';
import { speaks } from '../http/errors.ts';
import { routeTable } from '../http/route-table.ts';
import { noStore } from '../web/current-user.ts';
import { requireAdminToken } from './admin-token.ts';
import { optionalJsonBody, requireJsonBody } from './api.ts';

export function adminApiRouter(ctx: AppContext) {
  const json = express.json({
    limit: ctx.config.bodyLimit,
    type: ['application/json', 'application/*+json'],
  });
  const router = Router();
  router.use(speaks('json'), requireAdminToken(ctx.adminToken), noStore);
  return {
    router,
    route: routeTable(router),
    /** A state-changing request's JSON object body. */
    body: [json, requireJsonBody],
    /** A POST that takes no body (a non-JSON one is refused). */
    noBody: [json, optionalJsonBody],
  };
}
