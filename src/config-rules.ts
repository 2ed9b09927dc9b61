/*
 * The settings that are wrong together, or wrong in production (each alone is checked where it
 * is declared, in src/config.ts): every problem becomes one line a person can act on.
 * - PUBLIC_URL is an origin (no path, query or fragment), http or https; https in production
 * - throttling can never let one address lock an account
 * - production refuses missing secrets, demo data, and /metrics that nobody decided about
 * - the identity provider's settings come together (src/sso/settings.ts)
 */
import type { Key } from './config.ts';
import { type IdentityProviderConfig, identityProviderConfig } from './sso/settings.ts';

export function checkCombinations(
  values: Partial<Record<Key, unknown>>,
  url: URL,
  isProduction: boolean,
  problems: string[],
): IdentityProviderConfig | undefined {
  if (url.search || url.hash) problems.push('PUBLIC_URL: must not carry a query or fragment');
  // oidc-provider builds its endpoint URLs from the request's origin and mount point, so a proxy
  // that strips a path prefix would make discovery name endpoints without it while the issuer
  // keeps it — a mismatch strict relying parties (Ocean) refuse. Serve the server at a host's root.
  if (url.pathname !== '/' && url.pathname !== '')
    problems.push(
      'PUBLIC_URL: must be an origin without a path (https://ehr.example.org); give the server its own host name',
    );
  if (!['http:', 'https:'].includes(url.protocol)) problems.push('PUBLIC_URL: must be http or https');

  // Throttling must not become a way to lock clinicians out (src/web/login-throttle.ts): the lock of a
  // whole account needs more failures than one address may make before waiting, and ends sooner
  // than the longest wait of one address.
  if ((values.LOGIN_MAX_FAILURES_PER_ACCOUNT as number) <= (values.LOGIN_FAILURES_BEFORE_DELAY as number))
    problems.push(
      'LOGIN_MAX_FAILURES_PER_ACCOUNT: must be greater than LOGIN_FAILURES_BEFORE_DELAY, or one address could lock an account',
    );
  if ((values.LOGIN_ACCOUNT_LOCK as number) > (values.LOGIN_THROTTLE_WINDOW as number))
    problems.push('LOGIN_ACCOUNT_LOCK: must not be longer than LOGIN_THROTTLE_WINDOW');

  if (isProduction) {
    if (!values.SECRETS_KEY)
      problems.push(
        'SECRETS_KEY: required in production (openssl rand -base64 32), or secrets are unreadable',
      );
    if (!values.ADMIN_TOKEN) problems.push('ADMIN_TOKEN: required in production (openssl rand -hex 32)');
    if (url.protocol !== 'https:')
      problems.push('PUBLIC_URL: must be https in production (OAuth tokens and PHI travel over it)');
    if (values.DEMO_DATA === true) problems.push('DEMO_DATA: demo data is never loaded in production');
    // Metrics name no patient, but they map the deployment (routes, volumes, pool sizes, the Node
    // version) for anyone who asks: in production someone must have decided who may ask.
    if (!values.METRICS_TOKEN && values.METRICS_INTERNAL_ONLY !== true)
      problems.push(
        'METRICS_TOKEN: required in production (openssl rand -hex 32), unless METRICS_INTERNAL_ONLY=true says /metrics is served only on an internal address',
      );
  }
  const identityProvider = identityProviderConfig(values, isProduction, problems);
  if (values.LOCAL_PASSWORDS === false && !identityProvider)
    problems.push('LOCAL_PASSWORDS: false needs IDP_ISSUER, or nobody could sign in');
  if (values.SECRETS_KEY_PREVIOUS && !values.SECRETS_KEY)
    problems.push('SECRETS_KEY_PREVIOUS: only means something beside SECRETS_KEY (the new key)');
  if (values.SECRETS_KEY_PREVIOUS && values.SECRETS_KEY_PREVIOUS === values.SECRETS_KEY)
    problems.push('SECRETS_KEY_PREVIOUS: is the same key as SECRETS_KEY; give the old key, or unset it');
  return identityProvider;
}
