/*
 * The grant of one launch: made once per authorization, never reused (one grant per launch).
 * - consumes the launch context for this client and this EHR user, binding the grant and the EHR
 *   session to it, before anything is granted; no context, no grant
 * - grants the SMART scopes that apply (./../smart/scopes.ts) and rejects the rest, so oidc-provider
 *   neither refuses the request nor asks again for what was dropped
 * - ssoGrant: when the browser already has a provider session for the signed-in EHR user and the
 *   client is pre-authorized, the grant is made during the authorization request itself (no
 *   interaction round trip); anything unusual (a prompt the client sent, another user, consent
 *   needed) goes through the interaction instead. With no EHR session, an EHR system's launch
 *   names the user instead (its browser's second launch has a provider session for that user).
 *   The prompt=consent that offline_access brings (./authorize-request.ts adds it; the client sent
 *   none) asks for nothing more than consentNeeded does: a grant made here settles it
 *   (settledBySso, read by the consent prompt's check in ./provider.ts)
 * - consentNeeded: a pre-authorized client skips the consent page, except for offline_access
 *   outside a launch — a standing grant the user did not start from a chart is shown and agreed to
 */
import type { Request } from 'express';
import type Provider from 'oidc-provider';
import { errors, type Grant, type KoaContextWithOIDC } from 'oidc-provider';
import type { AppContext } from '../context.ts';
import {
  apiLaunchUser,
  consumeLaunchContext,
  type LaunchContext,
  type UsableLaunch,
} from '../launch/launch-contexts.ts';
import { grantScopes, isOidcScope, splitScope } from '../smart/scopes.ts';
import { loadAccount } from './accounts.ts';
import { promptAddedHere } from './authorize-request.ts';

export interface LaunchGrantInput {
  userId: string;
  clientId: string;
  allowedScope?: string | undefined;
  scope: string | undefined;
  launchId: unknown;
  /** Null when an EHR system's launch signs its user in without an EHR session of ours. */
  ehrSessionId: string | null;
  requestId: string | null;
  ip: string | null;
  /** The caller has just loaded this user as an active account. */
  accountLoaded?: boolean;
}

export type LaunchGrantResult =
  | { grant: Grant; context?: LaunchContext }
  | { error: string; error_description: string };

export async function makeLaunchGrant(
  ctx: AppContext,
  provider: Provider,
  input: LaunchGrantInput,
): Promise<LaunchGrantResult> {
  if (!input.accountLoaded && !(await loadAccount(ctx, input.userId))) {
    return { error: 'access_denied', error_description: 'the EHR user is not active' };
  }
  const grant = new provider.Grant({ accountId: input.userId, clientId: input.clientId });
  const grantId = (grant as unknown as { generateTokenId(): string }).generateTokenId();
  grant.jti = grantId;

  let context: LaunchContext | undefined;
  if (input.launchId !== undefined) {
    context =
      typeof input.launchId === 'string'
        ? await consumeLaunchContext(ctx, {
            launchId: input.launchId,
            clientId: input.clientId,
            userId: input.userId,
            grantId,
            ehrSessionId: input.ehrSessionId,
            // launch.consumed is audited by the consuming statement itself
            requestId: input.requestId,
            ip: input.ip,
          })
        : undefined;
    if (!context) {
      return {
        error: 'invalid_request',
        error_description: 'launch is unknown, expired, already used, or not for the signed-in user',
      };
    }
  }

  const { granted, dropped } = grantScopes({
    requested: splitScope(input.scope),
    hasLaunchContext: !!context,
    hasPatient: !!context?.patientId,
    ...(input.allowedScope ? { clientAllowed: new Set(splitScope(input.allowedScope)) } : {}),
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

  return { grant, ...(context ? { context } : {}) };
}

/**
 * Whether the user must see and agree to the scopes. A pre-authorized client gets without a page
 * what it asks inside a launch from the chart; outside a launch, offline_access (a refresh token
 * that outlives the sign-in) still needs the user's explicit consent.
 */
export function consentNeeded(
  client: { pre_authorized?: boolean },
  params: { launch?: unknown; scope?: unknown },
): boolean {
  if (client.pre_authorized === false) return true;
  return (
    params.launch === undefined && splitScope(params.scope as string | undefined).includes('offline_access')
  );
}

/**
 * The launch as the authorization request's `launch` check read it (provider.ts extraParams), so
 * ssoGrant, later in the same request, does not read the row again. Per request, never across.
 */
const launchOfRequest = new WeakMap<KoaContextWithOIDC, UsableLaunch>();
export const rememberLaunch = (kctx: KoaContextWithOIDC, launch: UsableLaunch): void => {
  launchOfRequest.set(kctx, launch);
};

/** The authorization requests whose grant ssoGrant made: consent is settled for them. */
const grantedBySso = new WeakSet<KoaContextWithOIDC>();
export const settledBySso = (kctx: KoaContextWithOIDC): boolean => grantedBySso.has(kctx);

/**
 * Whether the request's parameters ask for an interaction: a prompt the client sent (not the
 * prompt=consent added for offline_access), a max_age or an id_token_hint to check.
 */
function asksForInteraction(kctx: KoaContextWithOIDC): boolean {
  const params = kctx.oidc.params ?? {};
  const sentPrompt =
    params.prompt !== undefined && !(params.prompt === 'consent' && promptAddedHere(kctx.req));
  return sentPrompt || params.max_age !== undefined || params.id_token_hint !== undefined;
}

/** The per-launch grant made without an interaction, when single sign-on needs no page at all. */
export async function ssoGrant(ctx: AppContext, kctx: KoaContextWithOIDC): Promise<Grant | undefined> {
  if (kctx.oidc.route !== 'authorization') return undefined;
  const req = kctx.req as unknown as Request;
  const client = kctx.oidc.client as
    | (typeof kctx.oidc.client & { pre_authorized?: boolean; allowed_scope?: string })
    | undefined;
  const params = kctx.oidc.params ?? {};
  if (!client || !kctx.oidc.session?.accountId || consentNeeded(client, params) || asksForInteraction(kctx))
    return undefined;
  const sessionUser = req.session?.userId;
  // No EHR session: the user an EHR system's launch signs in (none for any other launch).
  const launched = sessionUser
    ? undefined
    : await apiLaunchUser(ctx.db, params.launch, client.clientId, launchOfRequest.get(kctx));
  const userId = sessionUser ?? launched?.userId;
  if (!userId || kctx.oidc.session?.accountId !== userId) return undefined;
  const result = await makeLaunchGrant(ctx, kctx.oidc.provider, {
    userId,
    clientId: client.clientId,
    allowedScope: client.allowed_scope,
    scope: params.scope as string | undefined,
    launchId: params.launch,
    ehrSessionId: launched ? null : req.sessionID,
    requestId: (req as { id?: string }).id ?? null,
    ip: kctx.ip ?? null,
    // oidc-provider loaded the session's account (findAccount: active users only) just before.
    accountLoaded: kctx.oidc.account?.accountId === userId,
  });
  if ('error' in result) {
    if (result.error === 'access_denied') throw new errors.AccessDenied(result.error_description);
    // A launch this user cannot redeem (an EHR system's launch for someone else, an expired one):
    // the interaction explains it, to the person or to the client.
    return undefined;
  }
  if (launched) {
    await recordSignInByLaunch(ctx, {
      userId,
      clientId: client.clientId,
      requestedBy: launched.requestedBy,
      requestId: (req as { id?: string }).id ?? null,
      ip: kctx.ip ?? null,
    });
  }
  grantedBySso.add(kctx);
  return result.grant;
}

/**
 * The audit event of a sign-in by an EHR system's launch (ehr.signin, method ehr-launch): the
 * user it signed in, or — with a `refused` reason — the user signed in here whom it was refused to.
 */
export function recordSignInByLaunch(
  ctx: AppContext,
  e: {
    userId: string;
    clientId: string;
    requestedBy: string;
    requestId: string | null;
    ip: string | null;
    refused?: string;
  },
): Promise<void> {
  return ctx.audit.record({
    action: 'ehr.signin',
    outcome: e.refused ? 'failure' : 'success',
    userId: e.userId,
    clientId: e.clientId,
    requestId: e.requestId,
    ip: e.ip,
    detail: {
      method: 'ehr-launch',
      requested_by: e.requestedBy,
      ...(e.refused ? { reason: e.refused } : {}),
    },
  });
}
