/*
 * Search parameter values extracted from a resource at write time (table fhir_search_index).
 * - only Patient, Practitioner, PractitionerRole, Organization, Location are indexed
 * - names (Patient, Practitioner): every given, family, prefix, suffix and text word, lower case,
 *   accents removed, so `name=jose` finds "José" (FHIR string search: case- and accent-insensitive)
 * - identifier: "system|value" and the bare value, so both token forms hit the index
 * - hcn: the value of a Canadian health card identifier (EHR patient list search)
 * - gender, birthdate: as stored
 */
import type { HumanName, Identifier } from '@medplum/fhirtypes';

export interface IndexRow {
  param: string;
  value: string;
}

/** Lower case, accents and punctuation removed: the form names are stored and searched in. */
export function normalizeText(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s'-]+/gu, ' ')
    .trim();
}

/** A LIKE pattern matching values that start with `s` (its own %, _ and \\ taken literally). */
export const likePrefix = (s: string) => `${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function words(text: string | undefined): string[] {
  if (!text) return [];
  return normalizeText(text)
    .split(/[\s-]+/)
    .filter((w) => w.length > 0);
}

/** Health card systems: Ontario's `ca-on-patient-hcn`, other provinces' `ca-XX-patient-healthcare-id`. */
export function isHealthCardSystem(system: string | undefined): boolean {
  return (
    typeof system === 'string' && /\/NamingSystem\/ca-[a-z]{2}-patient-(hcn|healthcare-id)$/.test(system)
  );
}

const MAX_VALUE = 512;

/** Types with indexed identifiers (search, conditional references on import); names for people only. */
export const INDEXED_TYPES: ReadonlySet<string> = new Set([
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
]);
const PEOPLE = new Set(['Patient', 'Practitioner']);

export function extractIndexRows(resource: { resourceType: string } & Record<string, unknown>): IndexRow[] {
  if (!INDEXED_TYPES.has(resource.resourceType)) return [];
  const rows = new Map<string, IndexRow>();
  const add = (param: string, value: string | undefined) => {
    if (!value) return;
    const v = value.slice(0, MAX_VALUE);
    rows.set(`${param}\u0000${v}`, { param, value: v });
  };

  const names =
    PEOPLE.has(resource.resourceType) && Array.isArray(resource.name) ? (resource.name as HumanName[]) : [];
  for (const name of names) {
    if (!name || typeof name !== 'object') continue;
    for (const w of words(name.family)) {
      add('family', w);
      add('name', w);
    }
    for (const g of name.given ?? []) {
      for (const w of words(g)) {
        add('given', w);
        add('name', w);
      }
    }
    for (const p of [...(name.prefix ?? []), ...(name.suffix ?? [])])
      for (const w of words(p)) add('name', w);
    for (const w of words(name.text)) add('name', w);
    // Whole family name too, so `family=van der berg` matches as a phrase.
    if (name.family) add('family', normalizeText(name.family));
  }

  for (const id of (resource.identifier as Identifier[] | undefined) ?? []) {
    if (!id || typeof id !== 'object' || typeof id.value !== 'string') continue;
    add('identifier', `${id.system ?? ''}|${id.value}`);
    add('identifier-value', id.value);
    if (isHealthCardSystem(id.system)) add('hcn', id.value.replace(/[\s-]/g, '').toUpperCase());
  }

  if (typeof resource.gender === 'string') add('gender', resource.gender);
  if (typeof resource.birthDate === 'string') add('birthdate', resource.birthDate);
  return [...rows.values()];
}
