/*
 * The embedded PGlite driver behind the Database interface.
 * - a real PostgreSQL (WebAssembly) in this process: one connection, so transactions are
 *   serialised by PGlite's own mutex; plain queries wait for an open transaction to finish
 * - DATA_DIR on disk, or "memory://" for tests
 * - shared_buffers is small (EMBEDDED_SHARED_BUFFERS, its default in config-settings.ts):
 *   PostgreSQL zeroes the whole buffer pool at every start, and in WebAssembly that memset was
 *   ≈ 0.15 s of 128MB
 * - values the server cannot take (SQLSTATE class 22) surface as InvalidInputError, 400
 */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { settings } from '../config-settings.ts';
import { asInputError, type Database, type Queryable, type QueryResult, type Row } from './database.ts';

export async function createPgliteDatabase(
  dataDir: string,
  options: { sharedBuffers?: string } = {},
): Promise<Database> {
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir.startsWith('memory://') ? undefined : dataDir, {
    startParams: [
      ...PGlite.defaultStartParams,
      '-c',
      `shared_buffers=${options.sharedBuffers ?? settings.EMBEDDED_SHARED_BUFFERS.default}`,
    ],
  });
  let closed = false;

  const asQueryable = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    async query<R = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      try {
        const r = await q.query<R>(sql, params as unknown[] | undefined);
        return { rows: r.rows, rowCount: r.affectedRows || r.rows.length };
      } catch (err) {
        throw asInputError(err);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await q.exec(sql);
      } catch (err) {
        throw asInputError(err);
      }
    },
  });
  const top = asQueryable(db);

  return {
    kind: 'pglite',
    query: top.query,
    exec: top.exec,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(asQueryable(tx)));
    },
    async ping(): Promise<void> {
      await db.query('SELECT 1');
    },
    stats() {
      return { total: 1, idle: 1, waiting: 0 };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}
