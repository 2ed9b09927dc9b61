/*
 * What the chart lists: the most recent entries of each kind in a Patient's compartment.
 * - newest first by the resource's clinical date (effective / onset / recorded / authored / date),
 *   so an imported chart with thousands of observations shows its latest ones, not its oldest
 * - one indexed range per list (fhir_resources_compartment), at most `limit` rows, plus the total
 * - documents come without their inline attachment bytes (a chart must not load every PDF);
 *   whether bytes exist, and their size, are computed in the database
 * The FHIR store's own reads for the EHR chart screens (src/ehr/screens.ts); writes stay in repository.ts.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';

/** The clinical date of any listed type, as ISO text (sorts well enough across offsets). */
const CLINICAL_DATE = `coalesce(
  resource->>'effectiveDateTime', resource#>>'{effectivePeriod,start}', resource->>'effectiveInstant',
  resource->>'onsetDateTime', resource#>>'{onsetPeriod,start}', resource->>'authoredOn',
  resource->>'recordedDate', resource->>'dateAsserted', resource->>'date',
  resource#>>'{content,0,attachment,creation}', resource->>'issued')`;

export interface ChartList<T extends Resource = Resource> {
  items: T[];
  /** How many the compartment holds in all. */
  total: number;
}

export async function recentInCompartment<T extends Resource>(
  q: Queryable,
  patientId: string,
  types: readonly string[],
  limit: number,
): Promise<ChartList<T>> {
  const r = await q.query<{ resource: T; total: unknown }>(
    `SELECT resource, count(*) OVER () AS total
       FROM fhir_resources
      WHERE compartment_patient = $1 AND resource_type = ANY(string_to_array($2, ',')) AND NOT deleted
      ORDER BY ${CLINICAL_DATE} DESC NULLS LAST, id
      LIMIT $3`,
    [patientId, types.join(','), limit],
  );
  return { items: r.rows.map((row) => row.resource), total: r.rows.length ? Number(r.rows[0]!.total) : 0 };
}

export interface DocumentSummary {
  resource: Resource;
  /** Inline attachment bytes exist (the chart can open the document). */
  hasData: boolean;
  /** Decoded size of the inline attachment, in bytes. */
  dataBytes?: number;
}

export async function recentDocuments(
  q: Queryable,
  patientId: string,
  limit: number,
): Promise<{ items: DocumentSummary[]; total: number }> {
  const r = await q.query<{ resource: Resource; b64_length: unknown; total: unknown }>(
    `SELECT resource #- '{content,0,attachment,data}' AS resource,
            length(resource #>> '{content,0,attachment,data}') AS b64_length,
            count(*) OVER () AS total
       FROM fhir_resources
      WHERE compartment_patient = $1 AND resource_type = 'DocumentReference' AND NOT deleted
      ORDER BY ${CLINICAL_DATE} DESC NULLS LAST, id
      LIMIT $2`,
    [patientId, limit],
  );
  return {
    items: r.rows.map((row) => {
      const b64 = row.b64_length == null ? undefined : Number(row.b64_length);
      return {
        resource: row.resource,
        hasData: b64 !== undefined && b64 > 0,
        dataBytes: b64 === undefined ? undefined : Math.floor((b64 * 3) / 4),
      };
    }),
    total: r.rows.length ? Number(r.rows[0]!.total) : 0,
  };
}
