/*
 * Synthetic Ontario patients and their charts. Pure and deterministic (seeded), no I/O.
 * - names, addresses across Ontario (real city / postal-code-area pairs, fictional streets),
 *   phones in the 555-01xx range reserved for fiction, e-mail at example.com/.org/.net
 * - Ontario health card: 10 digits whose last is the Luhn check digit (as on real cards),
 *   2-letter version code carried in BOTH version-code extensions (CONTRACT §2 item 7)
 * - each chart: allergies, medications, conditions, observations, one referral letter PDF
 */
import { randomUUID } from 'node:crypto';
import type {
  AllergyIntolerance,
  Condition,
  DocumentReference,
  MedicationStatement,
  Observation,
  Patient,
  Resource,
} from '@medplum/fhirtypes';
import { ON_HCN_SYSTEM, VERSION_CODE_EXTENSIONS } from '../ehr/patient-view.ts';
import { simplePdf } from './pdf.ts';

const SNOMED = 'http://snomed.info/sct';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';

/** Small, fast, seeded PRNG (mulberry32): the same demo chart on every install. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    some: <T>(items: readonly T[], max: number): T[] => {
      const pool = [...items];
      const n = Math.floor(next() * (max + 1));
      const out: T[] = [];
      for (let i = 0; i < n && pool.length > 0; i++)
        out.push(pool.splice(Math.floor(next() * pool.length), 1)[0]!);
      return out;
    },
  };
}

/** Luhn check digit over the first nine digits (Ontario health numbers use mod 10). */
export function luhnCheckDigit(nineDigits: string): number {
  let sum = 0;
  for (let i = 0; i < nineDigits.length; i++) {
    let d = Number(nineDigits[nineDigits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

const PEOPLE: { given: string; family: string; gender: 'male' | 'female' | 'other'; preferred?: string }[] = [
  { given: 'Marie', family: 'Tremblay', gender: 'female' },
  { given: 'Liam', family: 'MacDonald', gender: 'male' },
  { given: 'Aaliyah', family: 'Thompson', gender: 'female' },
  { given: 'Rajesh', family: 'Sharma', gender: 'male', preferred: 'Raj' },
  { given: 'Mei', family: 'Chen', gender: 'female' },
  { given: 'Jean-François', family: 'Gagnon', gender: 'male' },
  { given: 'Olivia', family: 'Wilson', gender: 'female' },
  { given: 'Mohammed', family: 'Haddad', gender: 'male' },
  { given: 'Priya', family: 'Singh', gender: 'female' },
  { given: 'Noah', family: 'Campbell', gender: 'male' },
  { given: 'Fatima', family: 'Ahmed', gender: 'female' },
  { given: 'Ethan', family: 'Roy', gender: 'male' },
  { given: 'Sophie', family: 'Lévesque', gender: 'female' },
  { given: 'Daniel', family: 'Kowalski', gender: 'male', preferred: 'Dan' },
  { given: 'Grace', family: 'Okafor', gender: 'female' },
  { given: 'Lucas', family: 'Martin', gender: 'male' },
  { given: 'Hannah', family: 'Bergeron', gender: 'female' },
  { given: 'Wei', family: 'Zhang', gender: 'male' },
  { given: 'Emily', family: 'Stewart', gender: 'female' },
  { given: 'Joseph', family: 'Cardinal', gender: 'male' },
  { given: 'Isabella', family: 'Rossi', gender: 'female', preferred: 'Bella' },
  { given: 'Arjun', family: 'Patel', gender: 'male' },
  { given: 'Chloé', family: 'Bouchard', gender: 'female' },
  { given: 'Samuel', family: 'Nakamura', gender: 'male', preferred: 'Sam' },
  { given: 'Ava', family: 'Fraser', gender: 'female' },
  { given: 'Taylor', family: 'Morningstar', gender: 'other' },
  { given: 'Robert', family: 'Anderson', gender: 'male', preferred: 'Bob' },
  { given: 'Nadia', family: 'Petrov', gender: 'female' },
  { given: 'Kwame', family: 'Mensah', gender: 'male' },
  { given: 'Elizabeth', family: 'Tremblay', gender: 'female', preferred: 'Beth' },
];

const MIDDLE = {
  female: ['Anne', 'Louise', 'Marie', 'Rose', 'Claire', 'Jane'],
  male: ['James', 'Paul', 'John', 'Lee', 'Ray', 'Pierre'],
  other: ['Lee', 'Jordan', 'Sky'],
};

/** Real Ontario cities with a matching forward-sortation area and area codes. */
const PLACES: { city: string; fsa: string[]; area: string[] }[] = [
  { city: 'Toronto', fsa: ['M4C', 'M5V', 'M6H', 'M4L'], area: ['416', '647'] },
  { city: 'Ottawa', fsa: ['K1P', 'K2A', 'K1S'], area: ['613', '343'] },
  { city: 'Hamilton', fsa: ['L8P', 'L9A'], area: ['905', '289'] },
  { city: 'London', fsa: ['N6A', 'N5X'], area: ['519', '226'] },
  { city: 'Kingston', fsa: ['K7L', 'K7M'], area: ['613'] },
  { city: 'Sudbury', fsa: ['P3E', 'P3A'], area: ['705'] },
  { city: 'Thunder Bay', fsa: ['P7B', 'P7A'], area: ['807'] },
  { city: 'Windsor', fsa: ['N9A', 'N8X'], area: ['519', '226'] },
  { city: 'Barrie', fsa: ['L4M', 'L4N'], area: ['705'] },
  { city: 'Kitchener', fsa: ['N2G', 'N2M'], area: ['519', '548'] },
  { city: 'Mississauga', fsa: ['L5B', 'L5M'], area: ['905', '289'] },
  { city: 'Brampton', fsa: ['L6Y', 'L6P'], area: ['905'] },
  { city: 'Peterborough', fsa: ['K9J', 'K9H'], area: ['705'] },
  { city: 'Sault Ste. Marie', fsa: ['P6A', 'P6B'], area: ['705'] },
  { city: 'North Bay', fsa: ['P1B'], area: ['705'] },
  { city: 'Timmins', fsa: ['P4N'], area: ['705'] },
  { city: 'Guelph', fsa: ['N1H', 'N1E'], area: ['519', '226'] },
  { city: 'St. Catharines', fsa: ['L2R', 'L2M'], area: ['905'] },
  { city: 'Oshawa', fsa: ['L1H', 'L1G'], area: ['905'] },
  { city: 'Belleville', fsa: ['K8N', 'K8P'], area: ['613'] },
  { city: 'Kenora', fsa: ['P9N'], area: ['807'] },
  { city: 'Owen Sound', fsa: ['N4K'], area: ['519'] },
  { city: 'Cornwall', fsa: ['K6H', 'K6J'], area: ['613'] },
];

const STREETS = [
  'Maple',
  'King',
  'Queen',
  'Church',
  'Elm',
  'Victoria',
  'Lakeshore',
  'Dundas',
  'Wellington',
  'Birch',
  'Bay',
  'Pine',
  'Algonquin',
  'Huron',
  'Erie',
  'Cedar',
];
const STREET_TYPES = ['Street', 'Avenue', 'Road', 'Drive', 'Crescent', 'Boulevard', 'Court'];
const LETTERS = 'ABCEGHJKLMNPRSTVWXYZ';

interface Coded {
  code: string;
  display: string;
  system?: string;
}

const ALLERGIES: (Coded & {
  reaction: string;
  criticality: 'low' | 'high';
  category: 'medication' | 'food' | 'environment';
})[] = [
  {
    code: '91936005',
    display: 'Allergy to penicillin',
    reaction: 'Hives',
    criticality: 'high',
    category: 'medication',
  },
  {
    code: '91935009',
    display: 'Allergy to peanuts',
    reaction: 'Anaphylaxis',
    criticality: 'high',
    category: 'food',
  },
  {
    code: '294505008',
    display: 'Allergy to sulfonamide',
    reaction: 'Rash',
    criticality: 'low',
    category: 'medication',
  },
  {
    code: '300916003',
    display: 'Latex allergy',
    reaction: 'Contact dermatitis',
    criticality: 'low',
    category: 'environment',
  },
  {
    code: '418689008',
    display: 'Allergy to grass pollen',
    reaction: 'Rhinitis',
    criticality: 'low',
    category: 'environment',
  },
  {
    code: '293597001',
    display: 'Allergy to codeine',
    reaction: 'Nausea and vomiting',
    criticality: 'low',
    category: 'medication',
  },
];

const CONDITIONS: (Coded & { meds: number[] })[] = [
  { code: '44054006', display: 'Type 2 diabetes mellitus', meds: [0] },
  { code: '59621000', display: 'Essential hypertension', meds: [1, 2] },
  { code: '195967001', display: 'Asthma', meds: [3] },
  { code: '40930008', display: 'Hypothyroidism', meds: [4] },
  { code: '55822004', display: 'Hyperlipidemia', meds: [5] },
  { code: '370143000', display: 'Major depressive disorder', meds: [6] },
  { code: '239873007', display: 'Osteoarthritis of knee', meds: [7] },
  { code: '35489007', display: 'Depressive disorder', meds: [] },
  { code: '49436004', display: 'Atrial fibrillation', meds: [8] },
  { code: '13645005', display: 'Chronic obstructive pulmonary disease', meds: [3] },
];

const MEDICATIONS: (Coded & { dose: string })[] = [
  { code: '860975', display: 'Metformin 500 mg oral tablet', dose: '500 mg by mouth twice daily with meals' },
  { code: '314076', display: 'Lisinopril 10 mg oral tablet', dose: '10 mg by mouth once daily' },
  { code: '197361', display: 'Amlodipine 5 mg oral tablet', dose: '5 mg by mouth once daily' },
  { code: '745679', display: 'Salbutamol 100 mcg/dose inhaler', dose: '1–2 puffs every 4–6 hours as needed' },
  { code: '966224', display: 'Levothyroxine 50 mcg oral tablet', dose: '50 mcg by mouth every morning' },
  { code: '617312', display: 'Atorvastatin 20 mg oral tablet', dose: '20 mg by mouth at bedtime' },
  { code: '312940', display: 'Sertraline 50 mg oral tablet', dose: '50 mg by mouth once daily' },
  { code: '198013', display: 'Naproxen 250 mg oral tablet', dose: '250 mg by mouth twice daily as needed' },
  { code: '1364430', display: 'Apixaban 5 mg oral tablet', dose: '5 mg by mouth twice daily' },
];

export interface DemoPatient {
  patient: Patient;
  resources: Resource[];
}

function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** Generates `count` patients with charts, `today` anchoring ages and dates. */
export function demoPatients(count: number, today = new Date(), seed = 20_240_601): DemoPatient[] {
  const r = prng(seed);
  const out: DemoPatient[] = [];
  for (let i = 0; i < count; i++) {
    const person = PEOPLE[i % PEOPLE.length]!;
    const place = r.pick(PLACES);
    const id = randomUUID();
    const ref = { reference: `Patient/${id}` };
    const age = r.int(2, 92);
    const birth = new Date(Date.UTC(today.getUTCFullYear() - age, r.int(0, 11), r.int(1, 28)));
    const nine = String(r.int(100_000_000, 999_999_999));
    const hcn = `${nine}${luhnCheckDigit(nine)}`;
    const version = `${r.pick([...LETTERS])}${r.pick([...LETTERS])}`;
    const area = r.pick(place.area);
    const phone = () => `(${area}) 555-01${String(r.int(0, 99)).padStart(2, '0')}`;
    const postal = `${r.pick(place.fsa)} ${r.int(1, 9)}${r.pick([...LETTERS])}${r.int(0, 9)}`;
    const middle = r.next() < 0.4 ? [r.pick(MIDDLE[person.gender])] : [];
    const emailName = `${person.given}.${person.family}`
      .normalize('NFD')
      .replace(/[\u0300-\u036f]/g, '')
      .toLowerCase()
      .replace(/[^a-z.]/g, '');
    const patient: Patient = {
      resourceType: 'Patient',
      id,
      active: true,
      identifier: [
        {
          use: 'official',
          type: {
            coding: [
              {
                system: 'http://terminology.hl7.org/CodeSystem/v2-0203',
                code: 'JHN',
                display: 'Jurisdictional health number',
              },
            ],
            text: 'Ontario health card number',
          },
          system: ON_HCN_SYSTEM,
          value: hcn,
          extension: VERSION_CODE_EXTENSIONS.map((url) => ({ url, valueString: version })),
        },
        {
          use: 'usual',
          type: {
            coding: [
              {
                system: 'http://terminology.hl7.org/CodeSystem/v2-0203',
                code: 'MR',
                display: 'Medical record number',
              },
            ],
          },
          system: 'urn:oid:2.16.840.1.113883.3.239.99.1',
          value: `MRN${String(100_000 + i * 37)}`,
        },
      ],
      name: [
        { use: 'official', family: person.family, given: [person.given, ...middle] },
        ...(person.preferred ? [{ use: 'usual' as const, given: [person.preferred] }] : []),
      ],
      gender: person.gender,
      birthDate: isoDate(birth),
      telecom: [
        { system: 'phone', value: phone(), use: 'home', rank: 1 },
        ...(age >= 14 ? [{ system: 'phone' as const, value: phone(), use: 'mobile' as const, rank: 2 }] : []),
        ...(r.next() < 0.5 ? [{ system: 'fax' as const, value: phone(), use: 'home' as const }] : []),
        {
          system: 'email',
          value: `${emailName}@${r.pick(['example.com', 'example.org', 'example.net'])}`,
          use: 'home',
        },
      ],
      address: [
        {
          use: 'home',
          type: 'both',
          line: [
            `${r.int(1, 2400)} ${r.pick(STREETS)} ${r.pick(STREET_TYPES)}`,
            ...(r.next() < 0.2 ? [`Unit ${r.int(1, 40)}`] : []),
          ],
          city: place.city,
          state: 'ON',
          postalCode: postal,
          country: 'CA',
        },
      ],
      communication: [
        {
          language: {
            coding: [
              {
                system: 'urn:ietf:bcp:47',
                code: /[éèçÉ]|Gagnon|Tremblay|Bouchard|Bergeron|Roy/.test(person.given + person.family)
                  ? 'fr-CA'
                  : 'en-CA',
              },
            ],
            text: /[éèçÉ]|Gagnon|Tremblay|Bouchard|Bergeron|Roy/.test(person.given + person.family)
              ? 'French'
              : 'English',
          },
          preferred: true,
        },
      ],
    };

    const resources: Resource[] = [];
    const pastDate = (maxYears: number) =>
      isoDate(
        new Date(today.getTime() - r.int(30, Math.max(31, Math.min(maxYears, age) * 365)) * 86_400_000),
      );

    for (const a of r.some(ALLERGIES, 2)) {
      resources.push({
        resourceType: 'AllergyIntolerance',
        id: randomUUID(),
        clinicalStatus: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' },
          ],
        },
        verificationStatus: {
          coding: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification',
              code: 'confirmed',
            },
          ],
        },
        type: 'allergy',
        category: [a.category],
        criticality: a.criticality,
        code: {
          coding: [{ system: SNOMED, code: a.code, display: a.display }],
          text: a.display.replace(/^Allergy to /, '').replace(/^./, (c) => c.toUpperCase()),
        },
        patient: ref,
        recordedDate: pastDate(10),
        reaction: [{ manifestation: [{ text: a.reaction }] }],
      } satisfies AllergyIntolerance);
    }

    const conditions = age < 18 ? r.some(CONDITIONS.slice(2, 3), 1) : r.some(CONDITIONS, 3);
    const medIndexes = new Set<number>();
    for (const c of conditions) {
      const onset = pastDate(15);
      resources.push({
        resourceType: 'Condition',
        id: randomUUID(),
        clinicalStatus: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
        },
        verificationStatus: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' },
          ],
        },
        category: [
          {
            coding: [
              {
                system: 'http://terminology.hl7.org/CodeSystem/condition-category',
                code: 'problem-list-item',
              },
            ],
          },
        ],
        code: { coding: [{ system: SNOMED, code: c.code, display: c.display }], text: c.display },
        subject: ref,
        onsetDateTime: onset,
        recordedDate: onset,
      } satisfies Condition);
      for (const m of c.meds) medIndexes.add(m);
    }
    for (const m of medIndexes) {
      const med = MEDICATIONS[m]!;
      resources.push({
        resourceType: 'MedicationStatement',
        id: randomUUID(),
        status: 'active',
        medicationCodeableConcept: {
          coding: [{ system: RXNORM, code: med.code, display: med.display }],
          text: med.display,
        },
        subject: ref,
        effectivePeriod: { start: pastDate(8) },
        dateAsserted: isoDate(today),
        dosage: [{ text: med.dose }],
      } satisfies MedicationStatement);
    }

    const visits = r.int(2, 4);
    for (let v = 0; v < visits; v++) {
      const when = `${pastDate(3)}T${String(r.int(8, 16)).padStart(2, '0')}:${String(r.int(0, 5) * 10).padStart(2, '0')}:00-05:00`;
      const vital = (
        code: string,
        display: string,
        value: number,
        unit: string,
        ucum: string,
      ): Observation => ({
        resourceType: 'Observation',
        id: randomUUID(),
        status: 'final',
        category: [
          {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' },
            ],
          },
        ],
        code: { coding: [{ system: LOINC, code, display }], text: display },
        subject: ref,
        effectiveDateTime: when,
        valueQuantity: { value, unit, system: UCUM, code: ucum },
      });
      const systolic = r.int(108, 152);
      resources.push({
        resourceType: 'Observation',
        id: randomUUID(),
        status: 'final',
        category: [
          {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' },
            ],
          },
        ],
        code: {
          coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel' }],
          text: 'Blood pressure',
        },
        subject: ref,
        effectiveDateTime: when,
        ...(systolic >= 140
          ? {
              interpretation: [
                {
                  coding: [
                    {
                      system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
                      code: 'H',
                    },
                  ],
                },
              ],
            }
          : {}),
        component: [
          {
            code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] },
            valueQuantity: { value: systolic, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' },
          },
          {
            code: { coding: [{ system: LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] },
            valueQuantity: { value: r.int(64, 94), unit: 'mmHg', system: UCUM, code: 'mm[Hg]' },
          },
        ],
      } satisfies Observation);
      resources.push(vital('8867-4', 'Heart rate', r.int(56, 96), 'beats/min', '/min'));
      if (age >= 18) resources.push(vital('29463-7', 'Body weight', r.int(480, 1150) / 10, 'kg', 'kg'));
    }
    if (conditions.some((c) => c.code === '44054006')) {
      const a1c = r.int(62, 92) / 10;
      resources.push({
        resourceType: 'Observation',
        id: randomUUID(),
        status: 'final',
        category: [
          {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' },
            ],
          },
        ],
        code: {
          coding: [{ system: LOINC, code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' }],
          text: 'Hemoglobin A1c',
        },
        subject: ref,
        effectiveDateTime: pastDate(1),
        valueQuantity: { value: a1c, unit: '%', system: UCUM, code: '%' },
        ...(a1c > 7
          ? {
              interpretation: [
                {
                  coding: [
                    {
                      system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
                      code: 'H',
                    },
                  ],
                },
              ],
            }
          : {}),
      } satisfies Observation);
    }

    const letterDate = pastDate(2);
    const pdf = simplePdf('Consultation letter (synthetic demo document)', [
      `Patient: ${person.given} ${person.family}   Date of birth: ${patient.birthDate}`,
      `Ontario health card: ${hcn} ${version}`,
      `Date: ${letterDate}`,
      '',
      'Thank you for seeing this patient in consultation.',
      conditions.length
        ? `Problems: ${conditions.map((c) => c.display).join('; ')}.`
        : 'No chronic problems on file.',
      '',
      'This document is synthetic demonstration data and describes no real person.',
    ]);
    resources.push({
      resourceType: 'DocumentReference',
      id: randomUUID(),
      status: 'current',
      type: {
        coding: [{ system: LOINC, code: '11488-4', display: 'Consult note' }],
        text: 'Consultation letter',
      },
      category: [
        {
          coding: [
            {
              system: 'http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category',
              code: 'clinical-note',
            },
          ],
        },
      ],
      subject: ref,
      date: `${letterDate}T09:00:00-05:00`,
      description: 'Consultation letter',
      content: [
        {
          attachment: {
            contentType: 'application/pdf',
            language: 'en-CA',
            title: 'consultation-letter.pdf',
            data: pdf.toString('base64'),
            size: pdf.length,
            creation: `${letterDate}T09:00:00-05:00`,
          },
        },
      ],
    } satisfies DocumentReference);

    out.push({ patient, resources });
  }
  return out;
}
