import { createServer, IncomingMessage, request, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { expressBorn } from '../../src/http/express-born.ts';

/** One GET through a server made with `options`; the listener's answer is the response body. */
async function oneRequest(
  options: Parameters<typeof createServer>[0],
  listener: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<string> {
  const server = createServer(options, listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) =>
      request({ port, host: '127.0.0.1', path: '/x?y=1' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
        .on('error', reject)
        .end(),
    );
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

// Express swaps every request's prototypes to its own (app.request, app.response); a server
// whose objects are born with them makes that swap a no-op — the helpers must all be there.
describe('requests born with the Express application prototypes', () => {
  it('are plain node objects until bound', async () => {
    const app = express();
    const born = expressBorn();
    const seen = await oneRequest(born.options, (req, res) =>
      res.end(String(Object.getPrototypeOf(req) === app.request || 'path' in req)),
    );
    expect(seen).toBe('false');
  });

  it('once bound, already have the prototypes Express gives them, and every helper works', async () => {
    const app = express();
    app.set('trust proxy', 'loopback');
    const born = expressBorn();
    born.bind(app);
    let before: boolean[] = [];
    app.use((req, res, next) => {
      // what app.handle swapped to is what the objects were born with
      before = [Object.getPrototypeOf(req) === app.request, Object.getPrototypeOf(res) === app.response];
      next();
    });
    app.get('/x', (req, res) => {
      res.status(201).json({ path: req.path, query: req.query, ip: req.ip, app: req.app === app });
    });
    const raw = await oneRequest(born.options, (req, res) =>
      app(req as express.Request, res as express.Response),
    );
    expect(JSON.parse(raw)).toEqual({ path: '/x', query: { y: '1' }, ip: '127.0.0.1', app: true });
    expect(before).toEqual([true, true]);
  });

  it("leaves another application's requests alone", async () => {
    const [one, other] = [express(), express()];
    expressBorn().bind(one);
    other.get('/x', (req, res) => res.send(String(req.app === other)));
    const plain = await oneRequest({}, (req, res) => other(req as express.Request, res as express.Response));
    expect(plain).toBe('true');
  });

  it("are node's objects — instances of its classes, made by its constructors — under their own prototypes", async () => {
    const born = expressBorn();
    const seen = await oneRequest(born.options, (req, res) =>
      res.end(
        JSON.stringify([
          req instanceof IncomingMessage,
          res instanceof ServerResponse,
          req instanceof born.options.IncomingMessage,
          res instanceof born.options.ServerResponse,
          res.req === req,
          req.url,
          typeof req.socket.remoteAddress,
          Object.getPrototypeOf(req) === IncomingMessage.prototype,
        ]),
      ),
    );
    expect(JSON.parse(seen)).toEqual([true, true, true, true, true, '/x?y=1', 'string', false]);
  });
});
