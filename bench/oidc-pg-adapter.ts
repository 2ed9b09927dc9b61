/*
 * The launch bench's durable floor: oidc-provider's storage in PostgreSQL, as plainly as it can be.
 * - what any oidc-provider that survives a restart and runs on more than one instance must do at
 *   least: every model it saves (Session, Interaction, Grant, AuthorizationCode, AccessToken,
 *   RefreshToken) is one row written in its own statement, every lookup one statement — named
 *   (prepared once per connection), as the product's are
 * - one table keyed by (model, id), the payload as jsonb, indexes on grant and uid for
 *   revokeByGrantId / findByUid — the shape of the adapters in oidc-provider's own examples, and
 *   on purpose the row shape of the product's oidc_models (src/db/migrations/010_oidc_state.sql),
 *   so the comparison isolates what the product does beyond storing the provider's state; kept
 *   apart from the product's code and migrations so the floor runs no product code at all
 * - no cache, no audit, no launch context: the product's extra statements are what the bench's
 *   "product ÷ durable floor" ratio shows
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import pg from 'pg';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS oidc_floor (
    model text NOT NULL,
    id text NOT NULL,
    payload jsonb NOT NULL,
    grant_id text,
    uid text,
    user_code text,
    expires_at timestamptz,
    consumed_at timestamptz,
    PRIMARY KEY (model, id)
  );
  CREATE INDEX IF NOT EXISTS oidc_floor_grant ON oidc_floor (grant_id);
  CREATE INDEX IF NOT EXISTS oidc_floor_uid ON oidc_floor (uid);
`;

/** An oidc-provider `adapter` option storing every model in the PostgreSQL database at url. */
export async function pgAdapter(url: string): Promise<new (model: string) => Adapter> {
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  await pool.query(SCHEMA);
  // Named statements, parsed once per connection, as the product's own (`prepare: true`).
  const run = (name: string, text: string, values: unknown[]) => pool.query({ name, text, values });
  const live = (r: { payload: AdapterPayload; consumed_at: Date | null } | undefined) =>
    r
      ? { ...r.payload, ...(r.consumed_at ? { consumed: Math.floor(r.consumed_at.getTime() / 1000) } : {}) }
      : undefined;
  const findWhere = async (model: string, column: 'id' | 'uid' | 'user_code', value: string) =>
    live(
      (
        await run(
          `floor_find_${column}`,
          `SELECT payload, consumed_at FROM oidc_floor
            WHERE model = $1 AND ${column} = $2 AND (expires_at IS NULL OR expires_at > now())`,
          [model, value],
        )
      ).rows[0],
    );

  return class PgAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      await run(
        'floor_upsert',
        `INSERT INTO oidc_floor (model, id, payload, grant_id, uid, user_code, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::int > 0 THEN now() + make_interval(secs => $7::int) END)
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at`,
        [
          this.model,
          id,
          payload,
          payload.grantId ?? null,
          payload.uid ?? null,
          payload.userCode ?? null,
          expiresIn ?? 0,
        ],
      );
    }
    find(id: string) {
      return findWhere(this.model, 'id', id);
    }
    findByUid(uid: string) {
      return findWhere(this.model, 'uid', uid);
    }
    findByUserCode(userCode: string) {
      return findWhere(this.model, 'user_code', userCode);
    }
    async consume(id: string): Promise<void> {
      await run('floor_consume', 'UPDATE oidc_floor SET consumed_at = now() WHERE model = $1 AND id = $2', [
        this.model,
        id,
      ]);
    }
    async destroy(id: string): Promise<void> {
      await run('floor_destroy', 'DELETE FROM oidc_floor WHERE model = $1 AND id = $2', [this.model, id]);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      await run('floor_revoke', 'DELETE FROM oidc_floor WHERE grant_id = $1', [grantId]);
    }
  };
}
