/*
 * Two error vocabularies, each strict, plus a page for people (docs/ARCHITECTURE.md rule 4).
 * - routes say which vocabulary they speak by setting res.locals.errorFormat (see speaks());
 *   otherwise the path decides: /fhir → OperationOutcome, /admin/api → OAuth-style JSON, else HTML
 * - body-parser failures (malformed JSON, 413) and database outages (503) are mapped here
 * - never a stack trace to the client; 5xx are logged with a scrubbed error shape
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { DatabaseUnavailableError, InvalidInputError } from '../db/database.ts';

export type ErrorFormat = 'fhir' | 'oauth' | 'json' | 'html';

/** An error with an HTTP status and a machine code, safe to show to the client. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    /** OAuth error code or short machine code: invalid_request, not_found, … */
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. WWW-Authenticate or Retry-After. */
    readonly headers: Record<string, string> = {},
    /** FHIR issue type (http://hl7.org/fhir/valueset-issue-type.html) when speaking FHIR. */
    readonly fhirIssueCode?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/*
 * The typed refusals every room throws (stores, admin, screens, launch): each is an HttpError, so a
 * router throws it as it is and the one handler answers in the router's vocabulary.
 * ValidationError keeps zod's issues as { path, message } for forms that show them per field.
 */
export class NotFoundError extends HttpError {
  constructor(message = 'not found') {
    super(404, 'not_found', message, {}, 'not-found');
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends HttpError {
  constructor(message: string) {
    super(409, 'conflict', message, {}, 'conflict');
    this.name = 'ConflictError';
  }
}

export interface FieldIssue {
  path: string;
  message: string;
}

export class ValidationError extends HttpError {
  constructor(readonly issues: FieldIssue[]) {
    super(
      400,
      'invalid_request',
      issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '),
    );
    this.name = 'ValidationError';
  }

  static fromZod(error: z.ZodError): ValidationError {
    return new ValidationError(
      error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
}

/** Parses input with a zod schema, or throws a ValidationError naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw ValidationError.fromZod(r.error);
  return r.data;
}

export const badRequest = (message: string, code = 'invalid_request') => new HttpError(400, code, message);
export const notFound = (message = 'not found') => new NotFoundError(message);
export const conflict = (message: string) => new ConflictError(message);

/** Marks the routes below it as speaking one error vocabulary. */
export function speaks(format: ErrorFormat): RequestHandler {
  return (_req, res, next) => {
    res.locals.errorFormat = format;
    next();
  };
}

function formatFor(req: Request, res: Response): ErrorFormat {
  const set = res.locals.errorFormat as ErrorFormat | undefined;
  if (set) return set;
  if (req.path.startsWith('/fhir')) return 'fhir';
  if (req.path.startsWith('/admin/api')) return 'json';
  return 'html';
}

const FHIR_ISSUE_BY_STATUS: Record<number, string> = {
  400: 'invalid',
  401: 'login',
  403: 'forbidden',
  404: 'not-found',
  405: 'not-supported',
  406: 'not-supported',
  409: 'conflict',
  410: 'deleted',
  412: 'conflict',
  413: 'too-costly',
  415: 'not-supported',
  422: 'processing',
  429: 'throttled',
  503: 'transient',
};

const TITLES: Record<number, string> = {
  400: 'The request could not be understood',
  401: 'Sign-in needed',
  403: 'Not allowed',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  413: 'Too large',
  415: 'Unsupported content type',
  429: 'Too many requests',
  500: 'Something went wrong',
  503: 'Temporarily unavailable',
};

export function operationOutcome(
  severity: 'error' | 'warning' | 'information',
  code: string,
  diagnostics: string,
) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

/** True for a DatabaseUnavailableError, also when a library wrapped it in an error of its own. */
function causedByOutage(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e; depth++) {
    if (e instanceof DatabaseUnavailableError) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Normalises anything thrown into a client-safe HttpError. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (causedByOutage(err)) {
    return new HttpError(503, 'temporarily_unavailable', 'the database is unavailable; try again shortly', {
      'Retry-After': '5',
    });
  }
  if (err instanceof InvalidInputError) return badRequest(err.error_description);
  const e = err as {
    type?: string;
    status?: number;
    statusCode?: number;
    expose?: boolean;
    message?: string;
  };
  const status = e?.status ?? e?.statusCode;
  switch (e?.type) {
    case 'entity.parse.failed':
      return badRequest('request body is not valid JSON');
    case 'entity.too.large':
      return new HttpError(413, 'payload_too_large', 'request body is larger than this endpoint accepts');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new HttpError(415, 'unsupported_media_type', 'request body encoding is not supported');
    case 'parameters.too.many':
      return new HttpError(413, 'payload_too_large', 'too many parameters in the request body');
  }
  if (typeof status === 'number' && status >= 400 && status < 500 && e.expose !== false) {
    return new HttpError(status, 'invalid_request', e.message ?? TITLES[status] ?? 'bad request');
  }
  return new HttpError(500, 'server_error', 'an unexpected error occurred');
}

/** Scrubbed shape of an error for the logs: database errors keep their SQLSTATE, not their message (it can hold values). */
export function loggableError(err: unknown): Record<string, unknown> {
  const e = err as { name?: string; code?: unknown; constraint?: unknown; message?: string; stack?: string };
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
    return { type: e.name, sqlState: e.code, constraint: e.constraint };
  }
  return {
    type: e?.name,
    message: e?.message?.slice(0, 300),
    stack: e?.stack?.split('\n').slice(1, 6).join('\n'),
  };
}

export function sendError(req: Request, res: Response, error: HttpError): void {
  for (const [k, v] of Object.entries(error.headers)) res.setHeader(k, v);
  res.status(error.status);
  switch (formatFor(req, res)) {
    case 'fhir':
      res
        .type('application/fhir+json')
        .json(
          operationOutcome(
            'error',
            error.fhirIssueCode ?? FHIR_ISSUE_BY_STATUS[error.status] ?? 'exception',
            error.message,
          ),
        );
      return;
    case 'oauth':
    case 'json':
      res.json({ error: error.code, error_description: error.message });
      return;
    case 'html':
      res.render(
        'error',
        { title: TITLES[error.status] ?? 'Error', status: error.status, message: error.message },
        (renderErr, html) => {
          if (renderErr) res.type('text/plain').send(`${error.status} ${error.message}`);
          else res.type('html').send(html);
        },
      );
  }
}

/** The one error handler. */
export function errorHandler() {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const error = toHttpError(err);
    if (error.status >= 500) req.log?.error({ err: loggableError(err) }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(req, res, error);
  };
}

export function notFoundHandler(): RequestHandler {
  return (req, _res, next) => next(notFound(`no route for ${req.method} ${req.path.slice(0, 200)}`));
}
