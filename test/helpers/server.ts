/*
 * The real server on a real socket for tests: listen on an ephemeral port first, then build the
 * server with PUBLIC_URL set to that port, so issuer, discovery and redirects are all real URLs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type Config, loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/database.ts';
import { expressBorn } from '../../src/http/express-born.ts';
import { createLogger, type Logger } from '../../src/http/logger.ts';
import { type BuiltServer, buildServer } from '../../src/server.ts';

/** A logger at `level` whose output lines are kept, for tests of what is (and is never) logged. */
export function capturedLogger(level: string): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

/** One SECRETS_KEY per test process, so instances in one test share it like a real deployment. */
export const TEST_SECRETS_KEY = randomBytes(32).toString('base64');
export const TEST_ADMIN_TOKEN = randomBytes(32).toString('hex');

export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    KEYS_DIR: mkdtempSync(join(tmpdir(), 'keys-')),
    SECRETS_KEY: TEST_SECRETS_KEY,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ...env,
  });
}

export interface TestServer extends BuiltServer {
  url: string;
  server: Server;
  config: Config;
  stop(): Promise<void>;
}

export async function startTestServer(
  db: Database,
  env: Record<string, string | undefined> = {},
  logger: Logger = createLogger('silent'),
): Promise<TestServer> {
  const born = expressBorn();
  const server = createServer(born.options);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  const url = `http://127.0.0.1:${address.port}`;
  const config = testConfig({ PUBLIC_URL: url, ...env });
  let built: BuiltServer;
  try {
    built = await buildServer(config, { logger, db });
  } catch (err) {
    server.close();
    throw err;
  }
  born.bind(built.app);
  server.on('request', built.handler);
  return {
    ...built,
    url,
    server,
    config,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await built.close();
    },
  };
}
