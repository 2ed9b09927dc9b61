/*
 * An Ocean eReferral message Bundle, checked and read (CONTRACT §3.7; Ontario eReferral IG v0.10).
 * - a Bundle of type "message" whose first entry is a MessageHeader with an id; every entry has a
 *   resource and a unique fullUrl; every `urn:uuid:` reference inside the Bundle resolves to an entry
 * - the event comes from the eHealth Ontario message-event code system; MessageHeader.focus
 *   resolves to an entry
 * - a referral event (the six *-service-request events, or any event of that system whose Bundle
 *   carries the referral) has a ServiceRequest with Ocean's referral id, and a subject that
 *   resolves to a Patient in the Bundle; the MessageHeader's referral-id extension, when present,
 *   names the same referral
 * - anything else is a MessageError naming the problem: the caller answers 400 and files nothing
 * - problems name elements and entry positions, never values (they are stored and shown to admins,
 *   and values are PHI)
 */
import type { Bundle, MessageHeader, Patient, Resource, ServiceRequest } from '@medplum/fhirtypes';

export const EVENT_SYSTEM = 'https://ehealthontario.ca/fhir/CodeSystem/message-event-code';
export const REFERRAL_ID_SYSTEM =
  'https://ocean.cognisantmd.com/svc/fhir/v1/NamingSystem/id-ereferral-reference';
export const REFERRAL_ID_EXTENSION =
  'http://ehealthontario.ca/fhir/StructureDefinition/ext-referral-identifier';

/** The events that carry a referral, with Ocean's `notify-` copies for the referring site. */
export const REFERRAL_EVENTS: ReadonlySet<string> = new Set(
  ['add', 'update', 'revoke'].flatMap((verb) => [
    `${verb}-service-request`,
    `notify-${verb}-service-request`,
  ]),
);
/** Other events of the code system (appointments, communications, Task status, patient updates). */
const EVENT_CODE = /^[a-z][a-z0-9]*(-[a-z0-9]+){0,7}$/;
const MESSAGE_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const MAX_ENTRIES = 500;

export class MessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessageError';
  }
}

export interface MessageEntry {
  fullUrl: string;
  resource: Resource;
}

/** What the rest of the room needs from a checked message. */
export interface ReferralMessage {
  messageId: string;
  event: string;
  /** When Ocean made the message (Bundle.timestamp, else the MessageHeader's lastUpdated), if given. */
  sentAt?: Date;
  /** Entries by fullUrl. */
  entries: ReadonlyMap<string, Resource>;
  /** The referral, when the message carries one; absent for events that do not (kept, not filed). */
  referral?: {
    referralId: string;
    serviceRequest: ServiceRequest;
    serviceRequestUrl: string;
    patient: Patient;
  };
}

/** The MessageHeader id and event of a body, as far as they can be read (for refused messages). */
export function headerFacts(body: unknown): { messageId?: string; event?: string } {
  const header = (body as { entry?: { resource?: MessageHeader }[] } | null)?.entry?.[0]?.resource;
  if (!header || typeof header !== 'object') return {};
  const id = typeof header.id === 'string' && MESSAGE_ID.test(header.id) ? header.id : undefined;
  const code = header.eventCoding?.code;
  return { messageId: id, event: typeof code === 'string' && code.length <= 64 ? code : undefined };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every `reference` string inside a resource (contained resources included). */
export function referencesIn(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const n of node) referencesIn(n, out);
  } else if (isObject(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else if (typeof v === 'object') referencesIn(v, out);
    }
  }
  return out;
}

function instant(v: unknown): Date | undefined {
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** Checks a message Bundle; throws MessageError naming the first problem. */
export function readMessage(body: unknown): ReferralMessage {
  if (!isObject(body)) throw new MessageError('the body must be a FHIR Bundle (a JSON object)');
  if (body.resourceType !== 'Bundle') throw new MessageError('resourceType must be Bundle');
  const bundle = body as unknown as Bundle;
  if (bundle.type !== 'message') throw new MessageError('Bundle.type must be "message"');
  if (!Array.isArray(bundle.entry) || bundle.entry.length === 0)
    throw new MessageError('Bundle.entry must hold the MessageHeader and the resources it names');
  if (bundle.entry.length > MAX_ENTRIES)
    throw new MessageError(`Bundle.entry has more than ${MAX_ENTRIES} entries`);

  const entries = new Map<string, Resource>();
  bundle.entry.forEach((entry, i) => {
    if (!isObject(entry)) throw new MessageError(`Bundle.entry[${i}] must be an object`);
    const { fullUrl, resource } = entry as { fullUrl?: unknown; resource?: unknown };
    if (
      !isObject(resource) ||
      typeof resource.resourceType !== 'string' ||
      !/^[A-Z][A-Za-z]{1,63}$/.test(resource.resourceType)
    )
      throw new MessageError(`Bundle.entry[${i}].resource must be a FHIR resource`);
    if (typeof fullUrl !== 'string' || fullUrl.length === 0 || fullUrl.length > 2000)
      throw new MessageError(`Bundle.entry[${i}].fullUrl is required`);
    if (entries.has(fullUrl)) throw new MessageError(`Bundle.entry[${i}].fullUrl repeats an earlier entry`);
    entries.set(fullUrl, resource as unknown as Resource);
  });

  const header = bundle.entry[0]!.resource as MessageHeader;
  if (header.resourceType !== 'MessageHeader')
    throw new MessageError('the first entry must be the MessageHeader');
  if (typeof header.id !== 'string' || !MESSAGE_ID.test(header.id))
    throw new MessageError('MessageHeader.id is required ([A-Za-z0-9-.]{1,64})');
  const coding = header.eventCoding;
  if (!isObject(coding) || coding.system !== EVENT_SYSTEM)
    throw new MessageError(`MessageHeader.eventCoding.system must be ${EVENT_SYSTEM}`);
  if (typeof coding.code !== 'string' || !EVENT_CODE.test(coding.code))
    throw new MessageError('MessageHeader.eventCoding.code is not an event code');
  const event = coding.code;

  // Every reference to another entry of the message must land on one.
  bundle.entry.forEach((entry, i) => {
    for (const ref of referencesIn(entry.resource)) {
      if (ref.startsWith('urn:uuid:') && !entries.has(ref))
        throw new MessageError(
          `a reference in Bundle.entry[${i}] does not resolve to an entry of the message`,
        );
    }
  });
  if (!Array.isArray(header.focus) || header.focus.length === 0)
    throw new MessageError('MessageHeader.focus must name the resource the event is about');
  const focus = header.focus.map((f, i) => {
    const target = typeof f?.reference === 'string' ? entries.get(f.reference) : undefined;
    if (!target)
      throw new MessageError(`MessageHeader.focus[${i}] does not resolve to an entry of the message`);
    return { url: f.reference as string, resource: target };
  });

  const sentAt = instant(bundle.timestamp) ?? instant(header.meta?.lastUpdated);
  const base = { messageId: header.id, event, sentAt, entries };

  // The referral: the focused ServiceRequest, else (for other events) one carried in the Bundle.
  const focused = focus.find((f) => f.resource.resourceType === 'ServiceRequest');
  const carried =
    focused ??
    [...entries]
      .map(([url, resource]) => ({ url, resource }))
      .find((e) => e.resource.resourceType === 'ServiceRequest');
  if (REFERRAL_EVENTS.has(event) && !focused)
    throw new MessageError(`MessageHeader.focus of ${event} must be the ServiceRequest`);
  if (!carried) return base;

  const serviceRequest = carried.resource as ServiceRequest;
  const ids = (Array.isArray(serviceRequest.identifier) ? serviceRequest.identifier : []).filter(
    (id) => isObject(id) && id.system === REFERRAL_ID_SYSTEM,
  );
  const referralId = ids[0]?.value;
  if (typeof referralId !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(referralId))
    throw new MessageError(
      `the ServiceRequest needs Ocean's referral id (identifier system ${REFERRAL_ID_SYSTEM})`,
    );
  const headerReferral = (Array.isArray(header.extension) ? header.extension : []).find(
    (e) => isObject(e) && e.url === REFERRAL_ID_EXTENSION,
  );
  if (headerReferral) {
    const v = headerReferral.valueString ?? headerReferral.valueIdentifier?.value;
    if (typeof v === 'string' && v !== referralId)
      throw new MessageError(
        'the MessageHeader referral-id extension names another referral than the ServiceRequest',
      );
  }
  if (typeof serviceRequest.status !== 'string') throw new MessageError('ServiceRequest.status is required');
  const subjectRef = serviceRequest.subject?.reference;
  const patient = typeof subjectRef === 'string' ? entries.get(subjectRef) : undefined;
  if (patient?.resourceType !== 'Patient')
    throw new MessageError('ServiceRequest.subject must resolve to the Patient entry of the message');
  return {
    ...base,
    referral: { referralId, serviceRequest, serviceRequestUrl: carried.url, patient: patient as Patient },
  };
}
