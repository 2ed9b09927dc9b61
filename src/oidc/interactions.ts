/*
 * The interaction that turns an EHR sign-in into an OIDC login and a per-launch grant.
 * - the EHR session (req.session.userId) is the login: SSO, no second sign-in; with no session the
 *   browser goes to /login?returnTo=<this interaction> and comes back here
 * - a launch an EHR system asked for (POST /ehr-api/launches) is the login for its one
 *   authorization when the browser has no EHR session: no sign-in page, no EHR session made. A
 *   browser signed in as someone else gets a page refusing it: never a mixed identity
 * - a launch is consumed here, once, for this client and this signed-in user, and bound to the new
 *   grant and the EHR session; anything else ends the flow with an OAuth error redirect (state kept)
 * - consent is implicit for pre-authorized clients (but for offline_access outside a launch:
 *   ./launch-grant.ts consentNeeded), otherwise a page lists the scopes in plain words
 * - each authorization gets a brand-new grant holding exactly the scopes granted (others rejected)
 */
import express, { type Request, type RequestHandler, type Response, Router } from 'express';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { AppContext } from '../context.ts';
import { HttpError } from '../http/errors.ts';
import { apiLaunchUser } from '../launch/launch-contexts.ts';
import { describeScope, grantScopes, splitScope } from '../smart/scopes.ts';
import { csrfProtection, csrfToken } from '../web/session.ts';
import { consentNeeded, makeLaunchGrant, recordSignInByLaunch } from './launch-grant.ts';

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

/** An interaction's remaining lifetime, as oidc-provider saves it (at least a second). */
const secondsLeft = (details: Details) => Math.max(1, (details.exp ?? 0) - Math.floor(Date.now() / 1000));

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

  /**
   * What oidc-provider's interactionFinished does (the result saved on the interaction, 303 to its
   * resumption), on the interaction this request has loaded — interactionFinished would load it and
   * its session again: two more statements per hop, for rows read a moment ago in this request.
   */
  const finish = async (res: Response, details: Details, result: InteractionResults) => {
    details.result = result;
    await details.save(secondsLeft(details));
    res.status(303).location(details.returnTo).set('Content-Length', '0').end();
  };

  /**
   * The EHR user and the client of an interaction; undefined once the answer has been sent
   * instead: the sign-in page (no EHR session), the client's error (no longer registered), or
   * the refusal of an EHR system's launch for another user than the one signed in here.
   * `byLaunch`: the user is signed in by an EHR system's launch, for this authorization only.
   */
  const signedInAndRegistered = async (
    req: Request,
    res: Response,
    details: Details,
  ): Promise<{ userId: string; client: ClientInfo; byLaunch?: string } | undefined> => {
    const client = (await getProvider().Client.find(String(details.params.client_id))) as
      | ClientInfo
      | undefined;
    if (!client) {
      await finish(res, details, {
        error: 'invalid_client',
        error_description: 'the client is no longer registered',
      });
      return undefined;
    }
    const sessionUser = req.session?.userId;
    const launched = await apiLaunchUser(ctx.db, details.params.launch, client.clientId);
    if (launched) {
      if (sessionUser && sessionUser !== launched.userId) {
        await recordSignInByLaunch(ctx, {
          userId: sessionUser,
          clientId: client.clientId,
          requestedBy: launched.requestedBy,
          requestId: (req as { id?: string }).id ?? null,
          ip: req.ip ?? null,
          refused: 'other_user_signed_in',
        });
        throw new HttpError(
          403,
          'launch_for_another_user',
          'This Ocean launch was made for another person than the one signed in to this browser. Sign out here, then open Ocean again from your EHR.',
        );
      }
      return { userId: launched.userId, client, byLaunch: launched.requestedBy };
    }
    if (!sessionUser) {
      res.redirect(303, `/login?returnTo=${encodeURIComponent(`/interaction/${details.uid}`)}`);
      return undefined;
    }
    return { userId: sessionUser, client };
  };

  const show: RequestHandler = async (req, res, next) => {
    try {
      const details = await load(req, res);
      const parties = await signedInAndRegistered(req, res, details);
      if (!parties) return;
      const { userId, client, byLaunch } = parties;
      if (!consentNeeded(client, details.params)) {
        await complete(req, res, details, client, userId, byLaunch);
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
      const parties = await signedInAndRegistered(req, res, details);
      if (!parties) return;
      const { userId, client, byLaunch } = parties;
      if ((req.body as Record<string, unknown>)?.decision !== 'allow') {
        await finish(res, details, {
          error: 'access_denied',
          error_description: 'the user did not allow access',
        });
        return;
      }
      await complete(req, res, details, client, userId, byLaunch);
    } catch (err) {
      next(err);
    }
  };

  async function complete(
    req: Request,
    res: Response,
    details: Details,
    client: ClientInfo,
    userId: string,
    byLaunch: string | undefined,
  ) {
    const provider = getProvider();

    // Another user signed into this browser since the last launch: forget the old provider session,
    // or oidc-provider would ask to log it out first.
    if (details.session?.accountId && details.session.accountId !== userId) {
      if (details.session.cookie) await provider.Session.adapter.destroy(details.session.cookie);
      details.session = undefined; // saved with the result, by finish
    }

    // A grant already made for this very authorization (single sign-on, then a prompt) is kept.
    const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    let grantId: string;
    if (existing && existing.accountId === userId && existing.clientId === client.clientId) {
      grantId = details.grantId!;
    } else {
      const result = await makeLaunchGrant(ctx, provider, {
        userId,
        clientId: client.clientId,
        allowedScope: client.allowed_scope,
        scope: details.params.scope as string | undefined,
        launchId: details.params.launch,
        // Signed in by an EHR system's launch: no EHR session of ours to bind online_access to.
        ehrSessionId: byLaunch ? null : req.sessionID,
        requestId: (req as { id?: string }).id ?? null,
        ip: req.ip ?? null,
      });
      if ('error' in result) {
        await finish(res, details, { error: result.error, error_description: result.error_description });
        return;
      }
      grantId = result.grant.jti;
    }

    if (byLaunch) {
      await recordSignInByLaunch(ctx, {
        userId,
        clientId: client.clientId,
        requestedBy: byLaunch,
        requestId: (req as { id?: string }).id ?? null,
        ip: req.ip ?? null,
      });
    }
    const authTime =
      !byLaunch && typeof req.session?.authTime === 'number'
        ? req.session.authTime
        : Math.floor(Date.now() / 1000);
    await finish(res, details, { login: { accountId: userId, ts: authTime }, consent: { grantId } });
  }

  router.get('/interaction/:uid', show);
  router.post('/interaction/:uid/confirm', form, csrfProtection, confirm);
  return router;
}
