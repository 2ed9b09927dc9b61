/*
 * A fresh, empty database per test file, on the driver the run was asked for:
 * - DATABASE_URL set → a new database on that PostgreSQL server, dropped afterwards
 * - otherwise → an in-memory PGlite
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Database } from '../../src/db/database.ts';
import { createPgliteDatabase } from '../../src/db/pglite.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';

export const usingPostgres = Boolean(process.env.DATABASE_URL);

export interface TestDatabase {
  /** Connection URL of the fresh database (PostgreSQL only). */
  url: string | undefined;
  db: Database;
  /** Another, independent connection pool to the same database (a second instance). */
  connectAnother(): Promise<Database>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  if (!usingPostgres) {
    const db = await createPgliteDatabase('memory://');
    return {
      url: undefined,
      db,
      async connectAnother() {
        return db;
      },
      async drop() {
        await db.close();
      },
    };
  }
  const adminUrl = process.env.DATABASE_URL!;
  const name = `t_${process.pid}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const others: Database[] = [];
  const db = createPostgresDatabase(url.toString(), { max: 5 });
  return {
    url: url.toString(),
    db,
    async connectAnother() {
      const other = createPostgresDatabase(url.toString(), { max: 5 });
      others.push(other);
      return other;
    },
    async drop() {
      for (const d of [db, ...others]) await d.close().catch(() => {});
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** One statement a database was asked to run: its SQL and parameters. */
export interface Statement {
  sql: string;
  params: readonly unknown[];
}

/**
 * The same database, recording every statement sent through it: what a test counts to show how
 * many round trips a request makes (the statements, not their timing).
 */
export function countingStatements(db: Database): { db: Database; statements: Statement[] } {
  const statements: Statement[] = [];
  const counting = new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return (sql: string, params?: readonly unknown[], options?: object) => {
          statements.push({ sql, params: params ?? [] });
          return target.query(sql, params, options);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as Database;
  return { db: counting, statements };
}
