/*
 * Sign-in through the organization's OpenID Connect identity provider (docs/CONTRACT.md §3.6).
 * Routes (people-facing, HTML; the EHR session is mounted by src/http/app.ts):
 *   GET /login/sso             → the provider's authorize endpoint    sign-in.ts
 *   GET /login/sso/callback    the provider's answer → signed in     sign-in.ts
 * Both are rate-limited per client address with RATE_LIMIT_LOGIN (each may cost a request to the
 * provider and a session row). No routes at all when IDP_ISSUER is unset.
 * Gives the EHR sign-in page its choices (src/ehr/sign-in.ts SignInChoices): the provider's
 * button, whether the password form is on, and the provider's end-session URL after sign-out.
 * The relying party (openid-client) is loaded only when a provider is configured: most starts
 * have none, and its modules are start-up time they would not use.
 */
import { Router } from 'express';
import type { AppContext, Capability } from '../context.ts';
import type { SignInChoices } from '../ehr/sign-in.ts';
import { loggableError } from '../http/errors.ts';
import { loadCurrentUser, noStore } from '../web/current-user.ts';
import type { RelyingParty } from './relying-party.ts';

export const SSO_PATH = '/login/sso';
export const CALLBACK_PATH = '/login/sso/callback';

export interface Sso extends Capability {
  choices: SignInChoices;
}

export async function createSso(ctx: AppContext): Promise<Sso> {
  const settings = ctx.config.identityProvider;
  const choices: SignInChoices = { localPasswords: ctx.config.localPasswords };
  if (!settings) return { name: 'sso', choices };
  const [{ RelyingParty }, { identityProviderRoutes, verifyWith }] = await Promise.all([
    import('./relying-party.ts'),
    import('./sign-in.ts'),
  ]);

  const rp: RelyingParty = new RelyingParty(
    settings,
    `${ctx.config.publicUrl}${CALLBACK_PATH}`,
    verifyWith(ctx, () => rp),
  );
  const routes = identityProviderRoutes(ctx, rp);
  const currentUser = loadCurrentUser(ctx);

  const router = Router();
  router.get(SSO_PATH, noStore, currentUser, routes.start);
  router.get(CALLBACK_PATH, noStore, routes.callback);

  choices.identityProvider = {
    label: settings.buttonLabel,
    href: (returnTo) => (returnTo ? `${SSO_PATH}?returnTo=${encodeURIComponent(returnTo)}` : SSO_PATH),
    endSessionUrl: () => rp.endSessionUrl(`${ctx.config.publicUrl}/login?signedOut=provider`),
  };
  return {
    name: 'sso',
    router,
    choices,
    // One budget for both paths: each costs a session row, the callback a request to the provider.
    rateLimits: [SSO_PATH, CALLBACK_PATH].map((path) => ({
      name: 'sso',
      method: 'GET',
      path,
      limit: ctx.config.rateLimits.login,
      format: 'html' as const,
    })),
    start() {
      // Warm discovery so the first person does not wait for it; a failure is retried on use.
      rp.configuration().catch((err: unknown) =>
        ctx.logger.warn(
          { err: loggableError(err instanceof Error && err.cause ? err.cause : err) },
          'identity provider discovery failed; sign-in through it is retried on use',
        ),
      );
    },
  };
}
