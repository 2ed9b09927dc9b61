import type { Observation, Patient } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { buttonLabel, launchHref } from '../../src/ehr/ocean-buttons.ts';
import {
  addressLines,
  ageOf,
  contacts,
  formatDate,
  formatHcn,
  healthCard,
  listName,
  observationValue,
} from '../../src/ehr/patient-view.ts';

const ON = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';

describe('patient view helpers', () => {
  it('reads the Ontario health card and its version code from either extension', () => {
    const ehealth: Patient = {
      resourceType: 'Patient',
      identifier: [
        { system: 'urn:oid:1.2.3', value: 'MRN1' },
        {
          system: ON,
          value: '9876543217',
          extension: [
            {
              url: 'http://ehealthontario.ca/fhir/StructureDefinition/ext-id-health-card-version-code',
              valueString: 'AB',
            },
          ],
        },
      ],
    };
    expect(healthCard(ehealth)).toEqual({ province: 'ON', number: '9876543217', versionCode: 'AB' });
    expect(formatHcn(healthCard(ehealth)!)).toBe('9876-543-217 AB');
    const baseline: Patient = {
      resourceType: 'Patient',
      identifier: [
        {
          system: ON,
          value: '9876543217',
          extension: [
            {
              url: 'http://hl7.org/fhir/ca/baseline/StructureDefinition/ext-identifierversion',
              valueString: 'ZZ',
            },
          ],
        },
      ],
    };
    expect(healthCard(baseline)?.versionCode).toBe('ZZ');
  });

  it('shows another province’s card when there is no Ontario one, and nothing when there is none', () => {
    const bc: Patient = {
      resourceType: 'Patient',
      identifier: [
        {
          system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-bc-patient-healthcare-id',
          value: '9123456789',
        },
      ],
    };
    expect(healthCard(bc)).toEqual({ province: 'BC', number: '9123456789', versionCode: undefined });
    expect(healthCard({ resourceType: 'Patient' })).toBeUndefined();
  });

  it('copes with sparse patients', () => {
    const p: Patient = { resourceType: 'Patient' };
    expect(listName(p)).toBe('(no name)');
    expect(addressLines(p)).toEqual([]);
    expect(contacts(p)).toEqual([]);
    expect(formatDate(undefined)).toBe('—');
    expect(listName({ resourceType: 'Patient', name: [{ text: 'Only Text' }] })).toBe('Only Text');
  });

  it('formats partial dates and computes ages without time zones getting in the way', () => {
    expect(formatDate('1980')).toBe('1980');
    expect(formatDate('1980-03')).toBe('Mar 1980');
    expect(formatDate('1980-03-07T10:00:00-05:00')).toBe('7 Mar 1980');
    const today = new Date(Date.UTC(2025, 2, 7));
    expect(ageOf('1980-03-07', today)).toBe(45);
    expect(ageOf('1980-03-08', today)).toBe(44);
    expect(ageOf('1980', today)).toBeUndefined();
  });

  it('reads blood pressure panels and simple values', () => {
    const bp: Observation = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'BP' },
      component: [
        { code: { text: 'sys' }, valueQuantity: { value: 120, unit: 'mmHg' } },
        { code: { text: 'dia' }, valueQuantity: { value: 80, unit: 'mmHg' } },
      ],
    };
    expect(observationValue(bp)).toBe('120/80 mmHg');
    expect(observationValue({ ...bp, component: undefined, valueString: 'positive' })).toBe('positive');
    expect(observationValue({ ...bp, component: undefined, valueBoolean: false })).toBe('No');
  });

  it('labels Ocean buttons and builds launch links', () => {
    expect(buttonLabel('Health Map')).toBe('Ocean: Health Map');
    expect(buttonLabel('Ocean Health Map')).toBe('Ocean: Health Map');
    expect(buttonLabel('Ocean: Refer')).toBe('Ocean: Refer');
    expect(launchHref('p 1', '1234', 'viewMap')).toBe('/launch?patient=p+1&site=1234&action=viewMap');
  });
});
