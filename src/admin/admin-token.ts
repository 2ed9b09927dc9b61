/*
 * Guards the admin API: `Authorization: Bearer ${ADMIN_TOKEN}`.
 * - compared in constant time (over SHA-256 digests, so lengths leak nothing either)
 * - missing or wrong → 401 with WWW-Authenticate and OAuth-style JSON, before any body is read
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HttpError } from '../http/errors.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function requireAdminToken(adminToken: string): RequestHandler {
  const expected = digest(adminToken);
  return (req, res, next) => {
    res.locals.errorFormat = 'json';
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(header);
    if (!match) {
      next(
        new HttpError(401, 'invalid_token', 'admin API needs Authorization: Bearer <ADMIN_TOKEN>', {
          'WWW-Authenticate': 'Bearer realm="admin"',
        }),
      );
      return;
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      next(
        new HttpError(401, 'invalid_token', 'admin token is not valid', {
          'WWW-Authenticate': 'Bearer realm="admin", error="invalid_token"',
        }),
      );
      return;
    }
    next();
  };
}
