/*
 * A Patient's compartment, page by page, in $everything order (the Patient itself excluded).
 * - what a client that reads one page wants comes first: AllergyIntolerance, MedicationStatement,
 *   MedicationRequest, Condition, DocumentReference, Immunization — each type a group of its
 *   own, in that order — then every other type as one group; within a group, seq (load) order
 * - keyset paging on (group, seq), bounded above by the highest seq when paging began: a cursor
 *   never skips nor repeats a resource while the chart changes, whatever order it was loaded in
 * - one index range scan per group a page reaches, no sort; the stored text is returned
 *   unparsed, one page at a time
 * - a page holds at most `count` resources and at most `maxBytes` of their text, at least one
 *   (./page-budget.ts: the text past the budget never leaves the database)
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { badRequest } from '../http/errors.ts';
import { type Cursor, decodeCursor, encodeCursor } from './cursor.ts';
import { type BudgetedRow, budgetedScan, PAGE_BYTES, takeWithinBudget } from './page-budget.ts';
import { toInt } from './reads.ts';

/** The types $everything serves first, in this order (the sections Ocean pre-fills a referral with). */
export const EVERYTHING_FIRST = [
  'AllergyIntolerance',
  'MedicationStatement',
  'MedicationRequest',
  'Condition',
  'DocumentReference',
  'Immunization',
] as const;
/** The group of every other type: after the first ones. */
const REST = EVERYTHING_FIRST.length;
const FIRST_LIST = EVERYTHING_FIRST.join(',');
const isFirst = (type: string) => (EVERYTHING_FIRST as readonly string[]).includes(type);

export interface CompartmentPageOptions {
  /** Only these types (default: all). */
  types?: readonly string[];
  /** Only resources last updated at or after this instant (`_since`). */
  since?: Date;
  count: number;
  /** How many bytes of resource text the page may hold (default PAGE_BYTES; at least one resource). */
  maxBytes?: number;
  /** From a previous page's `next`. */
  cursor?: Cursor;
}

export interface RawPage {
  /** `type`, `id` and stored body text of each resource, in $everything order. */
  entries: { type: string; id: string; body: string }[];
  /** Cursor of the following page, when there is one. */
  next?: Cursor;
}

interface Row extends BudgetedRow {
  resource_type: string;
  id: string;
  seq: unknown;
  g: unknown;
}

const COLUMNS = (group: number) => `resource_type, id, seq, ${group} AS g`;

/**
 * One page of a Patient's compartment, the Patient itself excluded, as stored text.
 */
export async function listCompartmentRaw(
  q: Queryable,
  patientId: string,
  options: CompartmentPageOptions,
): Promise<RawPage> {
  let upTo = options.cursor?.upTo;
  if (upTo === undefined) {
    const max = await q.query<{ m: unknown }>(
      'SELECT max(seq) AS m FROM fhir_resources WHERE compartment_patient = $1',
      [patientId],
    );
    upTo = max.rows[0]?.m == null ? 0 : toInt(max.rows[0].m);
  }
  // a cursor of the plain seq order (issued before the groups existed) starts over at group 0
  const start = { group: Math.min(options.cursor?.group ?? 0, REST), after: options.cursor?.after ?? 0 };
  const wanted = (t: string) => !options.types || options.types.includes(t);
  const common = (params: unknown[]) => {
    params.push(patientId, upTo);
    let sql = `compartment_patient = $${params.length - 1} AND seq <= $${params.length} AND NOT deleted`;
    if (options.since) {
      params.push(options.since.toISOString());
      sql += ` AND last_updated >= $${params.length}::timestamptz`;
    }
    return sql;
  };

  const entries: RawPage['entries'] = [];
  let need = options.count;
  // bytes of text the page may still take (the first resource of a page is taken however large)
  let bytes = options.maxBytes ?? PAGE_BYTES;
  let next: Cursor | undefined;
  /**
   * Takes up to `need` rows, those with their text (within the byte budget); true when the page
   * is full (and sets `next`, since more remain).
   */
  const take = (rows: Row[], from: { group: number; after: number }): boolean => {
    const { taken, more } = takeWithinBudget(rows, need);
    for (const row of taken) entries.push({ type: row.resource_type, id: row.id, body: row.body });
    need -= taken.length;
    const last = taken.at(-1);
    if (last) bytes -= toInt(last.running);
    if (!more) return false;
    next = last ? { group: toInt(last.g), after: toInt(last.seq), upTo: upTo! } : { ...from, upTo: upTo! };
    return true;
  };

  // the first groups, one type each: an index range scan of (compartment_patient, resource_type,
  // seq) per group, until the page is full
  for (let group = start.group; group < REST; group++) {
    const type = EVERYTHING_FIRST[group]!;
    if (!wanted(type)) continue;
    const from = { group, after: group === start.group ? start.after : 0 };
    const params: unknown[] = [type, from.after, need + 1, bytes, entries.length === 0];
    const r = await q.query<Row>(
      budgetedScan(
        COLUMNS(group),
        `FROM fhir_resources WHERE ${common(params)} AND resource_type = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
        '$4',
        '$5',
      ),
      params,
    );
    if (take(r.rows, from)) return { entries, next };
  }

  // the rest: one range scan in seq order
  const restStart = start.group === REST ? start : { group: REST, after: 0 };
  const restTypes = options.types?.filter((t) => t !== 'Patient' && !isFirst(t));
  if (restTypes && restTypes.length === 0) return { entries };
  const params: unknown[] = [restStart.after, need + 1, bytes, entries.length === 0];
  let where = common(params);
  if (restTypes) {
    params.push(restTypes.join(','));
    where += ` AND resource_type = ANY(string_to_array($${params.length}, ','))`;
  } else {
    params.push(`Patient,${FIRST_LIST}`);
    where += ` AND resource_type <> ALL(string_to_array($${params.length}, ','))`;
  }
  const r = await q.query<Row>(
    budgetedScan(
      COLUMNS(REST),
      `FROM fhir_resources WHERE ${where} AND seq > $1 ORDER BY seq LIMIT $2`,
      '$3',
      '$4',
    ),
    params,
  );
  take(r.rows, restStart);
  return { entries, next };
}

/** One page of a Patient's compartment (the Patient excluded), parsed; for the EHR chart and demo data. */
export async function listCompartment(
  q: Queryable,
  patientId: string,
  options: Omit<CompartmentPageOptions, 'cursor'> & { cursor?: string },
): Promise<{ resources: Resource[]; nextCursor?: string }> {
  const cursor = options.cursor ? decodeCursor(options.cursor) : undefined;
  if (options.cursor && !cursor) throw badRequest('cursor is not valid');
  const page = await listCompartmentRaw(q, patientId, { ...options, cursor });
  return {
    resources: page.entries.map((e) => JSON.parse(e.body) as Resource),
    nextCursor: page.next ? encodeCursor(page.next) : undefined,
  };
}
