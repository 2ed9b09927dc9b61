/*
 * The admin API handlers (CONTRACT §3.3): JSON in, JSON out, behind the admin token (./index.ts).
 * - a state-changing request must be JSON (415 otherwise) with an object body (400 otherwise)
 * - a secret appears in exactly one response: the one that drew it (create, reset, auth-method switch)
 * - responses carry Cache-Control: no-store (they may hold a secret once)
 */
import type { Request, RequestHandler } from 'express';
import { parseAuditFilter } from '../audit/audit-query.ts';
import { HttpError } from '../http/errors.ts';
import type { Actor, AdminOperations } from './operations.ts';
import { keyJson, siteJson, userJson } from './shapes.ts';

/** Who acts through the admin API: whoever holds the admin token (rooms with their own admin paths use it too). */
export const apiActor = (req: Request): Actor => ({
  via: 'api',
  userId: null,
  requestId: req.id != null ? String(req.id) : null,
  ip: req.ip ?? null,
});

const param = (req: Request, name: string): string => String(req.params[name] ?? '');

const hasBody = (req: Request): boolean =>
  Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;

/** State-changing requests carry a JSON object (express.json ran before this). */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  if (!hasBody(req)) {
    next(new HttpError(400, 'invalid_request', 'the request body is empty: send a JSON object'));
    return;
  }
  if (!req.is(['application/json', 'application/*+json'])) {
    next(new HttpError(415, 'unsupported_media_type', 'send the body as application/json'));
    return;
  }
  if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) {
    next(new HttpError(400, 'invalid_request', 'the body must be a JSON object'));
    return;
  }
  next();
};

/** For POSTs that take no body: refuse one that is there but not JSON rather than ignore it silently. */
export const optionalJsonBody: RequestHandler = (req, _res, next) => {
  if (hasBody(req) && !req.is(['application/json', 'application/*+json'])) {
    next(new HttpError(415, 'unsupported_media_type', 'send the body as application/json, or none'));
    return;
  }
  next();
};

export function apiHandlers(ops: AdminOperations) {
  return {
    listClients: async (_req, res) => {
      res.json({ clients: await ops.listClients() });
    },

    createClient: async (req, res) => {
      const { client, client_secret } = await ops.createClient(apiActor(req), req.body);
      res
        .status(201)
        .location(`/admin/api/clients/${encodeURIComponent(client.client_id)}`)
        .json({ ...client, ...(client_secret ? { client_secret } : {}) });
    },

    getClient: async (req, res) => {
      const id = param(req, 'clientId');
      const client = await ops.getClient(id);
      res.json({ ...client, sites: (await ops.listSites(id)).map(siteJson) });
    },

    updateClient: async (req, res) => {
      const { client, client_secret } = await ops.updateClient(
        apiActor(req),
        param(req, 'clientId'),
        req.body,
      );
      res.json({ ...client, ...(client_secret ? { client_secret } : {}) });
    },

    deleteClient: async (req, res) => {
      await ops.deleteClient(apiActor(req), param(req, 'clientId'));
      res.status(204).end();
    },

    resetSecret: async (req, res) => {
      const id = param(req, 'clientId');
      const client_secret = await ops.resetClientSecret(apiActor(req), id);
      res.json({ client_id: id, client_secret });
    },

    listSites: async (req, res) => {
      res.json({ sites: (await ops.listSites(param(req, 'clientId'))).map(siteJson) });
    },

    addSite: async (req, res) => {
      const id = param(req, 'clientId');
      const site = await ops.addSite(apiActor(req), id, req.body);
      res
        .status(201)
        .location(`/admin/api/clients/${encodeURIComponent(id)}/sites/${encodeURIComponent(site.siteNum)}`)
        .json(siteJson(site));
    },

    getSite: async (req, res) => {
      res.json(siteJson(await ops.getSite(param(req, 'clientId'), param(req, 'siteNum'))));
    },

    updateSite: async (req, res) => {
      const site = await ops.updateSite(
        apiActor(req),
        param(req, 'clientId'),
        param(req, 'siteNum'),
        req.body,
      );
      res.json(siteJson(site));
    },

    deleteSite: async (req, res) => {
      await ops.deleteSite(apiActor(req), param(req, 'clientId'), param(req, 'siteNum'));
      res.status(204).end();
    },

    allowlist: async (req, res) => {
      res.json(await ops.allowlist(param(req, 'clientId')));
    },

    listUsers: async (_req, res) => {
      res.json({ users: (await ops.listUsers()).map(userJson) });
    },

    createUser: async (req, res) => {
      const user = await ops.createUser(apiActor(req), req.body);
      res
        .status(201)
        .location(`/admin/api/users/${encodeURIComponent(user.id)}`)
        .json(userJson(user));
    },

    getUser: async (req, res) => {
      res.json(userJson(await ops.getUser(param(req, 'userId'))));
    },

    updateUser: async (req, res) => {
      res.json(userJson(await ops.updateUser(apiActor(req), param(req, 'userId'), req.body)));
    },

    deactivateUser: async (req, res) => {
      res.json(userJson(await ops.updateUser(apiActor(req), param(req, 'userId'), { active: false })));
    },

    unlockUser: async (req, res) => {
      res.json(userJson(await ops.unlockUser(apiActor(req), param(req, 'userId'))));
    },

    resetPassword: async (req, res) => {
      await ops.resetPassword(apiActor(req), param(req, 'userId'), req.body);
      res.status(204).end();
    },

    revokeGrants: async (req, res) => {
      res.json(await ops.endUserAccess(apiActor(req), param(req, 'userId')));
    },

    listKeys: async (_req, res) => {
      // secretsKey: the SECRETS_KEY rotation's progress (src/keys/secrets-rotation.ts).
      res.json({ keys: (await ops.listKeys()).map(keyJson), secretsKey: ops.secretsKeyStatus() });
    },

    rotateKeys: async (req, res) => {
      res.json({ keys: (await ops.rotateKeys(apiActor(req))).map(keyJson) });
    },

    audit: async (req, res) => {
      res.json(await ops.searchAudit(parseAuditFilter(req.query)));
    },
  } satisfies Record<string, RequestHandler>;
}
