/*
 * Patients for operations tests, loaded through the real admin import: a transaction Bundle of
 * PUT entries with known ids, distinctive names and Ontario health card numbers (so a leak
 * test can search every byte of output for them), each with a small chart.
 */
import { createHash } from 'node:crypto';

export interface OpsPatient {
  id: string;
  family: string;
  given: string;
  hcn: string;
}

/** Deterministic, distinctive (never a word that appears in code or logs by chance). */
export function opsPatients(count: number, prefix = 'ops'): OpsPatient[] {
  return Array.from({ length: count }, (_, i) => {
    const h = createHash('sha256').update(`${prefix}-${i}`).digest('hex');
    return {
      id: `${prefix}-patient-${i + 1}`,
      family: `Quorvath${h.slice(0, 6).replace(/\d/g, 'x')}`,
      given: `Elspeth${h.slice(6, 10).replace(/\d/g, 'y')}`,
      hcn: String(6_000_000_000 + (Number.parseInt(h.slice(10, 18), 16) % 999_999_999)),
    };
  });
}

export function patientBundle(patients: OpsPatient[]): Record<string, unknown> {
  const entry = patients.flatMap((p) => {
    const ref = { reference: `Patient/${p.id}` };
    return [
      {
        resource: {
          resourceType: 'Patient',
          id: p.id,
          name: [{ family: p.family, given: [p.given] }],
          gender: 'female',
          birthDate: '1961-04-12',
          identifier: [
            {
              system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn',
              value: p.hcn,
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'JHN' }] },
            },
          ],
        },
        request: { method: 'PUT', url: `Patient/${p.id}` },
      },
      {
        resource: {
          resourceType: 'Condition',
          id: `${p.id}-c1`,
          subject: ref,
          code: { text: 'Type 2 diabetes mellitus' },
          clinicalStatus: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
          },
        },
        request: { method: 'PUT', url: `Condition/${p.id}-c1` },
      },
      {
        resource: {
          resourceType: 'AllergyIntolerance',
          id: `${p.id}-a1`,
          patient: ref,
          code: { text: 'Penicillin' },
        },
        request: { method: 'PUT', url: `AllergyIntolerance/${p.id}-a1` },
      },
    ];
  });
  return { resourceType: 'Bundle', type: 'transaction', entry };
}
