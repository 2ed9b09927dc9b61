import { checkCombinations } from './config-rules.ts';
import { settings } from './config-settings.ts';
import type { IdentityProviderConfig } from './sso/settings.ts';

export type { IdentityProviderConfig };

export type Config = {
  env: 'development' | 'production' | 'test';
  isProduction: boolean;
  port: number;
  host: string;
  publicUrl: string;
  /** FHIR base = OIDC issuer = launch iss; byte for byte the same string everywhere (CONTRACT §3.2). */
  fhirBaseUrl: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  dataDir: string;
  /** EMBEDDED_SHARED_BUFFERS: PGlite's shared_buffers (src/db/pglite.ts). */
  embeddedSharedBuffers: string;
  keysDir: string;
  secretsKey: Buffer | undefined;
  /** SECRETS_KEY_PREVIOUS: the key being rotated out (src/keys/secrets-rotation.ts). */
  secretsKeyPrevious: Buffer | undefined;
  adminToken: string | undefined;
  logLevel: string;
  trustProxy: boolean | number | string;
  ttl: {
    accessToken: number;
    idToken: number;
    authorizationCode: number;
    refreshToken: number;
    launchContext: number;
    ehrApiLaunch: number;
    ehrSystemToken: number;
    session: number;
  };
  keyRefreshInterval: number;
  bodyLimit: string;
  ehrApiBodyLimit: string;
  /** oidc-provider may fetch jwks_uri from private addresses (src/oidc/provider.ts). */
  jwksUriPrivateNetwork: boolean;
  importBodyLimit: string;
  demoData: boolean;
  metricsToken: string | undefined;
  /** /metrics answers only loopback and private client addresses (src/http/metrics.ts). */
  metricsInternalOnly: boolean;
  /** Failed-sign-in throttling of the EHR login form (src/web/login-throttle.ts). */
  loginThrottle: {
    failuresBeforeDelay: number;
    delaySeconds: number;
    maxFailuresPerAccount: number;
    accountLockSeconds: number;
    maxFailuresPerAddress: number;
    windowSeconds: number;
  };
  /** Requests per client address per window, counted in the database (src/http/rate-limit.ts); 0 = off. */
  rateLimits: { windowSeconds: number; login: number; token: number; introspection: number; admin: number };
  /** Cookies get the Secure flag when the public URL is https. */
  secureCookies: boolean;
  /** Sign-in through the organization's OpenID Connect provider (src/sso/); undefined = not offered. */
  identityProvider: IdentityProviderConfig | undefined;
  /** Whether password sign-in (POST /login) is on. */
  localPasswords: boolean;
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;
export type Key = keyof typeof settings;

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const values: Partial<Record<Key, unknown>> = {};
  for (const [name, setting] of Object.entries(settings) as [Key, (typeof settings)[Key]][]) {
    const raw = env[name] === '' ? undefined : env[name];
    const input = raw ?? setting.default;
    if (input === undefined) {
      values[name] = undefined;
      continue;
    }
    const parsed = setting.schema.safeParse(input);
    if (parsed.success) values[name] = parsed.data;
    else problems.push(`${name}=${redact(name, raw)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const nodeEnv = values.NODE_ENV as Config['env'];
  const port = values.PORT as number;
  const publicUrl = String(values.PUBLIC_URL ?? `http://localhost:${port}`).replace(/\/+$/, '');
  const url = new URL(publicUrl);
  const isProduction = nodeEnv === 'production';
  const identityProvider = checkCombinations(values, url, isProduction, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    env: nodeEnv,
    isProduction,
    port,
    host: values.HOST as string,
    publicUrl,
    fhirBaseUrl: `${publicUrl}/fhir`,
    databaseUrl: values.DATABASE_URL as string | undefined,
    databasePoolMax: values.DATABASE_POOL_MAX as number,
    dataDir: values.DATA_DIR as string,
    embeddedSharedBuffers: values.EMBEDDED_SHARED_BUFFERS as string,
    keysDir: values.KEYS_DIR as string,
    secretsKey: values.SECRETS_KEY ? Buffer.from(values.SECRETS_KEY as string, 'base64') : undefined,
    secretsKeyPrevious: values.SECRETS_KEY_PREVIOUS
      ? Buffer.from(values.SECRETS_KEY_PREVIOUS as string, 'base64')
      : undefined,
    adminToken: values.ADMIN_TOKEN as string | undefined,
    logLevel: values.LOG_LEVEL as string,
    trustProxy: parseTrustProxy(values.TRUST_PROXY as string),
    ttl: {
      accessToken: values.ACCESS_TOKEN_TTL as number,
      idToken: values.ID_TOKEN_TTL as number,
      authorizationCode: values.AUTHORIZATION_CODE_TTL as number,
      refreshToken: values.REFRESH_TOKEN_TTL as number,
      launchContext: values.LAUNCH_CONTEXT_TTL as number,
      ehrApiLaunch: values.EHR_API_LAUNCH_TTL as number,
      ehrSystemToken: values.EHR_SYSTEM_TOKEN_TTL as number,
      session: values.SESSION_TTL as number,
    },
    keyRefreshInterval: values.KEY_REFRESH_INTERVAL as number,
    bodyLimit: values.BODY_LIMIT as string,
    ehrApiBodyLimit: values.EHR_API_BODY_LIMIT as string,
    jwksUriPrivateNetwork: values.JWKS_URI_PRIVATE_NETWORK as boolean,
    importBodyLimit: values.IMPORT_BODY_LIMIT as string,
    demoData: (values.DEMO_DATA as boolean | undefined) ?? !isProduction,
    metricsToken: values.METRICS_TOKEN as string | undefined,
    metricsInternalOnly: values.METRICS_INTERNAL_ONLY as boolean,
    loginThrottle: {
      failuresBeforeDelay: values.LOGIN_FAILURES_BEFORE_DELAY as number,
      delaySeconds: values.LOGIN_DELAY as number,
      maxFailuresPerAccount: values.LOGIN_MAX_FAILURES_PER_ACCOUNT as number,
      accountLockSeconds: values.LOGIN_ACCOUNT_LOCK as number,
      maxFailuresPerAddress: values.LOGIN_MAX_FAILURES_PER_ADDRESS as number,
      windowSeconds: values.LOGIN_THROTTLE_WINDOW as number,
    },
    rateLimits: {
      windowSeconds: values.RATE_LIMIT_WINDOW as number,
      login: values.RATE_LIMIT_LOGIN as number,
      token: values.RATE_LIMIT_TOKEN as number,
      introspection: values.RATE_LIMIT_INTROSPECTION as number,
      admin: values.RATE_LIMIT_ADMIN as number,
    },
    secureCookies: url.protocol === 'https:',
    identityProvider,
    localPasswords: values.LOCAL_PASSWORDS as boolean,
  };
}

const secretSettings = new Set<string>([
  'SECRETS_KEY',
  'SECRETS_KEY_PREVIOUS',
  'ADMIN_TOKEN',
  'DATABASE_URL',
  'METRICS_TOKEN',
  'IDP_CLIENT_SECRET',
]);

/** Messages about bad values must not echo secrets (they end up in deployment logs). */
function redact(name: string, raw: string | undefined): string {
  if (raw === undefined) return '(unset)';
  if (secretSettings.has(name)) return '(hidden)';
  return JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw);
}

function parseTrustProxy(v: string): boolean | number | string {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v)) return Number(v);
  return v;
}

/** A one-screen start-up summary: where things are, never a secret. */
export function describeConfig(config: Config, databaseKind: string): string[] {
  return [
    `environment   ${config.env}`,
    `listening     http://${config.host}:${config.port}`,
    `public URL    ${config.publicUrl}`,
    `FHIR base/iss ${config.fhirBaseUrl}`,
    `discovery     ${config.fhirBaseUrl}/.well-known/smart-configuration`,
    `database      ${databaseKind}`,
    ...(config.identityProvider ? [`sign-in via    ${config.identityProvider.issuer}`] : []),
    ...(config.localPasswords ? [] : ['passwords     off (identity provider only)']),
  ];
}
