/*
 * /.well-known/smart-configuration (SMART App Launch 2.2 §"SMART on FHIR OAuth authorization
 * Endpoints and Capabilities"). Built from the same routes as the provider's own discovery
 * document, so the two always agree on every endpoint.
 */
import type { Config } from '../config.ts';
import { CLIENT_ASSERTION_ALGS, CLIENT_AUTH_METHODS, ROUTES, SIGNING_ALGS } from './endpoints.ts';
import { OIDC_SCOPES } from './scopes.ts';

export function smartConfiguration(config: Config) {
  const iss = config.fhirBaseUrl;
  return {
    issuer: iss,
    jwks_uri: `${iss}${ROUTES.jwks}`,
    authorization_endpoint: `${iss}${ROUTES.authorization}`,
    // SMART 2.2: the authorization endpoint accepts form POST as well as GET ("authorize-post").
    // client_credentials: EHR systems asking for launches (SMART Backend Services) and Ocean's message integrations.
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    token_endpoint: `${iss}${ROUTES.token}`,
    token_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    id_token_signing_alg_values_supported: [...SIGNING_ALGS],
    scopes_supported: [...OIDC_SCOPES, 'patient/*.read', 'patient/*.rs', 'user/*.read', 'user/*.rs'],
    response_types_supported: ['code'],
    introspection_endpoint: `${iss}${ROUTES.introspection}`,
    revocation_endpoint: `${iss}${ROUTES.revocation}`,
    // RFC 7636: S256 only; `plain` is never accepted.
    code_challenge_methods_supported: ['S256'],
    capabilities: [
      'launch-ehr',
      'authorize-post',
      'client-public',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'sso-openid-connect',
      'context-ehr-patient',
      'context-banner',
      'context-style',
      'permission-patient',
      'permission-user',
      'permission-offline',
      'permission-online',
      'permission-v1',
      'permission-v2',
    ],
  };
}
