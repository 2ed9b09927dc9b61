/*
 * SMART scopes → what a token may do with which resource types.
 * - v1 (SMART 1.0): `patient/Observation.read`, `user/*.write`, `patient/*.*`
 *   read = read + search; write = create + update + delete; * = all
 * - v2 (SMART 2.0, https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
 *   `patient/Observation.rs`, letters c r u d s in that order, optionally `?param=value&…`
 *   restricting the grant to resources that match
 * - anything else (openid, fhirUser, launch, offline_access, malformed resource scopes) grants no
 *   resource access and is ignored; `system/` scopes grant nothing on this server (no backend clients)
 */

export type Interaction = 'c' | 'r' | 'u' | 'd' | 's';
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

const V1 = /^(patient|user|system)\/([A-Za-z]+|\*)\.(read|write|\*)$/;
const V2 = /^(patient|user|system)\/([A-Za-z]+|\*)\.(c?r?u?d?s?)(\?.*)?$/;

export function parseScopes(scope: string): ParsedScopes {
  const grants: ResourceGrant[] = [];
  let fhirUser = false;
  for (const s of scope.split(' ')) {
    if (s === 'fhirUser') {
      fhirUser = true;
      continue;
    }
    const v1 = V1.exec(s);
    if (v1) {
      if (v1[1] === 'system') continue;
      const mode = v1[3];
      const interactions = new Set<Interaction>(
        mode === 'read' ? ['r', 's'] : mode === 'write' ? ['c', 'u', 'd'] : ['c', 'r', 'u', 'd', 's'],
      );
      grants.push({ context: v1[1] as ScopeContext, type: v1[2]!, interactions });
      continue;
    }
    const v2 = V2.exec(s);
    if (v2?.[3]) {
      if (v2[1] === 'system') continue;
      let restriction: [string, string][] | undefined;
      if (v2[4]) {
        restriction = [...new URLSearchParams(v2[4].slice(1)).entries()];
        if (restriction.length === 0) continue;
      }
      grants.push({
        context: v2[1] as ScopeContext,
        type: v2[2]!,
        interactions: new Set(v2[3].split('') as Interaction[]),
        restriction,
      });
    }
  }
  return { grants, fhirUser };
}
