/*
 * Bundle import (admin API and `npm run import`): collection, batch and transaction Bundles,
 * Synthea's output included.
 * - two streaming passes over the same bytes: the first checks every entry and learns each
 *   entry's target (fullUrl → Type/id) without writing; the second rewrites references and
 *   writes, in ONE database transaction. Only the small fullUrl map is held, never the bundle twice
 * - POST entries whose fullUrl is `urn:uuid:{uuid}` are stored under that uuid, so importing the
 *   same bundle twice changes nothing; PUT `Type/id` entries are idempotent updates
 * - `ifNoneExist: identifier=system|value` (Synthea's Practitioner/Organization entries) reuses a
 *   match in the database or earlier in the bundle; conditional references `Type?identifier=…`
 *   resolve the same way, and one that matches nothing becomes a logical reference (Reference.identifier)
 * - a bad entry stops the import with nothing written: ImportError names the entry and the reason
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Resource } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db/database.ts';
import { HttpError } from '../http/errors.ts';
import { BundleSyntaxError, readBundle } from './bundle-reader.ts';
import { InvalidResourceError, validate } from './resource-rules.ts';
import { isSupportedType, isValidId } from './resource-types.ts';
import { deleteResource, putResources } from './writes.ts';

/** A bundle the importer refuses: 400 with an OperationOutcome naming the entry. */
export class ImportError extends HttpError {
  constructor(
    message: string,
    readonly entryIndex?: number,
  ) {
    super(
      400,
      'invalid_bundle',
      entryIndex === undefined ? message : `Bundle.entry[${entryIndex}]: ${message}`,
      {},
      'invalid',
    );
    this.name = 'ImportError';
  }
}

export interface ImportSummary {
  bundleType: string;
  entries: number;
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  /** The response Bundle (batch-response / transaction-response) with one entry per request entry. */
  response: Record<string, unknown>;
}

type Method = 'PUT' | 'DELETE' | 'MATCH';

interface Plan {
  method: Method;
  type: string;
  id: string;
  /** `identifier=system|value` criteria of a conditional create. */
  ifNoneExist?: string;
  /** Id of the resource an ifNoneExist matched in the database. */
  existing?: string;
}

const UUID_URN = /^urn:uuid:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;
const CONDITIONAL = /^([A-Z][A-Za-z]+)\?identifier=([^&]*)$/;
const BUNDLE_TYPES = new Set(['collection', 'batch', 'transaction']);
/** Entries written per statement group: bounded memory, few round trips. */
const BATCH_SIZE = 250;

function entryObject(value: unknown, index: number): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new ImportError('an entry must be a JSON object', index);
  return value as Record<string, unknown>;
}

/** identifier=system|value → "system|value" (decoded), or an error. */
function identifierCriteria(criteria: string, index: number): string {
  const m = /^identifier=([^&]+)$/.exec(criteria.replace(/^[A-Z][A-Za-z]+\?/, ''));
  if (!m) throw new ImportError('ifNoneExist supports identifier=system|value only', index);
  const token = decodeURIComponent(m[1]!);
  if (!token.includes('|')) return `|${token}`;
  return token;
}

/** Pass 1: what each entry will do, and where every fullUrl points. No database access. */
function planEntry(
  raw: unknown,
  index: number,
  bundleType: string | undefined,
  fullUrls: Map<string, string>,
): Plan {
  const entry = entryObject(raw, index);
  const resource = entry.resource as Record<string, unknown> | undefined;
  const request = entry.request as Record<string, unknown> | undefined;
  const fullUrl = typeof entry.fullUrl === 'string' ? entry.fullUrl : undefined;
  if (request !== undefined && (typeof request !== 'object' || request === null || Array.isArray(request))) {
    throw new ImportError('request must be an object', index);
  }
  const method = request ? String(request.method ?? '').toUpperCase() : undefined;
  const url = request && typeof request.url === 'string' ? request.url : undefined;
  if (request && !url) throw new ImportError('request.url is missing', index);
  if (bundleType && bundleType !== 'collection' && !request)
    throw new ImportError(`a ${bundleType} entry needs a request`, index);

  if (method === 'DELETE') {
    const m = /^([A-Z][A-Za-z]+)\/([^/?]+)$/.exec(url!);
    if (!m || !isSupportedType(m[1]!) || !isValidId(m[2]!))
      throw new ImportError('DELETE needs a url of the form Type/id of a supported type', index);
    return { method: 'DELETE', type: m[1]!, id: m[2]! };
  }
  if (method !== undefined && method !== 'POST' && method !== 'PUT') {
    throw new ImportError(
      `request.method ${method.slice(0, 10) || '(missing)'} is not supported (POST, PUT or DELETE)`,
      index,
    );
  }
  if (!resource || typeof resource !== 'object' || Array.isArray(resource))
    throw new ImportError('resource is missing', index);
  const type = resource.resourceType;
  if (typeof type !== 'string') throw new ImportError('resource.resourceType is missing', index);
  if (!isSupportedType(type))
    throw new ImportError(`resource type ${type.slice(0, 64)} is not supported by this server`, index);
  if (resource.id !== undefined && (typeof resource.id !== 'string' || !isValidId(resource.id))) {
    throw new ImportError('resource.id must match [A-Za-z0-9-.]{1,64}', index);
  }

  let id: string;
  let ifNoneExist: string | undefined;
  if (method === 'PUT') {
    const m = /^([A-Z][A-Za-z]+)\/([^/?]+)$/.exec(url!);
    if (!m)
      throw new ImportError(
        'PUT needs a url of the form Type/id (conditional updates are not supported)',
        index,
      );
    if (m[1] !== type)
      throw new ImportError(`request.url names ${m[1]!.slice(0, 64)} but the resource is a ${type}`, index);
    if (!isValidId(m[2]!))
      throw new ImportError('the id in request.url must match [A-Za-z0-9-.]{1,64}', index);
    if (resource.id !== undefined && resource.id !== m[2])
      throw new ImportError('resource.id differs from the id in request.url', index);
    id = m[2]!;
  } else if (method === 'POST') {
    if (url !== type) throw new ImportError(`POST url must be the resource type ${type}`, index);
    // Synthea (and most exporters) give each entry a urn:uuid fullUrl: keep it as the id so a re-import is idempotent.
    const u = fullUrl ? UUID_URN.exec(fullUrl) : null;
    id = u ? u[1]!.toLowerCase() : randomUUID();
    if (typeof request!.ifNoneExist === 'string' && request!.ifNoneExist) {
      ifNoneExist = identifierCriteria(request!.ifNoneExist, index);
    }
  } else {
    // collection: the resource's own id, else its urn:uuid fullUrl, else a new one
    const u = fullUrl ? UUID_URN.exec(fullUrl) : null;
    id = typeof resource.id === 'string' ? resource.id : u ? u[1]!.toLowerCase() : randomUUID();
  }
  if (fullUrl) {
    if (fullUrls.has(fullUrl)) throw new ImportError(`fullUrl ${fullUrl.slice(0, 100)} appears twice`, index);
    fullUrls.set(fullUrl, `${type}/${id}`);
  }
  return { method: 'PUT', type, id, ifNoneExist };
}

function identifiersOf(resource: Record<string, unknown>): string[] {
  const ids = resource.identifier;
  if (!Array.isArray(ids)) return [];
  return ids
    .filter((i) => i && typeof i === 'object' && typeof i.value === 'string')
    .map((i) => `${typeof i.system === 'string' ? i.system : ''}|${i.value}`);
}

async function findByIdentifier(q: Queryable, type: string, token: string): Promise<string | undefined> {
  const r = await q.query<{ id: string }>(
    `SELECT s.id FROM fhir_search_index s JOIN fhir_resources r ON r.resource_type = s.resource_type AND r.id = s.id
      WHERE s.resource_type = $1 AND s.param = 'identifier' AND s.value = $2 AND NOT r.deleted
      ORDER BY r.seq LIMIT 1`,
    [type, token],
  );
  return r.rows[0]?.id;
}

/** Rewrites every Reference.reference in place; conditional ones are looked up. */
async function rewriteReferences(
  node: unknown,
  index: number,
  fullUrls: Map<string, string>,
  resolveConditional: (type: string, token: string) => Promise<string | undefined>,
): Promise<void> {
  if (Array.isArray(node)) {
    for (const item of node) await rewriteReferences(item, index, fullUrls, resolveConditional);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(o)) {
    if (key === 'reference' && typeof value === 'string') {
      const target = fullUrls.get(value);
      if (target) {
        o.reference = target;
        continue;
      }
      if (value.startsWith('urn:uuid:') || value.startsWith('urn:oid:')) {
        throw new ImportError(`reference ${value.slice(0, 100)} names no entry of this bundle`, index);
      }
      const c = CONDITIONAL.exec(value);
      if (c) {
        const token = decodeURIComponent(c[2]!);
        const id = isSupportedType(c[1]!)
          ? await resolveConditional(c[1]!, token.includes('|') ? token : `|${token}`)
          : undefined;
        if (id) o.reference = `${c[1]}/${id}`;
        else {
          // no such resource here: keep what the reference said as a logical reference
          delete o.reference;
          if (!o.identifier) {
            const bar = token.indexOf('|');
            o.identifier =
              bar < 0
                ? { value: token }
                : { ...(bar > 0 ? { system: token.slice(0, bar) } : {}), value: token.slice(bar + 1) };
          }
          if (!o.type) o.type = c[1];
        }
      }
      continue;
    }
    if (value && typeof value === 'object')
      await rewriteReferences(value, index, fullUrls, resolveConditional);
  }
}

export interface BundleSource {
  /** Opens the bundle's bytes from the start; called twice. */
  open(): Readable;
}

export async function importBundle(db: Database, source: BundleSource): Promise<ImportSummary> {
  // ---- pass 1: validate and plan, nothing written ----
  const fullUrls = new Map<string, string>();
  const plans: Plan[] = [];
  let bundleType: string | undefined;
  let resourceType: unknown;
  try {
    for await (const part of readBundle(source.open())) {
      if (part.kind === 'field') {
        if (part.key === 'resourceType') resourceType = part.value;
        else if (part.key === 'type') {
          bundleType = String(part.value);
          if (!BUNDLE_TYPES.has(bundleType)) {
            throw new ImportError(
              `Bundle.type must be collection, batch or transaction, not ${bundleType.slice(0, 40)}`,
            );
          }
        }
        continue;
      }
      plans.push(planEntry(part.value, part.index, bundleType, fullUrls));
    }
  } catch (err) {
    if (err instanceof BundleSyntaxError) throw new ImportError(err.message);
    throw err;
  }
  if (resourceType !== 'Bundle')
    throw new ImportError('the body must be a FHIR Bundle (resourceType "Bundle")');
  if (!bundleType) throw new ImportError('Bundle.type is missing (collection, batch or transaction)');

  // ---- pass 2: one transaction, written in batches ----
  const summary = { created: 0, updated: 0, unchanged: 0, deleted: 0 };
  const responses: unknown[] = new Array(plans.length);
  await db.transaction(async (tx) => {
    const inBundle = new Map<string, string>(); // "Type|system|value" → id, for conditional creates and references
    const resolve = async (type: string, token: string) =>
      inBundle.get(`${type}|${token}`) ?? (await findByIdentifier(tx, type, token));
    // conditional creates that match stored resources: every reference to them points there
    for (const plan of plans) {
      if (!plan.ifNoneExist) continue;
      plan.existing = await findByIdentifier(tx, plan.type, plan.ifNoneExist);
      if (plan.existing) {
        for (const [url, target] of fullUrls)
          if (target === `${plan.type}/${plan.id}`) fullUrls.set(url, `${plan.type}/${plan.existing}`);
      }
    }

    let batch: { index: number; resource: Resource }[] = [];
    const batchKeys = new Set<string>();
    const flush = async () => {
      if (batch.length === 0) return;
      const results = await putResources(
        tx,
        batch.map((b) => b.resource),
      );
      results.forEach((result, k) => {
        const { index, resource } = batch[k]!;
        summary[result.outcome]++;
        const v = result.stored.versionId;
        responses[index] = {
          response: {
            status: result.outcome === 'created' ? '201 Created' : '200 OK',
            location: `${resource.resourceType}/${resource.id}/_history/${v}`,
            etag: `W/"${v}"`,
            lastModified: result.stored.lastUpdated.toISOString(),
          },
        };
      });
      batch = [];
      batchKeys.clear();
    };

    let index = 0;
    for await (const part of readBundle(source.open())) {
      if (part.kind !== 'entry') continue;
      const i = index++;
      const plan = plans[i];
      if (!plan) throw new ImportError('the bundle changed while it was imported', i);
      const entry = part.value as Record<string, unknown>;
      if (bundleType !== 'collection' && !entry.request)
        throw new ImportError(`a ${bundleType} entry needs a request`, i);
      if (plan.method === 'DELETE') {
        await flush();
        const done = await deleteResource(tx, plan.type, plan.id);
        if (done) summary.deleted++;
        responses[i] = { response: { status: done ? '204 No Content' : '404 Not Found' } };
        continue;
      }
      const resource = entry.resource as Record<string, unknown>;
      if (plan.ifNoneExist) {
        const existing = plan.existing ?? inBundle.get(`${plan.type}|${plan.ifNoneExist}`);
        if (existing) {
          const fullUrl = entry.fullUrl;
          if (typeof fullUrl === 'string') fullUrls.set(fullUrl, `${plan.type}/${existing}`);
          summary.unchanged++;
          responses[i] = { response: { status: '200 OK', location: `${plan.type}/${existing}` } };
          continue;
        }
      }
      resource.id = plan.id;
      await rewriteReferences(resource, i, fullUrls, resolve);
      try {
        validate(resource);
        if (JSON.stringify(resource).includes('\\u0000'))
          throw new InvalidResourceError('strings may not contain the NUL character');
      } catch (err) {
        if (err instanceof InvalidResourceError) throw new ImportError(err.message, i);
        throw err;
      }
      const key = `${plan.type}/${plan.id}`;
      if (batchKeys.has(key)) await flush(); // the same resource twice: the later one is a new version
      batch.push({ index: i, resource: resource as unknown as Resource });
      batchKeys.add(key);
      for (const token of identifiersOf(resource)) {
        const k = `${plan.type}|${token}`;
        if (!inBundle.has(k)) inBundle.set(k, plan.id);
      }
      if (batch.length >= BATCH_SIZE) await flush();
    }
    await flush();
    if (index !== plans.length) throw new ImportError('the bundle changed while it was imported');
  });

  const responseType = bundleType === 'transaction' ? 'transaction-response' : 'batch-response';
  return {
    bundleType,
    entries: plans.length,
    ...summary,
    response: {
      resourceType: 'Bundle',
      type: responseType,
      entry: responses,
    },
  };
}
