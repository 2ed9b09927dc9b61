/*
 * POST /admin/api/import: a FHIR Bundle from the admin API (admin token checked before any byte is read).
 * - the body is spooled to a private temporary file (never whole in memory), bounded by
 *   IMPORT_BODY_LIMIT (413 beyond), then imported in two streaming passes (src/fhir/import.ts)
 * - the spool lives in a private directory named after this process (fhir-import-<pid>-…) and is
 *   removed when the import ends; one left by a process that died mid-import (SIGKILL, power
 *   loss) is removed by the next start on the host (sweepImportSpools), so PHI does not linger
 * - answers 200 with the response Bundle; a bad bundle is a 400 OperationOutcome, nothing written
 * - audited as admin.import with counts only
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import type { AppContext } from '../context.ts';
import { badRequest, HttpError } from '../http/errors.ts';
import { importBundle } from './import.ts';

/** "200mb" → bytes (the same units as body-parser's limit). */
export function parseSize(text: string): number {
  const m = /^(\d+)(b|kb|mb|gb)$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[m[2]!.toLowerCase() as 'b'];
  return Number(m[1]) * unit;
}

const SPOOL_PREFIX = 'fhir-import-';
/** fhir-import-<pid>-<random>, the directory mkdtemp makes for one import. */
const SPOOL_NAME = new RegExp(`^${SPOOL_PREFIX}(\\d+)-`);
/** No import takes this long: a spool this old is stale whoever made it. */
const SPOOL_MAX_AGE_MS = 24 * 60 * 60 * 1000;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
};

/**
 * Removes import spools left by processes that are gone (or older than a day); returns how many.
 * Spools of live processes — another instance on this host importing now — are left alone.
 */
export async function sweepImportSpools(dir = tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = SPOOL_NAME.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    const pid = Number(m[1]);
    const stale = Date.now() - info.mtimeMs > SPOOL_MAX_AGE_MS;
    if (pid !== process.pid && (stale || !alive(pid))) {
      await rm(path, { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

const tooLarge = () =>
  new HttpError(413, 'payload_too_large', 'the bundle is larger than IMPORT_BODY_LIMIT', {}, 'too-costly');

export function importRoute(ctx: AppContext) {
  const limit = parseSize(ctx.config.importBodyLimit);
  return async function importHandler(req: Request, res: Response): Promise<void> {
    res.locals.errorFormat = 'fhir';
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json' && type !== 'application/fhir+json') {
      throw new HttpError(
        415,
        'unsupported_media_type',
        'send the Bundle as application/fhir+json or application/json',
        {},
        'not-supported',
      );
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity')
      throw new HttpError(
        415,
        'unsupported_media_type',
        'compressed bodies are not accepted',
        {},
        'not-supported',
      );
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) throw tooLarge();

    const dir = await mkdtemp(join(tmpdir(), `${SPOOL_PREFIX}${process.pid}-`));
    const file = join(dir, 'bundle.json');
    try {
      let received = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          received += chunk.length;
          if (received > limit) done(tooLarge());
          else done(null, chunk);
        },
      });
      await pipeline(req, counter, createWriteStream(file, { mode: 0o600 }));
      if (received === 0) throw badRequest('the request body is empty');
      const summary = await importBundle(ctx.db, { open: () => createReadStream(file) });
      await ctx.audit.record({
        action: 'admin.import',
        entity: `Bundle/${summary.bundleType}`,
        requestId: req.id == null ? null : String(req.id),
        ip: req.ip ?? null,
        detail: {
          entries: summary.entries,
          created: summary.created,
          updated: summary.updated,
          unchanged: summary.unchanged,
          deleted: summary.deleted,
        },
      });
      req.log?.info(
        { entries: summary.entries, created: summary.created, updated: summary.updated },
        'bundle imported',
      );
      res.status(200).type('application/fhir+json').send(JSON.stringify(summary.response));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
