/*
 * history of one resource (https://hl7.org/fhir/R4/http.html#history), as a pipeline interaction.
 * - each version is judged on its own: listed only if that version was filed in the token's
 *   compartment and passes its query restrictions, and only while the resource is visible now;
 *   `total` counts the versions listed, and nothing else
 * - newest first, `_count` (default 100, max 1000) a page; `next` links carry a keyset cursor
 *   (the last version served, the newest version when paging began), so versions written while
 *   paging wait for the next history and no version is listed twice
 * - the versions are scanned in batches: memory is one batch and one page, however long the history
 */
import type { AppContext } from '../context.ts';
import type { Cursor } from './cursor.ts';
import { checkId, cursorParam, notFoundAs, pageLinks, parseCount, sendBundle } from './fhir-http.ts';
import type { Interaction } from './pipeline.ts';
import { sees } from './read.ts';
import { listVersions, type RawResource, readRaw } from './reads.ts';

const BATCH = 500;

function entry(base: string, type: string, id: string, v: RawResource): string {
  const fullUrl = JSON.stringify(`${base}/${type}/${id}`);
  const request = JSON.stringify({
    method: v.deleted ? 'DELETE' : v.versionId === 1 ? 'POST' : 'PUT',
    url: v.versionId === 1 ? type : `${type}/${id}`,
  });
  const response = JSON.stringify({
    status: v.deleted ? '204' : v.versionId === 1 ? '201' : '200',
    etag: `W/"${v.versionId}"`,
    lastModified: v.lastUpdated.toISOString(),
  });
  return `{"fullUrl":${fullUrl},${v.deleted ? '' : `"resource":${v.body},`}"request":${request},"response":${response}}`;
}

export function historyInteraction(ctx: AppContext): Interaction {
  const base = ctx.config.fhirBaseUrl;
  return {
    action: 'fhir.history',
    interaction: 'r',
    target(req) {
      const type = req.params.type as string;
      return { type, entity: `${type}/${checkId(req.params.id as string)}/_history` };
    },
    async perform(req, { principal, type }) {
      const id = req.params.id as string;
      const count = parseCount(req.query._count, 100, 1000);
      const { text: cursorText, cursor } = cursorParam(req);
      const current = await readRaw(ctx.db, type, id);
      if (!current || !sees(principal, type, id, current)) return { refusal: notFoundAs(type, id) };

      // one pass over the versions newest first: count the visible ones, keep this page's
      const upTo = cursor?.upTo ?? current.versionId;
      const pageBelow = cursor ? cursor.after : upTo + 1;
      const page: RawResource[] = [];
      let total = 0;
      let next: Cursor | undefined;
      for (let below = upTo + 1; ; ) {
        const batch = await listVersions(ctx.db, type, id, { below, limit: BATCH });
        for (const v of batch) {
          if (!sees(principal, type, id, v)) continue;
          total++;
          if (v.versionId >= pageBelow) continue;
          if (page.length < count) page.push(v);
          else if (count > 0) next ??= { after: page.at(-1)!.versionId, upTo };
        }
        if (batch.length < BATCH) break;
        below = batch.at(-1)!.versionId;
      }

      const links = pageLinks(base, `/${type}/${id}/_history`, [['_count', String(count)]], cursorText, next);
      return {
        patientId: current.compartment,
        send(_req, res) {
          sendBundle(
            res,
            `"resourceType":"Bundle","type":"history","total":${total},"link":${JSON.stringify(links)}`,
            page.map((v) => entry(base, type, id, v)),
          );
        },
      };
    },
  };
}
