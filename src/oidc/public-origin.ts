/*
 * The provider's idea of "where am I" is PUBLIC_URL, never the request's.
 * - oidc-provider builds every URL it publishes (discovery endpoints, the interaction's return
 *   address, the token endpoint audience of client assertions) with `new URL(path, ctx.href)`,
 *   and Koa's href comes from `Host` (or `X-Forwarded-Host` when proxies are trusted), or from
 *   the request line itself when it is in absolute form (`GET http://evil.example/fhir/…`)
 * - so, before any of its routes run, this pre-middleware pins the request's protocol, host and
 *   href to PUBLIC_URL and brings an absolute-form request target back to a path; `ctx.ip` (the
 *   client address behind a trusted proxy) is left as it is
 * - a forged Host can then change nothing the provider says: a shared cache in front keys
 *   discovery on its URL alone and serves every requester the right document
 * oidc-provider declines to build URLs from the issuer by itself (panva/node-oidc-provider#764)
 * and documents pre-middlewares (provider.use) as the place for request rewriting of this kind.
 */
import type { IncomingMessage } from 'node:http';
import type Provider from 'oidc-provider';

type Middleware = Parameters<Provider['use']>[0];

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/** The path and query of a request target, whether in origin form or absolute form. */
function originForm(target: string): string {
  if (!ABSOLUTE_FORM.test(target)) return target;
  const url = new URL(target);
  return `${url.pathname}${url.search}`;
}

export function pinPublicOrigin(publicUrl: string): Middleware {
  const pub = new URL(publicUrl);
  const protocol = pub.protocol.slice(0, -1);
  const origin = pub.origin;
  return async (kctx, next) => {
    const req = kctx.req as IncomingMessage & { originalUrl?: string };
    // oidc-provider derives its mount path from the node request's originalUrl (set by Express).
    if (req.originalUrl) req.originalUrl = originForm(req.originalUrl);
    if (req.url) req.url = originForm(req.url);
    const path = originForm(kctx.originalUrl ?? req.url ?? '/');
    Object.defineProperties(kctx.request, {
      protocol: { value: protocol, configurable: true },
      host: { value: pub.host, configurable: true },
      hostname: { value: pub.hostname, configurable: true },
      href: { value: `${origin}${path}`, configurable: true },
      URL: { value: new URL(path, origin), configurable: true },
    });
    kctx.originalUrl = path;
    await next();
  };
}
