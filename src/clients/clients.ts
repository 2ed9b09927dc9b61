/*
 * Registered OAuth clients (Ocean), on the `clients` table (their Ocean sites: src/sites/).
 * - every input is validated here (zod), so the admin API, the console and tests share one rule set
 * - client_id is drawn with ≥128 random bits unless the administrator gives one; a client secret
 *   is URL-safe, returned once, and stored only as a keyed hash (SecretBox.keyedHash)
 * - multi-step writes run in one transaction (the caller's when it passes one); duplicates are
 *   ConflictError, absences NotFoundError
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { inTransaction, type Queryable, sqlState, UNIQUE_VIOLATION } from '../db/database.ts';
import { ConflictError, NotFoundError, parseInput, ValidationError } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';

/**
 * What the store needs: where to run its SQL — the database, or the caller's open transaction so
 * that a change and its audit row commit together — and the box that hashes secrets.
 */
export interface ClientStore {
  db: Queryable;
  box: SecretBox;
}

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type TokenEndpointAuthMethod = (typeof AUTH_METHODS)[number];
export const ID_TOKEN_ALGS = ['RS256', 'ES256'] as const;
export type IdTokenAlg = (typeof ID_TOKEN_ALGS)[number];

const SECRET_METHODS = new Set<TokenEndpointAuthMethod>(['client_secret_basic', 'client_secret_post']);

/** An absolute http(s) URL without a fragment (redirect URIs, launch URLs, jwks_uri). */
export const httpUrl = (what: string) =>
  z
    .string({ message: `${what} must be a string` })
    .max(2000, { message: `${what} is too long` })
    .refine(
      (v) => {
        const u = URL.parse(v);
        return !!u && (u.protocol === 'https:' || u.protocol === 'http:') && !u.hash && !v.includes('#');
      },
      { message: `${what} must be an absolute http(s) URL without a fragment` },
    );

/** A public JWK (RSA, EC or OKP): a private or symmetric key is refused. */
const publicJwk = z
  .object({ kty: z.enum(['RSA', 'EC', 'OKP'], { message: 'kty must be RSA, EC or OKP' }) })
  .passthrough()
  .refine((k) => !('d' in k) && !('p' in k) && !('k' in k), {
    message: 'jwks must hold public keys only (a private or symmetric key was given)',
  });

/** A JWK Set of public keys (client authentication by private_key_jwt). */
export const publicJwks = z.object(
  { keys: z.array(publicJwk).min(1, { message: 'jwks.keys must not be empty' }).max(20) },
  { message: 'jwks must be a JWK Set: { "keys": [ … ] }' },
);

const clientFields = {
  name: z.string().trim().min(1, { message: 'name is required' }).max(200),
  redirect_uris: z
    .array(httpUrl('redirect_uri'), { message: 'redirect_uris must be a list of URLs' })
    .min(1, { message: 'at least one redirect_uri is required' })
    .max(20),
  launch_url: httpUrl('launch_url').nullable().optional(),
  token_endpoint_auth_method: z.enum(AUTH_METHODS, {
    message: `token_endpoint_auth_method must be one of ${AUTH_METHODS.join(', ')}`,
  }),
  id_token_signed_response_alg: z
    .enum(ID_TOKEN_ALGS, { message: 'id_token_signed_response_alg must be RS256 or ES256' })
    .default('RS256'),
  require_pkce: z.boolean({ message: 'require_pkce must be true or false' }).default(true),
  pre_authorized: z.boolean({ message: 'pre_authorized must be true or false' }).default(true),
  jwks_uri: httpUrl('jwks_uri').nullable().optional(),
  jwks: publicJwks.nullable().optional(),
  scope: z
    .string()
    .max(4000)
    .regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/, {
      message: 'scope must be space-separated scope tokens',
    })
    .nullable()
    .optional(),
};

const clientIdSchema = z.string().regex(/^[A-Za-z0-9._~-]{8,200}$/, {
  message: 'client_id must be 8–200 characters of letters, digits, ".", "_", "~" or "-"',
});

export const createClientInput = z.strictObject({ client_id: clientIdSchema.optional(), ...clientFields });
export type CreateClientInput = z.input<typeof createClientInput>;

export const updateClientInput = z.strictObject({
  name: clientFields.name.optional(),
  redirect_uris: clientFields.redirect_uris.optional(),
  launch_url: clientFields.launch_url,
  token_endpoint_auth_method: clientFields.token_endpoint_auth_method.optional(),
  id_token_signed_response_alg: z.enum(ID_TOKEN_ALGS).optional(),
  require_pkce: z.boolean().optional(),
  pre_authorized: z.boolean().optional(),
  jwks_uri: clientFields.jwks_uri,
  jwks: clientFields.jwks,
  scope: clientFields.scope,
});
export type UpdateClientInput = z.input<typeof updateClientInput>;

/** A client as the admin API shows it: never a secret. */
export interface ClientRecord {
  client_id: string;
  name: string;
  redirect_uris: string[];
  launch_url: string | null;
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  id_token_signed_response_alg: IdTokenAlg;
  require_pkce: boolean;
  pre_authorized: boolean;
  jwks_uri: string | null;
  jwks: { keys: Record<string, unknown>[] } | null;
  /** Scopes this client may be granted (null: any scope the server grants). */
  scope: string | null;
  has_secret: boolean;
  created_at: string;
  updated_at: string;
}

export interface CreatedClient {
  client: ClientRecord;
  /** Present once, for secret-based auth methods. */
  client_secret?: string;
}

/** What is kept in clients.metadata: the oidc-provider client metadata, without any secret. */
interface StoredMetadata {
  client_name: string;
  redirect_uris: string[];
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  id_token_signed_response_alg: IdTokenAlg;
  jwks_uri?: string;
  jwks?: { keys: Record<string, unknown>[] };
  /** Not passed to oidc-provider (it would refuse instead of dropping); applied by our grant. */
  allowed_scope?: string;
}

interface ClientRow {
  client_id: string;
  name: string;
  metadata: StoredMetadata;
  client_secret_hash: string | null;
  launch_url: string | null;
  require_pkce: boolean;
  pre_authorized: boolean;
  created_at: Date | string;
  updated_at: Date | string;
}

const CLIENT_COLUMNS =
  'client_id, name, metadata, client_secret_hash, launch_url, require_pkce, pre_authorized, created_at, updated_at';

const iso = (d: Date | string) => new Date(d).toISOString();

export const CLIENT_SECRET_PURPOSE = 'client-secret';

/** ≥128 random bits, URL-safe. */
const drawClientId = () => randomBytes(18).toString('base64url');
/** 256 random bits, URL-safe characters only (CONTRACT §3.3). */
/** A client secret: 256 random bits, URL-safe characters only (CONTRACT §3.3). */
export const drawClientSecret = () => randomBytes(32).toString('base64url');

function toRecord(row: ClientRow): ClientRecord {
  const m = row.metadata;
  return {
    client_id: row.client_id,
    name: row.name,
    redirect_uris: m.redirect_uris,
    launch_url: row.launch_url,
    token_endpoint_auth_method: m.token_endpoint_auth_method,
    id_token_signed_response_alg: m.id_token_signed_response_alg,
    require_pkce: row.require_pkce,
    pre_authorized: row.pre_authorized,
    jwks_uri: m.jwks_uri ?? null,
    jwks: m.jwks ?? null,
    scope: m.allowed_scope ?? null,
    has_secret: row.client_secret_hash !== null,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

type ClientShape = Omit<ClientRecord, 'client_id' | 'has_secret' | 'created_at' | 'updated_at'>;

/** Cross-field rules: private_key_jwt needs keys; keys only make sense for it. */
function checkConsistency(c: ClientShape): void {
  const issues: { path: string; message: string }[] = [];
  if (c.token_endpoint_auth_method === 'private_key_jwt') {
    if (!c.jwks && !c.jwks_uri)
      issues.push({ path: 'jwks_uri', message: 'private_key_jwt needs jwks_uri or jwks' });
    if (c.jwks && c.jwks_uri) issues.push({ path: 'jwks', message: 'give jwks_uri or jwks, not both' });
  }
  if (issues.length > 0) throw new ValidationError(issues);
}

function toMetadata(c: ClientShape): StoredMetadata {
  return {
    client_name: c.name,
    redirect_uris: [...new Set(c.redirect_uris)],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method,
    id_token_signed_response_alg: c.id_token_signed_response_alg,
    ...(c.jwks_uri ? { jwks_uri: c.jwks_uri } : {}),
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.scope ? { allowed_scope: c.scope } : {}),
  };
}

export async function createClient(store: ClientStore, input: unknown): Promise<CreatedClient> {
  const v = parseInput(createClientInput, input);
  const shape: ClientShape = {
    name: v.name,
    redirect_uris: v.redirect_uris,
    launch_url: v.launch_url ?? null,
    token_endpoint_auth_method: v.token_endpoint_auth_method,
    id_token_signed_response_alg: v.id_token_signed_response_alg,
    require_pkce: v.require_pkce,
    pre_authorized: v.pre_authorized,
    jwks_uri: v.jwks_uri ?? null,
    jwks: (v.jwks as ClientShape['jwks']) ?? null,
    scope: v.scope ?? null,
  };
  checkConsistency(shape);
  const clientId = v.client_id ?? drawClientId();
  const secret = SECRET_METHODS.has(shape.token_endpoint_auth_method) ? drawClientSecret() : undefined;
  try {
    const { rows } = await store.db.query<ClientRow>(
      `INSERT INTO clients (client_id, name, metadata, client_secret_hash, launch_url, require_pkce, pre_authorized)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${CLIENT_COLUMNS}`,
      [
        clientId,
        shape.name,
        JSON.stringify(toMetadata(shape)),
        secret ? store.box.keyedHash(secret, CLIENT_SECRET_PURPOSE) : null,
        shape.launch_url,
        shape.require_pkce,
        shape.pre_authorized,
      ],
    );
    return { client: toRecord(rows[0]!), ...(secret ? { client_secret: secret } : {}) };
  } catch (err) {
    if (sqlState(err) === UNIQUE_VIOLATION)
      throw new ConflictError(`client_id ${clientId} is already registered`);
    throw err;
  }
}

async function findRow(q: Queryable, clientId: string, lock = false): Promise<ClientRow | undefined> {
  const { rows } = await q.query<ClientRow>(
    `SELECT ${CLIENT_COLUMNS} FROM clients WHERE client_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [clientId],
    { prepare: true },
  );
  return rows[0];
}

export async function getClient(store: Pick<ClientStore, 'db'>, clientId: string): Promise<ClientRecord> {
  const row = typeof clientId === 'string' ? await findRow(store.db, clientId) : undefined;
  if (!row) throw new NotFoundError('no such client');
  return toRecord(row);
}

export async function listClients(store: Pick<ClientStore, 'db'>): Promise<ClientRecord[]> {
  const { rows } = await store.db.query<ClientRow>(
    `SELECT ${CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id`,
  );
  return rows.map(toRecord);
}

/**
 * Partial update. Switching to a secret-based auth method draws a secret (returned once);
 * switching away from one forgets the stored hash.
 */
export async function updateClient(
  store: ClientStore,
  clientId: string,
  input: unknown,
): Promise<CreatedClient> {
  const patch = parseInput(updateClientInput, input);
  return inTransaction(store.db, async (tx) => {
    const row = await findRow(tx, clientId, true);
    if (!row) throw new NotFoundError('no such client');
    const current = toRecord(row);
    const next: ClientShape = {
      name: patch.name ?? current.name,
      redirect_uris: patch.redirect_uris ?? current.redirect_uris,
      launch_url: patch.launch_url === undefined ? current.launch_url : patch.launch_url,
      token_endpoint_auth_method: patch.token_endpoint_auth_method ?? current.token_endpoint_auth_method,
      id_token_signed_response_alg:
        patch.id_token_signed_response_alg ?? current.id_token_signed_response_alg,
      require_pkce: patch.require_pkce ?? current.require_pkce,
      pre_authorized: patch.pre_authorized ?? current.pre_authorized,
      jwks_uri: patch.jwks_uri === undefined ? current.jwks_uri : patch.jwks_uri,
      jwks: patch.jwks === undefined ? current.jwks : ((patch.jwks as ClientShape['jwks']) ?? null),
      scope: patch.scope === undefined ? current.scope : patch.scope,
    };
    checkConsistency(next);
    const wantsSecret = SECRET_METHODS.has(next.token_endpoint_auth_method);
    const secret = wantsSecret && !row.client_secret_hash ? drawClientSecret() : undefined;
    const hash = wantsSecret
      ? secret
        ? store.box.keyedHash(secret, CLIENT_SECRET_PURPOSE)
        : row.client_secret_hash
      : null;
    const { rows } = await tx.query<ClientRow>(
      `UPDATE clients SET name = $2, metadata = $3, client_secret_hash = $4, launch_url = $5,
              require_pkce = $6, pre_authorized = $7, updated_at = now()
        WHERE client_id = $1 RETURNING ${CLIENT_COLUMNS}`,
      [
        clientId,
        next.name,
        JSON.stringify(toMetadata(next)),
        hash,
        next.launch_url,
        next.require_pkce,
        next.pre_authorized,
      ],
    );
    return { client: toRecord(rows[0]!), ...(secret ? { client_secret: secret } : {}) };
  });
}

/**
 * Deletes the client with its sites and launch contexts (FK cascade). What the authorization
 * server issued to it is the caller's to end in the same transaction (src/oidc/adapter.ts
 * forgetClient; the admin does both).
 */
export async function deleteClient(store: Pick<ClientStore, 'db'>, clientId: string): Promise<void> {
  const r = await store.db.query('DELETE FROM clients WHERE client_id = $1', [clientId]);
  if (r.rowCount === 0) throw new NotFoundError('no such client');
}

/** Draws a new secret for a secret-based client; the old one stops working at once. */
export async function resetClientSecret(store: ClientStore, clientId: string): Promise<string> {
  const secret = drawClientSecret();
  const r = await store.db.query(
    `UPDATE clients SET client_secret_hash = $2, updated_at = now()
      WHERE client_id = $1 AND metadata->>'token_endpoint_auth_method' IN ('client_secret_basic', 'client_secret_post')`,
    [clientId, store.box.keyedHash(secret, CLIENT_SECRET_PURPOSE)],
  );
  if (r.rowCount === 0) {
    await getClient(store, clientId); // NotFoundError when absent
    throw new ValidationError([
      { path: 'token_endpoint_auth_method', message: 'this client does not authenticate with a secret' },
    ]);
  }
  return secret;
}

/**
 * oidc-provider client metadata for the Client adapter. `client_secret` carries the keyed
 * hash, never the secret: the provider's Client.compareClientSecret is replaced to hash the
 * presented secret before the constant-time comparison (src/oidc/provider.ts).
 */
export async function providerClientMetadata(
  store: Pick<ClientStore, 'db'>,
  clientId: string,
): Promise<(Record<string, unknown> & { require_pkce: boolean; pre_authorized: boolean }) | undefined> {
  const row = await findRow(store.db, clientId);
  if (!row) return undefined;
  const { allowed_scope, ...metadata } = row.metadata;
  return {
    client_id: row.client_id,
    ...metadata,
    ...(row.client_secret_hash ? { client_secret: row.client_secret_hash } : {}),
    // extraClientMetadata properties, read by our PKCE and consent policies.
    require_pkce: row.require_pkce,
    pre_authorized: row.pre_authorized,
    ...(allowed_scope ? { allowed_scope } : {}),
  };
}

/**
 * SQL for the launch URL of the client named by an expression (NULL when it has none), for a
 * statement of another room that must read it in the same round trip (the launch).
 */
export const launchUrlSql = (clientIdExpr: string): string =>
  `(SELECT launch_url FROM clients WHERE client_id = ${clientIdExpr})`;
