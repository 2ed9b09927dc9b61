/*
 * Where the SMART authorization server's endpoints live under the FHIR base (= the issuer), and
 * what it accepts: the one list that the provider's configuration (src/oidc/provider.ts), the
 * smart-configuration document and the app's path rules all read, so they cannot disagree.
 */

/** Provider routes, relative to the issuer (= FHIR base). Discovery, smart-configuration and our router use these. */
export const ROUTES = {
  authorization: '/auth',
  token: '/token',
  jwks: '/jwks',
  introspection: '/token/introspection',
  revocation: '/token/revocation',
  end_session: '/session/end',
} as const;

/** Signing algorithms of id_tokens and access tokens, chosen per client (CONTRACT §2 item 4). */
export const SIGNING_ALGS = ['RS256', 'ES256'] as const;

/** Client authentication at the token, introspection and revocation endpoints (CONTRACT §3.3). */
export const CLIENT_AUTH_METHODS = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
  'none',
] as const;

/**
 * Signing algorithms of client assertions (RFC 7523, private_key_jwt): SMART Backend Services
 * requires RS384 and ES384; RS256 and ES256 are what most libraries sign with by default.
 */
export const CLIENT_ASSERTION_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

/** How far ahead a client assertion's `exp` may be (SMART Backend Services: at most 5 minutes). */
export const CLIENT_ASSERTION_MAX_LIFETIME = 300;
