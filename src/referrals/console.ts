/*
 * The console page for Ocean's messages (/admin/ocean), for signed-in admins:
 * - the integrations (register a site, rotate its credentials — shown once, in the answer to the
 *   POST that drew them —, revoke it), and the unmatched messages (match one to a patient, which
 *   files it, or dismiss it)
 * - every form carries the session's CSRF token; every change goes through ReferralAdmin, the
 *   same code as the admin API
 */
import express, { type Request, type RequestHandler, type Response, Router } from 'express';
import { actorOf } from '../admin/console-render.ts';
import type { AppContext } from '../context.ts';
import { HttpError, ValidationError } from '../http/errors.ts';
import { noStore, requireAdminRole, requireUser } from '../web/current-user.ts';
import { csrfGuard } from '../web/session.ts';
import type { ReferralAdmin } from './admin-api.ts';
import { inboxCounts } from './inbox.ts';

const handle =
  (fn: (req: Request, res: Response) => Promise<void>): RequestHandler =>
  (req, res, next) => {
    fn(req, res).catch(next);
  };

export function referralConsole(ctx: AppContext, admin: ReferralAdmin, currentUser: RequestHandler): Router {
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit, parameterLimit: 20 });
  const router = Router();
  router.use(noStore, currentUser, requireUser, requireAdminRole);
  router.post(/.*/, form, csrfGuard);

  const page = async (_req: Request, res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    const [integrations, unmatched, counts] = await Promise.all([
      admin.integrations.list(),
      admin.listMessages({ outcome: 'unmatched', limit: '100' }),
      inboxCounts(ctx.db),
    ]);
    res.status(status).render('referrals/admin', {
      title: 'Ocean messages',
      section: 'ocean',
      integrations,
      unmatched,
      counts,
      errors: {},
      ...extra,
    });
  };
  const field = (req: Request, name: string) => {
    const v = (req.body as Record<string, unknown> | undefined)?.[name];
    return typeof v === 'string' ? v.trim() : '';
  };
  /** A refusal the administrator can act on is shown on the page (400/404/409), not as an error page. */
  const orShow = (fn: (req: Request, res: Response) => Promise<void>) =>
    handle(async (req, res) => {
      try {
        await fn(req, res);
      } catch (err) {
        if (err instanceof HttpError && err.status < 500 && err.status !== 403)
          return page(
            req,
            res,
            { errors: { _form: err instanceof ValidationError ? err.message : err.message } },
            err.status,
          );
        throw err;
      }
    });
  const back = (res: Response) => res.redirect(303, '/admin/ocean');

  router.get(
    '/',
    handle((req, res) => page(req, res)),
  );
  router.post(
    '/integrations',
    orShow(async (req, res) => {
      const { integration, credentials } = await admin.createIntegration(actorOf(req, res), {
        site_num: field(req, 'site_num'),
      });
      await page(req, res, { shown: { integration, credentials } }, 201);
    }),
  );
  router.post(
    '/integrations/:id/credentials',
    orShow(async (req, res) => {
      const { integration, credentials } = await admin.rotate(actorOf(req, res), String(req.params.id));
      await page(req, res, { shown: { integration, credentials } });
    }),
  );
  router.post(
    '/integrations/:id/delete',
    orShow(async (req, res) => {
      await admin.delete(actorOf(req, res), String(req.params.id));
      back(res);
    }),
  );
  router.post(
    '/messages/:id/match',
    orShow(async (req, res) => {
      await admin.match(actorOf(req, res), String(req.params.id), { patient_id: field(req, 'patient_id') });
      back(res);
    }),
  );
  router.post(
    '/messages/:id/dismiss',
    orShow(async (req, res) => {
      await admin.dismiss(actorOf(req, res), String(req.params.id));
      back(res);
    }),
  );
  return router;
}
