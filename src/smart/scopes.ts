/*
 * SMART scopes, v1 and v2 (SMART App Launch 2.2 §"Scopes and Launch Context").
 * - parseClinicalScope turns `patient/Observation.read` (v1) and `patient/Observation.rs?category=…`
 *   (v2) into one normalised shape: context, resource type, permission set, optional query
 * - grantScopes decides, per requested scope, granted or dropped — never refused: this server is
 *   read-only, so only read/search permissions are granted; `system/` needs a backend client we
 *   do not register; patient-level and launch scopes need a launch context (a patient)
 * - the granted strings are the requested strings, verbatim, in request order: the token response,
 *   the JWT `scope` claim and introspection all show the same string
 */

export type ScopeLevel = 'patient' | 'user' | 'system';
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ClinicalScope {
  raw: string;
  level: ScopeLevel;
  /** A FHIR resource type, or '*'. */
  resourceType: string;
  permissions: ReadonlySet<Permission>;
  version: 1 | 2;
  /** v2 granular query (e.g. `category=laboratory`), without the `?`. */
  query?: URLSearchParams;
}

const V1 = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*)$/;
const V2 = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.(c?r?u?d?s?)(?:\?(.+))?$/;

const V1_PERMISSIONS: Record<string, Permission[]> = {
  read: ['r', 's'],
  write: ['c', 'u', 'd'],
  '*': ['c', 'r', 'u', 'd', 's'],
};

export function parseClinicalScope(scope: string): ClinicalScope | undefined {
  const v1 = V1.exec(scope);
  if (v1) {
    return {
      raw: scope,
      level: v1[1] as ScopeLevel,
      resourceType: v1[2]!,
      permissions: new Set(V1_PERMISSIONS[v1[3]!]),
      version: 1,
    };
  }
  const v2 = V2.exec(scope);
  if (v2?.[3]) {
    return {
      raw: scope,
      level: v2[1] as ScopeLevel,
      resourceType: v2[2]!,
      permissions: new Set(v2[3].split('') as Permission[]),
      version: 2,
      ...(v2[4] ? { query: new URLSearchParams(v2[4]) } : {}),
    };
  }
  return undefined;
}

/** Identity, launch and refresh scopes oidc-provider knows as its own (OIDC "static" scopes). */
export const OIDC_SCOPES = [
  'openid',
  'fhirUser',
  'profile',
  'email',
  'launch',
  'launch/patient',
  'offline_access',
  'online_access',
] as const;
const OIDC_SCOPE_SET = new Set<string>(OIDC_SCOPES);

export const isOidcScope = (scope: string): boolean => OIDC_SCOPE_SET.has(scope);

/** The permissions this server grants: it serves reads and searches only. */
const GRANTABLE_PERMISSIONS = new Set<Permission>(['r', 's']);

export interface GrantInput {
  requested: readonly string[];
  /** A launch context is bound to this authorization. */
  hasLaunchContext: boolean;
  /**
   * That launch has a patient in context (default: whenever there is a launch). An EHR system's
   * launch for sign-on only has none: patient-level scopes and launch/patient are dropped.
   */
  hasPatient?: boolean;
  /** The client's scope allow-list from its registration (undefined = no restriction). */
  clientAllowed?: ReadonlySet<string>;
}

export interface GrantDecision {
  granted: string[];
  dropped: string[];
}

function grantable(scope: string, hasLaunch: boolean, hasPatient: boolean): boolean {
  switch (scope) {
    case 'openid':
    case 'fhirUser':
    case 'profile':
    case 'email':
    case 'offline_access':
      return true;
    // launch: EHR launch context; launch/patient: a patient is in context.
    case 'launch/patient':
      return hasPatient;
    case 'launch':
    // online_access ends with the EHR session the launch came from, so it needs one.
    case 'online_access':
      return hasLaunch;
  }
  const c = parseClinicalScope(scope);
  if (!c) return false;
  if (c.level === 'system') return false;
  if (c.level === 'patient' && !hasPatient) return false;
  for (const p of c.permissions) if (!GRANTABLE_PERMISSIONS.has(p)) return false;
  return true;
}

/** Splits requested scopes into granted and dropped; nothing is refused. */
export function grantScopes(input: GrantInput): GrantDecision {
  const granted: string[] = [];
  const dropped: string[] = [];
  for (const scope of new Set(input.requested)) {
    if (!scope) continue;
    const allowed = !input.clientAllowed || input.clientAllowed.has(scope);
    (allowed && grantable(scope, input.hasLaunchContext, input.hasPatient ?? input.hasLaunchContext)
      ? granted
      : dropped
    ).push(scope);
  }
  return { granted, dropped };
}

export const splitScope = (scope: string | undefined | null): string[] =>
  (scope ?? '').split(' ').filter((s) => s.length > 0);

/**
 * Whether a granted scope string lets its bearer use `permission` on `resourceType` at `level`
 * (for resource servers; v2 query restrictions are returned for the caller to apply).
 */
export function scopesPermitting(
  scope: string,
  level: ScopeLevel,
  resourceType: string,
  permission: Permission,
): ClinicalScope[] {
  return splitScope(scope)
    .map(parseClinicalScope)
    .filter(
      (c): c is ClinicalScope =>
        !!c &&
        c.level === level &&
        (c.resourceType === '*' || c.resourceType === resourceType) &&
        c.permissions.has(permission),
    );
}

/** Plain words for the consent page. */
export function describeScope(scope: string): string {
  switch (scope) {
    case 'openid':
      return 'Confirm who you are';
    case 'fhirUser':
      return 'Know which clinician you are (your Practitioner record)';
    case 'profile':
      return 'See your name';
    case 'email':
      return 'See your e-mail address';
    case 'launch':
    case 'launch/patient':
      return 'Know which patient chart you opened';
    case 'offline_access':
      return 'Keep access after you sign out, until you revoke it';
    case 'online_access':
      return 'Keep access while you stay signed in';
  }
  const c = parseClinicalScope(scope);
  if (!c) return scope;
  const what = c.resourceType === '*' ? 'all clinical records' : `${c.resourceType} records`;
  const whose = c.level === 'patient' ? 'of this patient' : 'of any patient you can see';
  const filter = c.query ? ` (only where ${c.query.toString().replaceAll('&', ', ')})` : '';
  return `Read ${what} ${whose}${filter}`;
}
