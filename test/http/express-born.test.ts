import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { expressBorn, inheritsApp } from '../../src/http/express-born.ts';

/** One request through a server made with the given options; what the handler saw. */
async function oneRequest(
  options: Parameters<typeof createServer>[0],
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
): Promise<unknown> {
  let seen: unknown;
  const server = createServer(options, (req, res) => {
    seen = handler(req, res);
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) =>
    request({ port, host: '127.0.0.1', path: '/x?y=1' }, (res) => res.resume().on('end', resolve))
      .on('error', reject)
      .end(),
  );
  await new Promise((resolve) => server.close(resolve));
  return seen;
}

// The lean dispatcher skips Express's per-request prototype swap when the server's objects are
// born inheriting the application's helpers: they must really be there, and only once bound.
describe('requests born with the Express application helpers', () => {
  it('are plain node objects until bound, then inherit the bound application', async () => {
    const app = express();
    const born = expressBorn();
    expect(await oneRequest(born.options, (req, res) => inheritsApp(app, req, res))).toBe(false);
    born.bind(app);
    const seen = (await oneRequest(born.options, (req, res) => ({
      inherits: inheritsApp(app, req, res),
      // Express's getters and helpers, read through the inherited chain
      path: (req as express.Request).path,
      query: (req as express.Request).query,
      status: typeof (res as express.Response).status,
      other: inheritsApp(express(), req, res),
    }))) as Record<string, unknown>;
    expect(seen).toEqual({ inherits: true, path: '/x', query: { y: '1' }, status: 'function', other: false });
  });

  it("a plain node server's objects do not inherit it", async () => {
    const app = express();
    expect(await oneRequest({}, (req, res) => inheritsApp(app, req, res))).toBe(false);
  });
});
