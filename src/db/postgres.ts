/*
 * The `pg` driver behind the Database interface.
 * - one pool per instance, sized by DATABASE_POOL_MAX
 * - connection failures surface as DatabaseUnavailableError so callers answer 503, not 500;
 *   values the server cannot take (SQLSTATE class 22) as InvalidInputError, 400
 * - a client's error (server restart), idle or in a transaction, is logged by the pool owner and
 *   never crashes the process
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import {
  asInputError,
  type Database,
  DatabaseUnavailableError,
  type Queryable,
  type QueryOptions,
  type QueryResult,
  type Row,
} from './database.ts';

// Keep bigint (int8) as JS numbers where safe: counts and versions never approach 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);

function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e?.code && CONNECTION_ERRORS.has(e.code)) return true;
  return /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    e?.message ?? '',
  );
}

const statementNames = new Map<string, string>();

/** pg's query config: a named statement (the name derived from the text) when asked to prepare. */
function queryConfig(sql: string, params: readonly unknown[] | undefined, options?: QueryOptions) {
  const values = params as unknown[] | undefined;
  if (!options?.prepare) return { text: sql, values };
  let name = statementNames.get(sql);
  if (!name) {
    name = `s_${createHash('sha256').update(sql).digest('base64url').slice(0, 22)}`;
    statementNames.set(sql, name);
  }
  return { name, text: sql, values };
}

function wrap(err: unknown): unknown {
  return isConnectionError(err) ? new DatabaseUnavailableError(err) : asInputError(err);
}

export function createPostgresDatabase(
  url: string,
  options: { max: number; onError?: (err: Error) => void },
): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    application_name: 'smart-ocean-launch',
  });
  pool.on('error', (err) => options.onError?.(err));

  /** The pool (a connection per statement) or one checked-out client (a transaction). */
  const queryable = (target: pg.Pool | pg.PoolClient): Queryable => ({
    async query<R = Row>(
      sql: string,
      params?: readonly unknown[],
      options?: QueryOptions,
    ): Promise<QueryResult<R>> {
      try {
        const r = await target.query(queryConfig(sql, params, options));
        return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
      } catch (err) {
        throw wrap(err);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await target.query(sql);
      } catch (err) {
        throw wrap(err);
      }
    },
  });
  const top = queryable(pool);

  return {
    kind: 'postgres',
    query: top.query,
    exec: top.exec,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw wrap(err);
      }
      let broken = false;
      // A checked-out client is not watched by the pool: without a listener, its connection dying
      // mid-transaction (server stopped, network cut) is an unhandled 'error' event that ends the
      // process. The failing query rejects on its own; this only keeps the process alive.
      const onClientError = (err: Error) => {
        broken = true;
        options.onError?.(err);
      };
      client.on('error', onClientError);
      try {
        await client.query('BEGIN');
        const result = await fn(queryable(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true; // the connection died mid-transaction: do not return it to the pool
        }
        throw wrap(err);
      } finally {
        client.off('error', onClientError);
        client.release(broken);
      }
    },
    async ping(): Promise<void> {
      await this.query('SELECT 1');
    },
    stats() {
      return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
    },
    async close(): Promise<void> {
      await pool.end();
    },
  };
}
