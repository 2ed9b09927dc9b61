/*
 * The EHR's patient list: Patients matching a name, health card number or birth date.
 * - every word of the query must start one of the patient's name parts (case and accents ignored)
 * - health card numbers match with spaces and dashes ignored; birth dates by prefix
 * - ordered by family then given name; offset paging with the total (a screen, not an API)
 */
import type { Patient } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { toInt } from './reads.ts';
import { likePrefix, normalizeText } from './search-index.ts';

export interface PatientSearch {
  /** Name fragment(s): every word must start one of the patient's name parts (case and accents ignored). */
  query?: string;
  /** Health card number (spaces and dashes ignored). */
  hcn?: string;
  /** YYYY-MM-DD (or a prefix: YYYY, YYYY-MM). */
  birthDate?: string;
  count: number;
  offset: number;
}

/** Matching Patients ordered by family then given name, and how many match. */
export async function searchPatients(
  q: Queryable,
  search: PatientSearch,
): Promise<{ patients: Patient[]; total: number }> {
  const params: unknown[] = [];
  const where: string[] = [`r.resource_type = 'Patient'`, 'NOT r.deleted'];
  const indexed = (param: string, op: 'eq' | 'prefix', value: string) => {
    params.push(param, op === 'prefix' ? likePrefix(value) : value);
    const cmp = op === 'prefix' ? 'LIKE' : '=';
    where.push(
      `r.id IN (SELECT s.id FROM fhir_search_index s WHERE s.resource_type = 'Patient' AND s.param = $${params.length - 1} AND s.value ${cmp} $${params.length})`,
    );
  };
  for (const word of normalizeText(search.query ?? '')
    .split(/[\s-]+/)
    .filter(Boolean)
    .slice(0, 5)) {
    indexed('name', 'prefix', word);
  }
  if (search.hcn?.trim()) indexed('hcn', 'eq', search.hcn.replace(/[\s-]/g, '').toUpperCase());
  if (search.birthDate?.trim()) indexed('birthdate', 'prefix', search.birthDate.trim());
  const count = Math.max(0, Math.min(Math.trunc(search.count), 1000));
  const offset = Math.max(0, Math.trunc(search.offset));
  params.push(count, offset);
  const r = await q.query<{ resource: Patient; total: unknown }>(
    `SELECT r.resource, count(*) OVER () AS total
       FROM fhir_resources r
      WHERE ${where.join(' AND ')}
      ORDER BY lower(r.resource #>> '{name,0,family}'), lower(r.resource #>> '{name,0,given,0}'), r.id
      LIMIT $${params.length - 1} OFFSET $${params.length}`,
    params,
  );
  let total = r.rows.length > 0 ? toInt(r.rows[0]!.total) : 0;
  if (r.rows.length === 0 && offset > 0) {
    const c = await q.query<{ n: unknown }>(
      `SELECT count(*) AS n FROM fhir_resources r WHERE ${where.join(' AND ')}`,
      params.slice(0, -2),
    );
    total = toInt(c.rows[0]?.n ?? 0);
  }
  return { patients: r.rows.map((row) => row.resource), total };
}
