/*
 * The start bench's embedded floor: the least any server on the embedded database does before it
 * is ready — Node starts, PGlite opens the existing data folder (DATA_DIR) with the server's
 * shared_buffers (EMBEDDED_SHARED_BUFFERS, which the start bench sets for both), one query
 * answers, an HTTP server answers /readyz. No migrations check, no keys, no routes: what is left
 * between this and `npm start` is the server's own start.
 * Plain JavaScript and plain node, so no loader stands between the measurement and PGlite.
 */
import { createServer } from 'node:http';
import { PGlite } from '@electric-sql/pglite';

const { DATA_DIR, EMBEDDED_SHARED_BUFFERS, PORT } = process.env;
if (!DATA_DIR || !EMBEDDED_SHARED_BUFFERS || !PORT) {
  throw new Error('pglite-floor: DATA_DIR, EMBEDDED_SHARED_BUFFERS and PORT are needed');
}
const db = await PGlite.create(DATA_DIR, {
  startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${EMBEDDED_SHARED_BUFFERS}`],
});
await db.query('SELECT 1');
const server = createServer((_req, res) => res.end('{"status":"ready"}'));
server.listen(Number(PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => db.close().then(() => process.exit(0))));
