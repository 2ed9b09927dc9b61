/*
 * oidc-provider configured as the SMART on FHIR authorization server for the EHR launch into Ocean.
 * - issuer = FHIR base, byte for byte (CONTRACT §3.2); routes live under it, where discovery says
 * - state in PostgreSQL (./adapter.ts); clients from the clients table, secrets compared as keyed hashes
 * - signs with the ACTIVE keys only; the JWKS (next and retired keys too) is served by ./index.ts
 * - every authorization goes through our interaction (no grant is ever reused): one grant per launch
 * - SMART specifics that oidc-provider does not do by itself live in ./token-hooks.ts
 */
import { timingSafeEqual } from 'node:crypto';
import Provider, {
  type Configuration,
  errors,
  type Grant,
  interactionPolicy,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import { CLIENT_SECRET_PURPOSE } from '../clients/clients.ts';
import type { AppContext } from '../context.ts';
import { usableLaunch } from '../launch/launch-contexts.ts';
import {
  CLIENT_ASSERTION_ALGS,
  CLIENT_ASSERTION_MAX_LIFETIME,
  CLIENT_AUTH_METHODS,
  ROUTES,
  SIGNING_ALGS,
} from '../smart/endpoints.ts';
import { OIDC_SCOPES, splitScope } from '../smart/scopes.ts';
import { CLAIMS_BY_SCOPE, loadAccount } from './accounts.ts';
import { type MachineClients, postgresAdapter } from './adapter.ts';
import { rememberLaunch, settledBySso, ssoGrant } from './launch-grant.ts';
import { pinPublicOrigin } from './public-origin.ts';
import { contextForGrant, installTokenHooks } from './token-hooks.ts';

export const INTERACTION_PATH = '/interaction';

/** Seconds of clock skew tolerated on client assertions (and other JWTs oidc-provider checks). */
const CLOCK_TOLERANCE = 15;

/** True when aud names the FHIR base (SMART 2.2: `aud` MUST be the FHIR base; one trailing "/" tolerated). */
export function audMatches(aud: string, fhirBaseUrl: string): boolean {
  return aud === fhirBaseUrl || aud === `${fhirBaseUrl}/`;
}

export function buildProvider(ctx: AppContext, machineClients?: MachineClients): Provider {
  const { config } = ctx;
  const fhirBase = config.fhirBaseUrl;

  const configuration: Configuration = {
    adapter: postgresAdapter(ctx, machineClients),
    clients: [],
    findAccount: (_kctx, sub) => loadAccount(ctx, sub),
    // Only the keys that sign now; relying parties get next and retired keys from our JWKS route.
    jwks: { keys: SIGNING_ALGS.map((alg) => ctx.keys.activePrivateJwk(alg)) } as Configuration['jwks'],
    cookies: {
      keys: [ctx.box.deriveKey('oidc-provider-cookies').toString('base64url')],
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: config.secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: config.secureCookies },
    },
    claims: CLAIMS_BY_SCOPE,
    scopes: [...OIDC_SCOPES],
    // Profile claims belong in the id_token: Ocean reads them there, never at a userinfo endpoint.
    conformIdTokenClaims: false,
    // SMART's `launch` and `aud` are unknown to OIDC: declared here, or they are silently dropped.
    extraParams: {
      async aud(kctx, value) {
        if (value === undefined) throw new errors.InvalidRequest('aud is required: the FHIR base URL');
        if (typeof value !== 'string' || !audMatches(value, fhirBase)) {
          throw new errors.InvalidRequest(`aud must be the FHIR base URL ${fhirBase}`);
        }
        void kctx;
      },
      async launch(kctx, value, client) {
        if (value === undefined) return;
        const launch = await usableLaunch(ctx.db, value, client.clientId);
        if (!launch) {
          throw new errors.InvalidRequest(
            'launch is unknown, expired, already used or issued for another client',
          );
        }
        rememberLaunch(kctx, launch);
      },
    },
    // allowed_scope: what client_credentials may grant; refuse_other_scopes: asking for more is
    // invalid_scope rather than dropped; access_token_ttl: a machine client's own (shorter) token
    // lifetime. Set by the rooms that own such clients.
    extraClientMetadata: {
      properties: [
        'require_pkce',
        'pre_authorized',
        'allowed_scope',
        'refuse_other_scopes',
        'access_token_ttl',
      ],
    },
    // RFC 7523 client assertions, beyond oidc-provider's own checks (signature, iss = sub =
    // client_id, jti once, aud): `exp` at most 5 minutes ahead (SMART Backend Services), and for
    // client_credentials the audience is the token endpoint, as SMART Backend Services says.
    assertJwtClientAuthClaimsAndHeader: async (kctx, claims) => {
      const now = Math.floor(Date.now() / 1000);
      if (
        typeof claims.exp === 'number' &&
        claims.exp - now > CLIENT_ASSERTION_MAX_LIFETIME + CLOCK_TOLERANCE
      ) {
        throw new errors.InvalidClientAuth(
          `the client assertion's exp must be at most ${CLIENT_ASSERTION_MAX_LIFETIME} seconds ahead`,
        );
      }
      if (kctx.oidc.route === 'token' && kctx.oidc.params?.grant_type === 'client_credentials') {
        const tokenEndpoint = `${fhirBase}${ROUTES.token}`;
        const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
        if (!aud.includes(tokenEndpoint)) {
          throw new errors.InvalidClientAuth(
            `the client assertion's aud must be the token endpoint ${tokenEndpoint}`,
          );
        }
      }
    },
    clockTolerance: CLOCK_TOLERANCE,
    clientAuthMethods: [...CLIENT_AUTH_METHODS],
    responseTypes: ['code'],
    // PKCE S256 for everyone unless an administrator switched it off for one client (CONTRACT §2 item 11).
    pkce: { required: (_kctx, client) => client.require_pkce !== false },
    enabledJWA: {
      idTokenSigningAlgValues: [...SIGNING_ALGS],
      clientAuthSigningAlgValues: [...CLIENT_ASSERTION_ALGS],
      userinfoSigningAlgValues: [...SIGNING_ALGS],
      requestObjectSigningAlgValues: [...SIGNING_ALGS],
      authorizationSigningAlgValues: [...SIGNING_ALGS],
    },
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    routes: { ...ROUTES },
    interactions: {
      policy: interactionPolicyWithInactiveAccounts(),
      url: (_kctx, interaction) => `${config.publicUrl}${INTERACTION_PATH}/${interaction.uid}`,
    },
    // One grant per launch: the grant made by this very interaction, or made now for single sign-on
    // (./launch-grant.ts) — never one from an earlier authorization.
    loadExistingGrant: async (kctx) => {
      const grantId = kctx.oidc.result?.consent?.grantId;
      if (grantId) return (await kctx.oidc.provider.Grant.find(grantId)) as Grant | undefined;
      return ssoGrant(ctx, kctx);
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      registration: { enabled: false },
      // Machine clients (Ocean's message integrations, src/referrals/) get their allowed_scope, nothing more.
      clientCredentials: { enabled: true },
      // Built in for client authentication and refresh tokens; JWT access tokens are added by token-hooks.
      introspection: {
        enabled: true,
        allowedPolicy: async (_kctx, client, token) => token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_kctx, client, token) => token.clientId === client.clientId,
      },
      // Off, so that discovery names only what answers here (on by default in oidc-provider 9):
      // SMART App Launch 2.2 and Ocean use neither, our router does not serve /request, and the
      // FHIR API checks bearer tokens only — a DPoP-bound token would not be held to its key there.
      pushedAuthorizationRequests: { enabled: false },
      dPoP: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // SMART clients name the FHIR server with `aud`, not `resource`: the FHIR base is the only resource.
        defaultResource: () => fhirBase,
        useGrantedResource: () => true,
        getResourceServerInfo: async (kctx, resource, client) => {
          if (resource !== fhirBase) throw new errors.InvalidTarget('the only resource is the FHIR base URL');
          if (kctx.oidc.params?.grant_type === 'client_credentials' && client.refuse_other_scopes === true) {
            // Such a machine client asks for its own scope and nothing else (SMART Backend
            // Services: an invalid scope is an error, not a token with less in it). Others get
            // the scopes they may have, the rest dropped (Ocean's integrations must not fail).
            const allowed = new Set(splitScope(String(client.allowed_scope ?? '')));
            const extra = splitScope(kctx.oidc.params?.scope as string | undefined).filter(
              (x) => !allowed.has(x),
            );
            if (extra.length > 0)
              throw new errors.InvalidScope('this client may not ask for that scope', extra.join(' '));
          }
          return {
            // The scopes in play; our grant (src/oidc/interactions.ts) decides which are granted.
            scope:
              kctx.oidc.params?.grant_type === 'client_credentials'
                ? String(client.allowed_scope ?? '')
                : scopesInPlay(kctx, fhirBase),
            audience: fhirBase,
            accessTokenTTL: Number(client.access_token_ttl) || config.ttl.accessToken,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: client.idTokenSignedResponseAlg === 'ES256' ? 'ES256' : 'RS256' } },
          };
        },
      },
    },
    issueRefreshToken: async (_kctx, client, code) =>
      client.grantTypeAllowed('refresh_token') &&
      (code.scopes.has('offline_access') || code.scopes.has('online_access')),
    // Token lifetimes follow our rules (online_access: the EHR session), not oidc-provider's session.
    expiresWithSession: async () => false,
    extraTokenClaims: async (kctx, token) => {
      if (!('grantId' in token) || !token.grantId) return undefined;
      const context = await contextForGrant(ctx, kctx, token.grantId);
      if (context) return context.accessTokenClaims;
      // No launch (no patient in context): the token still names its user's Practitioner.
      const account =
        'accountId' in token && token.accountId ? await loadAccount(ctx, token.accountId) : undefined;
      const fhirUser = (await account?.claims('id_token', 'fhirUser', {}, []))?.fhirUser;
      return typeof fhirUser === 'string' ? { fhirUser } : undefined;
    },
    ttl: {
      AccessToken: config.ttl.accessToken,
      AuthorizationCode: config.ttl.authorizationCode,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Grant: config.ttl.refreshToken,
      Interaction: 600,
      // Machine clients' tokens live as their resource server says (a client's access_token_ttl).
      ClientCredentials: (_kctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      Session: config.ttl.session,
    },
    // oidc-provider refuses to fetch a jwks_uri on a private or loopback address (SSRF); an EHR on
    // the hospital network publishes its keys on one. JWKS_URI_PRIVATE_NETWORK lifts that: the
    // addresses are an administrator's, never a stranger's (no dynamic registration).
    ...(config.jwksUriPrivateNetwork
      ? {
          fetch: (url: Parameters<typeof fetch>[0], options?: RequestInit) =>
            fetch(url, { ...options, dispatcher: undefined } as RequestInit),
        }
      : {}),
    allowOmittingSingleRegisteredRedirectUri: false,
    clientBasedCORS: () => true,
    renderError: async (kctx, out) => {
      kctx.type = 'html';
      kctx.body = errorPage(out.error_description ?? out.error);
    },
    discovery: {
      service_documentation: `${config.publicUrl}/`,
    },
  };

  const provider = new Provider(fhirBase, configuration);
  // Trusted proxies give the client address (ctx.ip); the origin is PUBLIC_URL's, whatever the headers say.
  provider.proxy = config.trustProxy !== false;
  provider.use(pinPublicOrigin(config.publicUrl));

  // Client secrets are stored as keyed hashes (CONTRACT §3.3): the metadata's client_secret IS that
  // hash, so the presented secret is hashed the same way before the constant-time comparison.
  provider.Client.prototype.compareClientSecret = function compareHashed(actual: string) {
    const expected = Buffer.from(String(this.clientSecret ?? ''), 'utf8');
    const presented = Buffer.from(ctx.box.keyedHash(String(actual), CLIENT_SECRET_PURPOSE), 'utf8');
    return expected.length === presented.length && timingSafeEqual(expected, presented);
  };

  installTokenHooks(ctx, provider);
  return provider;
}

/**
 * oidc-provider's default prompts, plus: a provider session whose account is gone (user deactivated
 * or deleted) needs the login prompt again. Without it the session looks signed in, no grant is
 * loaded, and the consent checks fail with a server error. And the consent prompt's own check
 * (`prompt=consent` asks for an interaction) is settled by a grant made by single sign-on.
 */
function interactionPolicyWithInactiveAccounts() {
  const policy = interactionPolicy.base();
  // ssoGrant (./launch-grant.ts) makes a grant with prompt=consent only for the prompt the client
  // did not send (the one offline_access brings) and when our consent rules ask for no page.
  const consent = policy.get('consent')!;
  const asked = consent.checks.get('consent_prompt')!;
  consent.checks.remove('consent_prompt');
  consent.checks.add(
    new interactionPolicy.Check(asked.reason, asked.description, asked.error ?? 'consent_required', (kctx) =>
      settledBySso(kctx) ? interactionPolicy.Check.NO_NEED_TO_PROMPT : asked.check(kctx),
    ),
    0,
  );
  policy
    .get('login')!
    .checks.add(
      new interactionPolicy.Check('account_inactive', 'the signed-in account is no longer active', (kctx) =>
        kctx.oidc.session?.accountId && !kctx.oidc.account
          ? interactionPolicy.Check.REQUEST_PROMPT
          : interactionPolicy.Check.NO_NEED_TO_PROMPT,
      ),
    );
  return policy;
}

/** Every scope string of this request, its code or refresh token, and its grant. */
function scopesInPlay(kctx: KoaContextWithOIDC, resource: string): string {
  const all = new Set<string>();
  const add = (s: string | undefined) => {
    for (const x of splitScope(s)) all.add(x);
  };
  add(kctx.oidc.params?.scope as string | undefined);
  const e = kctx.oidc.entities;
  add(e.AuthorizationCode?.scope);
  add(e.RefreshToken?.scope);
  add(e.Grant?.getResourceScope(resource));
  return [...all].join(' ');
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** oidc-provider's error page (shown when it cannot redirect back to the client, e.g. a bad redirect_uri). */
export function errorPage(message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title>
<link rel="stylesheet" href="/static/app.css"></head><body><main class="card error-page">
<h1>This sign-in request cannot continue</h1><p>${escapeHtml(String(message).slice(0, 500))}</p>
<p class="muted">Return to the EHR and launch the application again.</p></main></body></html>`;
}
