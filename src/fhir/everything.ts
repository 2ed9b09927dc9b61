/*
 * Patient/{id}/$everything (https://hl7.org/fhir/R4/patient-operation-everything.html), as a
 * pipeline interaction.
 * - a searchset Bundle: the Patient first (first page only), then its compartment in the order
 *   of compartment-listing.ts — AllergyIntolerance, MedicationStatement, MedicationRequest,
 *   Condition, DocumentReference, Immunization, then the rest — so a client that reads only the
 *   first page gets what a referral is filled from, whatever order the chart was loaded in
 * - `_count` (default and max 1000) per page, and 4 MiB of resource text at most (PAGE_BYTES:
 *   a chart of large documents pages by size), `_since`, `_type`; `next` links
 *   carry a keyset cursor (group, seq) bounded by the highest seq at the first page, so paging
 *   neither skips nor repeats a resource while the chart changes
 * - one index range scan per group a page reaches (and the highest seq, on the first page:
 *   compartment-listing.ts), the stored text sent as stored, in writes of about 64 KiB
 *   (sendBundle): memory stays bounded by one page however large the chart
 * - only types the token may read; a Patient the token may not see is a 404
 * - the Patient's read also asks whether the token still counts (one round trip less per page)
 */
import type { AppContext } from '../context.ts';
import { badRequest } from '../http/errors.ts';
import { canSee, typeAllowed } from './access.ts';
import { listCompartmentRaw } from './compartment-listing.ts';
import {
  checkId,
  cursorParam,
  matchEntry,
  notFoundAs,
  pageLinks,
  parseCount,
  sendBundle,
  single,
} from './fhir-http.ts';
import type { LiveTokenSql } from './live-token.ts';
import { PAGE_BYTES } from './page-budget.ts';
import type { Interaction } from './pipeline.ts';
import { sees } from './read.ts';
import { readRawAsUser } from './reads.ts';
import { isCompartmentType, SUPPORTED_TYPES } from './resource-types.ts';

const COMPARTMENT_TYPES = SUPPORTED_TYPES.filter((t) => t !== 'Patient' && isCompartmentType(t));
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** `liveTokenSql`: the Patient's read asks whether the token still counts, as the read does (./read.ts). */
export function everythingInteraction(ctx: AppContext, liveTokenSql: LiveTokenSql): Interaction {
  const base = ctx.config.fhirBaseUrl;
  return {
    action: 'fhir.everything',
    interaction: 'r',
    target: (req) => ({ type: 'Patient', entity: `Patient/${checkId(req.params.id as string)}/$everything` }),
    async perform(req, { principal: p }) {
      const id = req.params.id as string;
      // A client that reads one page (Ocean) gets as much of the chart as a page may hold.
      const count = Math.max(1, parseCount(req.query._count, 1000, 1000));
      const sinceText = single(req, '_since');
      let since: Date | undefined;
      if (sinceText !== undefined) {
        if (!INSTANT.test(sinceText) || Number.isNaN(Date.parse(sinceText)))
          throw badRequest('_since must be an instant such as 2024-01-31T00:00:00Z');
        since = new Date(sinceText);
      }
      const typeText = single(req, '_type');
      let wanted: string[] | undefined;
      if (typeText !== undefined) {
        wanted = [...new Set(typeText.split(',').map((t) => t.trim()))];
        const unknown = wanted.find((t) => t !== 'Patient' && !COMPARTMENT_TYPES.includes(t as never));
        if (unknown)
          throw badRequest(`_type ${unknown.slice(0, 64)} is not a Patient compartment type of this server`);
      }
      const { text: cursorText, cursor } = cursorParam(req);

      const { raw: patient, live } = await readRawAsUser(ctx.db, 'Patient', id, p, liveTokenSql);
      if (!patient || patient.deleted || !sees(p, 'Patient', id, patient))
        return { live, refusal: notFoundAs('Patient', id) };

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
              maxBytes: includePatient ? PAGE_BYTES - Buffer.byteLength(patient.body) : PAGE_BYTES,
              cursor,
            });

      const params: [string, string][] = [];
      if (sinceText) params.push(['_since', sinceText]);
      if (typeText) params.push(['_type', typeText]);
      params.push(['_count', String(count)]);
      const links = pageLinks(base, `/Patient/${id}/$everything`, params, cursorText, page.next);

      return {
        live,
        patientId: id,
        detail: { page: cursor ? 'next' : 'first' },
        send(_req, res) {
          const entries: string[] = [];
          if (includePatient) entries.push(matchEntry(base, 'Patient', id, patient.body));
          for (const e of page.entries) {
            // the body is parsed only when a query-restricted scope needs it
            if (!canSee(p, 'r', e.type, e.id, id, () => JSON.parse(e.body))) continue;
            entries.push(matchEntry(base, e.type, e.id, e.body));
          }
          sendBundle(
            res,
            `"resourceType":"Bundle","type":"searchset","link":${JSON.stringify(links)}`,
            entries,
          );
        },
      };
    },
  };
}
