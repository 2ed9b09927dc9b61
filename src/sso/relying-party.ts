/*
 * This server as a relying party of the organization's identity provider (openid-client v6).
 * - discovery (OIDC Discovery §4) from IDP_ISSUER, on first use rather than at start: a provider
 *   that is down must not keep the server (Ocean's launches, password sign-in) from starting;
 *   a failed discovery is retried by the next sign-in, no sooner than RETRY_MS after the last try
 * - the id_token is verified strictly: iss, aud, azp, exp, iat, nonce (openid-client), and its
 *   JWS signature against the provider's JWKS (enableNonRepudiationChecks; keys fetched from
 *   jwks_uri, fetched again when an unknown kid appears — a key rotation at the provider)
 * - the authorization code flow with PKCE (S256), `state` and `nonce`, all three kept in the
 *   server-side session (express-session rows), so any instance can finish a callback
 * - client authentication: client_secret_basic (RFC 6749 §2.3.1, which every provider supports)
 * - plain http issuers are accepted only outside production (config.ts refuses them there)
 */
import * as client from 'openid-client';
import { type AuthenticateOptions, Strategy, type VerifyFunctionWithRequest } from 'openid-client/passport';
import type { IdentityProviderConfig } from '../config.ts';

/** Seconds an HTTP request to the provider may take (discovery, token, userinfo, JWKS). */
const TIMEOUT_SECONDS = 10;
/** A provider that failed discovery is not asked again for this long (each sign-in would wait on it). */
const RETRY_MS = 5_000;

/** The provider could not be reached or answered discovery with nonsense. */
export class ProviderUnavailableError extends Error {
  constructor(cause: unknown) {
    super('the identity provider could not be reached', { cause });
    this.name = 'ProviderUnavailableError';
  }
}

/**
 * openid-client's passport strategy sends PKCE only when the provider supports it, and `state`
 * only when it does not; we send all three every time: `state` binds the answer to this browser
 * (RFC 6749 §10.12), `nonce` binds the id_token to this request (OIDC Core §3.1.2.1).
 */
class CodeFlowStrategy extends Strategy {
  override authorizationRequestParams<T extends AuthenticateOptions>(
    req: Parameters<Strategy['authorizationRequestParams']>[0],
    options: T,
  ) {
    const params = new URLSearchParams(super.authorizationRequestParams(req, options));
    params.set('state', client.randomState());
    params.set('nonce', client.randomNonce());
    return params;
  }
}

/** Name of the passport strategy and of the session member holding state, nonce and PKCE verifier. */
export const STRATEGY = 'idp';

export class RelyingParty {
  #configuration: Promise<client.Configuration> | undefined;
  #strategy: Strategy | undefined;
  #failedAt = 0;

  constructor(
    readonly settings: IdentityProviderConfig,
    /** Our callback, registered at the provider as a redirect URI. */
    readonly callbackUrl: string,
    private readonly verify: VerifyFunctionWithRequest,
  ) {}

  /** The discovered configuration; throws ProviderUnavailableError while the provider cannot be reached. */
  configuration(): Promise<client.Configuration> {
    if (!this.#configuration) {
      if (Date.now() - this.#failedAt < RETRY_MS) {
        return Promise.reject(new ProviderUnavailableError(new Error('discovery failed moments ago')));
      }
      const insecure = new URL(this.settings.issuer).protocol === 'http:';
      this.#configuration = client
        .discovery(
          new URL(this.settings.issuer),
          this.settings.clientId,
          undefined,
          client.ClientSecretBasic(this.settings.clientSecret),
          {
            timeout: TIMEOUT_SECONDS,
            execute: [client.enableNonRepudiationChecks, ...(insecure ? [client.allowInsecureRequests] : [])],
          },
        )
        .catch((err: unknown) => {
          this.#configuration = undefined;
          this.#failedAt = Date.now();
          throw new ProviderUnavailableError(err);
        });
    }
    return this.#configuration;
  }

  /** The passport strategy, made once discovery has succeeded. */
  async strategy(): Promise<Strategy> {
    const config = await this.configuration();
    this.#strategy ??= new CodeFlowStrategy(
      {
        config,
        name: STRATEGY,
        sessionKey: STRATEGY,
        callbackURL: this.callbackUrl,
        scope: this.settings.scope,
        passReqToCallback: true,
      },
      this.verify,
    );
    return this.#strategy;
  }

  /** The userinfo response (OIDC Core §5.3), checked to be about `sub`; undefined when the provider has none. */
  async userinfo(accessToken: string, sub: string): Promise<Record<string, unknown> | undefined> {
    const config = await this.configuration();
    if (!config.serverMetadata().userinfo_endpoint) return undefined;
    return client.fetchUserInfo(config, accessToken, sub);
  }

  /**
   * The provider's end-session URL (OIDC RP-Initiated Logout §2) coming back to `returnTo`, or
   * undefined when the provider has none or cannot be reached now.
   */
  async endSessionUrl(returnTo: string): Promise<string | undefined> {
    try {
      const config = await this.configuration();
      if (!config.serverMetadata().end_session_endpoint) return undefined;
      return client.buildEndSessionUrl(config, { post_logout_redirect_uri: returnTo }).href;
    } catch {
      return undefined;
    }
  }
}
