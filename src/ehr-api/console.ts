/*
 * The console page for EHR systems (/admin/ehr-systems), for signed-in admins: each system with
 * its sites and its last launches (from the audit trail); register one, draw a new secret (shown
 * once, in the answer to the POST that drew it), remove one.
 * - every form carries the session's CSRF token; every change goes through EhrSystemAdmin, the
 *   same code as the admin API
 */
import express, { type Request, type Response, Router } from 'express';
import { actorOf } from '../admin/console-render.ts';
import type { AppContext } from '../context.ts';
import { HttpError, ValidationError } from '../http/errors.ts';
import { ROUTES } from '../smart/endpoints.ts';
import { noStore, requireAdminRole, requireUser } from '../web/current-user.ts';
import { csrfGuard } from '../web/session.ts';
import type { EhrSystemAdmin } from './admin-api.ts';
import type { EhrSystem } from './ehr-systems.ts';

/** The form's fields as the admin API's JSON: empty fields left out, sites split, jwks parsed. */
function inputOf(body: Record<string, unknown>): Record<string, unknown> {
  const field = (name: string) => (typeof body[name] === 'string' ? (body[name] as string).trim() : '');
  const input: Record<string, unknown> = {
    name: field('name'),
    token_endpoint_auth_method: field('token_endpoint_auth_method'),
  };
  if (input.token_endpoint_auth_method === 'private_key_jwt') {
    if (field('jwks_uri')) input.jwks_uri = field('jwks_uri');
    if (field('jwks')) {
      try {
        input.jwks = JSON.parse(field('jwks'));
      } catch {
        throw new ValidationError([{ path: 'jwks', message: 'the public keys must be a JSON JWK Set' }]);
      }
    }
  }
  const sites = field('sites')
    .split(/[\s,]+/)
    .filter(Boolean);
  if (sites.length > 0) input.sites = sites;
  return input;
}

export function ehrSystemConsole(
  ctx: AppContext,
  admin: EhrSystemAdmin,
  currentUser: express.RequestHandler,
): Router {
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit, parameterLimit: 20 });
  const router = Router();
  router.use(noStore, currentUser, requireUser, requireAdminRole);
  router.post(/.*/, form, csrfGuard);

  const page = async (res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    const systems = await admin.systems.list();
    const lastLaunches = Object.fromEntries(
      await Promise.all(
        systems.map(async (s) => [s.client_id, await admin.lastLaunches(s.client_id)] as const),
      ),
    );
    res.status(status).render('ehr-api/admin', {
      title: 'EHR systems',
      section: 'ehr-systems',
      systems,
      lastLaunches,
      tokenEndpoint: `${ctx.config.fhirBaseUrl}${ROUTES.token}`,
      launchEndpoint: `${ctx.config.publicUrl}/ehr-api/launches`,
      errors: {},
      ...extra,
    });
  };
  /** A refusal the administrator can act on is shown on the page, with the form as it was. */
  const orShow =
    (fn: (req: Request, res: Response) => Promise<void>) => async (req: Request, res: Response) => {
      try {
        await fn(req, res);
      } catch (err) {
        if (err instanceof HttpError && err.status < 500 && err.status !== 403) {
          await page(res, { errors: { _form: err.message }, form: req.body ?? {} }, err.status);
          return;
        }
        throw err;
      }
    };
  const shown = (res: Response, system: EhrSystem, secret: string | undefined, status: number) =>
    page(res, { shown: { system, secret } }, status);

  router.get('/', (_req, res) => page(res));
  router.post(
    '/',
    orShow(async (req, res) => {
      const { system, client_secret } = await admin.create(actorOf(req, res), inputOf(req.body ?? {}));
      await shown(res, system, client_secret, 201);
    }),
  );
  router.post(
    '/:clientId/secret',
    orShow(async (req, res) => {
      const clientId = String(req.params.clientId);
      const secret = await admin.resetSecret(actorOf(req, res), clientId);
      await shown(res, await admin.systems.get(clientId), secret, 200);
    }),
  );
  router.post(
    '/:clientId/delete',
    orShow(async (req, res) => {
      await admin.delete(actorOf(req, res), String(req.params.clientId));
      res.redirect(303, '/admin/ehr-systems');
    }),
  );
  return router;
}
