/*
 * The current bodies of both discovery documents, produced in-process (for the allowlist packet).
 * - smart-configuration comes from the same function that serves it (src/smart/configuration.ts)
 * - openid-configuration is oidc-provider's own answer: one GET dispatched through the provider
 *   serving now, on a private loopback socket, with the Host and scheme of PUBLIC_URL — never a
 *   request to PUBLIC_URL itself, which a server behind a load balancer often cannot reach
 * - a non-200 or non-JSON answer is an error, never a half-filled packet
 */
import { createServer, type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type Provider from 'oidc-provider';
import type { AppContext } from '../context.ts';
import { smartConfiguration } from '../smart/configuration.ts';

export const OPENID_CONFIGURATION_PATH = '/.well-known/openid-configuration';
export const SMART_CONFIGURATION_PATH = '/.well-known/smart-configuration';

export interface DiscoveryDocument {
  url: string;
  body: Record<string, unknown>;
}

export interface DiscoveryDocuments {
  openidConfiguration: DiscoveryDocument;
  smartConfiguration: DiscoveryDocument;
}

/** The mount of the provider in the app (src/oidc/index.ts mounts it under /fhir). */
const FHIR_MOUNT = '/fhir';

export async function discoveryDocuments(ctx: AppContext, provider: Provider): Promise<DiscoveryDocuments> {
  const base = ctx.config.fhirBaseUrl;
  const body = await dispatchGet(provider, ctx.config.publicUrl, OPENID_CONFIGURATION_PATH);
  return {
    openidConfiguration: { url: `${base}${OPENID_CONFIGURATION_PATH}`, body },
    smartConfiguration: {
      url: `${base}${SMART_CONFIGURATION_PATH}`,
      body: JSON.parse(JSON.stringify(smartConfiguration(ctx.config))) as Record<string, unknown>,
    },
  };
}

/** GETs `path` (below the provider's mount) from the provider as a request to publicUrl would. */
async function dispatchGet(
  provider: Provider,
  publicUrl: string,
  path: string,
): Promise<Record<string, unknown>> {
  const pub = new URL(publicUrl);
  const callback = provider.callback();
  const server = createServer((req: IncomingMessage & { originalUrl?: string }, res) => {
    // As express does for a router mounted at /fhir: url is below the mount, originalUrl is whole.
    req.originalUrl = `${FHIR_MOUNT}${req.url}`;
    // The scheme of PUBLIC_URL, whether or not the provider trusts X-Forwarded-Proto.
    if (pub.protocol === 'https:') (req.socket as TLSSocket).encrypted = true;
    callback(req, res);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as AddressInfo;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'GET',
          headers: {
            host: pub.host,
            accept: 'application/json',
            'x-forwarded-proto': pub.protocol.slice(0, -1),
            'x-forwarded-host': pub.host,
          },
          timeout: 5000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('discovery request timed out')));
      req.on('error', reject);
      req.end();
    });
    if (status !== 200) throw new Error(`the provider answered ${status} for ${path}`);
    return JSON.parse(text) as Record<string, unknown>;
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
