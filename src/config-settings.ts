/*
 * The settings table: one entry per environment variable, with its schema, its default and why it
 * exists (the README's configuration table says the same). Loading, cross-checks and the typed
 * Config are ./config.ts and ./config-rules.ts.
 */
import { z } from 'zod';

const seconds = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** One entry per environment variable: its schema, default and the reason it exists (shown in the README). */
export const settings = {
  NODE_ENV: {
    schema: z.enum(['development', 'production', 'test'], {
      message: 'must be development, production or test',
    }),
    default: 'development',
    why: 'production refuses insecure settings and never loads demo data',
  },
  PORT: {
    schema: z.coerce.number().int().min(0).max(65535),
    default: '3000',
    why: 'TCP port the HTTP server listens on (0 picks a free port, used by tests)',
  },
  HOST: {
    schema: z.string().min(1),
    default: '0.0.0.0',
    why: 'address to bind; 127.0.0.1 keeps the server off the network behind a local proxy',
  },
  PUBLIC_URL: {
    schema: z.url({ message: 'must be an absolute http(s) URL such as https://ehr.example.org' }),
    default: undefined,
    why: 'external origin (scheme, host, port; no path); the FHIR base and OIDC issuer are PUBLIC_URL + "/fhir" and must never change once Ocean is live (default http://localhost:PORT)',
  },
  DATABASE_URL: {
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// or postgresql:// connection URL' })
      .optional(),
    default: undefined,
    why: 'PostgreSQL server shared by all instances; unset = embedded PGlite under DATA_DIR (single instance)',
  },
  DATABASE_POOL_MAX: {
    schema: z.coerce.number().int().min(1).max(200),
    default: '10',
    why: 'connections per instance; instances x pool must stay under the server max_connections',
  },
  DATA_DIR: {
    schema: z.string().min(1),
    default: './data',
    why: 'where the embedded database keeps its files ("memory://" keeps nothing, for tests)',
  },
  EMBEDDED_SHARED_BUFFERS: {
    schema: z.string().regex(/^[1-9][0-9]{0,5}(kB|MB|GB)$/, { message: 'must be a size such as 16MB' }),
    default: '16MB',
    why: "the embedded database's page cache; PostgreSQL's 128MB default is zeroed at every start (≈ 0.15 s) and a single-clinic database lives in the OS file cache anyway",
  },
  KEYS_DIR: {
    schema: z.string().min(1),
    default: './keys',
    why: 'development-only home of the generated secrets.key and admin-token files',
  },
  SECRETS_KEY: {
    schema: z
      .string()
      .refine((v) => Buffer.from(v, 'base64').length === 32 && /^[A-Za-z0-9+/]+={0,2}$/.test(v), {
        message: 'must be Base64 of exactly 32 random bytes (openssl rand -base64 32)',
      })
      .optional(),
    default: undefined,
    why: 'AES-256-GCM key that encrypts SEKs and signing private keys at rest; required in production',
  },
  SECRETS_KEY_PREVIOUS: {
    schema: z
      .string()
      .refine((v) => Buffer.from(v, 'base64').length === 32 && /^[A-Za-z0-9+/]+={0,2}$/.test(v), {
        message: 'must be Base64 of exactly 32 bytes: the SECRETS_KEY being rotated out',
      })
      .optional(),
    default: undefined,
    why: 'during a rotation of SECRETS_KEY, the old key: what it sealed stays readable and is re-sealed under SECRETS_KEY in the background; drop it when the admin console says the rotation is done',
  },
  ADMIN_TOKEN: {
    schema: z
      .string()
      .min(32, { message: 'must be at least 32 characters (openssl rand -hex 32)' })
      .optional(),
    default: undefined,
    why: 'bearer token of the admin API; required in production (development generates one under KEYS_DIR)',
  },
  LOG_LEVEL: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'must be one of fatal, error, warn, info, debug, trace, silent',
    }),
    default: 'info',
    why: 'log verbosity; logs never carry PHI, tokens or secrets at any level',
  },
  TRUST_PROXY: {
    schema: z.string().regex(/^(true|false|\d+|[\d.:/a-fA-F, ]+|loopback|linklocal|uniquelocal)$/, {
      message: 'must be true, false, a hop count, or a list of proxy addresses/subnets',
    }),
    default: 'false',
    why: 'set when behind a load balancer so client addresses (rate limits, audit) and https detection are right',
  },
  ACCESS_TOKEN_TTL: {
    schema: seconds(60, 86400),
    default: '3600',
    why: 'access-token lifetime in seconds; also how long a token of a revoked grant stays usable (JWTs are verified offline)',
  },
  ID_TOKEN_TTL: { schema: seconds(60, 86400), default: '3600', why: 'id_token lifetime in seconds' },
  AUTHORIZATION_CODE_TTL: {
    schema: seconds(10, 600),
    default: '60',
    why: 'authorization codes are single-use and short-lived (RFC 6749 §4.1.2 recommends ≤ 10 min)',
  },
  REFRESH_TOKEN_TTL: {
    schema: seconds(300, 31536000),
    default: '2592000',
    why: 'offline_access refresh-token lifetime in seconds (online_access tokens also end with the EHR session)',
  },
  LAUNCH_CONTEXT_TTL: {
    schema: seconds(10, 300),
    default: '300',
    why: 'how long a launch id from /launch can be redeemed at authorize (≤ 5 minutes)',
  },
  EHR_API_LAUNCH_TTL: {
    schema: seconds(10, 300),
    default: '60',
    why: 'how long a launch asked for by an EHR system (POST /ehr-api/launches) can be redeemed; it signs its user in, so it lives only as long as the browser hop needs',
  },
  EHR_SYSTEM_TOKEN_TTL: {
    schema: seconds(60, 3600),
    default: '300',
    why: "lifetime of an EHR system's client_credentials access token (SMART Backend Services tokens are short-lived: the EHR back end asks again)",
  },
  SESSION_TTL: {
    schema: seconds(300, 604800),
    default: '28800',
    why: 'EHR sign-in session lifetime in seconds (a clinic day by default)',
  },
  KEY_REFRESH_INTERVAL: {
    schema: seconds(1, 3600),
    default: '10',
    why: 'how often each instance re-reads signing keys, i.e. how soon a rotation made elsewhere is served',
  },
  BODY_LIMIT: {
    schema: z.string().regex(/^\d+(b|kb|mb)$/i, { message: 'must be a size such as 100kb or 1mb' }),
    default: '1mb',
    why: 'largest JSON or form body accepted by ordinary endpoints (413 beyond)',
  },
  EHR_API_BODY_LIMIT: {
    schema: z.string().regex(/^\d+(b|kb|mb)$/i, { message: 'must be a size such as 10mb' }),
    default: '10mb',
    why: 'largest body of POST /ehr-api/launches: the patient and the chart entries an EHR sends with a launch',
  },
  IMPORT_BODY_LIMIT: {
    schema: z.string().regex(/^\d+(b|kb|mb|gb)$/i, { message: 'must be a size such as 50mb' }),
    default: '200mb',
    why: 'largest FHIR Bundle accepted by the admin import endpoint',
  },
  LOGIN_FAILURES_BEFORE_DELAY: {
    schema: z.coerce.number().int().min(1).max(1000),
    default: '5',
    why: 'failed EHR sign-ins for one username from one client address before that pair must wait (password guessing)',
  },
  LOGIN_DELAY: {
    schema: seconds(1, 3600),
    default: '30',
    why: 'seconds of the first wait; each further failure of the pair doubles it, up to LOGIN_THROTTLE_WINDOW',
  },
  LOGIN_MAX_FAILURES_PER_ACCOUNT: {
    schema: z.coerce.number().int().min(1).max(100000),
    default: '50',
    why: 'failed EHR sign-ins for one username from all addresses within LOGIN_THROTTLE_WINDOW before the whole account is locked (guessing spread over many addresses)',
  },
  LOGIN_ACCOUNT_LOCK: {
    schema: seconds(10, 86400),
    default: '300',
    why: 'how long that whole-account lock lasts: short, since anyone can cause it; an administrator can lift it at once',
  },
  LOGIN_MAX_FAILURES_PER_ADDRESS: {
    schema: z.coerce.number().int().min(1).max(100000),
    default: '50',
    why: 'failed EHR sign-ins from one client address within LOGIN_THROTTLE_WINDOW before it is refused (high: a hospital NAT is one address)',
  },
  LOGIN_THROTTLE_WINDOW: {
    schema: seconds(10, 86400),
    default: '900',
    why: 'seconds over which failed sign-ins are counted (a quiet window forgives them), and the longest wait of one username at one address',
  },
  RATE_LIMIT_WINDOW: {
    schema: seconds(1, 3600),
    default: '60',
    why: 'seconds of the fixed window the RATE_LIMIT_* budgets below are counted over (in the database, shared by all instances)',
  },
  RATE_LIMIT_LOGIN: {
    schema: z.coerce.number().int().min(0).max(1_000_000),
    default: '120',
    why: 'POST /login requests per client address per window (0 = no limit); failed sign-ins are also throttled per account',
  },
  RATE_LIMIT_TOKEN: {
    schema: z.coerce.number().int().min(0).max(1_000_000),
    default: '1200',
    why: 'token endpoint requests per client address per window (0 = no limit); Ocean redeems every launch from few addresses',
  },
  RATE_LIMIT_INTROSPECTION: {
    schema: z.coerce.number().int().min(0).max(1_000_000),
    default: '2400',
    why: 'introspection requests per client address per window (0 = no limit)',
  },
  RATE_LIMIT_ADMIN: {
    schema: z.coerce.number().int().min(0).max(1_000_000),
    default: '300',
    why: 'admin API requests per client address per window (0 = no limit)',
  },
  METRICS_TOKEN: {
    schema: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
    default: undefined,
    why: 'when set, GET /metrics needs Authorization: Bearer METRICS_TOKEN (metrics never carry PHI either way); production needs it or METRICS_INTERNAL_ONLY',
  },
  METRICS_INTERNAL_ONLY: {
    schema: bool,
    default: 'false',
    why: 'true: /metrics answers only clients on loopback or private addresses (the balancer must not route it); what lets production serve it without METRICS_TOKEN',
  },
  IDP_ISSUER: {
    schema: z.url({ message: "must be the identity provider's issuer URL" }).optional(),
    default: undefined,
    why: 'issuer of the organization\'s OpenID Connect provider (Entra ID, Okta, Keycloak…); set it to offer "sign in with your organization account" (discovery and keys are read from it)',
  },
  IDP_CLIENT_ID: {
    schema: z.string().min(1).max(500).optional(),
    default: undefined,
    why: 'client id this server was registered with at the identity provider (required with IDP_ISSUER)',
  },
  IDP_CLIENT_SECRET: {
    schema: z.string().min(1).max(2000).optional(),
    default: undefined,
    why: "client secret of that registration, sent with HTTP Basic at the provider's token endpoint (required with IDP_ISSUER)",
  },
  IDP_SCOPE: {
    schema: z.string().regex(/^(\S+ )*openid( \S+)*$/, { message: 'must be scopes including openid' }),
    default: 'openid profile email',
    why: 'scopes asked of the identity provider; add the one that releases the roles claim if your provider needs it',
  },
  IDP_ROLES_CLAIM: {
    schema: z.string().min(1).max(200),
    default: 'roles',
    why: "claim carrying the user's roles or groups (Entra ID: roles, Okta: groups, Keycloak: realm_access.roles — a dotted path reaches into an object)",
  },
  IDP_ADMIN_ROLE: {
    schema: z.string().min(1).max(200).optional(),
    default: undefined,
    why: 'value of the roles claim that makes the user an administrator of this server; unset = nobody becomes one through the provider',
  },
  IDP_BUTTON_LABEL: {
    schema: z.string().trim().min(1).max(80),
    default: 'Sign in with your organization account',
    why: 'text of the sign-in page\'s button for the identity provider (e.g. "Sign in with St. Mary\'s Hospital")',
  },
  LOCAL_PASSWORDS: {
    schema: bool,
    default: 'true',
    why: 'whether users may also sign in with a password kept here; false = the identity provider only (needs IDP_ISSUER)',
  },
  JWKS_URI_PRIVATE_NETWORK: {
    schema: bool,
    default: 'false',
    why: "fetch a client's or EHR system's jwks_uri from a private, loopback or other special-use address (refused by default, against SSRF)",
  },
  DEMO_DATA: {
    schema: bool,
    default: undefined,
    why: 'load demo users, patients and an Ocean test client into an empty database (default: on outside production)',
  },
} as const;
