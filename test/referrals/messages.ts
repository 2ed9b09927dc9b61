/*
 * Realistic Ocean eReferral messages for tests and the benchmark, written from Ocean's published
 * description (CONTRACT §3.7 and issue 12): a message Bundle with the MessageHeader first, entries by
 * urn:uuid, the Patient with its Ontario health card and the EMR's patient id, requester and
 * performer PractitionerRoles (the performer with the Ocean site number), a Practitioner, a
 * Location, the letter DocumentReference (identifier = referral id, url at Ocean), attachment
 * DocumentReferences, the QuestionnaireResponse and the ServiceRequest with an HTML note.
 * Every call draws new urn:uuid full URLs, as Ocean does per message.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';

export const EVENT_SYSTEM = 'https://ehealthontario.ca/fhir/CodeSystem/message-event-code';
export const REFERRAL_SYSTEM =
  'https://ocean.cognisantmd.com/svc/fhir/v1/NamingSystem/id-ereferral-reference';
export const EXTERNAL_REF_SYSTEM =
  'https://ocean.cognisantmd.com/svc/fhir/v1/NamingSystem/id-external-patient-reference';
export const SITE_SYSTEM = 'https://ocean.cognisantmd.com/svc/fhir/v1/NamingSystem/id-site-number';
export const HCN_SYSTEM = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';
const VERSION_EXT = 'http://ehealthontario.ca/fhir/StructureDefinition/ext-id-health-card-version-code';
const PROFILE = (name: string) =>
  `http://ehealthontario.ca/fhir/StructureDefinition/ca-on-eReferral-profile-${name}`;

export interface MessageOptions {
  referralId?: string;
  event?: string;
  messageId?: string;
  status?: string;
  /** Our Patient id, sent back by Ocean as the external patient reference (omit: none). */
  patientRef?: string;
  hcn?: string;
  versionCode?: string;
  note?: string;
  timestamp?: string;
  /** Ocean's letter URL (omit: https://ocean.example.test/svc/fhir/v1/…/letter.pdf). */
  letterUrl?: string;
  /** Extra attachments; with padTo, attachments and answers are added until the JSON is about that many bytes. */
  attachments?: number;
  padTo?: number;
  siteNum?: string;
}

export function referralMessage(o: MessageOptions = {}): Bundle {
  const referralId = o.referralId ?? `REF-${randomUUID().slice(0, 8).toUpperCase()}`;
  const url = () => `urn:uuid:${randomUUID()}`;
  const u = {
    patient: url(),
    requester: url(),
    requesterPerson: url(),
    performer: url(),
    location: url(),
    letter: url(),
    qr: url(),
    sr: url(),
  };
  const attachments: { fullUrl: string; resource: Resource }[] = [];
  const addAttachment = (i: number) =>
    attachments.push({
      fullUrl: url(),
      resource: {
        resourceType: 'DocumentReference',
        meta: { profile: [PROFILE('DocumentReference')] },
        status: 'current',
        identifier: [{ system: 'https://ocean.cognisantmd.com/attachment', value: `${referralId}-att-${i}` }],
        description: `Attachment ${i + 1}: imaging report`,
        content: [
          {
            attachment: {
              contentType: 'application/pdf',
              title: `imaging-report-${i + 1}.pdf`,
              url: `https://ocean.example.test/svc/fhir/v1/attachments/${referralId}/${i}`,
            },
          },
        ],
      } as Resource,
    });
  for (let i = 0; i < (o.attachments ?? 1); i++) addAttachment(i);
  const items: Record<string, unknown>[] = [
    {
      linkId: 'reason',
      text: 'Reason for referral',
      answer: [{ valueString: 'Persistent knee pain for 6 months' }],
    },
    { linkId: 'urgent', text: 'Urgent?', answer: [{ valueBoolean: false }] },
    {
      linkId: 'side',
      text: 'Side',
      answer: [{ valueCoding: { system: 'http://example.org/side', code: 'L', display: 'Left' } }],
    },
  ];
  const patient: Resource = {
    resourceType: 'Patient',
    meta: { profile: [PROFILE('Patient')] },
    identifier: [
      ...(o.hcn
        ? [
            {
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'JHN' }] },
              system: HCN_SYSTEM,
              value: o.hcn,
              ...(o.versionCode ? { extension: [{ url: VERSION_EXT, valueString: o.versionCode }] } : {}),
            },
          ]
        : []),
      ...(o.patientRef
        ? [
            {
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
              system: EXTERNAL_REF_SYSTEM,
              value: o.patientRef,
            },
          ]
        : []),
    ],
    name: [{ family: 'Tremblay', given: ['Marie'] }],
    gender: 'female',
    birthDate: '1961-04-12',
  } as Resource;
  const build = (): Bundle => ({
    resourceType: 'Bundle',
    id: randomUUID(),
    type: 'message',
    timestamp: o.timestamp ?? new Date().toISOString(),
    entry: [
      {
        fullUrl: url(),
        resource: {
          resourceType: 'MessageHeader',
          id: o.messageId ?? randomUUID(),
          meta: { profile: [PROFILE('MessageHeader')] },
          extension: [
            {
              url: 'http://ehealthontario.ca/fhir/StructureDefinition/ext-referral-identifier',
              valueString: referralId,
            },
          ],
          eventCoding: { system: EVENT_SYSTEM, code: o.event ?? 'notify-add-service-request' },
          reason: { text: 'EVENT_LOGGED' },
          source: { name: 'Ocean', endpoint: 'https://ocean.cognisantmd.com' },
          focus: [{ reference: u.sr }],
        },
      },
      { fullUrl: u.patient, resource: patient },
      {
        fullUrl: u.requesterPerson,
        resource: {
          resourceType: 'Practitioner',
          name: [{ prefix: ['Dr'], given: ['Ada'], family: 'Lovelace' }],
          identifier: [
            {
              system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician',
              value: '12345',
            },
          ],
        },
      },
      {
        fullUrl: u.requester,
        resource: {
          resourceType: 'PractitionerRole',
          practitioner: { reference: u.requesterPerson },
          specialty: [{ text: 'Family Medicine' }],
        },
      },
      { fullUrl: u.location, resource: { resourceType: 'Location', name: 'Riverside Orthopedic Clinic' } },
      {
        fullUrl: u.performer,
        resource: {
          resourceType: 'PractitionerRole',
          identifier: [{ system: SITE_SYSTEM, value: o.siteNum ?? '1234' }],
          practitioner: { display: 'Dr Bone' },
          location: [{ reference: u.location }],
          specialty: [{ text: 'Orthopedic Surgery' }],
        },
      },
      {
        fullUrl: u.letter,
        resource: {
          resourceType: 'DocumentReference',
          meta: { profile: [PROFILE('DocumentReference')] },
          status: 'current',
          identifier: [{ system: REFERRAL_SYSTEM, value: referralId }],
          description: 'Referral letter',
          content: [
            {
              attachment: {
                contentType: 'application/pdf',
                title: 'Referral.pdf',
                url: o.letterUrl ?? `https://ocean.example.test/svc/fhir/v1/Binary/${referralId}-letter`,
              },
            },
          ],
        },
      },
      ...attachments,
      {
        fullUrl: u.qr,
        resource: {
          resourceType: 'QuestionnaireResponse',
          status: 'completed',
          questionnaire: 'https://ocean.cognisantmd.com/forms/ortho-knee',
          subject: { reference: u.patient },
          item: items,
        } as unknown as Resource,
      },
      {
        fullUrl: u.sr,
        resource: {
          resourceType: 'ServiceRequest',
          meta: { profile: [PROFILE('ServiceRequest')] },
          identifier: [{ system: REFERRAL_SYSTEM, value: referralId }],
          status: o.status ?? 'active',
          intent: 'order',
          category: [{ text: 'Orthopedic Surgery' }],
          code: { text: 'Knee assessment' },
          priority: 'routine',
          subject: { reference: u.patient },
          authoredOn: '2026-11-20T14:03:00-05:00',
          requester: { reference: u.requester },
          performer: [{ reference: u.performer }],
          supportingInfo: [
            { reference: u.letter },
            { reference: u.qr },
            ...attachments.map((a) => ({ reference: a.fullUrl })),
          ],
          note: [{ text: o.note ?? '<p>Please assess <b>left knee</b>.</p>' }],
        } as Resource,
      },
    ] as BundleEntry[],
  });
  let bundle = build();
  if (o.padTo) {
    // Realistic bulk: longer forms (Ocean forms run to dozens of questions).
    let i = 0;
    while (JSON.stringify(bundle).length < o.padTo) {
      items.push({
        linkId: `q${i}`,
        text: `Question ${i}: describe the history of symptoms, previous treatments and imaging`,
        answer: [{ valueString: `Answer ${i}: `.padEnd(400, 'lorem ipsum dolor sit amet ') }],
      });
      i++;
      bundle = build();
    }
  }
  return bundle;
}
