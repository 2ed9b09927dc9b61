/*
 * Who may see which resource: the one decision behind every read, search and $everything.
 * - `patient/…` grants reach only the token's patient compartment (the Patient included)
 * - the user's own FHIR resource (fhirUser) is readable with the `fhirUser` scope or any grant
 *   covering its type
 * - `user/…` grants reach every resource of their types (an EHR user sees every chart here)
 * - a v2 query restriction (`patient/Observation.rs?category=laboratory`) must match the resource;
 *   a restriction this server cannot evaluate matches nothing (fail closed)
 * - resources that exist but are not visible are indistinguishable from absent ones (404)
 */
import type { Interaction, ParsedScopes, ResourceGrant } from './scopes.ts';

export interface Principal {
  /** users.id: the token's `sub`. */
  userId: string;
  clientId: string;
  scope: string;
  scopes: ParsedScopes;
  /** The launch's patient (patient-context tokens). */
  patient?: string;
  /** The user's own resource, from the absolute `fhirUser` claim under our FHIR base. */
  fhirUser?: { type: string; id: string };
  /** The access token's `jti`: its reference row says whether its grant is still live. */
  tokenId: string;
}

function grants(p: Principal, type: string, interaction: Interaction): ResourceGrant[] {
  return p.scopes.grants.filter(
    (g) =>
      (g.type === '*' || g.type === type) &&
      g.interactions.has(interaction) &&
      (g.context === 'user' || p.patient !== undefined),
  );
}

/** Whether any resource of this type could be visible to the principal for this interaction (else 403). */
export function typeAllowed(p: Principal, type: string, interaction: Interaction): boolean {
  if (grants(p, type, interaction).length > 0) return true;
  return p.fhirUser?.type === type && p.scopes.fhirUser && (interaction === 'r' || interaction === 's');
}

/** Where SQL should look before canSee filters: everything of the type, or one compartment / one id. */
export type SearchScope = { all: true } | { all: false; compartment?: string; ids: string[] };

export function searchScope(p: Principal, type: string, interaction: Interaction): SearchScope {
  const gs = grants(p, type, interaction);
  if (gs.some((g) => g.context === 'user')) return { all: true };
  const ids: string[] = [];
  let compartment: string | undefined;
  if (gs.length > 0 && p.patient) {
    if (type === 'Patient') ids.push(p.patient);
    else compartment = p.patient;
  }
  if (p.fhirUser?.type === type && (gs.length > 0 || p.scopes.fhirUser)) ids.push(p.fhirUser.id);
  return { all: false, compartment, ids };
}

/**
 * Whether this resource is visible. `resource` is parsed lazily: only a query-restricted grant
 * needs the body.
 */
export function canSee(
  p: Principal,
  interaction: Interaction,
  type: string,
  id: string,
  compartment: string | null,
  resource: () => Record<string, unknown>,
): boolean {
  const gs = grants(p, type, interaction);
  for (const g of gs) {
    if (g.context === 'patient' && !(p.patient && compartment === p.patient)) continue;
    if (!g.restriction || matchesRestriction(resource(), g.restriction)) return true;
  }
  if (p.fhirUser && p.fhirUser.type === type && p.fhirUser.id === id) {
    if (p.scopes.fhirUser && (interaction === 'r' || interaction === 's')) return true;
    // a grant for the type covers the user's own resource even outside the patient compartment
    if (gs.some((g) => !g.restriction || matchesRestriction(resource(), g.restriction))) return true;
  }
  return false;
}

const camel = (param: string) => param.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function tokenValues(node: unknown, out: { system?: string; code: string }[]): void {
  if (node === null || node === undefined) return;
  if (Array.isArray(node)) {
    for (const n of node) tokenValues(n, out);
    return;
  }
  if (typeof node === 'string' || typeof node === 'boolean') {
    out.push({ code: String(node) });
    return;
  }
  if (typeof node !== 'object') return;
  const o = node as { coding?: unknown; system?: unknown; code?: unknown; value?: unknown };
  if (o.coding) tokenValues(o.coding, out);
  if (typeof o.code === 'string')
    out.push({ system: typeof o.system === 'string' ? o.system : undefined, code: o.code });
  else if (typeof o.value === 'string')
    out.push({ system: typeof o.system === 'string' ? o.system : undefined, code: o.value });
}

/** Token-style matching of `param=[system|]code[,…]` against the element named like the parameter. */
export function matchesRestriction(
  resource: Record<string, unknown>,
  restriction: readonly [string, string][],
): boolean {
  return restriction.every(([param, value]) => {
    if (!/^[a-z][a-z-]*$/.test(param)) return false;
    const found: { system?: string; code: string }[] = [];
    tokenValues(resource[camel(param)], found);
    if (found.length === 0) return false;
    return value.split(',').some((alt) => {
      const bar = alt.indexOf('|');
      if (bar < 0) return found.some((f) => f.code === alt);
      const system = alt.slice(0, bar);
      const code = alt.slice(bar + 1);
      return found.some(
        (f) =>
          (system === '' ? f.system === undefined : f.system === system) && (code === '' || f.code === code),
      );
    });
  });
}
