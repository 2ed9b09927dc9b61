/*
 * The FHIR resource repository: every capability reads and writes resources through it.
 * - works on any Queryable, so a caller can run it inside its own transaction
 * - a resource is one JSONB row (type, id, version, last-updated, Patient compartment, seq) plus
 *   one history row per version; meta.versionId / meta.lastUpdated live in the stored body, so a
 *   read can send the stored text as is
 * - putResource with a body equal to the current one (meta aside) writes nothing: imports are idempotent
 * - listings page by keyset on `seq` (assigned at creation, kept on update) bounded above by the
 *   highest seq when paging began: a cursor never skips nor repeats a resource while the chart changes
 */
import { randomUUID } from 'node:crypto';
import type { Patient, Resource, ResourceType } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { conflict, HttpError } from '../http/errors.ts';
import { activeUserSql } from '../users/users.ts';
import { compartmentOf, isSupportedType, isValidId } from './resource-types.ts';
import { extractIndexRows, INDEXED_TYPES, normalizeText } from './search-index.ts';

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

export type PutOutcome = 'created' | 'updated' | 'unchanged';

/** A resource the repository refuses to store; the HTTP layer answers 400 with the message. */
export class InvalidResourceError extends HttpError {
  constructor(message: string) {
    super(400, 'invalid_resource', message, {}, 'invalid');
    this.name = 'InvalidResourceError';
  }
}

const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
const toInt = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

/** Throws InvalidResourceError unless the server can store this resource. */
export function validate(resource: unknown): asserts resource is Resource & { id?: string } {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    throw new InvalidResourceError('a resource must be a JSON object');
  }
  const r = resource as { resourceType?: unknown; id?: unknown };
  if (typeof r.resourceType !== 'string' || !isSupportedType(r.resourceType)) {
    throw new InvalidResourceError(
      typeof r.resourceType === 'string'
        ? `resource type ${r.resourceType.slice(0, 64)} is not supported by this server`
        : 'resourceType is missing',
    );
  }
  if (r.id !== undefined && (typeof r.id !== 'string' || !isValidId(r.id))) {
    throw new InvalidResourceError('id must match [A-Za-z0-9-.]{1,64}');
  }
}

/** The body as it is stored: id and meta.versionId / meta.lastUpdated filled in. */
function withMeta<T extends Resource>(resource: T, id: string, versionId: number, lastUpdated: string): T {
  const { meta, ...rest } = resource as T & { meta?: Record<string, unknown> };
  const cleanMeta = { ...(meta ?? {}) };
  delete cleanMeta.versionId;
  delete cleanMeta.lastUpdated;
  return { ...rest, id, meta: { ...cleanMeta, versionId: String(versionId), lastUpdated } } as T;
}

/** Canonical text of a body without server-assigned meta, for "did anything change?". */
function canonical(resource: unknown): string {
  const strip = (value: unknown, top: boolean): unknown => {
    if (Array.isArray(value)) return value.map((v) => strip(v, false));
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value).sort()) {
        let v = (value as Record<string, unknown>)[key];
        if (v === undefined) continue;
        if (top && key === 'meta' && v && typeof v === 'object') {
          const { versionId: _v, lastUpdated: _l, ...m } = v as Record<string, unknown>;
          if (Object.keys(m).length === 0) continue;
          v = m;
        }
        out[key] = strip(v, false);
      }
      return out;
    }
    return value;
  };
  return JSON.stringify(strip(resource, true));
}

/** jsonb refuses \u0000 in strings (SQLSTATE 22P05); say so instead of failing with 500. */
function serialise(resource: unknown): string {
  const text = JSON.stringify(resource);
  if (text.includes('\\u0000')) throw new InvalidResourceError('strings may not contain the NUL character');
  return text;
}

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

const INSERT_NEW = `
  WITH cur AS (
    INSERT INTO fhir_resources (resource_type, id, version_id, last_updated, compartment_patient, deleted, resource)
    VALUES ($1, $2, 1, $3::timestamptz, $4, false, $5::jsonb)
    ON CONFLICT (resource_type, id) DO NOTHING
    RETURNING resource_type, id, version_id, last_updated, deleted, resource
  )
  INSERT INTO fhir_resource_history (resource_type, id, version_id, last_updated, deleted, resource)
  SELECT resource_type, id, version_id, last_updated, deleted, resource FROM cur
  RETURNING version_id`;

const UPDATE_EXISTING = `
  WITH cur AS (
    UPDATE fhir_resources
       SET version_id = $3, last_updated = $4::timestamptz, compartment_patient = $5, deleted = $6, resource = $7::jsonb
     WHERE resource_type = $1 AND id = $2
    RETURNING resource_type, id, version_id, last_updated, deleted, resource
  )
  INSERT INTO fhir_resource_history (resource_type, id, version_id, last_updated, deleted, resource)
  SELECT resource_type, id, version_id, last_updated, deleted, resource FROM cur
  RETURNING version_id`;

/** Stores a new resource under a fresh server-assigned id (any id in the body is replaced). */
export async function createResource<T extends Resource>(
  q: Queryable,
  resource: T,
): Promise<StoredResource<T>> {
  validate(resource);
  const id = randomUUID();
  const now = new Date();
  const stored = withMeta({ ...resource, id }, id, 1, now.toISOString());
  const compartment = compartmentOf(stored);
  const r = await q.query(INSERT_NEW, [
    stored.resourceType,
    id,
    now.toISOString(),
    compartment,
    serialise(stored),
  ]);
  if (r.rows.length !== 1) throw new Error('resource id collision');
  await writeIndex(q, stored.resourceType, id, stored, false);
  return { resource: stored, versionId: 1, lastUpdated: now, compartment, deleted: false };
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
      const stored = withMeta(resource, id, 1, iso);
      const compartment = compartmentOf(stored);
      const r = await q.query(INSERT_NEW, [type, id, iso, compartment, serialise(stored)]);
      if (r.rows.length === 0) continue; // created concurrently: lock it and update instead
      await writeIndex(q, type, id, stored, false);
      return {
        outcome: 'created',
        stored: { resource: stored, versionId: 1, lastUpdated: now, compartment, deleted: false },
      };
    }
    const current = row.resource;
    if (!row.deleted && canonical(current) === canonical(resource)) {
      return {
        outcome: 'unchanged',
        stored: {
          resource: current,
          versionId: toInt(row.version_id),
          lastUpdated: toDate(row.last_updated),
          compartment: compartmentOf(current),
          deleted: false,
        },
      };
    }
    const versionId = toInt(row.version_id) + 1;
    const stored = withMeta(resource, id, versionId, iso);
    const compartment = compartmentOf(stored);
    await q.query(UPDATE_EXISTING, [type, id, versionId, iso, compartment, false, serialise(stored)]);
    await writeIndex(q, type, id, stored, true);
    return {
      outcome: 'updated',
      stored: { resource: stored, versionId, lastUpdated: now, compartment, deleted: false },
    };
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
      results.push({
        outcome: 'unchanged',
        stored: {
          resource: row.resource,
          versionId: toInt(row.version_id),
          lastUpdated: toDate(row.last_updated),
          compartment: compartmentOf(row.resource),
          deleted: false,
        },
      });
      continue;
    }
    const versionId = row ? toInt(row.version_id) + 1 : 1;
    const stored = withMeta(resource, id, versionId, iso);
    const compartment = compartmentOf(stored);
    serialise(stored);
    if (row) updates.push({ t: stored.resourceType, i: id, v: versionId, c: compartment, r: stored });
    else inserts.push({ t: stored.resourceType, i: id, c: compartment, r: stored });
    results.push({
      outcome: row ? 'updated' : 'created',
      stored: { resource: stored, versionId, lastUpdated: now, compartment, deleted: false },
    });
  }
  if (inserts.length > 0) {
    const r = await q.query<{ id: string }>(
      `WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(t text, i text, c text, r jsonb)),
       cur AS (
         INSERT INTO fhir_resources (resource_type, id, version_id, last_updated, compartment_patient, deleted, resource)
         SELECT x.t, x.i, 1, $2::timestamptz, x.c, false, x.r FROM x
         ON CONFLICT (resource_type, id) DO NOTHING
         RETURNING resource_type, id, version_id, last_updated, deleted, resource
       )
       INSERT INTO fhir_resource_history (resource_type, id, version_id, last_updated, deleted, resource)
       SELECT resource_type, id, version_id, last_updated, deleted, resource FROM cur
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
         RETURNING f.resource_type, f.id, f.version_id, f.last_updated, f.deleted, f.resource
       )
       INSERT INTO fhir_resource_history (resource_type, id, version_id, last_updated, deleted, resource)
       SELECT resource_type, id, version_id, last_updated, deleted, resource FROM cur`,
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
  const existing = await q.query<{ version_id: unknown; deleted: boolean; resource: Resource }>(
    'SELECT version_id, deleted, resource FROM fhir_resources WHERE resource_type = $1 AND id = $2 FOR UPDATE',
    [type, id],
  );
  const row = existing.rows[0];
  if (!row || row.deleted) return false;
  const versionId = toInt(row.version_id) + 1;
  const iso = new Date().toISOString();
  // The compartment is kept so that a deleted resource still answers 410 only inside its compartment.
  const tombstone = withMeta({ resourceType: type, id } as Resource, id, versionId, iso);
  await q.query(UPDATE_EXISTING, [
    type,
    id,
    versionId,
    iso,
    compartmentOf(row.resource),
    true,
    serialise(tombstone),
  ]);
  await q.query('DELETE FROM fhir_search_index WHERE resource_type = $1 AND id = $2', [type, id]);
  return true;
}

/** One index lookup; the body as stored text. Deleted resources come back with deleted = true. */
export async function readRaw(q: Queryable, type: string, id: string): Promise<RawResource | undefined> {
  const r = await q.query<{
    body: string;
    version_id: unknown;
    last_updated: unknown;
    compartment_patient: string | null;
    deleted: boolean;
  }>(
    `SELECT resource::text AS body, version_id, last_updated, compartment_patient, deleted
       FROM fhir_resources WHERE resource_type = $1 AND id = $2`,
    [type, id],
  );
  const row = r.rows[0];
  if (!row) return undefined;
  return {
    body: row.body,
    versionId: toInt(row.version_id),
    lastUpdated: toDate(row.last_updated),
    compartment: row.compartment_patient,
    deleted: row.deleted,
  };
}

/**
 * readRaw plus whether `userId` is an active EHR user, in one round trip (the FHIR read hot path
 * checks that a token's user has not been deactivated since it was issued).
 */
export async function readRawAsUser(
  q: Queryable,
  type: string,
  id: string,
  userId: string,
): Promise<{ raw: RawResource | undefined; userActive: boolean }> {
  const r = await q.query<{
    body: string | null;
    version_id: unknown;
    last_updated: unknown;
    compartment_patient: string | null;
    deleted: boolean | null;
    active: boolean | null;
  }>(
    `SELECT f.resource::text AS body, f.version_id, f.last_updated, f.compartment_patient, f.deleted,
            ${activeUserSql('$3')} AS active
       FROM (SELECT 1) AS one
       LEFT JOIN fhir_resources f ON f.resource_type = $1 AND f.id = $2`,
    [type, id, userId],
    { prepare: true },
  );
  const row = r.rows[0];
  const raw =
    row && row.body !== null
      ? {
          body: row.body,
          versionId: toInt(row.version_id),
          lastUpdated: toDate(row.last_updated),
          compartment: row.compartment_patient,
          deleted: Boolean(row.deleted),
        }
      : undefined;
  return { raw, userActive: row?.active === true };
}

/** The current version, or undefined when absent or deleted. */
export async function readResource<T extends ResourceType>(
  q: Queryable,
  type: T,
  id: string,
): Promise<StoredResource<Extract<Resource, { resourceType: T }>> | undefined> {
  if (!isValidId(id)) return undefined;
  const r = await q.query<{
    resource: Resource;
    version_id: unknown;
    last_updated: unknown;
    compartment_patient: string | null;
  }>(
    `SELECT resource, version_id, last_updated, compartment_patient
       FROM fhir_resources WHERE resource_type = $1 AND id = $2 AND NOT deleted`,
    [type, id],
    { prepare: true },
  );
  const row = r.rows[0];
  if (!row) return undefined;
  return {
    resource: row.resource as Extract<Resource, { resourceType: T }>,
    versionId: toInt(row.version_id),
    lastUpdated: toDate(row.last_updated),
    compartment: row.compartment_patient,
    deleted: false,
  };
}

/** One version from the history (deleted versions included, flagged), with its resource's current compartment. */
export async function readVersion(
  q: Queryable,
  type: string,
  id: string,
  versionId: number,
): Promise<(RawResource & { resource: Resource }) | undefined> {
  if (!isValidId(id) || !Number.isSafeInteger(versionId) || versionId < 1) return undefined;
  const r = await q.query<{
    body: string;
    version_id: unknown;
    last_updated: unknown;
    deleted: boolean;
    compartment_patient: string | null;
  }>(
    `SELECT h.resource::text AS body, h.version_id, h.last_updated, h.deleted, c.compartment_patient
       FROM fhir_resource_history h
       JOIN fhir_resources c ON c.resource_type = h.resource_type AND c.id = h.id
      WHERE h.resource_type = $1 AND h.id = $2 AND h.version_id = $3`,
    [type, id, versionId],
  );
  const row = r.rows[0];
  if (!row) return undefined;
  return {
    body: row.body,
    resource: JSON.parse(row.body) as Resource,
    versionId: toInt(row.version_id),
    lastUpdated: toDate(row.last_updated),
    compartment: row.compartment_patient,
    deleted: row.deleted,
  };
}

/** Every version, newest first (history interaction), bounded by `count`. */
export async function listHistory(
  q: Queryable,
  type: string,
  id: string,
  count: number,
): Promise<RawResource[]> {
  const r = await q.query<{
    body: string;
    version_id: unknown;
    last_updated: unknown;
    deleted: boolean;
    compartment_patient: string | null;
  }>(
    `SELECT h.resource::text AS body, h.version_id, h.last_updated, h.deleted, c.compartment_patient
       FROM fhir_resource_history h
       JOIN fhir_resources c ON c.resource_type = h.resource_type AND c.id = h.id
      WHERE h.resource_type = $1 AND h.id = $2
      ORDER BY h.version_id DESC LIMIT $3`,
    [type, id, count],
  );
  return r.rows.map((row) => ({
    body: row.body,
    versionId: toInt(row.version_id),
    lastUpdated: toDate(row.last_updated),
    compartment: row.compartment_patient,
    deleted: row.deleted,
  }));
}

// ---- keyset paging -------------------------------------------------------------------------

/** Position in a listing: after `after`, up to `upTo` (the highest seq when the listing began). */
export interface Cursor {
  after: number;
  upTo: number;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.after}.${c.upTo}`, 'utf8').toString('base64url');
}

/** Undefined when the text is not a cursor this server issued (callers answer 400). */
export function decodeCursor(text: string): Cursor | undefined {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(text)) return undefined;
  const m = /^(\d{1,15})\.(\d{1,15})$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  if (!m) return undefined;
  const after = Number(m[1]);
  const upTo = Number(m[2]);
  return after <= upTo ? { after, upTo } : undefined;
}

export interface CompartmentPageOptions {
  /** Only these types (default: all). */
  types?: readonly string[];
  /** Only resources last updated at or after this instant (`_since`). */
  since?: Date;
  count: number;
  /** From a previous page's `next`. */
  cursor?: Cursor;
}

export interface RawPage {
  /** `type`, `id` and stored body text of each resource, in seq order. */
  entries: { type: string; id: string; body: string }[];
  /** Cursor of the following page, when there is one. */
  next?: Cursor;
}

/**
 * One page of a Patient's compartment, the Patient itself excluded, as stored text: one range
 * scan of (compartment_patient, seq).
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
  const after = options.cursor?.after ?? 0;
  const params: unknown[] = [patientId, after, upTo, options.count + 1];
  let filter = '';
  if (options.types && options.types.length > 0) {
    params.push(options.types.join(','));
    filter += ` AND resource_type = ANY(string_to_array($${params.length}, ','))`;
  }
  if (options.since) {
    params.push(options.since.toISOString());
    filter += ` AND last_updated >= $${params.length}::timestamptz`;
  }
  const r = await q.query<{ resource_type: string; id: string; seq: unknown; body: string }>(
    `SELECT resource_type, id, seq, resource::text AS body
       FROM fhir_resources
      WHERE compartment_patient = $1 AND seq > $2 AND seq <= $3
        AND resource_type <> 'Patient' AND NOT deleted${filter}
      ORDER BY seq
      LIMIT $4`,
    params,
  );
  const rows = r.rows;
  let next: Cursor | undefined;
  if (rows.length > options.count) {
    rows.length = options.count;
    next = { after: toInt(rows[rows.length - 1]!.seq), upTo };
  }
  return { entries: rows.map((row) => ({ type: row.resource_type, id: row.id, body: row.body })), next };
}

/** One page of a Patient's compartment (the Patient excluded), parsed; for the EHR chart and demo data. */
export async function listCompartment(
  q: Queryable,
  patientId: string,
  options: Omit<CompartmentPageOptions, 'cursor'> & { cursor?: string },
): Promise<{ resources: Resource[]; nextCursor?: string }> {
  const cursor = options.cursor ? decodeCursor(options.cursor) : undefined;
  if (options.cursor && !cursor)
    throw new HttpError(400, 'invalid_request', 'cursor is not valid', {}, 'invalid');
  const page = await listCompartmentRaw(q, patientId, { ...options, cursor });
  return {
    resources: page.entries.map((e) => JSON.parse(e.body) as Resource),
    nextCursor: page.next ? encodeCursor(page.next) : undefined,
  };
}

// ---- EHR patient list ----------------------------------------------------------------------

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

export const likePrefix = (s: string) => `${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** The EHR's patient list: matching Patients ordered by family then given name, and how many match. */
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
