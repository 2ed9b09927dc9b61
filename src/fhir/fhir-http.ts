/*
 * Plumbing shared by the FHIR handlers.
 * - content negotiation: JSON only (`application/fhir+json`, `application/json`, `_format=json`);
 *   an XML-only request gets 406
 * - resource responses carry ETag W/"{versionId}" and Last-Modified; If-None-Match /
 *   If-Modified-Since answer 304 (https://hl7.org/fhir/R4/http.html#read)
 * - one 400 (badRequest) and one 404 (notFoundAs) for every FHIR handler
 * - a Bundle leaves in writes of about 64 KiB (sendBundle): one write of a whole 1000-entry page
 *   costs the server 4-5x the CPU of the same bytes in 64 KiB writes, a write per entry ≈ 1.8x
 *   (bench/bundle-writes.bench.ts)
 */
import type { Request, RequestHandler, Response } from 'express';
import { badRequest, HttpError, notFound } from '../http/errors.ts';
import { type Cursor, decodeCursor, encodeCursor } from './cursor.ts';
import { isValidId } from './resource-types.ts';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir']);

/** 406 for a request that wants something other than JSON. */
export const negotiate: RequestHandler = (req, _res, next) => {
  const format = req.query._format;
  if (format !== undefined) {
    if (typeof format !== 'string' || !JSON_FORMATS.has(format.split(';')[0]!.trim().toLowerCase())) {
      next(
        new HttpError(
          406,
          'not_acceptable',
          'this server speaks JSON only (_format=json)',
          {},
          'not-supported',
        ),
      );
      return;
    }
    next();
    return;
  }
  const accept = req.headers.accept;
  if (
    accept &&
    !/(^|,)\s*(\*\/\*|application\/\*|application\/(fhir\+)?json|application\/json\+fhir)\s*(;|,|$)/i.test(
      accept,
    )
  ) {
    next(
      new HttpError(
        406,
        'not_acceptable',
        'this server speaks JSON only (application/fhir+json)',
        {},
        'not-supported',
      ),
    );
    return;
  }
  next();
};

/** Cross-origin reads from any origin (browser SMART apps); bearer tokens, never cookies. */
export const cors: RequestHandler = (req, res, next) => {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader(
    'Access-Control-Expose-Headers',
    'ETag, Last-Modified, Location, Content-Location, WWW-Authenticate, X-Request-Id',
  );
  if (req.method === 'OPTIONS') {
    res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
    res.setHeader(
      'Access-Control-Allow-Headers',
      'Authorization, Accept, Content-Type, If-None-Match, If-Modified-Since, Prefer, X-Request-Id',
    );
    res.setHeader('Access-Control-Max-Age', '600');
    res.status(204).end();
    return;
  }
  next();
};

export function checkId(id: string): string {
  if (!isValidId(id)) throw badRequest('resource id must match [A-Za-z0-9-.]{1,64}');
  return id;
}

/** The one FHIR 404 of a resource (or one of its versions): the same words whether absent or not visible. */
export const notFoundAs = (type: string, id: string, version?: string) =>
  notFound(`${type}/${id}${version === undefined ? '' : ` version ${version.slice(0, 20)}`} was not found`);

/** Sends one stored resource with its version headers, or 304 when the client's copy is current. */
export function sendStored(
  req: Request,
  res: Response,
  stored: { body: string; versionId: number; lastUpdated: Date },
): void {
  const etag = `W/"${stored.versionId}"`;
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', stored.lastUpdated.toUTCString());
  const inm = req.headers['if-none-match'];
  if (inm) {
    const tags = inm.split(',').map((t) => t.trim().replace(/^W\//, ''));
    if (tags.includes('*') || tags.includes(`"${stored.versionId}"`)) {
      res.status(304).end();
      return;
    }
  } else {
    const ims = req.headers['if-modified-since'];
    if (ims) {
      const since = Date.parse(ims);
      if (!Number.isNaN(since) && Math.floor(stored.lastUpdated.getTime() / 1000) * 1000 <= since) {
        res.status(304).end();
        return;
      }
    }
  }
  res.status(200).setHeader('Content-Type', FHIR_JSON);
  res.end(req.method === 'HEAD' ? undefined : stored.body);
}

/** About how many characters of a Bundle go in one write (sendBundle). */
const BUNDLE_WRITE = 64 * 1024;

/**
 * Sends a Bundle: `{`, its members before `entry` (`members`, JSON text such as
 * `"resourceType":"Bundle","type":"searchset"`), then `entry` from the entries' JSON texts, in
 * writes of about BUNDLE_WRITE characters (chunked transfer coding).
 */
export function sendBundle(res: Response, members: string, entries: Iterable<string>): void {
  res.status(200).setHeader('Content-Type', FHIR_JSON);
  let text = `{${members},"entry":[`;
  let first = true;
  for (const entry of entries) {
    text += first ? entry : `,${entry}`;
    first = false;
    if (text.length >= BUNDLE_WRITE) {
      res.write(text);
      text = '';
    }
  }
  res.end(`${text}]}`);
}

/** One searchset entry (a match) from a resource's stored text. */
export const matchEntry = (base: string, type: string, id: string, body: string): string =>
  `{"fullUrl":${JSON.stringify(`${base}/${type}/${id}`)},"resource":${body},"search":{"mode":"match"}}`;

/** `_count`: default, bounds, and a 400 for anything that is not a non-negative integer. */
export function parseCount(value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d{1,7}$/.test(value)) {
    throw badRequest('_count must be a non-negative integer');
  }
  return Math.min(Number(value), max);
}

/** One value of a query parameter; repeating a single-valued parameter is a 400. */
export function single(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badRequest(`${name} may be given once`);
  return v;
}

/** The request URL under the FHIR base, with only the given parameters (self/next links). */
function linkUrl(base: string, path: string, params: [string, string][]): string {
  const qs = new URLSearchParams(params).toString();
  return `${base}${path}${qs ? `?${qs}` : ''}`;
}

/** `_cursor`: absent, or a cursor this server issued (else 400). */
export function cursorParam(req: Request): { text?: string; cursor?: Cursor } {
  const text = single(req, '_cursor');
  if (text === undefined) return {};
  const cursor = decodeCursor(text);
  if (!cursor) throw badRequest('_cursor is not a paging cursor of this server');
  return { text, cursor };
}

/** The self and next links of a paged Bundle; `params` are the parameters understood, `_count` included. */
export function pageLinks(
  base: string,
  path: string,
  params: [string, string][],
  cursorText: string | undefined,
  next: Cursor | undefined,
): { relation: string; url: string }[] {
  const links = [
    {
      relation: 'self',
      url: linkUrl(base, path, cursorText ? [...params, ['_cursor', cursorText]] : params),
    },
  ];
  if (next)
    links.push({ relation: 'next', url: linkUrl(base, path, [...params, ['_cursor', encodeCursor(next)]]) });
  return links;
}
