/*
 * Which of our charts a message's Patient is, in order (CONTRACT §3.7):
 * 1. the `id-external-patient-reference` identifier: the id of our Patient that Ocean received at
 *    the launch — accepted only if that Patient exists and, when both carry an Ontario health
 *    card number, the numbers agree
 * 2. the Ontario health card number (and its version code when both sides have one): exactly one
 *    Patient must carry it
 * 3. otherwise unmatched — never a new patient, never a match on name or birth date alone
 */
import type { Identifier, Patient } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { readResource, searchPatients } from '../fhir/repository.ts';

const ON_HCN_SYSTEM = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';
/** The version code's extensions: Ocean's own and CA Baseline's (CONTRACT §2). */
const VERSION_CODE_EXTENSIONS = [
  'http://ehealthontario.ca/fhir/StructureDefinition/ext-id-health-card-version-code',
  'http://hl7.org/fhir/ca/baseline/StructureDefinition/ext-identifierversion',
];

export const EXTERNAL_PATIENT_SYSTEM =
  'https://ocean.cognisantmd.com/svc/fhir/v1/NamingSystem/id-external-patient-reference';

export type PatientMatch =
  | { matched: true; patientId: string; by: 'external-reference' | 'health-card' }
  | { matched: false; reason: string };

const normalHcn = (v: string) => v.replace(/[\s-]/g, '').toUpperCase();

/** The Ontario health card of a Patient (ours or the message's): number normalised, version code upper case. */
function ontarioCard(patient: Patient): { number: string; versionCode?: string } | undefined {
  const id = (Array.isArray(patient.identifier) ? patient.identifier : []).find(
    (i: Identifier) => i?.system === ON_HCN_SYSTEM && typeof i.value === 'string' && i.value.trim(),
  );
  if (!id?.value) return undefined;
  const version = id.extension?.find((e) => VERSION_CODE_EXTENSIONS.includes(e.url))?.valueString;
  return { number: normalHcn(id.value), versionCode: version?.trim().toUpperCase() || undefined };
}

function cardsAgree(
  theirs: { number: string; versionCode?: string },
  ours: Patient,
  compareVersion: boolean,
): boolean {
  const card = ontarioCard(ours);
  if (!card) return !compareVersion; // nothing to contradict the reference
  if (card.number !== theirs.number) return false;
  if (compareVersion && theirs.versionCode && card.versionCode)
    return card.versionCode === theirs.versionCode;
  return true;
}

export async function matchPatient(q: Queryable, patient: Patient): Promise<PatientMatch> {
  const card = ontarioCard(patient);
  const reference = (Array.isArray(patient.identifier) ? patient.identifier : []).find(
    (i) => i?.system === EXTERNAL_PATIENT_SYSTEM && typeof i.value === 'string',
  )?.value;
  if (reference) {
    const ours = await readResource(q, 'Patient', reference);
    if (ours) {
      if (card && !cardsAgree(card, ours.resource, false))
        return {
          matched: false,
          reason: 'the external patient reference and the health card name different patients',
        };
      return { matched: true, patientId: ours.resource.id!, by: 'external-reference' };
    }
  }
  if (!card)
    return { matched: false, reason: 'no patient with the external patient reference, and no health card' };
  const { patients } = await searchPatients(q, { hcn: card.number, count: 5, offset: 0 });
  const candidates = patients.filter((p) => cardsAgree(card, p, true));
  if (candidates.length === 1) return { matched: true, patientId: candidates[0]!.id!, by: 'health-card' };
  return {
    matched: false,
    reason:
      candidates.length === 0
        ? 'no patient with this health card'
        : 'several patients carry this health card',
  };
}
