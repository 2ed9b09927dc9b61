/*
 * The EHR launch API: any EHR's own buttons open Ocean (CONTRACT §3.5).
 *
 *   POST   /ehr-api/launches                           an EHR system asks for a launch   ./launches.ts
 *   GET    /admin/api/ehr-systems                      list EHR systems                  ./admin-api.ts
 *   POST   /admin/api/ehr-systems                      register one (a secret shown once)
 *   GET    /admin/api/ehr-systems/:clientId            one, with its last launches
 *   PATCH  /admin/api/ehr-systems/:clientId            name, sites, keys
 *   DELETE /admin/api/ehr-systems/:clientId            remove it (its tokens end at once)
 *   POST   /admin/api/ehr-systems/:clientId/secret     draw a new secret (shown once)
 *   GET    /admin/ehr-systems …                        the console page                  ./console.ts
 *
 * The tokens come from our token endpoint (client_credentials, scope ehr-launch): the
 * authorization server finds these clients through clientMetadata() (composition root).
 * The launch signs its user in at the authorization: src/oidc/interactions.ts.
 */
import express, { type RequestHandler, Router } from 'express';
import { apiActor, requireJsonBody } from '../admin/api.ts';
import { adminApiRouter } from '../admin/api-router.ts';
import type { AppContext, Capability } from '../context.ts';
import { HttpError, speaks } from '../http/errors.ts';
import { routeTable } from '../http/route-table.ts';
import { loadCurrentUser, noStore } from '../web/current-user.ts';
import { EhrSystemAdmin } from './admin-api.ts';
import { ehrSystemAuthenticator } from './caller.ts';
import { ehrSystemConsole } from './console.ts';
import { type EhrSystemRef, EhrSystems } from './ehr-systems.ts';
import { parseLaunchRequest } from './launch-request.ts';
import { createApiLaunch } from './launches.ts';

export const LAUNCHES_PATH = '/ehr-api/launches';

declare global {
  namespace Express {
    interface Locals {
      /** The EHR system calling the launch API (set once its token is checked). */
      ehrSystem?: EhrSystemRef;
    }
  }
}

/** The EHR launch API capability, and the Client lookup the authorization server needs of it. */
export interface EhrApiCapability extends Capability {
  /** oidc-provider metadata of an EHR system's client, by client_id. */
  clientMetadata(clientId: string): Promise<Record<string, unknown> | undefined>;
}

const requestIdOf = (req: express.Request) => (req.id != null ? String(req.id) : null);
const param = (req: express.Request, name: string) => String(req.params[name] ?? '');

export function createEhrApi(ctx: AppContext): EhrApiCapability {
  const systems = new EhrSystems(ctx.db, ctx.box, ctx.config.ttl.ehrSystemToken);
  const admin = new EhrSystemAdmin(ctx.db, systems);
  const authenticate = ehrSystemAuthenticator(systems, ctx.keys, ctx.config.fhirBaseUrl);

  // ---- the launch API: the caller is checked before the body is read
  const caller: RequestHandler = (req, res, next) => {
    authenticate(req).then((system) => {
      res.locals.ehrSystem = system;
      next();
    }, next);
  };
  const launchBody: RequestHandler = (req, res, next) =>
    req.is(['application/json', 'application/*+json'])
      ? express.json({ limit: ctx.config.ehrApiBodyLimit, type: ['application/json', 'application/*+json'] })(
          req,
          res,
          next,
        )
      : next(new HttpError(415, 'unsupported_media_type', 'send the launch request as application/json'));
  // On the router, not as an `api`: the launch API is rate-limited like the token endpoint.
  const router = Router();
  const launchApi = Router();
  launchApi.use(speaks('json'), noStore);
  routeTable(launchApi)('/launches', {
    post: [
      caller,
      launchBody,
      requireJsonBody,
      async (req, res) => {
        const answer = await createApiLaunch(ctx, res.locals.ehrSystem!, parseLaunchRequest(req.body), {
          requestId: requestIdOf(req),
          ip: req.ip ?? null,
        });
        res.status(201).json(answer);
      },
    ],
  });

  // ---- admin API: one line per path
  const { router: adminApi, route, body, noBody } = adminApiRouter(ctx);
  route('/ehr-systems', {
    get: async (_req, res) => void res.json({ ehr_systems: await systems.list() }),
    post: [
      ...body,
      async (req, res) => {
        const { system, client_secret } = await admin.create(apiActor(req), req.body);
        res
          .status(201)
          .location(`/admin/api/ehr-systems/${encodeURIComponent(system.client_id)}`)
          .json({ ...system, ...(client_secret ? { client_secret } : {}) });
      },
    ],
  });
  route('/ehr-systems/:clientId', {
    get: async (req, res) => {
      const system = await systems.get(param(req, 'clientId'));
      res.json({ ...system, last_launches: await admin.lastLaunches(system.client_id) });
    },
    patch: [
      ...body,
      async (req, res) => void res.json(await admin.update(apiActor(req), param(req, 'clientId'), req.body)),
    ],
    delete: async (req, res) => {
      await admin.delete(apiActor(req), param(req, 'clientId'));
      res.status(204).end();
    },
  });
  route('/ehr-systems/:clientId/secret', {
    post: [
      ...noBody,
      async (req, res) => {
        const clientId = param(req, 'clientId');
        res.json({ client_id: clientId, client_secret: await admin.resetSecret(apiActor(req), clientId) });
      },
    ],
  });

  router.use('/ehr-api', launchApi);
  router.use('/admin/api', adminApi);
  router.use('/admin/ehr-systems', ehrSystemConsole(ctx, admin, loadCurrentUser(ctx)));

  return {
    name: 'ehr-api',
    router,
    clientMetadata: (clientId) => systems.clientMetadata(clientId),
    paths: [
      {
        path: /^\/ehr-api(\/|$)/,
        errorFormat: 'json',
        bodyLimit: ctx.config.ehrApiBodyLimit,
        sessionless: true,
      },
    ],
    rateLimits: [
      {
        name: 'ehr-launch',
        method: 'POST',
        path: LAUNCHES_PATH,
        limit: ctx.config.rateLimits.token,
        format: 'json',
      },
    ],
  };
}
