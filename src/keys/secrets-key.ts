/*
 * Where SECRETS_KEY comes from.
 * - the environment, always in production
 * - in development/test, when unset: generated once into KEYS_DIR/secrets.key (mode 0600) and reused,
 *   so a restart can still read what it encrypted
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.ts';

export function resolveSecretsKey(config: Pick<Config, 'secretsKey' | 'keysDir' | 'isProduction'>): {
  key: Buffer;
  source: string;
} {
  if (config.secretsKey) return { key: config.secretsKey, source: 'SECRETS_KEY' };
  if (config.isProduction) throw new Error('SECRETS_KEY is required in production');
  const file = join(config.keysDir, 'secrets.key');
  return {
    key: readOrCreateSecretFile(file, () => randomBytes(32).toString('base64'), 'base64'),
    source: file,
  };
}

/** Development admin token: generated once so the admin API is usable without set-up, never printed. */
export function resolveAdminToken(config: Pick<Config, 'adminToken' | 'keysDir' | 'isProduction'>): {
  token: string;
  source: string;
} {
  if (config.adminToken) return { token: config.adminToken, source: 'ADMIN_TOKEN' };
  if (config.isProduction) throw new Error('ADMIN_TOKEN is required in production');
  const file = join(config.keysDir, 'admin-token');
  return {
    token: readOrCreateSecretFile(file, () => randomBytes(32).toString('hex'), 'utf8').toString(),
    source: file,
  };
}

function readOrCreateSecretFile(file: string, make: () => string, encoding: 'base64' | 'utf8'): Buffer {
  if (!existsSync(file)) {
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    try {
      // 'wx' fails if another process created it first; then we read theirs.
      writeFileSync(file, `${make()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  chmodSync(file, 0o600);
  const text = readFileSync(file, 'utf8').trim();
  const value = Buffer.from(text, encoding);
  if (encoding === 'base64' && value.length !== 32)
    throw new Error(`${file} does not hold Base64 of 32 bytes`);
  return value;
}
