/*
 * node:http request and response classes whose objects are born inheriting the Express
 * application's helpers (`app.request`, `app.response`), for the server's createServer options.
 * - Express gives a request its helpers by swapping the prototypes of node's objects
 *   (Object.setPrototypeOf in app.handle, and in the lean dispatcher as it was). A swap per
 *   request sends V8 down its slow paths for those objects and for node's http code that handles
 *   them: measured ≈ 0.25 ms of CPU per FHIR read on the bench machine, a third of the read
 *   (BENCHMARKS.md, issue 13)
 * - born inheriting them, the lean dispatcher (./lean-dispatch.ts) has nothing to swap; the
 *   Express application still swaps for its own routes, as before (no gain there, no loss)
 * - bound late: tests and main.ts create the server (to learn its port) before the application
 *   exists; until `bind`, the classes make plain node objects and every path swaps as before
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Express } from 'express';

export interface ExpressBorn {
  /** For createServer(options, …). */
  options: { IncomingMessage: typeof IncomingMessage; ServerResponse: typeof ServerResponse };
  /** From now on, requests are born inheriting this application's helpers. */
  bind(app: Express): void;
}

export function expressBorn(): ExpressBorn {
  class BornIncomingMessage extends IncomingMessage {}
  class BornServerResponse extends ServerResponse {}
  return {
    options: {
      IncomingMessage: BornIncomingMessage,
      ServerResponse: BornServerResponse as typeof ServerResponse,
    },
    bind(app) {
      // once per server, before its first request: the class prototypes' own chains, not a request's
      Object.setPrototypeOf(BornIncomingMessage.prototype, app.request);
      Object.setPrototypeOf(BornServerResponse.prototype, app.response);
    },
  };
}

/** Whether node's objects already inherit the application's helpers (born so, or swapped). */
export const inheritsApp = (app: Express, req: IncomingMessage, res: ServerResponse): boolean =>
  Object.prototype.isPrototypeOf.call(app.request, req) &&
  Object.prototype.isPrototypeOf.call(app.response, res);
