/*
 * The admin console: HTML screens under /admin for signed-in EHR users with the admin role.
 * - every form posts with the session's CSRF token (`_csrf`, or X-CSRF-Token for the import upload)
 * - every change goes through AdminOperations, the same code (validation, audit) as the admin API
 * - a bad form is shown again with each field's message and the values typed (never a secret)
 * - a client secret is shown once, in the answer to the POST that drew it: never stored in the
 *   session or put in a redirect; a SEK is never shown after it is typed
 * - pages are no-store; after a change, Post/Redirect/Get with a one-line notice in the session
 */
import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
  Router,
} from 'express';
import { type AuditFilter, parseAuditFilter } from '../audit/audit-query.ts';
import type { AppContext } from '../context.ts';
import { importRoute } from '../fhir/import-route.ts';
import { HttpError, loggableError, ValidationError } from '../http/errors.ts';
import { AUTH_METHODS, type ClientRecord, ID_TOKEN_ALGS } from '../oidc/clients-store.ts';
import { loadCurrentUser, noStore, requireUser } from '../web/current-user.ts';
import { csrfGuard } from '../web/session.ts';
import { allowlistText } from './allowlist.ts';
import {
  actionsToText,
  clientInputFromForm,
  fieldErrors,
  rolesFromForm,
  siteInputFromForm,
  siteUpdateFromForm,
  userInputFromForm,
} from './console-forms.ts';
import { type Actor, type AdminOperations, keyJson } from './operations.ts';

declare module 'express-session' {
  interface SessionData {
    /** One-line notice shown on the next admin page (never a secret). */
    adminNotice?: string;
  }
}

const actorOf = (req: Request, res: Response): Actor => ({
  via: 'console',
  userId: res.locals.currentUser?.id ?? null,
  requestId: req.id != null ? String(req.id) : null,
  ip: req.ip ?? null,
});

/** Admins only: a signed-in user without the role gets a 403 page. */
const requireAdminRole: RequestHandler = (_req, res, next) => {
  if (!res.locals.currentUser?.roles.includes('admin')) {
    next(
      new HttpError(
        403,
        'forbidden',
        'Administration needs the admin role. Ask an administrator to grant it.',
      ),
    );
    return;
  }
  next();
};

const param = (req: Request, name: string): string => String(req.params[name] ?? '');
const enc = encodeURIComponent;

function takeNotice(req: Request): string | undefined {
  const notice = req.session?.adminNotice;
  if (notice) delete req.session.adminNotice;
  return notice;
}

/**
 * Post/Redirect/Get with a notice. The session is saved BEFORE the redirect is sent: express-session
 * would otherwise save it while the 303's headers are already out, and a browser following them at
 * once could load the page without the notice.
 */
async function redirectWith(req: Request, res: Response, to: string, notice: string): Promise<void> {
  req.session.adminNotice = notice;
  await new Promise<void>((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
  res.redirect(303, to);
}

function render(
  req: Request,
  res: Response,
  view: string,
  locals: Record<string, unknown>,
  status = 200,
): void {
  res.status(status).render(`admin/${view}`, { notice: takeNotice(req), errors: {}, ...locals });
}

/** Runs a change; a ValidationError renders the form again (400) instead of an error page. */
async function orInvalid(
  fn: () => Promise<void>,
  onInvalid: (errors: Record<string, string>) => Promise<void>,
) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ValidationError) {
      await onInvalid(fieldErrors(err.issues));
      return;
    }
    throw err;
  }
}

/** Values to put back in a client form (what was typed, or what is stored). */
function clientFormValues(c: Partial<ClientRecord> | Record<string, unknown>): Record<string, unknown> {
  const v = c as Record<string, unknown>;
  return {
    client_id: v.client_id ?? '',
    name: v.name ?? '',
    redirect_uris: Array.isArray(v.redirect_uris)
      ? (v.redirect_uris as string[]).join('\n')
      : (v.redirect_uris ?? ''),
    launch_url: v.launch_url ?? '',
    token_endpoint_auth_method: v.token_endpoint_auth_method ?? 'none',
    id_token_signed_response_alg: v.id_token_signed_response_alg ?? 'RS256',
    require_pkce: v.require_pkce ?? true,
    jwks_uri: v.jwks_uri ?? '',
    scope: v.scope ?? '',
  };
}

const clientChoices = { authMethods: AUTH_METHODS, algs: ID_TOKEN_ALGS };

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

  // ---- clients
  router.get('/clients', async (req, res) => {
    const clients = await ops.listClients();
    const sites = await Promise.all(clients.map((c) => ops.listSites(c.client_id)));
    render(req, res, 'clients', {
      title: 'Clients',
      clients: clients.map((c, i) => ({ ...c, sites: sites[i]! })),
    });
  });
  router.get('/clients/new', (req, res) => {
    render(req, res, 'client-new', {
      title: 'Register a client',
      values: clientFormValues({
        name: 'Ocean',
        redirect_uris: ['https://ocean.cognisantmd.com/sso/smart/callback'],
        launch_url: 'https://ocean.cognisantmd.com/sso/smart/auth',
        token_endpoint_auth_method: 'none',
        id_token_signed_response_alg: 'RS256',
        require_pkce: true,
      }),
      ...clientChoices,
    });
  });
  router.post('/clients', async (req, res) => {
    const input = clientInputFromForm(req.body, 'create');
    await orInvalid(
      async () => {
        const { client, client_secret } = await ops.createClient(actorOf(req, res), input);
        render(req, res, 'client-secret', {
          title: 'Client registered',
          client,
          secret: client_secret,
          what: 'registered',
        });
      },
      async (errors) =>
        render(
          req,
          res,
          'client-new',
          { title: 'Register a client', values: clientFormValues(input), errors, ...clientChoices },
          400,
        ),
    );
  });

  const clientPage = async (
    req: Request,
    res: Response,
    extra: Record<string, unknown> = {},
    status = 200,
  ) => {
    const id = param(req, 'clientId');
    const client = await ops.getClient(id);
    const sites = await ops.listSites(id);
    render(
      req,
      res,
      'client',
      {
        title: client.name,
        client,
        sites: sites.map((s) => ({ ...s, actionsText: actionsToText(s.actions) })),
        values: clientFormValues(client),
        siteValues: { site_num: '', actions: '' },
        siteErrors: {},
        siteEdit: {},
        ...clientChoices,
        ...extra,
      },
      status,
    );
  };

  router.get('/clients/:clientId', (req, res) => clientPage(req, res));
  router.post('/clients/:clientId', async (req, res) => {
    const id = param(req, 'clientId');
    const input = clientInputFromForm(req.body, 'update');
    await orInvalid(
      async () => {
        const { client, client_secret } = await ops.updateClient(actorOf(req, res), id, input);
        if (client_secret) {
          render(req, res, 'client-secret', {
            title: 'New client secret',
            client,
            secret: client_secret,
            what: 'updated',
          });
          return;
        }
        await redirectWith(req, res, `/admin/clients/${enc(id)}`, 'Client saved.');
      },
      (errors) => clientPage(req, res, { values: clientFormValues(input), errors }, 400),
    );
  });
  router.post('/clients/:clientId/delete', async (req, res) => {
    const id = param(req, 'clientId');
    const client = await ops.getClient(id);
    await ops.deleteClient(actorOf(req, res), id);
    await redirectWith(req, res, '/admin/clients', `Client "${client.name}" and its sites were deleted.`);
  });
  router.post('/clients/:clientId/secret', async (req, res) => {
    const id = param(req, 'clientId');
    await orInvalid(
      async () => {
        const secret = await ops.resetClientSecret(actorOf(req, res), id);
        const client = await ops.getClient(id);
        render(req, res, 'client-secret', { title: 'New client secret', client, secret, what: 'reset' });
      },
      async (errors) =>
        await redirectWith(req, res, `/admin/clients/${enc(id)}`, Object.values(errors).join(' ')),
    );
  });

  // ---- sites
  router.post('/clients/:clientId/sites', async (req, res) => {
    const id = param(req, 'clientId');
    const input = siteInputFromForm(req.body);
    await orInvalid(
      async () => {
        const site = await ops.addSite(actorOf(req, res), id, input);
        await redirectWith(
          req,
          res,
          `/admin/clients/${enc(id)}#site-${site.siteNum}`,
          `Site ${site.siteNum} added. Its SEK is stored encrypted and will not be shown again.`,
        );
      },
      (siteErrors) =>
        clientPage(
          req,
          res,
          { siteValues: { site_num: input.site_num, actions: String(req.body.actions ?? '') }, siteErrors },
          400,
        ),
    );
  });
  router.post('/clients/:clientId/sites/:siteNum', async (req, res) => {
    const id = param(req, 'clientId');
    const siteNum = param(req, 'siteNum');
    await orInvalid(
      async () => {
        await ops.updateSite(actorOf(req, res), id, siteNum, siteUpdateFromForm(req.body));
        await redirectWith(req, res, `/admin/clients/${enc(id)}#site-${siteNum}`, `Site ${siteNum} saved.`);
      },
      (errors) =>
        clientPage(req, res, { siteEdit: { siteNum, errors, actions: String(req.body.actions ?? '') } }, 400),
    );
  });
  router.post('/clients/:clientId/sites/:siteNum/delete', async (req, res) => {
    const id = param(req, 'clientId');
    const siteNum = param(req, 'siteNum');
    await ops.deleteSite(actorOf(req, res), id, siteNum);
    await redirectWith(req, res, `/admin/clients/${enc(id)}`, `Site ${siteNum} deleted.`);
  });

  // ---- allowlist
  router.get('/clients/:clientId/allowlist', async (req, res) => {
    const packet = await ops.allowlist(param(req, 'clientId'));
    render(req, res, 'allowlist', {
      title: `Allowlist values for ${packet.client_name}`,
      packet,
      text: allowlistText(packet),
      json: (v: unknown) => JSON.stringify(v, null, 2),
    });
  });
  router.get('/clients/:clientId/allowlist.txt', async (req, res) => {
    const packet = await ops.allowlist(param(req, 'clientId'));
    res.type('text/plain; charset=utf-8').attachment('ocean-allowlist.txt').send(allowlistText(packet));
  });

  // ---- users
  const usersPage = async (
    req: Request,
    res: Response,
    extra: Record<string, unknown> = {},
    status = 200,
  ) => {
    render(
      req,
      res,
      'users',
      { title: 'Users', users: await ops.listUsers(), values: { roles: ['clinician'] }, ...extra },
      status,
    );
  };
  router.get('/users', (req, res) => usersPage(req, res));
  router.post('/users', async (req, res) => {
    const input = userInputFromForm(req.body);
    await orInvalid(
      async () => {
        const user = await ops.createUser(actorOf(req, res), input);
        await redirectWith(
          req,
          res,
          '/admin/users',
          `User ${user.username} created, linked to Practitioner/${user.practitionerId}.`,
        );
      },
      (errors) => {
        const { password: _password, ...kept } = input;
        const identifiers = (input.identifiers as { system: string; value: string }[] | undefined)?.[0];
        return usersPage(
          req,
          res,
          {
            values: {
              ...kept,
              identifier_system: identifiers?.system ?? '',
              identifier_value: identifiers?.value ?? '',
            },
            errors,
          },
          400,
        );
      },
    );
  });
  router.post('/users/:userId/password', async (req, res) => {
    const id = param(req, 'userId');
    await orInvalid(
      async () => {
        await ops.resetPassword(actorOf(req, res), id, { password: String(req.body.password ?? '') });
        const user = await ops.getUser(id);
        await redirectWith(
          req,
          res,
          '/admin/users',
          `Password of ${user.username} reset; their sessions were ended.`,
        );
      },
      async (errors) =>
        await redirectWith(
          req,
          res,
          '/admin/users',
          `Password not changed: ${Object.values(errors).join(' ')}`,
        ),
    );
  });
  router.post('/users/:userId/unlock', async (req, res) => {
    const user = await ops.unlockUser(actorOf(req, res), param(req, 'userId'));
    await redirectWith(req, res, '/admin/users', `${user.username} may sign in again from anywhere.`);
  });
  router.post('/users/:userId/practitioner', async (req, res) => {
    const id = param(req, 'userId');
    await orInvalid(
      async () => {
        const user = await ops.updateUser(actorOf(req, res), id, {
          practitioner: String(req.body.practitioner ?? '').trim(),
        });
        await redirectWith(
          req,
          res,
          '/admin/users',
          `${user.username} is now linked to Practitioner/${user.practitionerId}.`,
        );
      },
      async (errors) =>
        await redirectWith(
          req,
          res,
          '/admin/users',
          `Practitioner not changed: ${Object.values(errors).join(' ')}`,
        ),
    );
  });
  router.post('/users/:userId/roles', async (req, res) => {
    const id = param(req, 'userId');
    if (id === res.locals.currentUser?.id && !rolesFromForm(req.body).includes('admin')) {
      await redirectWith(
        req,
        res,
        '/admin/users',
        'You cannot remove your own admin role; ask another administrator.',
      );
      return;
    }
    const user = await ops.updateUser(actorOf(req, res), id, { roles: rolesFromForm(req.body) });
    await redirectWith(req, res, '/admin/users', `Roles of ${user.username} saved.`);
  });
  router.post('/users/:userId/active', async (req, res) => {
    const id = param(req, 'userId');
    const active = req.body.active === 'true';
    if (id === res.locals.currentUser?.id && !active) {
      await redirectWith(req, res, '/admin/users', 'You cannot deactivate yourself.');
      return;
    }
    const user = await ops.updateUser(actorOf(req, res), id, { active });
    await redirectWith(
      req,
      res,
      '/admin/users',
      `${user.username} ${active ? 'reactivated' : 'deactivated; their sessions were ended'}.`,
    );
  });

  // ---- keys
  router.get('/keys', async (req, res) => {
    render(req, res, 'keys', { title: 'Signing keys', keys: (await ops.listKeys()).map(keyJson) });
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
