/*
 * The resource types this server holds, and where each sits in the R4 Patient compartment.
 * - https://hl7.org/fhir/R4/compartmentdefinition-patient.html: for each type, the search
 *   parameters (here: the element paths behind them) whose Patient reference puts a resource
 *   into that Patient's compartment; types absent from the definition are in no compartment
 * - a Patient is in its own compartment
 * - the first path (in the order listed) naming a local Patient decides the one compartment a
 *   resource is stored under
 */
import type { ResourceType } from '@medplum/fhirtypes';

/** Element paths (dotted; arrays are walked) holding references that place a resource in a Patient compartment. */
export const PATIENT_COMPARTMENT: Partial<Record<ResourceType, readonly string[]>> = {
  AllergyIntolerance: ['patient', 'recorder', 'asserter'],
  CarePlan: ['subject', 'activity.detail.performer'],
  CareTeam: ['subject', 'participant.member'],
  Claim: ['patient', 'payee.party'],
  Condition: ['subject', 'asserter'],
  Coverage: ['beneficiary', 'subscriber', 'policyHolder', 'payor'],
  Device: ['patient'],
  DiagnosticReport: ['subject'],
  DocumentReference: ['subject', 'author'],
  Encounter: ['subject'],
  ExplanationOfBenefit: ['patient', 'payee.party'],
  Goal: ['subject'],
  ImagingStudy: ['subject'],
  Immunization: ['patient'],
  MedicationAdministration: ['subject', 'performer.actor'],
  MedicationRequest: ['subject'],
  MedicationStatement: ['subject'],
  Observation: ['subject', 'performer'],
  Procedure: ['subject', 'performer.actor'],
  Provenance: ['target'],
  QuestionnaireResponse: ['subject', 'author'],
  ServiceRequest: ['subject', 'performer'],
  SupplyDelivery: ['patient'],
};

/** Types held but in no Patient compartment (shared reference data). */
const SHARED_TYPES = ['Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Medication'] as const;

/** Every type the server stores, reads and searches. */
export const SUPPORTED_TYPES: readonly ResourceType[] = [
  'Patient',
  ...SHARED_TYPES,
  ...(Object.keys(PATIENT_COMPARTMENT) as ResourceType[]),
].sort() as ResourceType[];

const supported = new Set<string>(SUPPORTED_TYPES);

export function isSupportedType(type: string): type is ResourceType {
  return supported.has(type);
}

/** Types that belong to a Patient compartment (the Patient itself included). */
export function isCompartmentType(type: string): boolean {
  return type === 'Patient' || type in PATIENT_COMPARTMENT;
}

/** FHIR ids: https://hl7.org/fhir/R4/datatypes.html#id */
export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

const LOCAL_PATIENT_REF = /^Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/** The Patient id a reference string names, when it is a local relative reference. */
export function patientIdOfReference(reference: unknown): string | undefined {
  if (typeof reference !== 'string') return undefined;
  return LOCAL_PATIENT_REF.exec(reference)?.[1];
}

function collect(node: unknown, path: readonly string[], out: unknown[]): void {
  if (node === null || node === undefined) return;
  if (Array.isArray(node)) {
    for (const item of node) collect(item, path, out);
    return;
  }
  if (path.length === 0) {
    out.push(node);
    return;
  }
  if (typeof node !== 'object') return;
  collect((node as Record<string, unknown>)[path[0]!], path.slice(1), out);
}

/** The id of the Patient whose compartment holds this resource, or null. */
export function compartmentOf(resource: { resourceType: string; id?: string }): string | null {
  if (resource.resourceType === 'Patient') return resource.id ?? null;
  const paths = PATIENT_COMPARTMENT[resource.resourceType as ResourceType];
  if (!paths) return null;
  for (const path of paths) {
    const refs: unknown[] = [];
    collect(resource, path.split('.'), refs);
    for (const ref of refs) {
      const id = patientIdOfReference((ref as { reference?: unknown })?.reference);
      if (id) return id;
    }
  }
  return null;
}
