/*
 * Numbered SQL migrations under src/db/migrations, applied at start.
 * - each migration runs in its own transaction and is recorded in schema_migrations
 * - a transaction-scoped advisory lock serialises instances starting at once on one server;
 *   the second one waits, then sees the migration recorded and skips it
 * - a recorded migration whose file changed is refused (edit by adding a new one)
 * - the usual start has nothing to apply: the recorded migrations are read once, and only a
 *   pending one costs transactions and the lock (the per-migration round trips were ≈ 0.1 s of
 *   an embedded start); recorded rows are never removed, so what is recorded stays done
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { MIGRATIONS_DIR } from '../paths.ts';
import type { Database } from './database.ts';

// Arbitrary constant shared by every instance: "smart-ocean-launch migrations".
const MIGRATION_LOCK_KEY = 7_140_260_311;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3,}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(`${dir}/${file}`, 'utf8');
      return {
        version: Number(file.slice(0, file.indexOf('_'))),
        name: file,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

const changed = (m: Migration) =>
  new Error(`migration ${m.name} was changed after it was applied; add a new migration instead`);

/** version → checksum of the recorded migrations; empty before the first migration. */
async function recorded(db: Database): Promise<Map<number, string>> {
  const { rows } = await db.query<{ present: boolean }>(
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
  );
  if (!rows[0]?.present) return new Map();
  const r = await db.query<{ version: number; checksum: string }>(
    'SELECT version, checksum FROM schema_migrations',
  );
  return new Map(r.rows.map((row) => [Number(row.version), row.checksum]));
}

/** Applies pending migrations; returns the names applied by this call. */
export async function migrate(db: Database, migrations = listMigrations()): Promise<string[]> {
  const done = await recorded(db);
  const pending: Migration[] = [];
  for (const m of migrations) {
    const checksum = done.get(m.version);
    if (checksum === undefined) pending.push(m);
    else if (checksum !== m.checksum) throw changed(m);
  }
  const applied: string[] = [];
  // Each pending one is checked again under the lock: another instance may have applied it since.
  for (const m of pending) {
    const appliedNow = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const existing = await tx.query<{ checksum: string }>(
        'SELECT checksum FROM schema_migrations WHERE version = $1',
        [m.version],
      );
      if (existing.rows[0]) {
        if (existing.rows[0].checksum !== m.checksum) throw changed(m);
        return false;
      }
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ]);
      return true;
    });
    if (appliedNow) applied.push(m.name);
  }
  return applied;
}
