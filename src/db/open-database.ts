import type { Config } from '../config.ts';
import type { Database } from './database.ts';

/**
 * The server's database: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise. Only
 * the driver in use is loaded (each costs start-up time the other deployment does not need).
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir' | 'embeddedSharedBuffers'>,
  onError?: (err: Error) => void,
): Promise<Database> {
  if (config.databaseUrl) {
    const { createPostgresDatabase } = await import('./postgres.ts');
    return createPostgresDatabase(config.databaseUrl, { max: config.databasePoolMax, onError });
  }
  const { createPgliteDatabase } = await import('./pglite.ts');
  return createPgliteDatabase(config.dataDir, { sharedBuffers: config.embeddedSharedBuffers });
}

/** How the database is described at start-up, without credentials. */
export function describeDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>): string {
  if (!config.databaseUrl) return `embedded PGlite (${config.dataDir})`;
  const u = new URL(config.databaseUrl);
  return `PostgreSQL ${u.hostname}:${u.port || 5432}${u.pathname}`;
}
