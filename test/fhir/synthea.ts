/*
 * Bundles shaped like Synthea's FHIR R4 output (https://github.com/synthetichealth/synthea):
 * transaction bundles whose entries are POSTs with `urn:uuid:` fullUrls and references between
 * them, and conditional references to Practitioners and Organizations exported in a separate
 * "practitionerInformation" bundle with `ifNoneExist`.
 */
import { randomUUID } from 'node:crypto';

export const NPI = 'http://hl7.org/fhir/sid/us-npi';
export const SYNTHEA = 'https://github.com/synthetichealth/synthea';

export function practitionerBundle(npi: string, orgId: string) {
  const pract = randomUUID();
  const org = randomUUID();
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: `urn:uuid:${org}`,
        resource: {
          resourceType: 'Organization',
          id: org,
          identifier: [{ system: SYNTHEA, value: orgId }],
          name: 'General Hospital',
        },
        request: { method: 'POST', url: 'Organization', ifNoneExist: `identifier=${SYNTHEA}|${orgId}` },
      },
      {
        fullUrl: `urn:uuid:${pract}`,
        resource: {
          resourceType: 'Practitioner',
          id: pract,
          identifier: [{ system: NPI, value: npi }],
          name: [{ family: 'Welby', given: ['Marcus'], prefix: ['Dr.'] }],
        },
        request: { method: 'POST', url: 'Practitioner', ifNoneExist: `identifier=${NPI}|${npi}` },
      },
    ],
  };
}

/** One patient and `others` resources of its chart (Encounters, Conditions, Observations, …). */
export function patientBundle(options: { others: number; npi?: string; orgId?: string; family?: string }) {
  const patient = randomUUID();
  const npi = options.npi ?? '9999999999';
  const orgId = options.orgId ?? 'org-1';
  const entries: unknown[] = [
    {
      fullUrl: `urn:uuid:${patient}`,
      resource: {
        resourceType: 'Patient',
        id: patient,
        identifier: [
          { system: SYNTHEA, value: patient },
          { system: 'http://hospital.smarthealthit.org', value: patient.slice(0, 8) },
        ],
        name: [
          { use: 'official', family: options.family ?? 'Ruecker817', given: ['Lilia547'], prefix: ['Mrs.'] },
        ],
        telecom: [{ system: 'phone', value: '555-812-9921', use: 'home' }],
        gender: 'female',
        birthDate: '1961-04-12',
        address: [{ line: ['1 Main St'], city: 'Toronto', state: 'ON', country: 'CA' }],
      },
      request: { method: 'POST', url: 'Patient' },
    },
  ];
  let encounter = '';
  for (let i = 0; i < options.others; i++) {
    const id = randomUUID();
    const subject = { reference: `urn:uuid:${patient}` };
    let resource: Record<string, unknown>;
    switch (i % 8) {
      case 0:
        encounter = id;
        resource = {
          resourceType: 'Encounter',
          status: 'finished',
          class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
          subject,
          participant: [
            {
              individual: { reference: `Practitioner?identifier=${NPI}|${npi}`, display: 'Dr. Marcus Welby' },
            },
          ],
          serviceProvider: {
            reference: `Organization?identifier=${SYNTHEA}|${orgId}`,
            display: 'General Hospital',
          },
          period: { start: '2020-01-01T10:00:00Z', end: '2020-01-01T10:30:00Z' },
        };
        break;
      case 1:
        resource = {
          resourceType: 'Condition',
          subject,
          encounter: { reference: `urn:uuid:${encounter}` },
          code: { text: 'Hypertension' },
          clinicalStatus: { coding: [{ code: 'active' }] },
        };
        break;
      case 2:
        resource = {
          resourceType: 'MedicationRequest',
          status: 'active',
          intent: 'order',
          subject,
          encounter: { reference: `urn:uuid:${encounter}` },
          medicationCodeableConcept: { text: 'lisinopril 10 MG' },
          requester: { reference: `Practitioner?identifier=${NPI}|${npi}` },
        };
        break;
      case 3:
        resource = { resourceType: 'AllergyIntolerance', patient: subject, code: { text: 'Peanut' } };
        break;
      case 4:
        resource = {
          resourceType: 'Immunization',
          status: 'completed',
          patient: subject,
          vaccineCode: { text: 'Influenza' },
          occurrenceDateTime: '2020-10-01',
        };
        break;
      case 5:
        resource = { resourceType: 'Procedure', status: 'completed', subject, code: { text: 'Spirometry' } };
        break;
      case 6:
        resource = {
          resourceType: 'DocumentReference',
          status: 'current',
          subject,
          content: [
            { attachment: { contentType: 'text/plain', data: Buffer.from(`note ${i}`).toString('base64') } },
          ],
        };
        break;
      default:
        resource = {
          resourceType: 'Observation',
          status: 'final',
          category: [
            {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' },
              ],
            },
          ],
          code: { text: 'Body Weight' },
          subject,
          encounter: { reference: `urn:uuid:${encounter}` },
          valueQuantity: { value: 70 + (i % 10), unit: 'kg' },
        };
    }
    entries.push({
      fullUrl: `urn:uuid:${id}`,
      resource: { ...resource, id },
      request: { method: 'POST', url: resource.resourceType },
    });
  }
  return { patientId: patient, bundle: { resourceType: 'Bundle', type: 'transaction', entry: entries } };
}
