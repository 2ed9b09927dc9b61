/*
 * Process entry point: load config, build the server, listen, and shut down gracefully.
 * - a bad configuration prints every problem and exits 1
 * - SIGTERM/SIGINT: stop accepting, let in-flight requests finish (10 s at most), close the database
 * - an unhandled rejection is logged and survived (a database outage must not end the process)
 * - the database starts opening before the server's modules load: the embedded PGlite compiles
 *   and starts its WebAssembly PostgreSQL while Node loads oidc-provider, express and the rest
 */
import { createServer } from 'node:http';
import { ConfigError, describeConfig, loadConfig } from './config.ts';
import { describeDatabase, openDatabase } from './db/open-database.ts';
import { loggableError } from './http/errors.ts';
import { expressBorn } from './http/express-born.ts';
import { createLogger } from './http/logger.ts';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const opening = openDatabase(config, (err) =>
    logger.warn({ err: loggableError(err) }, 'database client error'),
  );
  opening.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
  const { buildServer } = await import('./server.ts');
  const built = await buildServer(config, { logger, db: await opening, ownsDb: true });
  const born = expressBorn();
  born.bind(built.app);
  const server = createServer(born.options, built.handler);
  server.keepAliveTimeout = 65_000; // longer than common load balancers' idle timeout
  server.headersTimeout = 66_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const summary = describeConfig({ ...config, port }, describeDatabase(config));
  const banner = built.capabilities.flatMap((c) => c.banner?.() ?? []);
  process.stdout.write(
    `\nSMART on FHIR launch server for Ocean\n${[...summary, ...banner].map((l) => `  ${l}`).join('\n')}\n\n`,
  );

  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => server.closeAllConnections(), 10_000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      built
        .close()
        .then(() => {
          logger.info('stopped');
          process.exit(0);
        })
        .catch((err) => {
          logger.error({ err: loggableError(err) }, 'shutdown failed');
          process.exit(1);
        });
    });
    server.closeIdleConnections();
  };
  // A promise nobody awaited must not take every clinician's session down with it (Node's default
  // is to exit): log it, scrubbed, and keep serving. Database outages in particular end up here
  // from background work, and the process has to be alive when the database comes back.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: loggableError(reason) }, 'unhandled promise rejection');
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
