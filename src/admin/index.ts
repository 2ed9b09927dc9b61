/*
 * The admin capability: setting up the Ocean integration, by API and by console.
 *
 * Admin API — JSON, `Authorization: Bearer ${ADMIN_TOKEN}` (./admin-token.ts), handlers in ./api.ts
 *   GET    /admin/api/clients                                   list clients
 *   POST   /admin/api/clients                                   register a client (secret shown once)
 *   GET    /admin/api/clients/:clientId                         one client, with its sites
 *   PATCH  /admin/api/clients/:clientId                         change a client
 *   DELETE /admin/api/clients/:clientId                         delete a client, its sites and grants
 *   POST   /admin/api/clients/:clientId/secret                  draw a new secret (shown once)
 *   GET    /admin/api/clients/:clientId/sites                   list its Ocean sites
 *   POST   /admin/api/clients/:clientId/sites                   add a site with its SEK
 *   GET    /admin/api/clients/:clientId/sites/:siteNum          one site (SEK masked)
 *   PATCH  /admin/api/clients/:clientId/sites/:siteNum          change a site's buttons or SEK
 *   DELETE /admin/api/clients/:clientId/sites/:siteNum          delete a site
 *   GET    /admin/api/clients/:clientId/allowlist               the seven values for Ocean
 *   GET    /admin/api/users                                     list EHR users
 *   POST   /admin/api/users                                     create a user and its Practitioner
 *   GET    /admin/api/users/:userId                             one user
 *   PATCH  /admin/api/users/:userId                             roles and/or active
 *   POST   /admin/api/users/:userId/deactivate                  deactivate (ends sessions and grants)
 *   POST   /admin/api/users/:userId/password                    set a new password (ends sessions and grants)
 *   POST   /admin/api/users/:userId/revoke-grants               end the user's access: sessions and grants
 *   POST   /admin/api/users/:userId/unlock                      lift the user's sign-in waits and locks
 *   GET    /admin/api/keys                                      signing keys (never private parts)
 *   POST   /admin/api/keys/rotate                               rotate the signing keys
 *   GET    /admin/api/audit                                     the audit trail, filtered
 *   POST   /admin/api/import                                    load a FHIR Bundle (FHIR in and out: ../fhir/import-route.ts)
 *
 * Admin console — HTML under /admin for EHR users with the admin role, CSRF on every form (./console.ts)
 */
import { join } from 'node:path';
import express, { Router } from 'express';
import type { AppContext, Capability } from '../context.ts';
import { importRoute } from '../fhir/import-route.ts';
import { notFound, speaks } from '../http/errors.ts';
import { routeTable } from '../http/route-table.ts';
import { hasActiveAdministrator } from '../users/users.ts';
import { requireAdminToken } from './admin-token.ts';
import { apiHandlers, optionalJsonBody, requireJsonBody } from './api.ts';
import { consoleRouter } from './console.ts';
import { type AdminDeps, AdminOperations } from './operations.ts';

export const ADMIN_API = '/admin/api';
/** The one admin route that speaks FHIR and takes big bodies (it enforces IMPORT_BODY_LIMIT itself). */
const IMPORT_PATH = /^\/admin\/api\/import\/?$/i;

export async function createAdmin(ctx: AppContext, deps: AdminDeps): Promise<Capability> {
  const ops = new AdminOperations(ctx, deps);
  const h = apiHandlers(ops);
  const json = express.json({
    limit: ctx.config.bodyLimit,
    type: ['application/json', 'application/*+json'],
    strict: true,
  });
  const body = [json, requireJsonBody];
  const noBody = [json, optionalJsonBody];

  const api = Router();
  api.use(speaks('json'), requireAdminToken(ctx.adminToken), (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    res.set('Pragma', 'no-cache');
    next();
  });
  // One line per path; any other method on a known path is a 405 naming the allowed ones.
  const route = routeTable(api);
  route('/clients', { get: h.listClients, post: [...body, h.createClient] });
  route('/clients/:clientId', {
    get: h.getClient,
    patch: [...body, h.updateClient],
    delete: h.deleteClient,
  });
  route('/clients/:clientId/secret', { post: [...noBody, h.resetSecret] });
  route('/clients/:clientId/sites', { get: h.listSites, post: [...body, h.addSite] });
  route('/clients/:clientId/sites/:siteNum', {
    get: h.getSite,
    patch: [...body, h.updateSite],
    delete: h.deleteSite,
  });
  route('/clients/:clientId/allowlist', { get: h.allowlist });
  route('/users', { get: h.listUsers, post: [...body, h.createUser] });
  route('/users/:userId', { get: h.getUser, patch: [...body, h.updateUser] });
  route('/users/:userId/deactivate', { post: [...noBody, h.deactivateUser] });
  route('/users/:userId/password', { post: [...body, h.resetPassword] });
  route('/users/:userId/revoke-grants', { post: [...noBody, h.revokeGrants] });
  route('/users/:userId/unlock', { post: [...noBody, h.unlockUser] });
  route('/keys', { get: h.listKeys });
  route('/keys/rotate', { post: [...noBody, h.rotateKeys] });
  route('/audit', { get: h.audit });
  api.use((req, _res, next) =>
    next(notFound(`no admin API route for ${req.method} ${req.path.slice(0, 200)}`)),
  );

  const router = Router();
  // The import streams a large FHIR Bundle and answers in FHIR: ahead of the JSON API's parser.
  router.post(`${ADMIN_API}/import`, requireAdminToken(ctx.adminToken), importRoute(ctx));
  router.use(ADMIN_API, api);
  router.use('/admin', consoleRouter(ctx, ops));
  let banner: string[] = [];
  return {
    name: 'admin',
    router,
    paths: [{ path: IMPORT_PATH, errorFormat: 'fhir', bodyLimit: ctx.config.importBodyLimit }],
    rateLimits: [
      { name: 'admin', path: /^\/admin\/api(\/|$)/, limit: ctx.config.rateLimits.admin, format: 'json' },
    ],
    async start() {
      // Where the token is, never the token itself.
      const tokenFrom = ctx.config.adminToken
        ? 'the ADMIN_TOKEN setting'
        : join(ctx.config.keysDir, 'admin-token');
      banner = [
        '',
        `admin console ${ctx.config.publicUrl}/admin  (EHR users with the admin role)`,
        `admin API     ${ctx.config.publicUrl}${ADMIN_API}  (Authorization: Bearer <token from ${tokenFrom}>)`,
        ...((await hasActiveAdministrator(ctx.db))
          ? []
          : [
              'no administrator yet: create the first one through the admin API, e.g.',
              `  curl -X POST ${ctx.config.publicUrl}${ADMIN_API}/users -H "Authorization: Bearer $TOKEN" \\`,
              `    -H 'Content-Type: application/json' -d '{"username":"…","password":"…","given_name":"…","family_name":"…","roles":["admin","clinician"]}'`,
            ]),
      ];
    },
    banner: () => banner,
  };
}
