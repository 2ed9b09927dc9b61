/*
 * "Connected apps": the signed-in EHR user's standing grants — the ones that outlive the sign-in
 * (offline_access) — each with a button that ends it: offline access outside a launch comes only
 * after a consent the user can see and revoke (docs/CONTRACT.md §3.4 point 4).
 *   GET  /account/apps                       the user's live grants holding offline_access
 *   POST /account/apps/:grantId/revoke       end one (CSRF), everywhere at once (./grant-revocation.ts)
 * - only the user's own grants are listed or ended: another user's grant id ends nothing
 * - what each app may do is said in the consent page's words (smart/scopes.ts describeScope)
 */
import express, { type Request, type Response, Router } from 'express';
import type { AppContext } from '../context.ts';
import { describeScope, splitScope } from '../smart/scopes.ts';
import { loadCurrentUser, noStore, requireUser } from '../web/current-user.ts';
import { csrfGuard } from '../web/session.ts';
import { revokeGrants } from './grant-revocation.ts';

export const CONNECTED_APPS_PATH = '/account/apps';

interface GrantRow {
  id: string;
  client_name: string | null;
  client_id: string;
  scope: string | null;
  resource_scopes: Record<string, string> | null;
  iat: string | number | null;
  expires_at: Date | string | null;
}

export interface ConnectedApp {
  grantId: string;
  clientName: string;
  scopes: { scope: string; text: string }[];
  grantedAt: Date | null;
  expiresAt: Date | null;
}

/** The user's live grants that hold offline_access, newest first. */
export async function listConnectedApps(ctx: AppContext, userId: string): Promise<ConnectedApp[]> {
  const { rows } = await ctx.db.query<GrantRow>(
    `SELECT g.id, c.name AS client_name, g.payload->>'clientId' AS client_id,
            g.payload->'openid'->>'scope' AS scope, g.payload->'resources' AS resource_scopes,
            g.payload->>'iat' AS iat, g.expires_at
       FROM oidc_models g
       LEFT JOIN clients c ON c.client_id = g.payload->>'clientId'
      WHERE g.model = 'Grant' AND g.payload->>'accountId' = $1
        AND (g.expires_at IS NULL OR g.expires_at > now())
      ORDER BY g.expires_at DESC NULLS LAST`,
    [userId],
  );
  const apps: ConnectedApp[] = [];
  for (const r of rows) {
    const scopes = new Set(splitScope(r.scope));
    for (const s of Object.values(r.resource_scopes ?? {})) for (const x of splitScope(s)) scopes.add(x);
    if (!scopes.has('offline_access')) continue;
    apps.push({
      grantId: r.id,
      clientName: r.client_name ?? r.client_id,
      scopes: [...scopes].map((scope) => ({ scope, text: describeScope(scope) })),
      grantedAt: r.iat == null ? null : new Date(Number(r.iat) * 1000),
      expiresAt: r.expires_at == null ? null : new Date(r.expires_at),
    });
  }
  return apps;
}

export function connectedAppsRoutes(ctx: AppContext): Router {
  const currentUser = loadCurrentUser(ctx);
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit, parameterLimit: 5 });
  const router = Router();

  router.get(CONNECTED_APPS_PATH, noStore, currentUser, requireUser, async (req: Request, res: Response) => {
    const apps = await listConnectedApps(ctx, res.locals.currentUser!.id);
    res.render('oidc/connected-apps', { title: 'Connected apps', apps, revoked: req.query.revoked === '1' });
  });

  router.post(
    `${CONNECTED_APPS_PATH}/:grantId/revoke`,
    noStore,
    form,
    csrfGuard,
    currentUser,
    requireUser,
    async (req: Request, res: Response) => {
      await revokeGrants(
        ctx.db,
        { grantIds: [String(req.params.grantId ?? '').slice(0, 200)], userId: res.locals.currentUser!.id },
        { reason: 'revoked_by_user', requestId: req.id != null ? String(req.id) : null, ip: req.ip ?? null },
      );
      res.redirect(303, `${CONNECTED_APPS_PATH}?revoked=1`);
    },
  );
  return router;
}
