/*
 * Writes to the FHIR store: create, put (one or many), delete.
 * - works on any Queryable, so a caller can run it inside its own transaction
 * - each write sets the current row (fhir_resources) and adds one history row carrying the same
 *   body and the same Patient compartment, in one statement: a version records where *it* was
 *   filed, which is what _history and vread judge it by
 * - a put whose body equals the current one (meta aside) writes nothing: imports are idempotent
 * - the search index is rewritten in the same transaction as each version
 * - `seq` is assigned at creation and kept on update (the keyset of every listing)
 */
import { randomUUID } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { conflict } from '../http/errors.ts';
import { type StoredResource, toDate, toInt } from './reads.ts';
import { canonical, InvalidResourceError, serialise, validate, withMeta } from './resource-rules.ts';
import { compartmentOf } from './resource-types.ts';
import { extractIndexRows, INDEXED_TYPES } from './search-index.ts';

export type PutOutcome = 'created' | 'updated' | 'unchanged';

/** The current row's columns that each history row copies. */
const VERSION_COLUMNS = 'resource_type, id, version_id, last_updated, compartment_patient, deleted, resource';

const INSERT_NEW = `
  WITH cur AS (
    INSERT INTO fhir_resources (${VERSION_COLUMNS})
    VALUES ($1, $2, 1, $3::timestamptz, $4, false, $5::jsonb)
    ON CONFLICT (resource_type, id) DO NOTHING
    RETURNING ${VERSION_COLUMNS}
  )
  INSERT INTO fhir_resource_history (${VERSION_COLUMNS})
  SELECT ${VERSION_COLUMNS} FROM cur
  RETURNING version_id`;

const UPDATE_EXISTING = `
  WITH cur AS (
    UPDATE fhir_resources
       SET version_id = $3, last_updated = $4::timestamptz, compartment_patient = $5, deleted = $6, resource = $7::jsonb
     WHERE resource_type = $1 AND id = $2
    RETURNING ${VERSION_COLUMNS}
  )
  INSERT INTO fhir_resource_history (${VERSION_COLUMNS})
  SELECT ${VERSION_COLUMNS} FROM cur
  RETURNING version_id`;

async function writeIndex(q: Queryable, type: string, id: string, resource: Resource, replace: boolean) {
  if (!INDEXED_TYPES.has(type)) return;
  if (replace)
    await q.query('DELETE FROM fhir_search_index WHERE resource_type = $1 AND id = $2', [type, id]);
  const rows = extractIndexRows(resource as Resource & Record<string, unknown>);
  if (rows.length === 0) return;
  const params: unknown[] = [type, id];
  const tuples = rows.map((row) => {
    params.push(row.param, row.value);
    return `($1, $2, $${params.length - 1}, $${params.length})`;
  });
  await q.query(
    `INSERT INTO fhir_search_index (resource_type, id, param, value) VALUES ${tuples.join(', ')}`,
    params,
  );
}

/** A freshly written version, as the writers return it. */
const written = <T extends Resource>(
  resource: T,
  versionId: number,
  lastUpdated: Date,
): StoredResource<T> => ({
  resource,
  versionId,
  lastUpdated,
  compartment: compartmentOf(resource),
  deleted: false,
});

/** The current row, unchanged by a put of an equal body. */
const unchanged = <T extends Resource>(row: { version_id: unknown; last_updated: unknown; resource: T }) =>
  written(row.resource, toInt(row.version_id), toDate(row.last_updated));

/** Stores a new resource under a fresh server-assigned id (any id in the body is replaced). */
export async function createResource<T extends Resource>(
  q: Queryable,
  resource: T,
): Promise<StoredResource<T>> {
  validate(resource);
  const id = randomUUID();
  const now = new Date();
  const stored = written(withMeta({ ...resource, id }, id, 1, now.toISOString()), 1, now);
  const r = await q.query(INSERT_NEW, [
    stored.resource.resourceType,
    id,
    now.toISOString(),
    stored.compartment,
    serialise(stored.resource),
  ]);
  if (r.rows.length !== 1) throw new Error('resource id collision');
  await writeIndex(q, stored.resource.resourceType, id, stored.resource, false);
  return stored;
}

/**
 * Creates or updates the resource with the body's id. An update bumps the version and adds a
 * history row; a body equal to the current version (meta.versionId / lastUpdated aside) changes nothing.
 */
export async function putResource<T extends Resource>(
  q: Queryable,
  resource: T,
): Promise<{ outcome: PutOutcome; stored: StoredResource<T> }> {
  validate(resource);
  if (!resource.id) throw new InvalidResourceError('an update needs the resource id');
  const type = resource.resourceType;
  const id = resource.id;
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await q.query<{
      version_id: unknown;
      last_updated: unknown;
      deleted: boolean;
      resource: T;
    }>(
      `SELECT version_id, last_updated, deleted, resource FROM fhir_resources
        WHERE resource_type = $1 AND id = $2 FOR UPDATE`,
      [type, id],
    );
    const now = new Date();
    const iso = now.toISOString();
    const row = existing.rows[0];
    if (!row) {
      const stored = written(withMeta(resource, id, 1, iso), 1, now);
      const r = await q.query(INSERT_NEW, [type, id, iso, stored.compartment, serialise(stored.resource)]);
      if (r.rows.length === 0) continue; // created concurrently: lock it and update instead
      await writeIndex(q, type, id, stored.resource, false);
      return { outcome: 'created', stored };
    }
    if (!row.deleted && canonical(row.resource) === canonical(resource)) {
      return { outcome: 'unchanged', stored: unchanged(row) };
    }
    const versionId = toInt(row.version_id) + 1;
    const stored = written(withMeta(resource, id, versionId, iso), versionId, now);
    await q.query(UPDATE_EXISTING, [
      type,
      id,
      versionId,
      iso,
      stored.compartment,
      false,
      serialise(stored.resource),
    ]);
    await writeIndex(q, type, id, stored.resource, true);
    return { outcome: 'updated', stored };
  }
  throw new Error('could not store resource after concurrent creates');
}

/**
 * putResource for many resources at once (bulk import): the same outcomes, in a handful of
 * statements per call instead of two per resource. Ids must be distinct within one call.
 */
export async function putResources(
  q: Queryable,
  resources: readonly Resource[],
): Promise<{ outcome: PutOutcome; stored: StoredResource }[]> {
  if (resources.length === 0) return [];
  const keys = new Set<string>();
  for (const r of resources) {
    validate(r);
    if (!r.id) throw new InvalidResourceError('an update needs the resource id');
    const key = `${r.resourceType}/${r.id}`;
    if (keys.has(key)) throw new Error(`putResources: ${key} given twice`);
    keys.add(key);
  }
  const existing = await q.query<{
    resource_type: string;
    id: string;
    version_id: unknown;
    last_updated: unknown;
    deleted: boolean;
    resource: Resource;
  }>(
    `SELECT f.resource_type, f.id, f.version_id, f.last_updated, f.deleted, f.resource
       FROM fhir_resources f
       JOIN jsonb_to_recordset($1::jsonb) AS k(t text, i text) ON f.resource_type = k.t AND f.id = k.i
        FOR UPDATE OF f`,
    [JSON.stringify(resources.map((r) => ({ t: r.resourceType, i: r.id })))],
  );
  const current = new Map(existing.rows.map((row) => [`${row.resource_type}/${row.id}`, row]));
  const now = new Date();
  const iso = now.toISOString();
  const results: { outcome: PutOutcome; stored: StoredResource }[] = [];
  const inserts: { t: string; i: string; c: string | null; r: Resource }[] = [];
  const updates: { t: string; i: string; v: number; c: string | null; r: Resource }[] = [];
  for (const resource of resources) {
    const id = resource.id!;
    const row = current.get(`${resource.resourceType}/${id}`);
    if (row && !row.deleted && canonical(row.resource) === canonical(resource)) {
      results.push({ outcome: 'unchanged', stored: unchanged(row) });
      continue;
    }
    const versionId = row ? toInt(row.version_id) + 1 : 1;
    const stored = written(withMeta(resource, id, versionId, iso), versionId, now);
    serialise(stored.resource);
    const t = stored.resource.resourceType;
    if (row) updates.push({ t, i: id, v: versionId, c: stored.compartment, r: stored.resource });
    else inserts.push({ t, i: id, c: stored.compartment, r: stored.resource });
    results.push({ outcome: row ? 'updated' : 'created', stored });
  }
  if (inserts.length > 0) {
    const r = await q.query<{ id: string }>(
      `WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(t text, i text, c text, r jsonb)),
       cur AS (
         INSERT INTO fhir_resources (${VERSION_COLUMNS})
         SELECT x.t, x.i, 1, $2::timestamptz, x.c, false, x.r FROM x
         ON CONFLICT (resource_type, id) DO NOTHING
         RETURNING ${VERSION_COLUMNS}
       )
       INSERT INTO fhir_resource_history (${VERSION_COLUMNS})
       SELECT ${VERSION_COLUMNS} FROM cur
       RETURNING id`,
      [JSON.stringify(inserts), iso],
    );
    // created by someone else between our lock and our insert: give up the whole transaction
    if (r.rows.length !== inserts.length)
      throw conflict('resources were created concurrently with this import; nothing was written, retry it');
  }
  if (updates.length > 0) {
    await q.query(
      `WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(t text, i text, v integer, c text, r jsonb)),
       cur AS (
         UPDATE fhir_resources f
            SET version_id = x.v, last_updated = $2::timestamptz, compartment_patient = x.c, deleted = false, resource = x.r
           FROM x WHERE f.resource_type = x.t AND f.id = x.i
         RETURNING f.resource_type, f.id, f.version_id, f.last_updated, f.compartment_patient, f.deleted, f.resource
       )
       INSERT INTO fhir_resource_history (${VERSION_COLUMNS})
       SELECT ${VERSION_COLUMNS} FROM cur`,
      [JSON.stringify(updates), iso],
    );
    const reindex = updates.filter((u) => INDEXED_TYPES.has(u.t));
    if (reindex.length > 0) {
      await q.query(
        `DELETE FROM fhir_search_index s USING jsonb_to_recordset($1::jsonb) AS k(t text, i text)
          WHERE s.resource_type = k.t AND s.id = k.i`,
        [JSON.stringify(reindex.map((u) => ({ t: u.t, i: u.i })))],
      );
    }
  }
  const indexRows: { t: string; i: string; p: string; v: string }[] = [];
  for (const w of [...inserts, ...updates]) {
    if (!INDEXED_TYPES.has(w.t)) continue;
    for (const row of extractIndexRows(w.r as Resource & Record<string, unknown>))
      indexRows.push({ t: w.t, i: w.i, p: row.param, v: row.value });
  }
  if (indexRows.length > 0) {
    await q.query(
      `INSERT INTO fhir_search_index (resource_type, id, param, value)
       SELECT t, i, p, v FROM jsonb_to_recordset($1::jsonb) AS x(t text, i text, p text, v text)`,
      [JSON.stringify(indexRows)],
    );
  }
  return results;
}

/** Marks the resource deleted (a new version; reads answer 410). Returns false when it was absent or already deleted. */
export async function deleteResource(q: Queryable, type: string, id: string): Promise<boolean> {
  const existing = await q.query<{
    version_id: unknown;
    deleted: boolean;
    compartment_patient: string | null;
  }>(
    'SELECT version_id, deleted, compartment_patient FROM fhir_resources WHERE resource_type = $1 AND id = $2 FOR UPDATE',
    [type, id],
  );
  const row = existing.rows[0];
  if (!row || row.deleted) return false;
  const versionId = toInt(row.version_id) + 1;
  const iso = new Date().toISOString();
  // The compartment is kept so that a deleted resource (and its deletion in the history)
  // answers 410 only inside the compartment it was deleted from.
  const tombstone = withMeta({ resourceType: type, id } as Resource, id, versionId, iso);
  await q.query(UPDATE_EXISTING, [
    type,
    id,
    versionId,
    iso,
    row.compartment_patient,
    true,
    serialise(tombstone),
  ]);
  await q.query('DELETE FROM fhir_search_index WHERE resource_type = $1 AND id = $2', [type, id]);
  return true;
}
