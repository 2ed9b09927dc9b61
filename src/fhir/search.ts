/*
 * Type-level search (https://hl7.org/fhir/R4/search.html), keyset-paged by seq.
 * - Patient / Practitioner: identifier, name, family, given (+ :exact, :contains), gender,
 *   birthdate (eq ne lt gt le ge) from fhir_search_index; every type: _id, _count;
 *   compartment types: patient (= subject)
 * - comma-separated values are OR, repeated parameters AND
 * - unknown parameters are ignored (and left out of the self link) unless `Prefer: handling=strict`
 * - SQL narrows to what the token may see (searchScope); canSee has the last word per resource
 * - `next` links carry an opaque `_cursor`; pages stay stable while the data changes
 * - a page holds `_count` resources (default 50, max 1000) and at most PAGE_BYTES of their text
 *   (./page-budget.ts)
 */
import type { Request } from 'express';
import type { AppContext } from '../context.ts';
import { badRequest } from '../http/errors.ts';
import { canSee, searchScope } from './access.ts';
import type { Cursor } from './cursor.ts';
import { cursorParam, matchEntry, pageLinks, parseCount, sendBundle } from './fhir-http.ts';
import { type BudgetedRow, budgetedScan, PAGE_BYTES, takeWithinBudget } from './page-budget.ts';
import type { Interaction } from './pipeline.ts';
import { isCompartmentType, isValidId, patientIdOfReference } from './resource-types.ts';
import { INDEXED_TYPES, likePrefix, normalizeText } from './search-index.ts';

const CONTROL = new Set(['_count', '_cursor', '_format', '_pretty', '_summary', '_elements']);
const NAME_PARAMS = new Set(['name', 'family', 'given']);
const NAMED_TYPES = new Set(['Patient', 'Practitioner']);
const DATE = /^(eq|ne|lt|gt|le|ge)?(\d{4}(-\d{2}(-\d{2})?)?)$/;

interface Built {
  where: string[];
  params: unknown[];
  /** Parameters understood, for the self and next links. */
  used: [string, string][];
}

function valuesOf(req: Request, name: string): string[] {
  const v = req.query[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

/** `param` is one of our own constant names, never client text. */
function addIndexed(b: Built, param: string, sqlCondition: (col: string) => string) {
  b.where.push(
    `r.id IN (SELECT s.id FROM fhir_search_index s WHERE s.resource_type = $1 AND s.param = '${param}' AND (${sqlCondition('s.value')}))`,
  );
}

function push(b: Built, value: unknown): string {
  b.params.push(value);
  return `$${b.params.length}`;
}

function buildConditions(req: Request, type: string, strict: boolean): Built {
  const b: Built = { where: [], params: [type], used: [] };
  for (const rawKey of Object.keys(req.query)) {
    if (CONTROL.has(rawKey)) continue;
    const [name, modifier] = rawKey.split(':', 2) as [string, string | undefined];
    const values = valuesOf(req, rawKey);
    let understood = true;
    for (const value of values) {
      if (value === '') throw badRequest(`${rawKey} needs a value`);
      if (value.length > 512) throw badRequest(`${rawKey} is too long`);
      const alternatives = value.split(',');
      if (name === '_id' && !modifier) {
        if (!alternatives.every(isValidId)) throw badRequest('_id values must match [A-Za-z0-9-.]{1,64}');
        b.where.push(`r.id = ANY(string_to_array(${push(b, alternatives.join(','))}, ','))`);
      } else if (
        (name === 'patient' || name === 'subject') &&
        !modifier &&
        isCompartmentType(type) &&
        type !== 'Patient'
      ) {
        const ids = alternatives.map((a) => (isValidId(a) ? a : patientIdOfReference(a)));
        if (ids.some((i) => !i)) throw badRequest(`${name} must name a Patient: an id or Patient/{id}`);
        b.where.push(`r.compartment_patient = ANY(string_to_array(${push(b, ids.join(','))}, ','))`);
      } else if (NAMED_TYPES.has(type) && NAME_PARAMS.has(name)) {
        if (modifier && modifier !== 'exact' && modifier !== 'contains')
          throw badRequest(`modifier :${modifier} is not supported on ${name}`);
        const ors = alternatives.map((alt) => {
          const norm = normalizeText(alt);
          if (!norm) throw badRequest(`${name} needs letters or digits`);
          // the whole family name is indexed too; given/name match word by word
          const words = name === 'family' || modifier ? [norm] : norm.split(/[\s-]+/).filter(Boolean);
          return words
            .map((w) => {
              const col = 's.value';
              if (modifier === 'exact') return `${col} = ${push(b, w)}`;
              if (modifier === 'contains') return `${col} LIKE ${push(b, `%${likePrefix(w)}`)}`;
              return `${col} LIKE ${push(b, likePrefix(w))}`;
            })
            .map(
              (cond) =>
                `r.id IN (SELECT s.id FROM fhir_search_index s WHERE s.resource_type = $1 AND s.param = '${name}' AND ${cond})`,
            )
            .join(' AND ');
        });
        b.where.push(`((${ors.join(') OR (')}))`);
      } else if (INDEXED_TYPES.has(type) && name === 'identifier' && !modifier) {
        const ors = alternatives.map((alt) => {
          const bar = alt.indexOf('|');
          if (bar < 0) return `s.param = 'identifier-value' AND s.value = ${push(b, alt)}`;
          if (bar === alt.length - 1)
            return `s.param = 'identifier' AND s.value LIKE ${push(b, likePrefix(alt))}`;
          return `s.param = 'identifier' AND s.value = ${push(b, alt)}`;
        });
        b.where.push(
          `r.id IN (SELECT s.id FROM fhir_search_index s WHERE s.resource_type = $1 AND ((${ors.join(') OR (')})))`,
        );
      } else if (type === 'Patient' && name === 'gender' && !modifier) {
        if (!alternatives.every((g) => /^(male|female|other|unknown)$/.test(g)))
          throw badRequest('gender must be male, female, other or unknown');
        addIndexed(
          b,
          'gender',
          (col) => `${col} = ANY(string_to_array(${push(b, alternatives.join(','))}, ','))`,
        );
      } else if (type === 'Patient' && name === 'birthdate' && !modifier) {
        const ors = alternatives.map((alt) => {
          const m = DATE.exec(alt);
          if (!m) throw badRequest('birthdate must be [eq|ne|lt|gt|le|ge]YYYY[-MM[-DD]]');
          const date = m[2]!;
          const prefix = push(b, likePrefix(date));
          const exact = push(b, date);
          const eq = `(s.value LIKE ${prefix} OR ${exact} LIKE s.value || '%')`;
          switch (m[1] ?? 'eq') {
            case 'eq':
              return eq;
            case 'ne':
              return `NOT ${eq}`;
            case 'lt':
              return `(s.value < ${exact} AND NOT ${eq})`;
            case 'le':
              return `(s.value < ${exact} OR ${eq})`;
            case 'gt':
              return `(s.value > ${exact} AND NOT ${eq})`;
            default:
              return `(s.value > ${exact} OR ${eq})`;
          }
        });
        b.where.push(
          `r.id IN (SELECT s.id FROM fhir_search_index s WHERE s.resource_type = $1 AND s.param = 'birthdate' AND ((${ors.join(') OR (')})))`,
        );
      } else {
        understood = false;
      }
    }
    if (understood) for (const v of values) b.used.push([rawKey, v]);
    else if (strict) throw badRequest(`search parameter ${rawKey.slice(0, 64)} is not supported for ${type}`);
  }
  return b;
}

export function searchInteraction(ctx: AppContext): Interaction {
  const base = ctx.config.fhirBaseUrl;
  return {
    action: 'fhir.search',
    interaction: 's',
    target(req) {
      const type = req.params.type as string;
      const params = Object.keys(req.query)
        .filter((k) => !CONTROL.has(k))
        .sort()
        .join(',');
      return { type, entity: `${type}?${params}`.slice(0, 200) };
    },
    async perform(req, { principal: p, type }) {
      const strict = /handling\s*=\s*strict/i.test(String(req.headers.prefer ?? ''));
      const count = parseCount(req.query._count, 50, 1000);
      const { text: cursorText, cursor } = cursorParam(req);
      const b = buildConditions(req, type, strict);
      const scope = searchScope(p, type, 's');
      if (!scope.all) {
        const ors: string[] = [];
        if (scope.compartment) ors.push(`r.compartment_patient = ${push(b, scope.compartment)}`);
        if (scope.ids.length > 0)
          ors.push(`r.id = ANY(string_to_array(${push(b, scope.ids.join(','))}, ','))`);
        b.where.push(ors.length > 0 ? `(${ors.join(' OR ')})` : 'false');
      }
      let upTo = cursor?.upTo;
      if (upTo === undefined) {
        const max = await ctx.db.query<{ m: unknown }>(
          `SELECT max(seq) AS m FROM fhir_resources WHERE resource_type = $1`,
          [type],
        );
        upTo = max.rows[0]?.m == null ? 0 : Number(max.rows[0].m);
      }
      const after = push(b, cursor?.after ?? 0);
      const upper = push(b, upTo);
      const limit = push(b, count + 1);
      const budget = push(b, PAGE_BYTES);
      const scanned =
        count === 0
          ? []
          : (
              await ctx.db.query<
                BudgetedRow & { id: string; seq: unknown; compartment_patient: string | null }
              >(
                budgetedScan(
                  'id, seq, compartment_patient',
                  `FROM fhir_resources r
                  WHERE r.resource_type = $1 AND NOT r.deleted AND r.seq > ${after} AND r.seq <= ${upper}
                    ${b.where.map((w) => `AND ${w}`).join(' ')}
                  ORDER BY r.seq
                  LIMIT ${limit}`,
                  budget,
                  'true',
                ),
                b.params,
              )
            ).rows;
      // at most `count` resources and PAGE_BYTES of their text (./page-budget.ts)
      const { taken: rows, more } = takeWithinBudget(scanned, count);
      let next: Cursor | undefined;
      if (more && rows.length > 0) next = { after: Number(rows[rows.length - 1]!.seq), upTo };
      const visible = rows.filter((row) =>
        canSee(p, 's', type, row.id, row.compartment_patient, () => JSON.parse(row.body)),
      );
      const patients = [...new Set(visible.map((r) => r.compartment_patient).filter(Boolean))];

      const links = pageLinks(base, `/${type}`, [...b.used, ['_count', String(count)]], cursorText, next);
      const total = !next && !cursor && count > 0 ? `"total":${visible.length},` : '';
      return {
        patientId: patients.length === 1 ? patients[0] : p.patient,
        detail: { results: visible.length },
        send(_req, res) {
          sendBundle(
            res,
            `"resourceType":"Bundle","type":"searchset",${total}"link":${JSON.stringify(links)}`,
            visible.map((row) => matchEntry(base, type, row.id, row.body)),
          );
        },
      };
    },
  };
}
