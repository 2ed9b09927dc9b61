/*
 * A local stand-in for Ocean's OAuth2 token endpoint and its letter (PDF) endpoint, on a real
 * loopback socket: client_credentials with HTTP Basic, a Bearer token for the letter, and a
 * switch that takes it "down" (503 everywhere, or connections refused when closed).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export const PDF = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n', 'latin1');

export class OceanApiStandIn {
  readonly clientId = 'ocean-outbound-client';
  readonly clientSecret = randomBytes(16).toString('base64url');
  down = false;
  tokenCalls = 0;
  letterCalls = 0;
  readonly #tokens = new Set<string>();
  #server: Server | undefined;
  url = '';

  get tokenUrl() {
    return `${this.url}/svc/oauth2/token`;
  }

  letterUrl(referralId: string) {
    return `${this.url}/svc/fhir/v1/Binary/${encodeURIComponent(referralId)}-letter`;
  }

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      if (this.down) {
        res.writeHead(503).end();
        return;
      }
      if (req.method === 'POST' && req.url === '/svc/oauth2/token') {
        this.tokenCalls++;
        const expected = `Basic ${Buffer.from(`${this.clientId}:${this.clientSecret}`).toString('base64')}`;
        let body = '';
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => {
          if (req.headers.authorization !== expected || body !== 'grant_type=client_credentials') {
            res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
            return;
          }
          const token = randomBytes(16).toString('hex');
          this.#tokens.add(token);
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 300 }));
        });
        return;
      }
      if (req.method === 'GET' && req.url?.startsWith('/svc/fhir/v1/Binary/')) {
        this.letterCalls++;
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        if (!token || !this.#tokens.has(token)) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': PDF.length }).end(PDF);
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    this.url = `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
