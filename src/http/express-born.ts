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
 * - the classes are plain constructor functions that call node's (ES5 functions, callable with a
 *   `this`), not `class … extends`: V8 never kept an optimized derived-class constructor here —
 *   TurboFan retried both constructors every few milliseconds and dropped each attempt
 *   ("dependency change"), and with them node's parser callbacks that inline them: 149 aborted
 *   compiles of each in one FHIR bench run (`--trace-opt`), none with plain functions
 *   (BENCHMARKS.md, issue 13, after midnight on 2026-11-29)
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Express } from 'express';

export interface ExpressBorn {
  /** For createServer(options, …). */
  options: { IncomingMessage: typeof IncomingMessage; ServerResponse: typeof ServerResponse };
  /** From now on, requests are born with this application's prototypes (one application per server). */
  bind(app: Express): void;
}

/**
 * A constructor whose objects are `Base`'s, with a prototype of their own that inherits Base's.
 * `Base` must be callable with a `this` (node's are ES5 functions); a `class` gets a subclass.
 */
function bornOf<T extends abstract new (...args: never[]) => object>(Base: T): T {
  if (Function.prototype.toString.call(Base).startsWith('class')) {
    // @ts-expect-error: an anonymous subclass of a class we only know as a constructor type
    return class extends Base {};
  }
  const base = Base as unknown as (this: object, a?: unknown, b?: unknown) => void;
  // two parameters: node's take (socket) and (req, options); no rest array to allocate
  function Born(this: object, a?: unknown, b?: unknown): void {
    base.call(this, a, b);
  }
  Born.prototype = Object.create(Base.prototype, {
    constructor: { value: Born, writable: true, configurable: true },
  });
  Object.setPrototypeOf(Born, Base); // statics, as `extends` would give
  return Born as unknown as T;
}

export function expressBorn(): ExpressBorn {
  const BornIncomingMessage = bornOf(IncomingMessage);
  const BornServerResponse = bornOf(ServerResponse);
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
