/*
 * The identity provider's settings (IDP_*, documented with the others in src/config.ts) as one
 * value, checked together: an issuer needs its client id and secret and is https in production.
 * Undefined when IDP_ISSUER is unset: sign-in through a provider is off.
 */
import type { Key } from '../config.ts';

export interface IdentityProviderConfig {
  issuer: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  rolesClaim: string;
  adminRole: string | undefined;
  buttonLabel: string;
}

/** The IDP_* settings as one value, or undefined when IDP_ISSUER is unset; problems noted. */
export function identityProviderConfig(
  values: Partial<Record<Key, unknown>>,
  isProduction: boolean,
  problems: string[],
): IdentityProviderConfig | undefined {
  const issuer = values.IDP_ISSUER as string | undefined;
  const clientId = values.IDP_CLIENT_ID as string | undefined;
  const clientSecret = values.IDP_CLIENT_SECRET as string | undefined;
  if (!issuer) {
    if (clientId || clientSecret)
      problems.push('IDP_ISSUER: required when IDP_CLIENT_ID or IDP_CLIENT_SECRET is set');
    return undefined;
  }
  const url = new URL(issuer);
  if (!['http:', 'https:'].includes(url.protocol) || url.search || url.hash)
    problems.push('IDP_ISSUER: must be an http(s) URL without query or fragment');
  // OIDC Discovery §4.3: the issuer is https; plain http is for a provider on this machine in tests.
  if (isProduction && url.protocol !== 'https:') problems.push('IDP_ISSUER: must be https in production');
  if (!clientId) problems.push('IDP_CLIENT_ID: required with IDP_ISSUER (from its registration there)');
  if (!clientSecret)
    problems.push('IDP_CLIENT_SECRET: required with IDP_ISSUER (from its registration there)');
  if (!clientId || !clientSecret) return undefined;
  return {
    issuer,
    clientId,
    clientSecret,
    scope: values.IDP_SCOPE as string,
    rolesClaim: values.IDP_ROLES_CLAIM as string,
    adminRole: values.IDP_ADMIN_ROLE as string | undefined,
    buttonLabel: values.IDP_BUTTON_LABEL as string,
  };
}
