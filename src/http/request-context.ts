/*
 * The request a piece of code runs for, without passing it around (AsyncLocalStorage).
 * - set once per request, right after the request id is drawn (src/http/app.ts)
 * - the logger reads it, so every line logged while serving a request carries its `reqId`,
 *   whether it is written through req.log, ctx.logger or from inside oidc-provider's hooks
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestHandler } from 'express';

export interface RequestContext {
  reqId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export const currentRequest = (): RequestContext | undefined => storage.getStore();

/** Runs the rest of the request inside its context; needs req.id (set by the request logger). */
export function requestContext(): RequestHandler {
  return (req, _res, next) => {
    storage.run({ reqId: String(req.id) }, next);
  };
}
