/*
 * The interaction that turns an EHR sign-in into an OIDC login and a per-launch grant.
 * - the EHR session (req.session.userId) is the login: SSO, no second sign-in; with no session the
 *   browser goes to /login?returnTo=<this interaction> and comes back here
 * - a launch is consumed here, once, for this client and this signed-in user, and bound to the new
 *   grant and the EHR session; anything else ends the flow with an OAuth error redirect (state kept)
 * - consent is implicit for pre-authorized clients, otherwise a page lists the scopes in plain words
 * - each authorization gets a brand-new grant holding exactly the scopes granted (others rejected)
 */
import express, { type Request, type RequestHandler, type Response, Router } from 'express';
import type Provider from 'oidc-provider';
import type { AppContext } from '../context.ts';
import { csrfProtection, csrfToken } from '../ehr/session.ts';
import { HttpError } from '../http/errors.ts';
import { consumeLaunchContext, type LaunchContext } from '../launch/launch-contexts.ts';
import { describeScope, grantScopes, isOidcScope, splitScope } from '../smart/scopes.ts';
import { loadAccount } from './accounts.ts';

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

interface ClientInfo {
  clientId: string;
  clientName?: string;
  pre_authorized?: boolean;
  allowed_scope?: string;
}

const expired = () =>
  new HttpError(
    400,
    'interaction_expired',
    'This sign-in request has expired or was already completed. Return to the EHR and launch the application again.',
  );

export function interactionRoutes(ctx: AppContext, getProvider: () => Provider): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit });

  async function load(req: Request, res: Response): Promise<Details> {
    try {
      return await getProvider().interactionDetails(req, res);
    } catch {
      throw expired();
    }
  }

  const finish = (req: Request, res: Response, result: Record<string, unknown>) =>
    getProvider().interactionFinished(req, res, result, { mergeWithLastSubmission: false });

  const show: RequestHandler = async (req, res, next) => {
    try {
      const details = await load(req, res);
      const userId = req.session?.userId;
      if (!userId) {
        res.redirect(303, `/login?returnTo=${encodeURIComponent(`/interaction/${details.uid}`)}`);
        return;
      }
      const client = (await getProvider().Client.find(String(details.params.client_id))) as
        | ClientInfo
        | undefined;
      if (!client) {
        await finish(req, res, {
          error: 'invalid_client',
          error_description: 'the client is no longer registered',
        });
        return;
      }
      if (client.pre_authorized !== false) {
        await complete(req, res, details, client, userId);
        return;
      }
      const { granted } = grantScopes({
        requested: splitScope(details.params.scope as string | undefined),
        hasLaunchContext: typeof details.params.launch === 'string',
        ...(client.allowed_scope ? { clientAllowed: new Set(splitScope(client.allowed_scope)) } : {}),
      });
      res.render('oidc/consent', {
        title: 'Allow access?',
        clientName: client.clientName ?? client.clientId,
        scopes: granted.map((s) => ({ scope: s, text: describeScope(s) })),
        action: `/interaction/${details.uid}/confirm`,
        csrfToken: csrfToken(req),
      });
    } catch (err) {
      next(err);
    }
  };

  const confirm: RequestHandler = async (req, res, next) => {
    try {
      const details = await load(req, res);
      if (details.uid !== req.params.uid) throw expired();
      const userId = req.session?.userId;
      if (!userId) {
        res.redirect(303, `/login?returnTo=${encodeURIComponent(`/interaction/${details.uid}`)}`);
        return;
      }
      const client = (await getProvider().Client.find(String(details.params.client_id))) as
        | ClientInfo
        | undefined;
      if (!client) {
        await finish(req, res, {
          error: 'invalid_client',
          error_description: 'the client is no longer registered',
        });
        return;
      }
      if ((req.body as Record<string, unknown>)?.decision !== 'allow') {
        await finish(req, res, {
          error: 'access_denied',
          error_description: 'the user did not allow access',
        });
        return;
      }
      await complete(req, res, details, client, userId);
    } catch (err) {
      next(err);
    }
  };

  async function complete(req: Request, res: Response, details: Details, client: ClientInfo, userId: string) {
    const provider = getProvider();
    const account = await loadAccount(ctx, userId);
    if (!account) {
      await finish(req, res, { error: 'access_denied', error_description: 'the EHR user is not active' });
      return;
    }

    // Another user signed into this browser since the last launch: forget the old provider session,
    // or oidc-provider would ask to log it out first.
    if (details.session?.accountId && details.session.accountId !== userId) {
      if (details.session.cookie) await provider.Session.adapter.destroy(details.session.cookie);
      details.session = undefined;
      await details.save(Math.max(1, (details.exp ?? 0) - Math.floor(Date.now() / 1000)));
    }

    const grant = new provider.Grant({ accountId: userId, clientId: client.clientId });
    const grantId = (grant as unknown as { generateTokenId(): string }).generateTokenId();
    grant.jti = grantId;

    let context: LaunchContext | undefined;
    const launchId = details.params.launch;
    if (typeof launchId === 'string') {
      context = await consumeLaunchContext(ctx, {
        launchId,
        clientId: client.clientId,
        userId,
        grantId,
        ehrSessionId: req.sessionID,
      });
      if (!context) {
        await finish(req, res, {
          error: 'invalid_request',
          error_description: 'launch is unknown, expired, already used, or not for the signed-in user',
        });
        return;
      }
    }

    const { granted, dropped } = grantScopes({
      requested: splitScope(details.params.scope as string | undefined),
      hasLaunchContext: !!context,
      ...(client.allowed_scope ? { clientAllowed: new Set(splitScope(client.allowed_scope)) } : {}),
    });
    const oidcGranted = granted.filter(isOidcScope);
    const oidcDropped = dropped.filter(isOidcScope);
    if (oidcGranted.length > 0) grant.addOIDCScope(oidcGranted.join(' '));
    if (oidcDropped.length > 0) grant.rejectOIDCScope(oidcDropped.join(' '));
    // Every granted scope, identity ones included, is a scope of the FHIR resource: so the access
    // token's `scope`, the token response's and introspection's are one string.
    if (granted.length > 0) grant.addResourceScope(ctx.config.fhirBaseUrl, granted.join(' '));
    if (dropped.length > 0) grant.rejectResourceScope(ctx.config.fhirBaseUrl, dropped.join(' '));
    await grant.save();

    if (context) {
      await ctx.audit.record({
        action: 'launch.consumed',
        userId,
        clientId: client.clientId,
        patientId: context.patientId,
        entity: `Patient/${context.patientId}`,
        requestId: (req as { id?: string }).id ?? null,
        ip: req.ip ?? null,
        detail: { site: context.siteNum, action: context.action },
      });
    }

    const authTime =
      typeof req.session.authTime === 'number' ? req.session.authTime : Math.floor(Date.now() / 1000);
    await finish(req, res, { login: { accountId: userId, ts: authTime }, consent: { grantId } });
  }

  router.get('/interaction/:uid', show);
  router.post('/interaction/:uid/confirm', form, csrfProtection, confirm);
  return router;
}
