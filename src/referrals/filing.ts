/*
 * A checked referral message → FHIR resources in the patient's compartment (CONTRACT §3.7).
 * - ids are derived from Ocean's referral id, so every message about one referral writes the
 *   same ServiceRequest (a new version when it changed: history), DocumentReferences and
 *   QuestionnaireResponse; the resources are written through the FHIR store (putResources)
 * - references between entries are rewritten: the Patient → our Patient; the ServiceRequest,
 *   DocumentReferences and QuestionnaireResponses → their filed ids; people and places
 *   (Practitioner, PractitionerRole, Location, Organization) → contained copies, so Ocean's
 *   directory never mixes with ours; anything else keeps its display and loses the reference
 * - DocumentReferences and QuestionnaireResponses get the patient as subject (the compartment)
 * - the letter is the DocumentReference whose identifier is the referral id (its attachment url
 *   is at Ocean): handed back for the letter job
 */
import { createHash } from 'node:crypto';
import type { DocumentReference, Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { putResources } from '../fhir/repository.ts';
import type { ReferralMessage } from './message.ts';

const CONTAINED_TYPES = new Set(['Practitioner', 'PractitionerRole', 'Location', 'Organization']);
const FILED_TYPES = new Set(['ServiceRequest', 'DocumentReference', 'QuestionnaireResponse']);
/** Marks what this room filed (chart, admin, tests tell Ocean's copies from the EHR's own). */
export const OCEAN_SOURCE = 'urn:ocean:ereferral';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 40);

/** The filed ServiceRequest's id for an Ocean referral id. */
export const serviceRequestId = (referralId: string) => `ocean-${digest(`sr|${referralId}`)}`;

export interface Filed {
  serviceRequestId: string;
  /** Ids of the other filed resources, "Type/id". */
  others: string[];
  letterUrl?: string;
  /** created / updated / unchanged count, for the inbox and metrics. */
  changed: number;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A stable key for a DocumentReference or QuestionnaireResponse across messages (their fullUrls are not). */
function stableKey(resource: Resource, fallback: string): string {
  const r = resource as {
    identifier?: unknown;
    masterIdentifier?: unknown;
    content?: unknown;
    questionnaire?: unknown;
  };
  const ids = [r.masterIdentifier, ...(Array.isArray(r.identifier) ? r.identifier : [r.identifier])];
  for (const id of ids)
    if (isObject(id) && typeof id.value === 'string') return `id|${id.system ?? ''}|${id.value}`;
  const url =
    Array.isArray(r.content) && isObject(r.content[0]) && isObject(r.content[0].attachment)
      ? r.content[0].attachment.url
      : undefined;
  if (typeof url === 'string') return `url|${url}`;
  if (typeof r.questionnaire === 'string') return `q|${r.questionnaire}`;
  return `entry|${fallback}`;
}

export function buildReferralResources(
  message: ReferralMessage,
  patientId: string,
): { resources: Resource[]; serviceRequestId: string; letterUrl?: string } {
  const referral = message.referral!;
  const srId = serviceRequestId(referral.referralId);
  // Filed ids of the entries that become resources of their own.
  const filedIds = new Map<string, string>([[referral.serviceRequestUrl, `ServiceRequest/${srId}`]]);
  let fallback = 0;
  for (const [url, resource] of message.entries) {
    if (url === referral.serviceRequestUrl || !FILED_TYPES.has(resource.resourceType)) continue;
    if (resource.resourceType === 'ServiceRequest') continue; // only the referral's own
    const key = stableKey(resource, String(fallback++));
    filedIds.set(
      url,
      `${resource.resourceType}/ocean-${digest(`${referral.referralId}|${resource.resourceType}|${key}`)}`,
    );
  }
  const patientUrl = referral.serviceRequest.subject!.reference!;

  /** A copy of `resource` with references rewritten; people and places become contained resources. */
  const file = (resource: Resource, id: string): Resource => {
    const contained: Resource[] = [];
    const containedIds = new Map<string, string>();
    const rewrite = (node: unknown): unknown => {
      if (Array.isArray(node)) return node.map(rewrite);
      if (!isObject(node)) return node;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = k === 'contained' ? v : rewrite(v);
      const ref = node.reference;
      if (typeof ref === 'string' && message.entries.has(ref)) {
        const target = message.entries.get(ref)!;
        if (ref === patientUrl) out.reference = `Patient/${patientId}`;
        else if (filedIds.has(ref)) out.reference = filedIds.get(ref);
        else if (CONTAINED_TYPES.has(target.resourceType)) out.reference = `#${contain(ref, target)}`;
        else {
          delete out.reference;
          out.type ??= target.resourceType;
        }
      } else if (typeof ref === 'string' && !ref.startsWith('#')) {
        // A reference into Ocean's own server: meaningless here; keep what it said in words.
        delete out.reference;
      }
      return out;
    };
    const contain = (url: string, target: Resource): string => {
      const known = containedIds.get(url);
      if (known) return known;
      const cid = `c${containedIds.size + 1}`;
      containedIds.set(url, cid);
      const {
        id: _id,
        meta: _meta,
        text: _text,
        contained: _c,
        ...rest
      } = target as Resource & Record<string, unknown>;
      contained.push({ ...(rewrite(rest) as Resource), id: cid } as Resource);
      return cid;
    };
    const {
      id: _id,
      meta,
      text: _text,
      contained: _contained,
      ...rest
    } = resource as Resource & {
      meta?: { profile?: string[] };
    } & Record<string, unknown>;
    const body = rewrite(rest) as Record<string, unknown>;
    if (resource.resourceType !== 'ServiceRequest') body.subject = { reference: `Patient/${patientId}` };
    return {
      ...body,
      resourceType: resource.resourceType,
      id,
      meta: { source: OCEAN_SOURCE, ...(Array.isArray(meta?.profile) ? { profile: meta.profile } : {}) },
      ...(contained.length > 0 ? { contained } : {}),
    } as Resource;
  };

  const resources: Resource[] = [];
  let letterUrl: string | undefined;
  for (const [url, ref] of filedIds) {
    const source = message.entries.get(url)!;
    const filed = file(source, ref.split('/')[1]!);
    resources.push(filed);
    if (filed.resourceType === 'DocumentReference') {
      const doc = filed as DocumentReference;
      const isLetter = (doc.identifier ?? []).some((i) => i.value === referral.referralId);
      const attachmentUrl = doc.content?.[0]?.attachment?.url;
      if (isLetter && typeof attachmentUrl === 'string' && /^https?:\/\//.test(attachmentUrl))
        letterUrl ??= attachmentUrl;
    }
  }
  return { resources, serviceRequestId: srId, letterUrl };
}

/** Writes the referral's resources (one statement per kind, inside the caller's transaction). */
export async function fileReferral(
  q: Queryable,
  message: ReferralMessage,
  patientId: string,
): Promise<Filed> {
  const built = buildReferralResources(message, patientId);
  const results = await putResources(q, built.resources);
  return {
    serviceRequestId: built.serviceRequestId,
    others: built.resources
      .filter((r) => r.resourceType !== 'ServiceRequest')
      .map((r) => `${r.resourceType}/${r.id}`),
    letterUrl: built.letterUrl,
    changed: results.filter((r) => r.outcome !== 'unchanged').length,
  };
}
