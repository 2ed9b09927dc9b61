/*
 * What the store accepts and how a body is stored: the rules every write applies.
 * - a resource is a JSON object of a supported type with a valid id (or none, on create)
 * - the stored body carries id and meta.versionId / meta.lastUpdated, so a read sends it as is
 * - "did anything change?" compares bodies without the server-assigned meta, keys sorted
 * - jsonb refuses \u0000 in strings: refused here with a 400 instead of a 500 from the database
 */
import type { Resource } from '@medplum/fhirtypes';
import { HttpError } from '../http/errors.ts';
import { isSupportedType, isValidId } from './resource-types.ts';

/** A resource the store refuses; the HTTP layer answers 400 with the message. */
export class InvalidResourceError extends HttpError {
  constructor(message: string) {
    super(400, 'invalid_resource', message, {}, 'invalid');
    this.name = 'InvalidResourceError';
  }
}

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
export function withMeta<T extends Resource>(
  resource: T,
  id: string,
  versionId: number,
  lastUpdated: string,
): T {
  const { meta, ...rest } = resource as T & { meta?: Record<string, unknown> };
  const cleanMeta = { ...(meta ?? {}) };
  delete cleanMeta.versionId;
  delete cleanMeta.lastUpdated;
  return { ...rest, id, meta: { ...cleanMeta, versionId: String(versionId), lastUpdated } } as T;
}

/** Canonical text of a body without server-assigned meta, for "did anything change?". */
export function canonical(resource: unknown): string {
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

/** The body's text for a jsonb column; refuses what jsonb would refuse (SQLSTATE 22P05). */
export function serialise(resource: unknown): string {
  const text = JSON.stringify(resource);
  if (text.includes('\\u0000')) throw new InvalidResourceError('strings may not contain the NUL character');
  return text;
}
