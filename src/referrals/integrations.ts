/*
 * Inbound integrations: one per Ocean site, the credentials Ocean uses to post its eReferral
 * messages to us (CONTRACT §3.7), on the `ocean_integrations` table.
 * - username/password (HTTP Basic) and client_id/client_secret (client_credentials at our token
 *   endpoint) are drawn here with ≥128 random bits, shown once, stored as keyed hashes
 * - rotation draws all four anew; a Bearer token issued before the rotation stops working
 *   (credentials_issued_at), as do the old Basic credentials, at once
 * - Ocean's outbound OAuth2 credentials (to fetch letters) are optional; the secret is sealed
 *   with SECRETS_KEY and never returned
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database, Queryable } from '../db/database.ts';
import { sqlState, UNIQUE_VIOLATION } from '../db/database.ts';
import { ConflictError, NotFoundError, parseInput } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';

/**
 * The keyed-hash purpose of client secrets: the authorization server hashes a presented secret
 * under it before comparing (src/oidc/provider.ts, CLIENT_SECRET_PURPOSE). Kept equal by
 * test/referrals/integrations.test.ts, which gets a token with a drawn secret.
 */
export const INTEGRATION_CLIENT_SECRET_PURPOSE = 'client-secret';
const PASSWORD_PURPOSE = 'ocean-integration-password';
const outboundPurpose = (id: string) => `ocean-outbound:${id}`;

/** The one scope an integration's client may hold: create (post) messages, nothing to read. */
export const MESSAGE_SCOPE = 'system/MessageHeader.c';
/** Integration client ids start with it: the Client adapter looks only these up here. */
export const INTEGRATION_CLIENT_PREFIX = 'ocean-messages-';

const draw = (bytes: number) => randomBytes(bytes).toString('base64url');

const httpsUrl = z
  .string({ message: 'token_url must be a string' })
  .max(2000)
  .refine(
    (v) => {
      const u = URL.parse(v);
      return !!u && (u.protocol === 'https:' || u.protocol === 'http:') && !u.hash;
    },
    { message: 'token_url must be an absolute http(s) URL' },
  );

export const outboundInput = z.strictObject({
  token_url: httpsUrl,
  client_id: z.string({ message: 'client_id must be a string' }).trim().min(1).max(500),
  client_secret: z.string({ message: 'client_secret must be a string' }).min(1).max(4000),
});

export const createIntegrationInput = z.strictObject({
  site_num: z
    .string({ message: 'site_num must be a string' })
    .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'site_num must be 1–64 letters, digits, "_" or "-"' }),
  ocean_oauth: outboundInput.nullable().optional(),
});

export interface Integration {
  id: string;
  site_num: string;
  endpoint: string;
  username: string;
  client_id: string;
  credentials_issued_at: string;
  /** Ocean's outbound OAuth2 client (letters), without its secret. */
  ocean_oauth: { token_url: string; client_id: string } | null;
  created_at: string;
  updated_at: string;
}

/** The four inbound secrets, shown once (creation and rotation). */
export interface IntegrationCredentials {
  username: string;
  password: string;
  client_id: string;
  client_secret: string;
}

interface Row {
  id: string;
  site_num: string;
  username: string;
  password_hash: string;
  client_id: string;
  client_secret_hash: string;
  credentials_issued_at: Date | string;
  outbound_token_url: string | null;
  outbound_client_id: string | null;
  outbound_secret_encrypted: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const iso = (d: Date | string) => new Date(d).toISOString();

/** Which integration a message came through, and whether its site's letters can be fetched. */
export interface IntegrationRef {
  id: string;
  siteNum: string;
  /** Ocean's outbound OAuth2 credentials are set. */
  fetchesLetters: boolean;
}

/** Ocean's outbound credentials, opened for the letter job. */
export interface OutboundCredentials {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
}

export class Integrations {
  readonly endpoint: string;

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    fhirBaseUrl: string,
  ) {
    this.endpoint = `${fhirBaseUrl}/$process-message`;
  }

  #json(row: Row): Integration {
    return {
      id: row.id,
      site_num: row.site_num,
      endpoint: this.endpoint,
      username: row.username,
      client_id: row.client_id,
      credentials_issued_at: iso(row.credentials_issued_at),
      ocean_oauth:
        row.outbound_token_url && row.outbound_client_id
          ? { token_url: row.outbound_token_url, client_id: row.outbound_client_id }
          : null,
      created_at: iso(row.created_at),
      updated_at: iso(row.updated_at),
    };
  }

  #drawCredentials(): { credentials: IntegrationCredentials; hashes: [string, string, string, string] } {
    const credentials = {
      username: `ocean-${draw(12)}`,
      password: draw(32),
      client_id: `${INTEGRATION_CLIENT_PREFIX}${draw(18)}`,
      client_secret: draw(32),
    };
    return {
      credentials,
      hashes: [
        credentials.username,
        this.box.keyedHash(credentials.password, PASSWORD_PURPOSE),
        credentials.client_id,
        this.box.keyedHash(credentials.client_secret, INTEGRATION_CLIENT_SECRET_PURPOSE),
      ],
    };
  }

  #seal(id: string, outbound: z.output<typeof outboundInput> | null | undefined): (string | null)[] {
    if (!outbound) return [null, null, null];
    return [
      outbound.token_url,
      outbound.client_id,
      this.box.encrypt(outbound.client_secret, outboundPurpose(id)),
    ];
  }

  async create(input: unknown): Promise<{ integration: Integration; credentials: IntegrationCredentials }> {
    const v = parseInput(createIntegrationInput, input);
    const id = randomUUID();
    const { credentials, hashes } = this.#drawCredentials();
    try {
      const { rows } = await this.db.query<Row>(
        `INSERT INTO ocean_integrations (id, site_num, username, password_hash, client_id, client_secret_hash,
                                         outbound_token_url, outbound_client_id, outbound_secret_encrypted)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
        [id, v.site_num, ...hashes, ...this.#seal(id, v.ocean_oauth)],
      );
      return { integration: this.#json(rows[0]!), credentials };
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION)
        throw new ConflictError(`site ${v.site_num} already has an Ocean integration`);
      throw err;
    }
  }

  async list(): Promise<Integration[]> {
    const { rows } = await this.db.query<Row>('SELECT * FROM ocean_integrations ORDER BY site_num');
    return rows.map((r) => this.#json(r));
  }

  async get(id: string): Promise<Integration> {
    const { rows } = await this.db.query<Row>('SELECT * FROM ocean_integrations WHERE id = $1', [id]);
    if (!rows[0]) throw new NotFoundError('no such Ocean integration');
    return this.#json(rows[0]);
  }

  /** Deletes the integration: its credentials stop working at once; filed referrals stay in the charts. */
  async delete(id: string): Promise<void> {
    const r = await this.db.query('DELETE FROM ocean_integrations WHERE id = $1', [id]);
    if (r.rowCount === 0) throw new NotFoundError('no such Ocean integration');
  }

  /** New inbound credentials; the old ones, and Bearer tokens issued under them, stop working now. */
  async rotate(id: string): Promise<{ integration: Integration; credentials: IntegrationCredentials }> {
    const { credentials, hashes } = this.#drawCredentials();
    // The client_id is drawn anew too: tokens of the old client name a client that no longer exists.
    const { rows } = await this.db.query<Row>(
      `UPDATE ocean_integrations
          SET username = $2, password_hash = $3, client_id = $4, client_secret_hash = $5,
              credentials_issued_at = date_trunc('second', now()),
              updated_at = now()
        WHERE id = $1 RETURNING *`,
      [id, ...hashes],
    );
    if (!rows[0]) throw new NotFoundError('no such Ocean integration');
    return { integration: this.#json(rows[0]), credentials };
  }

  /** Sets (or with null, removes) Ocean's outbound OAuth2 credentials for letters. */
  async setOutbound(id: string, input: unknown): Promise<Integration> {
    const v = input === null ? null : parseInput(outboundInput, input);
    const { rows } = await this.db.query<Row>(
      `UPDATE ocean_integrations
          SET outbound_token_url = $2, outbound_client_id = $3, outbound_secret_encrypted = $4, updated_at = now()
        WHERE id = $1 RETURNING *`,
      [id, ...this.#seal(id, v)],
    );
    if (!rows[0]) throw new NotFoundError('no such Ocean integration');
    return this.#json(rows[0]);
  }

  /** Ocean's outbound credentials of an integration, opened; undefined when it has none. */
  async outbound(q: Queryable, id: string): Promise<OutboundCredentials | undefined> {
    const { rows } = await q.query<Row>('SELECT * FROM ocean_integrations WHERE id = $1', [id]);
    const row = rows[0];
    if (!row?.outbound_token_url || !row.outbound_client_id || !row.outbound_secret_encrypted)
      return undefined;
    return {
      tokenUrl: row.outbound_token_url,
      clientId: row.outbound_client_id,
      clientSecret: this.box.decryptText(row.outbound_secret_encrypted, outboundPurpose(id)),
    };
  }

  /** The integration whose Basic credentials these are, or undefined. */
  async byBasic(username: string, password: string): Promise<IntegrationRef | undefined> {
    const { rows } = await this.db.query<{ id: string; site_num: string; fetches: boolean }>(
      `SELECT id, site_num, outbound_token_url IS NOT NULL AS fetches
         FROM ocean_integrations WHERE username = $1 AND password_hash = $2`,
      [username, this.box.keyedHash(password, PASSWORD_PURPOSE)],
      { prepare: true },
    );
    const row = rows[0];
    return row ? { id: row.id, siteNum: row.site_num, fetchesLetters: row.fetches } : undefined;
  }

  /** The integration of an OAuth client, with when its credentials were last drawn (epoch seconds). */
  async byClient(clientId: string): Promise<(IntegrationRef & { issuedAfter: number }) | undefined> {
    const { rows } = await this.db.query<{ id: string; site_num: string; fetches: boolean; issued: unknown }>(
      `SELECT id, site_num, outbound_token_url IS NOT NULL AS fetches,
              floor(extract(epoch FROM credentials_issued_at)) AS issued
         FROM ocean_integrations WHERE client_id = $1`,
      [clientId],
      { prepare: true },
    );
    const row = rows[0];
    return row
      ? { id: row.id, siteNum: row.site_num, fetchesLetters: row.fetches, issuedAfter: Number(row.issued) }
      : undefined;
  }

  /** An integration as the filing needs it (an administrator's match). */
  async ref(q: Queryable, id: string): Promise<IntegrationRef | undefined> {
    const { rows } = await q.query<{ id: string; site_num: string; fetches: boolean }>(
      'SELECT id, site_num, outbound_token_url IS NOT NULL AS fetches FROM ocean_integrations WHERE id = $1',
      [id],
    );
    const row = rows[0];
    return row ? { id: row.id, siteNum: row.site_num, fetchesLetters: row.fetches } : undefined;
  }
}

/**
 * oidc-provider client metadata of an integration's OAuth client (the adapter's Client model):
 * client_credentials only, the message scope only, the secret as its keyed hash.
 */
export async function integrationClientMetadata(
  q: Queryable,
  clientId: string,
): Promise<Record<string, unknown> | undefined> {
  if (!clientId.startsWith(INTEGRATION_CLIENT_PREFIX)) return undefined;
  const { rows } = await q.query<{ client_id: string; client_secret_hash: string; site_num: string }>(
    'SELECT client_id, client_secret_hash, site_num FROM ocean_integrations WHERE client_id = $1',
    [clientId],
    { prepare: true },
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    client_id: row.client_id,
    client_secret: row.client_secret_hash,
    client_name: `Ocean eReferral messages (site ${row.site_num})`,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    // extraClientMetadata: what client_credentials may grant (src/oidc/provider.ts)
    allowed_scope: MESSAGE_SCOPE,
  };
}
