/*
 * oidc-provider's storage adapter on PostgreSQL (both drivers): every model in `oidc_models`.
 * - rows carry their expiry; an expired row is never returned, and purgeExpired() deletes them
 * - consume() marks a code (or other single-use artefact) used; oidc-provider sees `consumed`
 *   on the next find and revokes the whole grant on a replay (RFC 6749 §4.1.2)
 * - revokeByGrantId() removes every artefact of a grant in one statement
 * - the Client model is read from the `clients` table (src/clients/clients.ts); clients are
 *   never written through the adapter (no dynamic registration)
 * - a client assertion's jti (model ReplayDetection) is inserted only when no live row holds it:
 *   two instances checking one replayed assertion at once cannot both accept it
 * Nothing lives in process memory: a code issued by one instance is redeemed at another.
 */
import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';
import { providerClientMetadata } from '../clients/clients.ts';
import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';

interface ModelRow {
  payload: AdapterPayload;
  consumed_at: Date | string | null;
}

/** Client metadata of machine clients another room owns (Ocean's message integrations), by client_id. */
export type MachineClients = (clientId: string) => Promise<Record<string, unknown> | undefined>;

/** Builds the adapter class oidc-provider instantiates once per model name. */
export function postgresAdapter(
  ctx: AppContext,
  machineClients: MachineClients = async () => undefined,
): new (
  model: string,
) => Adapter {
  const { db } = ctx;

  const hydrate = (row: ModelRow | undefined): AdapterPayload | undefined => {
    if (!row) return undefined;
    return row.consumed_at
      ? { ...row.payload, consumed: Math.floor(new Date(row.consumed_at).getTime() / 1000) }
      : row.payload;
  };

  return class PostgresAdapter implements Adapter {
    constructor(readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.model === 'ReplayDetection') {
        // oidc-provider asks find() first, then saves: the insert decides a race between instances.
        const r = await db.query(
          `INSERT INTO oidc_models (model, id, payload, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4::int))
           ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at
            WHERE oidc_models.expires_at <= now()`,
          [this.model, id, JSON.stringify(payload), Math.max(1, Math.ceil(expiresIn))],
          { prepare: true },
        );
        if (r.rowCount === 0)
          throw new errors.InvalidClientAuth('client assertion tokens must only be used once');
        return;
      }
      await db.query(
        `INSERT INTO oidc_models (model, id, payload, grant_id, uid, user_code, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::int > 0 THEN now() + make_interval(secs => $7::int) END)
         ON CONFLICT (model, id) DO UPDATE
           SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, uid = EXCLUDED.uid,
               user_code = EXCLUDED.user_code, expires_at = EXCLUDED.expires_at`,
        [
          this.model,
          id,
          JSON.stringify(payload),
          payload.grantId ?? null,
          payload.uid ?? null,
          payload.userCode ?? null,
          Number.isFinite(expiresIn) ? Math.max(0, Math.ceil(expiresIn)) : 0,
        ],
        { prepare: true },
      );
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client')
        // Ocean's message integrations are clients too (client_credentials only, src/referrals/).
        return ((await providerClientMetadata(ctx, id)) ?? (await machineClients(id))) as
          | AdapterPayload
          | undefined;
      const { rows } = await db.query<ModelRow>(
        `SELECT payload, consumed_at FROM oidc_models
          WHERE model = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())`,
        [this.model, id],
        { prepare: true },
      );
      return hydrate(rows[0]);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const { rows } = await db.query<ModelRow>(
        `SELECT payload, consumed_at FROM oidc_models
          WHERE model = $1 AND user_code = $2 AND (expires_at IS NULL OR expires_at > now())`,
        [this.model, userCode],
      );
      return hydrate(rows[0]);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const { rows } = await db.query<ModelRow>(
        `SELECT payload, consumed_at FROM oidc_models
          WHERE model = $1 AND uid = $2 AND (expires_at IS NULL OR expires_at > now())`,
        [this.model, uid],
        { prepare: true },
      );
      return hydrate(rows[0]);
    }

    async consume(id: string): Promise<void> {
      await db.query(
        'UPDATE oidc_models SET consumed_at = now() WHERE model = $1 AND id = $2 AND consumed_at IS NULL',
        [this.model, id],
        { prepare: true },
      );
    }

    async destroy(id: string): Promise<void> {
      await db.query('DELETE FROM oidc_models WHERE model = $1 AND id = $2', [this.model, id], {
        prepare: true,
      });
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      // Every model of the grant, not only this one: the grant's codes, tokens and access-token references.
      await db.query('DELETE FROM oidc_models WHERE grant_id = $1', [grantId]);
    }
  };
}

/** Deletes expired rows; run in the background by the oidc capability. */
export async function purgeExpiredModels(ctx: AppContext): Promise<number> {
  const r = await ctx.db.query('DELETE FROM oidc_models WHERE expires_at < now()');
  return r.rowCount;
}

/** Ends everything issued to a client (grants, codes, tokens, sessions' entries), in the caller's transaction. */
export async function forgetClient(q: Queryable, clientId: string): Promise<void> {
  await q.query(`DELETE FROM oidc_models WHERE payload->>'clientId' = $1`, [clientId]);
}

/** SQL: whether the grant named by an expression still exists, for another room's statement. */
export const grantLivesSql = (grantIdExpr: string): string =>
  `EXISTS (SELECT 1 FROM oidc_models m WHERE m.model = 'Grant' AND m.id = ${grantIdExpr})`;
