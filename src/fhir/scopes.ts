/*
 * Granted SMART scopes → what a token may do with which resource types, for the access checks.
 * - parsing (v1 `patient/Observation.read`, v2 `patient/Observation.rs?category=…`) is the
 *   authorization server's own parser (src/smart/scopes.ts), so both sides read scopes alike
 * - `system/` scopes grant nothing here (no backend clients); non-resource scopes are ignored
 *   except `fhirUser`
 */
import { type Permission, parseClinicalScope, splitScope } from '../smart/scopes.ts';

export type Interaction = Permission;
export type ScopeContext = 'patient' | 'user';

export interface ResourceGrant {
  context: ScopeContext;
  /** A resource type, or '*'. */
  type: string;
  interactions: ReadonlySet<Interaction>;
  /** v2 query restriction: each [param, value] must match the resource. */
  restriction?: readonly [string, string][];
}

export interface ParsedScopes {
  grants: ResourceGrant[];
  /** The `fhirUser` scope: the token may read the user's own FHIR resource. */
  fhirUser: boolean;
}

export function parseScopes(scope: string): ParsedScopes {
  const grants: ResourceGrant[] = [];
  let fhirUser = false;
  for (const s of splitScope(scope)) {
    if (s === 'fhirUser') {
      fhirUser = true;
      continue;
    }
    const c = parseClinicalScope(s);
    if (!c || c.level === 'system') continue;
    const restriction = c.query ? [...c.query.entries()] : undefined;
    if (restriction && restriction.length === 0) continue;
    grants.push({ context: c.level, type: c.resourceType, interactions: c.permissions, restriction });
  }
  return { grants, fhirUser };
}
