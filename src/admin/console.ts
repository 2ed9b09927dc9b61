/*
 * The admin console: HTML screens under /admin for signed-in EHR users with the admin role.
 * - every form posts with the session's CSRF token (`_csrf`, or X-CSRF-Token for the import upload)
 * - every change goes through AdminOperations, the same code (validation, audit) as the admin API
 * - a bad form is shown again with each field's message and the values typed (never a secret)
 * - a client secret is shown once, in the answer to the POST that drew it: never stored in the
 *   session or put in a redirect; a SEK is never shown after it is typed
 * - pages are no-store; after a change, Post/Redirect/Get with a one-line notice in the session
 */
import express, { type NextFunction, Router } from 'express';
import { type AuditFilter, parseAuditFilter } from '../audit/audit-query.ts';
import type { AppContext } from '../context.ts';
import { importRoute } from '../fhir/import-route.ts';
import { loggableError, ValidationError } from '../http/errors.ts';
import { loadCurrentUser, noStore, requireAdminRole, requireUser } from '../web/current-user.ts';
import { csrfGuard } from '../web/session.ts';
import { clientScreens } from './console-clients.ts';
import { fieldErrors } from './console-forms.ts';
import { actorOf, redirectWith, render } from './console-render.ts';
import { userScreens } from './console-users.ts';
import type { AdminOperations } from './operations.ts';
import { keyJson } from './shapes.ts';

export function consoleRouter(ctx: AppContext, ops: AdminOperations): Router {
  const currentUser = loadCurrentUser(ctx);
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit, parameterLimit: 50 });
  const importBundle = importRoute(ctx);

  const router = Router();
  router.use(noStore, currentUser, requireUser, requireAdminRole);
  router.use((req, res, next: NextFunction) => {
    res.locals.section = req.path.split('/')[1] || 'overview';
    next();
  });
  // Every state-changing request carries the CSRF token (forms: _csrf; the upload: X-CSRF-Token).
  router.post(
    '/import',
    (_req, res, next) => {
      res.locals.errorFormat = 'fhir'; // the upload page reads an OperationOutcome, even for a CSRF refusal
      next();
    },
    csrfGuard,
    (req, res, next) => {
      const started = res.locals.currentUser;
      res.on('finish', () => {
        // The import route audits a loaded bundle's counts; this names the admin who sent it, and
        // records refused uploads too.
        void ctx.audit
          .record({
            action: 'admin.import.console',
            outcome: res.statusCode < 300 ? 'success' : 'failure',
            userId: started?.id ?? null,
            requestId: req.id != null ? String(req.id) : null,
            ip: req.ip ?? null,
            detail: { via: 'console', status: res.statusCode },
          })
          .catch((err) => ctx.logger.warn({ err: loggableError(err) }, 'audit of a console import failed'));
      });
      importBundle(req, res).catch(next);
    },
  );
  router.post(/.*/, form, csrfGuard);

  // ---- overview
  router.get('/', async (req, res) => {
    const [clients, users, keys] = await Promise.all([ops.listClients(), ops.listUsers(), ops.listKeys()]);
    const sites = (await Promise.all(clients.map((c) => ops.listSites(c.client_id)))).flat();
    render(req, res, 'overview', {
      title: 'Administration',
      clients,
      siteCount: sites.length,
      userCount: users.length,
      activeKeys: keys.filter((k) => k.state === 'active').map(keyJson),
    });
  });

  clientScreens(router, ops);
  userScreens(router, ops);

  // ---- keys
  router.get('/keys', async (req, res) => {
    render(req, res, 'keys', {
      title: 'Signing keys',
      keys: (await ops.listKeys()).map(keyJson),
      secretsKey: ops.secretsKeyStatus(),
    });
  });
  router.post('/keys/rotate', async (req, res) => {
    const keys = await ops.rotateKeys(actorOf(req, res));
    const active = keys
      .filter((k) => k.state === 'active')
      .map((k) => `${k.alg} ${k.kid}`)
      .join(', ');
    await redirectWith(req, res, '/admin/keys', `Keys rotated. Now signing with ${active}.`);
  });

  // ---- import
  router.get('/import', (req, res) => {
    render(req, res, 'import', { title: 'Import patients', limit: ctx.config.importBodyLimit });
  });

  // ---- audit
  router.get('/audit', async (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const values = {
      user: q.user ?? '',
      patient: q.patient ?? '',
      client: q.client ?? '',
      action: q.action ?? '',
      from: q.from ?? '',
      to: q.to ?? '',
    };
    let filter: AuditFilter;
    try {
      filter = parseAuditFilter(req.query);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      render(
        req,
        res,
        'audit',
        {
          title: 'Audit trail',
          values,
          page: { events: [] },
          errors: fieldErrors(err.issues),
          nextUrl: null,
        },
        400,
      );
      return;
    }
    const page = await ops.searchAudit(filter);
    const nextUrl = page.next_before
      ? `/admin/audit?${new URLSearchParams({ ...Object.fromEntries(Object.entries(values).filter(([, v]) => v)), before: page.next_before }).toString()}`
      : null;
    render(req, res, 'audit', { title: 'Audit trail', values, page, nextUrl });
  });

  return router;
}
