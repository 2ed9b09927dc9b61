/*
 * The admin console's client screens: Ocean's registrations, their sites (chart buttons and SEK)
 * and the allowlist packet. A client secret is shown once, in the answer to the POST that drew it;
 * a SEK is never shown after it is typed.
 */
import type { Request, Response, Router } from 'express';
import { AUTH_METHODS, type ClientRecord, ID_TOKEN_ALGS } from '../clients/clients.ts';
import { allowlistText } from './allowlist.ts';
import {
  actionsToText,
  clientInputFromForm,
  siteInputFromForm,
  siteUpdateFromForm,
} from './console-forms.ts';
import { actorOf, enc, orInvalid, param, redirectWith, render } from './console-render.ts';
import type { AdminOperations } from './operations.ts';

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

/** GET and POST under /admin/clients. */
export function clientScreens(router: Router, ops: AdminOperations): void {
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
}
