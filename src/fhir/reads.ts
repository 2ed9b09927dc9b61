/*
 * Reads of one resource from the FHIR store: the current version, one version, every version.
 * - one row shape (body as stored text, version, last-updated, compartment, deleted), mapped
 *   once (toRaw); the HTTP layer sends the text without re-serialising it
 * - a version carries its own Patient compartment (where that version was filed); visibility
 *   of old versions is judged on it, never on the current one's
 * - deleted resources come back flagged (reads answer 410) except from readResource
 */
import type { Resource, ResourceType } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import type { LiveTokenSql } from './live-token.ts';
import { isValidId } from './resource-types.ts';

export interface StoredResource<T extends Resource = Resource> {
  resource: T;
  versionId: number;
  lastUpdated: Date;
  /** Id of the Patient whose compartment holds the resource, or null. */
  compartment: string | null;
  deleted: boolean;
}

/** A stored row as text, for the HTTP layer that sends it without re-serialising. */
export interface RawResource {
  body: string;
  versionId: number;
  lastUpdated: Date;
  compartment: string | null;
  deleted: boolean;
}

export const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
export const toInt = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

/** The columns of the one row shape, from fhir_resources or fhir_resource_history under `alias`. */
const rawColumns = (alias: string) =>
  `${alias}.resource::text AS body, ${alias}.version_id, ${alias}.last_updated, ${alias}.compartment_patient, ${alias}.deleted`;

interface RawRow {
  body: string;
  version_id: unknown;
  last_updated: unknown;
  compartment_patient: string | null;
  deleted: boolean;
}

function toRaw(row: RawRow): RawResource {
  return {
    body: row.body,
    versionId: toInt(row.version_id),
    lastUpdated: toDate(row.last_updated),
    compartment: row.compartment_patient,
    deleted: Boolean(row.deleted),
  };
}

const READ_CURRENT = `SELECT ${rawColumns('f')} FROM fhir_resources f WHERE f.resource_type = $1 AND f.id = $2`;

/** One index lookup; the body as stored text. Deleted resources come back with deleted = true. */
export async function readRaw(q: Queryable, type: string, id: string): Promise<RawResource | undefined> {
  const row = (await q.query<RawRow>(READ_CURRENT, [type, id], { prepare: true })).rows[0];
  return row ? toRaw(row) : undefined;
}

/**
 * readRawAsUser's statement, built once per liveness condition: its text names its prepared
 * statement (src/db/postgres.ts), and a text built anew for every read was hashed anew for every read.
 */
const readAsUserSql = new WeakMap<LiveTokenSql, string>();

/**
 * readRaw plus whether the access token still counts (its grant not ended, its user active), in
 * one round trip: the FHIR read hot path checks revocation without a query of its own.
 */
export async function readRawAsUser(
  q: Queryable,
  type: string,
  id: string,
  token: { tokenId: string; userId: string },
  liveTokenSql: LiveTokenSql,
): Promise<{ raw: RawResource | undefined; live: boolean }> {
  let sql = readAsUserSql.get(liveTokenSql);
  if (!sql) {
    sql = `SELECT ${rawColumns('f')}, EXISTS (${liveTokenSql('$3', '$4')}) AS live
             FROM (SELECT 1) AS one
             LEFT JOIN fhir_resources f ON f.resource_type = $1 AND f.id = $2`;
    readAsUserSql.set(liveTokenSql, sql);
  }
  const r = await q.query<RawRow & { body: string | null; live: boolean | null }>(
    sql,
    [type, id, token.tokenId, token.userId],
    { prepare: true },
  );
  const row = r.rows[0];
  return { raw: row && row.body !== null ? toRaw(row) : undefined, live: row?.live === true };
}

/** The current version, parsed, or undefined when absent or deleted. */
export async function readResource<T extends ResourceType>(
  q: Queryable,
  type: T,
  id: string,
): Promise<StoredResource<Extract<Resource, { resourceType: T }>> | undefined> {
  if (!isValidId(id)) return undefined;
  const raw = await readRaw(q, type, id);
  if (!raw || raw.deleted) return undefined;
  const { body, ...rest } = raw;
  return { ...rest, resource: JSON.parse(body) as Extract<Resource, { resourceType: T }> };
}

/**
 * SQL for "Patient $n is stored and not deleted" (what readResource finds), for a statement of
 * another room that must check it in the same round trip (a launch): the FHIR store's SQL stays here.
 */
export const storedPatientSql = (param: string): string =>
  `EXISTS (SELECT 1 FROM fhir_resources WHERE resource_type = 'Patient' AND id = ${param} AND NOT deleted)`;

/** One version from the history (deletions included, flagged), with the compartment it was filed under. */
export async function readVersion(
  q: Queryable,
  type: string,
  id: string,
  versionId: number,
): Promise<(RawResource & { resource: Resource }) | undefined> {
  if (!isValidId(id) || !Number.isSafeInteger(versionId) || versionId < 1) return undefined;
  const row = (
    await q.query<RawRow>(
      `SELECT ${rawColumns('h')} FROM fhir_resource_history h
        WHERE h.resource_type = $1 AND h.id = $2 AND h.version_id = $3`,
      [type, id, versionId],
    )
  ).rows[0];
  return row ? { ...toRaw(row), resource: JSON.parse(row.body) as Resource } : undefined;
}

/**
 * Versions newest first (history interaction), each with the compartment it was filed under;
 * only versions below `below` when given (paging), at most `limit`.
 */
export async function listVersions(
  q: Queryable,
  type: string,
  id: string,
  options: { below?: number; limit: number },
): Promise<RawResource[]> {
  const r = await q.query<RawRow>(
    `SELECT ${rawColumns('h')} FROM fhir_resource_history h
      WHERE h.resource_type = $1 AND h.id = $2 AND h.version_id < $3
      ORDER BY h.version_id DESC LIMIT $4`,
    [type, id, options.below ?? 2 ** 31 - 1, options.limit],
  );
  return r.rows.map(toRaw);
}
