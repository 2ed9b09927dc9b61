/*
 * node:http request and response classes whose objects are born with the Express application's
 * prototypes, for the server's createServer options.
 * - Express gives every request its helpers by swapping the prototypes of node's objects
 *   (Object.setPrototypeOf in app.handle; the lean dispatcher does as Express does). A real swap
 *   sends V8 down its slow paths for those objects and for node's http code that handles them:
 *   measured ≈ 0.2 ms of CPU per FHIR read on the bench machine (BENCHMARKS.md, issue 13)
 * - `bind` makes the classes' prototypes inherit the application's (`app.request`,
 *   `app.response`) and then makes them the application's: the object Express swaps to is the
 *   one the request already has, and V8 returns early from such a swap
 * - bound late: tests and main.ts create the server (to learn its port) before the application
 *   exists; until `bind`, the classes make plain node objects, swapped as they always were
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Express } from 'express';

export interface ExpressBorn {
  /** For createServer(options, …). */
  options: { IncomingMessage: typeof IncomingMessage; ServerResponse: typeof ServerResponse };
  /** From now on, requests are born with this application's prototypes (one application per server). */
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
      // once per server, before its first request: prototypes' own chains, never a request's
      Object.setPrototypeOf(BornIncomingMessage.prototype, app.request);
      Object.setPrototypeOf(BornServerResponse.prototype, app.response);
      app.request = BornIncomingMessage.prototype as typeof app.request;
      app.response = BornServerResponse.prototype as unknown as typeof app.response;
    },
  };
}
