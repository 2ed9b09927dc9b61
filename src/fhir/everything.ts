/*
 * Patient/{id}/$everything (https://hl7.org/fhir/R4/patient-operation-everything.html).
 * - a searchset Bundle: the Patient first (first page only), then its compartment in seq order
 * - `_count` (default 100, max 1000) per page, `_since`, `_type`; `next` links carry a keyset
 *   cursor bounded by the highest seq at the first page, so paging neither skips nor repeats a
 *   resource while the chart changes
 * - one indexed range scan per page, the stored text streamed out row by row: memory stays
 *   bounded by one page however large the chart
 * - only types the token may read; a Patient the token may not see is a 404
 */
import type { Request, Response } from 'express';
import type { AppContext } from '../context.ts';
import { HttpError } from '../http/errors.ts';
import { canSee, typeAllowed } from './access.ts';
import { audit, checkId, FHIR_JSON, linkUrl, parseCount, principalOf, single } from './fhir-http.ts';
import { denyType, notFoundAs } from './read.ts';
import { type Cursor, decodeCursor, encodeCursor, listCompartmentRaw, readRaw } from './repository.ts';
import { isCompartmentType, SUPPORTED_TYPES } from './resource-types.ts';

const invalid = (message: string) => new HttpError(400, 'invalid_request', message, {}, 'invalid');
const COMPARTMENT_TYPES = SUPPORTED_TYPES.filter((t) => t !== 'Patient' && isCompartmentType(t));
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function everythingHandler(ctx: AppContext) {
  const base = ctx.config.fhirBaseUrl;
  return async function everything(req: Request, res: Response): Promise<void> {
    const id = checkId(req.params.id as string);
    const p = principalOf(res);
    const entity = `Patient/${id}/$everything`;
    if (!typeAllowed(p, 'Patient', 'r')) return denyType(ctx, req, res, 'Patient', entity);

    const count = Math.max(1, parseCount(req.query._count, 100, 1000));
    const sinceText = single(req, '_since');
    let since: Date | undefined;
    if (sinceText !== undefined) {
      if (!INSTANT.test(sinceText) || Number.isNaN(Date.parse(sinceText)))
        throw invalid('_since must be an instant such as 2024-01-31T00:00:00Z');
      since = new Date(sinceText);
    }
    const typeText = single(req, '_type');
    let wanted: string[] | undefined;
    if (typeText !== undefined) {
      wanted = [...new Set(typeText.split(',').map((t) => t.trim()))];
      const unknown = wanted.find((t) => t !== 'Patient' && !COMPARTMENT_TYPES.includes(t as never));
      if (unknown)
        throw invalid(`_type ${unknown.slice(0, 64)} is not a Patient compartment type of this server`);
    }
    const cursorText = single(req, '_cursor');
    let cursor: Cursor | undefined;
    if (cursorText !== undefined) {
      cursor = decodeCursor(cursorText);
      if (!cursor) throw invalid('_cursor is not a paging cursor of this server');
    }

    const patient = await readRaw(ctx.db, 'Patient', id);
    if (
      !patient ||
      patient.deleted ||
      !canSee(p, 'r', 'Patient', id, patient.compartment, () => JSON.parse(patient.body))
    ) {
      await audit(ctx, req, p, {
        action: 'fhir.everything',
        entity,
        outcome: 'failure',
        detail: { status: 404 },
      });
      throw notFoundAs('Patient', id);
    }

    // the types this token may read, narrowed by _type
    const readable = COMPARTMENT_TYPES.filter(
      (t) => (!wanted || wanted.includes(t)) && typeAllowed(p, t, 'r'),
    );
    const includePatient =
      !cursor && (!wanted || wanted.includes('Patient')) && (!since || patient.lastUpdated >= since);
    const page =
      readable.length === 0
        ? { entries: [] }
        : await listCompartmentRaw(ctx.db, id, {
            types: readable.length === COMPARTMENT_TYPES.length ? undefined : readable,
            since,
            count: includePatient ? Math.max(count - 1, 1) : count,
            cursor,
          });
    await audit(ctx, req, p, {
      action: 'fhir.everything',
      entity,
      patientId: id,
      detail: { page: cursor ? 'next' : 'first' },
    });

    const params: [string, string][] = [];
    if (sinceText) params.push(['_since', sinceText]);
    if (typeText) params.push(['_type', typeText]);
    params.push(['_count', String(count)]);
    const links = [
      {
        relation: 'self',
        url: linkUrl(
          base,
          `/Patient/${id}/$everything`,
          cursorText ? [...params, ['_cursor', cursorText]] : params,
        ),
      },
    ];
    if (page.next)
      links.push({
        relation: 'next',
        url: linkUrl(base, `/Patient/${id}/$everything`, [...params, ['_cursor', encodeCursor(page.next)]]),
      });

    res.status(200).setHeader('Content-Type', FHIR_JSON);
    res.write(`{"resourceType":"Bundle","type":"searchset","link":${JSON.stringify(links)},"entry":[`);
    let first = true;
    const entry = (type: string, rid: string, body: string) => {
      res.write(
        `${first ? '' : ','}{"fullUrl":${JSON.stringify(`${base}/${type}/${rid}`)},"resource":${body},"search":{"mode":"match"}}`,
      );
      first = false;
    };
    if (includePatient) entry('Patient', id, patient.body);
    for (const e of page.entries) {
      // the body is parsed only when a query-restricted scope needs it
      if (!canSee(p, 'r', e.type, e.id, id, () => JSON.parse(e.body))) continue;
      entry(e.type, e.id, e.body);
    }
    res.end(']}');
  };
}
