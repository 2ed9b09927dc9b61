/*
 * Typed refusals of the client and site store, reusable by the admin API and console.
 * - each is an HttpError, so a router can throw it as it is and the one error handler answers
 *   in the router's vocabulary (OAuth-style JSON for /admin/api, a page for people)
 * - ValidationError keeps zod's issues as { path, message } for forms that show them per field
 */
import type { z } from 'zod';
import { HttpError } from '../http/errors.ts';

export class NotFoundError extends HttpError {
  constructor(message: string) {
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
