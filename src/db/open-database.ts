import type { Config } from '../config.ts';
import type { Database } from './database.ts';
import { createPgliteDatabase } from './pglite.ts';
import { createPostgresDatabase } from './postgres.ts';

/** The server's database: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise. */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir'>,
  onError?: (err: Error) => void,
): Promise<Database> {
  if (config.databaseUrl) {
    return createPostgresDatabase(config.databaseUrl, { max: config.databasePoolMax, onError });
  }
  return createPgliteDatabase(config.dataDir);
}

/** How the database is described at start-up, without credentials. */
export function describeDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>): string {
  if (!config.databaseUrl) return `embedded PGlite (${config.dataDir})`;
  const u = new URL(config.databaseUrl);
  return `PostgreSQL ${u.hostname}:${u.port || 5432}${u.pathname}`;
}
