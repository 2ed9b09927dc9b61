/*
 * The security headers of every answer (helmet): one definition for the Express application
 * (src/http/app.ts) and the lean dispatcher of the hottest API paths (./lean-dispatch.ts), which
 * sets the very same headers, computed once.
 */
import type { RequestHandler } from 'express';
import helmet from 'helmet';
import type { AppContext } from '../context.ts';

export function securityHeaders(ctx: AppContext): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        // Hospitals run offline: nothing is loaded from anywhere but here.
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'data:'],
        'form-action': null, // the OAuth form_post response mode posts to the client's redirect_uri
        'frame-ancestors': ["'none'"],
        'upgrade-insecure-requests': ctx.config.secureCookies ? [] : null,
      },
    },
    // Discovery documents and FHIR are read cross-origin by browser apps.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // No URL of ours (chart paths name patients) ever goes to another site; our own pages and
    // redirects do tell us where a navigation came from (src/launch/own-navigation.ts).
    referrerPolicy: { policy: 'same-origin' },
    strictTransportSecurity: ctx.config.secureCookies,
  });
}

/** The headers securityHeaders() sets on an answer, as name/value pairs (they do not vary by request). */
export function staticSecurityHeaders(ctx: AppContext): [string, string | number | readonly string[]][] {
  const set = new Map<string, string | number | readonly string[]>();
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      set.set(name, value);
      return res;
    },
    removeHeader(name: string) {
      set.delete(name);
    },
    getHeader: (name: string) => set.get(name),
  };
  let done = false;
  securityHeaders(ctx)({ method: 'GET', headers: {} } as never, res as never, () => {
    done = true;
  });
  if (!done) throw new Error('security headers: helmet did not finish synchronously');
  // Names in lower case: node's setHeader keys its table by the lower-cased name, and a name
  // that is lower case already is the very string, with no new key to look up per request
  // (`npm run bench -- access-line`). Header names are case-insensitive (RFC 9110 §5.1).
  return [...set.entries()].map(([name, value]) => [name.toLowerCase(), value]);
}
