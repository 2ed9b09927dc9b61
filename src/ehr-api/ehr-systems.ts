/*
 * EHR systems: the back ends of other EHRs that ask us for launches (CONTRACT §3.5), on the
 * `ehr_systems` table.
 * - each is an OAuth client of our authorization server: client_credentials only, the ehr-launch
 *   scope only, never a party to a user's authorization (no redirect URI, no response type)
 * - private_key_jwt with `jwks` or `jwks_uri` (SMART Backend Services), or client_secret_basic:
 *   the secret is drawn here (256 bits), shown once, stored as the keyed hash the authorization
 *   server compares (CLIENT_SECRET_PURPOSE)
 * - `sites`: the Ocean sites it may launch; null = every site
 * - `credentials_issued_at` moves when the secret or the keys change: a token issued before no
 *   longer counts (tokens are short-lived and not stored; this is what ends them at once)
 * - every write takes the caller's Queryable, so the admin change and its audit event commit together
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { CLIENT_SECRET_PURPOSE, drawClientSecret, httpUrl, publicJwks } from '../clients/clients.ts';
import type { Queryable } from '../db/database.ts';
import { NotFoundError, parseInput, ValidationError } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';

/** The one scope an EHR system holds: ask for launches. */
export const EHR_LAUNCH_SCOPE = 'ehr-launch';
/** EHR system client ids start with it: the Client lookup asks this room only for these. */
export const EHR_SYSTEM_CLIENT_PREFIX = 'ehr-system-';

export const EHR_SYSTEM_AUTH_METHODS = ['private_key_jwt', 'client_secret_basic'] as const;
type AuthMethod = (typeof EHR_SYSTEM_AUTH_METHODS)[number];

const siteNum = z
  .string({ message: 'each site must be a site number (text)' })
  .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'a site number is 1–64 letters, digits, "_" or "-"' });
const sitesSchema = z
  .array(siteNum, { message: 'sites must be a list of Ocean site numbers' })
  .min(1, { message: 'sites must name at least one site (leave it out for every site)' })
  .max(500)
  .nullable();
const nameSchema = z
  .string({ message: 'name must be a string' })
  .trim()
  .min(1, { message: 'name is required' })
  .max(200);

export const createEhrSystemInput = z.strictObject({
  name: nameSchema,
  token_endpoint_auth_method: z.enum(EHR_SYSTEM_AUTH_METHODS, {
    message: `token_endpoint_auth_method must be one of ${EHR_SYSTEM_AUTH_METHODS.join(', ')}`,
  }),
  jwks: publicJwks.nullable().optional(),
  jwks_uri: httpUrl('jwks_uri').nullable().optional(),
  sites: sitesSchema.optional(),
});

export const updateEhrSystemInput = z.strictObject({
  name: nameSchema.optional(),
  jwks: publicJwks.nullable().optional(),
  jwks_uri: httpUrl('jwks_uri').nullable().optional(),
  sites: sitesSchema.optional(),
});

export interface EhrSystem {
  client_id: string;
  name: string;
  token_endpoint_auth_method: AuthMethod;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwks_uri: string | null;
  /** The Ocean sites it may launch; null: every site. */
  sites: string[] | null;
  credentials_issued_at: string;
  created_at: string;
  updated_at: string;
}

/** What the launch API needs to know of a caller. */
export interface EhrSystemRef {
  clientId: string;
  name: string;
  sites: string[] | null;
  /** Tokens issued (iat, seconds) before this no longer count. */
  issuedAfter: number;
}

interface Row {
  client_id: string;
  name: string;
  token_endpoint_auth_method: AuthMethod;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwks_uri: string | null;
  client_secret_hash: string | null;
  sites: string[] | null;
  credentials_issued_at: Date | string;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS =
  'client_id, name, token_endpoint_auth_method, jwks, jwks_uri, client_secret_hash, sites, credentials_issued_at, created_at, updated_at';
const iso = (d: Date | string) => new Date(d).toISOString();

function toSystem(r: Row): EhrSystem {
  return {
    client_id: r.client_id,
    name: r.name,
    token_endpoint_auth_method: r.token_endpoint_auth_method,
    jwks: r.jwks,
    jwks_uri: r.jwks_uri,
    sites: r.sites,
    credentials_issued_at: iso(r.credentials_issued_at),
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}

/** private_key_jwt needs exactly one of jwks and jwks_uri; a secret method takes neither. */
function checkKeys(method: AuthMethod, jwks: unknown, jwksUri: unknown): void {
  const issues: { path: string; message: string }[] = [];
  if (method === 'private_key_jwt') {
    if (!jwks && !jwksUri) issues.push({ path: 'jwks', message: 'private_key_jwt needs jwks or jwks_uri' });
    if (jwks && jwksUri) issues.push({ path: 'jwks', message: 'give jwks or jwks_uri, not both' });
  } else if (jwks || jwksUri) {
    issues.push({ path: 'jwks', message: 'client_secret_basic takes no jwks or jwks_uri' });
  }
  if (issues.length > 0) throw new ValidationError(issues);
}

const notFound = () => new NotFoundError('no such EHR system');

export class EhrSystems {
  constructor(
    private readonly db: Queryable,
    private readonly box: SecretBox,
    /** Lifetime of an EHR system's access token (EHR_SYSTEM_TOKEN_TTL). */
    private readonly tokenTtl: number,
  ) {}

  /**
   * Registers an EHR system; a drawn client_secret is returned this once. The client_id is drawn
   * (144 random bits) unless `options.clientId` fixes it (the demo's, which the example knows).
   */
  async create(
    q: Queryable,
    input: unknown,
    options: { clientId?: `${typeof EHR_SYSTEM_CLIENT_PREFIX}${string}` } = {},
  ): Promise<{ system: EhrSystem; client_secret?: string }> {
    const v = parseInput(createEhrSystemInput, input);
    checkKeys(v.token_endpoint_auth_method, v.jwks, v.jwks_uri);
    const clientId =
      options.clientId ?? `${EHR_SYSTEM_CLIENT_PREFIX}${randomBytes(18).toString('base64url')}`;
    const secret = v.token_endpoint_auth_method === 'client_secret_basic' ? drawClientSecret() : undefined;
    const { rows } = await q.query<Row>(
      `INSERT INTO ehr_systems (client_id, name, token_endpoint_auth_method, jwks, jwks_uri, client_secret_hash, sites)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) RETURNING ${COLUMNS}`,
      [
        clientId,
        v.name,
        v.token_endpoint_auth_method,
        v.jwks ? JSON.stringify(v.jwks) : null,
        v.jwks_uri ?? null,
        secret ? this.box.keyedHash(secret, CLIENT_SECRET_PURPOSE) : null,
        v.sites ?? null,
      ],
    );
    return { system: toSystem(rows[0]!), ...(secret ? { client_secret: secret } : {}) };
  }

  async list(q: Queryable = this.db): Promise<EhrSystem[]> {
    const { rows } = await q.query<Row>(`SELECT ${COLUMNS} FROM ehr_systems ORDER BY name, client_id`);
    return rows.map(toSystem);
  }

  async get(clientId: string, q: Queryable = this.db): Promise<EhrSystem> {
    const row = await this.#row(q, clientId);
    if (!row) throw notFound();
    return toSystem(row);
  }

  /** Name, sites and keys; new keys end the tokens issued under the old ones. */
  async update(q: Queryable, clientId: string, input: unknown): Promise<EhrSystem> {
    const v = parseInput(updateEhrSystemInput, input);
    const current = await this.#row(q, clientId, true);
    if (!current) throw notFound();
    const jwks = v.jwks === undefined ? current.jwks : v.jwks;
    const jwksUri = v.jwks_uri === undefined ? current.jwks_uri : v.jwks_uri;
    checkKeys(current.token_endpoint_auth_method, jwks, jwksUri);
    const keysChanged =
      JSON.stringify(jwks ?? null) !== JSON.stringify(current.jwks ?? null) || jwksUri !== current.jwks_uri;
    const { rows } = await q.query<Row>(
      `UPDATE ehr_systems
          SET name = $2, jwks = $3::jsonb, jwks_uri = $4, sites = $5, updated_at = now(),
              credentials_issued_at = CASE WHEN $6 THEN now() ELSE credentials_issued_at END
        WHERE client_id = $1 RETURNING ${COLUMNS}`,
      [
        clientId,
        v.name ?? current.name,
        jwks ? JSON.stringify(jwks) : null,
        jwksUri,
        v.sites === undefined ? current.sites : v.sites,
        keysChanged,
      ],
    );
    return toSystem(rows[0]!);
  }

  /** A new secret (client_secret_basic only), shown once; tokens issued before it stop counting. */
  async resetSecret(q: Queryable, clientId: string): Promise<string> {
    const current = await this.#row(q, clientId, true);
    if (!current) throw notFound();
    if (current.token_endpoint_auth_method !== 'client_secret_basic') {
      throw new ValidationError([
        {
          path: 'token_endpoint_auth_method',
          message: 'this EHR system signs client assertions: it has no secret',
        },
      ]);
    }
    const secret = drawClientSecret();
    await q.query(
      `UPDATE ehr_systems SET client_secret_hash = $2, credentials_issued_at = now(), updated_at = now()
        WHERE client_id = $1`,
      [clientId, this.box.keyedHash(secret, CLIENT_SECRET_PURPOSE)],
    );
    return secret;
  }

  /** Removes it; its tokens stop counting at once, and the launches it asked for that are unused go too. */
  async delete(q: Queryable, clientId: string): Promise<void> {
    const r = await q.query('DELETE FROM ehr_systems WHERE client_id = $1', [clientId]);
    if (r.rowCount === 0) throw notFound();
  }

  /** The caller behind a token's client_id, or undefined when it is not (or no longer) registered. */
  async byClient(clientId: string): Promise<EhrSystemRef | undefined> {
    if (!clientId.startsWith(EHR_SYSTEM_CLIENT_PREFIX)) return undefined;
    const { rows } = await this.db.query<{
      client_id: string;
      name: string;
      sites: string[] | null;
      issued_after: number | string;
    }>(
      `SELECT client_id, name, sites, floor(extract(epoch FROM credentials_issued_at))::bigint AS issued_after
         FROM ehr_systems WHERE client_id = $1`,
      [clientId],
      { prepare: true },
    );
    const r = rows[0];
    return r
      ? { clientId: r.client_id, name: r.name, sites: r.sites, issuedAfter: Number(r.issued_after) }
      : undefined;
  }

  /** oidc-provider metadata of an EHR system's client (the authorization server's Client lookup). */
  async clientMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    if (!clientId.startsWith(EHR_SYSTEM_CLIENT_PREFIX)) return undefined;
    const row = await this.#row(this.db, clientId);
    if (!row) return undefined;
    return {
      client_id: row.client_id,
      client_name: row.name,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: row.token_endpoint_auth_method,
      ...(row.client_secret_hash ? { client_secret: row.client_secret_hash } : {}),
      ...(row.jwks ? { jwks: row.jwks } : {}),
      ...(row.jwks_uri ? { jwks_uri: row.jwks_uri } : {}),
      // extraClientMetadata: what client_credentials may grant (src/oidc/provider.ts)
      allowed_scope: EHR_LAUNCH_SCOPE,
      refuse_other_scopes: true,
      access_token_ttl: this.tokenTtl,
    };
  }

  async #row(q: Queryable, clientId: string, lock = false): Promise<Row | undefined> {
    const { rows } = await q.query<Row>(
      `SELECT ${COLUMNS} FROM ehr_systems WHERE client_id = $1${lock ? ' FOR UPDATE' : ''}`,
      [clientId],
      { prepare: !lock },
    );
    return rows[0];
  }
}
