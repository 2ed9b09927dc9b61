/*
 * The FHIR interaction a request is, for the metrics' labels (src/http/metrics.ts takes this
 * function from the composition root).
 * - labels are low-cardinality by construction: a known resource type or "other", a known
 *   interaction or "other" — never an id or anything else from the path
 */
import { isSupportedType } from './resource-types.ts';

/** The interaction of a method on an instance (`/Type/id`). */
const INSTANCE_INTERACTIONS: Record<string, string> = {
  GET: 'read',
  HEAD: 'read',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/** FHIR interaction of a request, from its method and path; labels limited to known values. */
export function fhirInteraction(
  method: string,
  path: string,
): { resourceType: string; interaction: string } | undefined {
  const segments = path
    .replace(/^\/fhir\/?/, '')
    .split('/')
    .filter(Boolean);
  const [first, id, third, fourth] = segments;
  if (!first) return undefined;
  if (first === 'metadata' && segments.length === 1) {
    return { resourceType: 'CapabilityStatement', interaction: 'capabilities' };
  }
  const resourceType = isSupportedType(first) ? first : 'other';
  const reading = method === 'GET' || method === 'HEAD';
  let interaction: string;
  if (segments.length === 1) interaction = reading ? 'search-type' : method === 'POST' ? 'create' : 'other';
  else if (segments.length === 2 && id === '_search') interaction = 'search-type';
  else if (segments.length === 2) {
    interaction = INSTANCE_INTERACTIONS[method] ?? 'other';
  } else if (segments.length === 3 && third === '$everything') interaction = 'everything';
  else if (segments.length === 3 && third === '_history') interaction = 'history-instance';
  else if (segments.length === 4 && third === '_history' && fourth) interaction = 'vread';
  else interaction = 'other';
  if (method === 'OPTIONS') interaction = 'preflight';
  return { resourceType, interaction };
}
