/*
 * A tiny HTTP load balancer on 127.0.0.1 for scale-out tests: the one PUBLIC_URL in front of
 * several instances. Round-robin by default, no stickiness; a request carrying
 * `x-ops-backend: <index>` goes to that instance (the header is removed on the way), so a test
 * can say "sign in on A, token on B" while every URL the server produces still points here.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

export interface LoadBalancer {
  url: string;
  port: number;
  /** Requests forwarded to each backend so far. */
  counts: number[];
  close(): Promise<void>;
}

export async function startProxy(backendPorts: () => number[], port = 0): Promise<LoadBalancer> {
  let next = 0;
  const counts: number[] = [];
  const server: Server = createServer((req, res) => {
    const ports = backendPorts();
    const pinned = req.headers['x-ops-backend'];
    const index =
      typeof pinned === 'string' && /^\d+$/.test(pinned)
        ? Number(pinned) % ports.length
        : next++ % ports.length;
    counts[index] = (counts[index] ?? 0) + 1;
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([k]) => !HOP_BY_HOP.has(k) && k !== 'x-ops-backend'),
    );
    const upstream = httpRequest(
      { host: '127.0.0.1', port: ports[index], method: req.method, path: req.url, headers },
      (up) => {
        const out = Object.fromEntries(Object.entries(up.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
        res.writeHead(up.statusCode ?? 502, out);
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway');
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    counts,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
