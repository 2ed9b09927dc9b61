/*
 * Signing keys are data, rotation is a procedure (CONTRACT §3.1, docs/ARCHITECTURE.md rule 7).
 * - per algorithm (RS256, ES256) exactly one `active` key signs; one `next` key is already
 *   published so relying parties have it cached before it signs anything
 * - rotate: active → retired, next → active, a fresh next is generated; retired keys stay in
 *   the JWKS until every token they signed has expired (publish_until), then drop out
 * - private keys are stored encrypted with SECRETS_KEY; every instance reads the same rows,
 *   so instances sharing DATABASE_URL and SECRETS_KEY publish the same JWKS
 * - each instance re-reads the table every KEY_REFRESH_INTERVAL seconds, so a rotation made
 *   through one instance reaches the others within that time
 */
import { EventEmitter } from 'node:events';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database, Queryable } from '../db/database.ts';
import type { SecretBox } from './secret-box.ts';

export const SIGNING_ALGS = ['RS256', 'ES256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
export type KeyState = 'next' | 'active' | 'retired';

export interface SigningKeyInfo {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  publishUntil: string | null;
}

interface LoadedKey extends SigningKeyInfo {
  publicJwk: JWK;
  privateJwk: JWK;
}

interface KeyRow {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  public_jwk: JWK;
  private_jwk_encrypted: string;
  created_at: Date | string;
  activated_at: Date | string | null;
  retired_at: Date | string | null;
  publish_until: Date | string | null;
}

// Serialises key generation and rotation across instances ("smart-ocean-launch keys").
const KEYS_LOCK_KEY = 7_140_260_312;

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

async function generateSigningKey(
  alg: SigningAlg,
): Promise<{ kid: string; publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } =
    alg === 'RS256'
      ? await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })
      : await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const privateJwk = await exportJWK(privateKey);
  // RFC 7638 thumbprint: unique per key and stable, so every instance derives the same kid.
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const meta = { kid, alg, use: 'sig' };
  return { kid, publicJwk: { ...publicJwk, ...meta }, privateJwk: { ...privateJwk, ...meta } };
}

export interface SigningKeysOptions {
  /** Longest lifetime of anything signed (access token, id_token): how long a retired key stays published. */
  maxTokenLifetimeSeconds: number;
  refreshIntervalSeconds: number;
  onError?: (err: unknown) => void;
}

export class SigningKeys extends EventEmitter {
  #keys: LoadedKey[] = [];
  #version = '';
  #jwkSet: ReturnType<typeof createLocalJWKSet> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    private readonly options: SigningKeysOptions,
  ) {
    super();
  }

  /** First start: makes sure an active and a next key exist per algorithm, then loads them. */
  async init(): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK_KEY]);
      for (const alg of SIGNING_ALGS) {
        const { rows } = await tx.query<{ state: KeyState }>(
          `SELECT state FROM signing_keys WHERE alg = $1 AND state IN ('active', 'next')`,
          [alg],
        );
        if (!rows.some((r) => r.state === 'active')) await this.#insert(tx, alg, 'active');
        if (!rows.some((r) => r.state === 'next')) await this.#insert(tx, alg, 'next');
      }
    });
    await this.reload();
  }

  /** Re-reads keys every refresh interval; a failed read keeps the keys already loaded. */
  startRefreshing(): void {
    this.stopRefreshing();
    this.#timer = setInterval(() => {
      this.reload().catch((err) => this.options.onError?.(err));
    }, this.options.refreshIntervalSeconds * 1000);
    this.#timer.unref();
  }

  stopRefreshing(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Loads the published keys; emits 'change' when the set of kids or their states changed. */
  async reload(): Promise<void> {
    const { rows } = await this.db.query<KeyRow>(
      `SELECT kid, alg, state, public_jwk, private_jwk_encrypted, created_at, activated_at, retired_at, publish_until
         FROM signing_keys
        WHERE state IN ('active', 'next') OR (state = 'retired' AND publish_until > now())
        ORDER BY alg, CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC`,
    );
    const version = rows.map((r) => `${r.kid}:${r.state}`).join(',');
    if (version === this.#version) return;
    this.#keys = rows.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      state: r.state,
      createdAt: iso(r.created_at)!,
      activatedAt: iso(r.activated_at),
      retiredAt: iso(r.retired_at),
      publishUntil: iso(r.publish_until),
      publicJwk: r.public_jwk,
      privateJwk: JSON.parse(this.box.decryptText(r.private_jwk_encrypted, `signing-key:${r.kid}`)) as JWK,
    }));
    this.#version = version;
    this.#jwkSet = createLocalJWKSet(this.publicJwks());
    this.emit('change', this.#version);
  }

  /** Identifies the loaded key set; changes whenever a key is added, promoted or dropped. */
  get version(): string {
    return this.#version;
  }

  /** The JWKS every instance publishes: active, next and still-published retired keys; public parts only. */
  publicJwks(): { keys: JWK[] } {
    return { keys: this.#keys.map((k) => ({ ...k.publicJwk })) };
  }

  /** Private JWK of the key that signs for alg now. */
  activePrivateJwk(alg: SigningAlg): JWK {
    const key = this.#keys.find((k) => k.alg === alg && k.state === 'active');
    if (!key) throw new Error(`no active ${alg} signing key loaded`);
    return { ...key.privateJwk };
  }

  /** Private JWKs of every published key, active ones first (signers pick the first match). */
  privateJwks(): { keys: JWK[] } {
    const order = { active: 0, next: 1, retired: 2 } as const;
    return {
      keys: [...this.#keys].sort((a, b) => order[a.state] - order[b.state]).map((k) => ({ ...k.privateJwk })),
    };
  }

  /** Key resolver for jose.jwtVerify over the published JWKS (what a relying party would use). */
  get verificationKeys(): ReturnType<typeof createLocalJWKSet> {
    if (!this.#jwkSet) throw new Error('signing keys not loaded');
    return this.#jwkSet;
  }

  /** Metadata for the admin API: never private parts. */
  async list(): Promise<SigningKeyInfo[]> {
    const { rows } = await this.db.query<KeyRow>(
      `SELECT kid, alg, state, created_at, activated_at, retired_at, publish_until
         FROM signing_keys ORDER BY created_at DESC`,
    );
    return rows.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      state: r.state,
      createdAt: iso(r.created_at)!,
      activatedAt: iso(r.activated_at),
      retiredAt: iso(r.retired_at),
      publishUntil: iso(r.publish_until),
    }));
  }

  /**
   * Rotation: per algorithm the published `next` key starts signing, the active one retires and
   * stays published until its last token expires, and a new `next` key is generated.
   * Runs in one transaction under the keys lock: two concurrent rotations happen one after the other.
   */
  async rotate(): Promise<SigningKeyInfo[]> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK_KEY]);
      // Margin of one refresh interval: other instances may sign with the old key until they reload.
      const publishFor = this.options.maxTokenLifetimeSeconds + this.options.refreshIntervalSeconds + 60;
      for (const alg of SIGNING_ALGS) {
        await tx.query(
          `UPDATE signing_keys
              SET state = 'retired', retired_at = now(), publish_until = now() + make_interval(secs => $2)
            WHERE alg = $1 AND state = 'active'`,
          [alg, publishFor],
        );
        const promoted = await tx.query(
          `UPDATE signing_keys SET state = 'active', activated_at = now() WHERE alg = $1 AND state = 'next'`,
          [alg],
        );
        if (promoted.rowCount === 0) await this.#insert(tx, alg, 'active');
        await this.#insert(tx, alg, 'next');
      }
      await tx.query(
        `DELETE FROM signing_keys WHERE state = 'retired' AND publish_until < now() - interval '30 days'`,
      );
    });
    await this.reload();
    return (await this.list()).filter(
      (k) => k.state !== 'retired' || (k.publishUntil && k.publishUntil > new Date().toISOString()),
    );
  }

  async #insert(tx: Queryable, alg: SigningAlg, state: 'active' | 'next'): Promise<void> {
    const key = await generateSigningKey(alg);
    await tx.query(
      `INSERT INTO signing_keys (kid, alg, state, public_jwk, private_jwk_encrypted, activated_at)
       VALUES ($1, $2, $3, $4, $5, CASE WHEN $3 = 'active' THEN now() END)`,
      [
        key.kid,
        alg,
        state,
        JSON.stringify(key.publicJwk),
        this.box.encrypt(JSON.stringify(key.privateJwk), `signing-key:${key.kid}`),
      ],
    );
  }
}
