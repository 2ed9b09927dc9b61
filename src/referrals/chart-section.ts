/*
 * The chart's "Referrals (Ocean)" section: the referrals filed into one patient's chart, as the
 * plain values the view shows (views/referrals/_chart-section.ejs).
 * - service, requester, performer, status, dates, the note (sanitized HTML, ./sanitize-note.ts),
 *   the form's answers, attachments and the letter's state
 * - people and places are read from the ServiceRequest's contained resources (./filing.ts)
 */
import type {
  CodeableConcept,
  DocumentReference,
  Practitioner,
  PractitionerRole,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  Reference,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';
import { readResource } from '../fhir/repository.ts';
import { referralsOfPatient } from './apply-message.ts';
import { sanitizeNote } from './sanitize-note.ts';

export interface ReferralView {
  serviceRequestId: string;
  service: string;
  status: string;
  priority?: string;
  requester?: string;
  performer?: string;
  authoredOn?: string;
  updatedAt: string;
  version: number;
  /** Sanitized HTML. */
  notes: string[];
  answers: { question: string; answer: string }[];
  attachments: { title: string; url?: string }[];
  letter:
    | { state: 'stored'; href: string }
    | { state: 'fetching'; attempts: number; lastError: string | null }
    | { state: 'failed'; lastError: string | null }
    | { state: 'in-ocean' }
    | { state: 'none' };
}

const text = (c: CodeableConcept | undefined): string | undefined =>
  c?.text ?? c?.coding?.find((x) => x.display)?.display ?? c?.coding?.[0]?.code;

function personName(p: Practitioner | undefined): string | undefined {
  const n = p?.name?.[0];
  if (!n) return undefined;
  return n.text ?? [...(n.prefix ?? []), ...(n.given ?? []), n.family].filter(Boolean).join(' ');
}

/** "Dr Jane Smith, Orthopedics — Clinic" from a reference to a contained PractitionerRole (or a display). */
function who(sr: ServiceRequest, ref: Reference | undefined): string | undefined {
  if (!ref) return undefined;
  const contained = (id: string | undefined) =>
    id?.startsWith('#') ? (sr.contained ?? []).find((c) => c.id === id.slice(1)) : undefined;
  const target = contained(ref.reference) as Resource | undefined;
  if (target?.resourceType === 'PractitionerRole') {
    const role = target as PractitionerRole;
    const person =
      personName(contained(role.practitioner?.reference) as Practitioner | undefined) ??
      role.practitioner?.display;
    const org =
      (contained(role.organization?.reference) as { name?: string } | undefined)?.name ??
      role.organization?.display;
    const loc = role.location
      ?.map((l) => (contained(l.reference) as { name?: string } | undefined)?.name ?? l.display)
      .find(Boolean);
    const what = text(role.specialty?.[0]) ?? text(role.code?.[0]);
    return [person, what, org ?? loc].filter(Boolean).join(', ') || ref.display;
  }
  if (target?.resourceType === 'Practitioner') return personName(target as Practitioner) ?? ref.display;
  if (target && 'name' in target && typeof target.name === 'string') return target.name;
  return ref.display;
}

function answerText(a: NonNullable<QuestionnaireResponseItem['answer']>[number]): string {
  if (a.valueString !== undefined) return a.valueString;
  if (a.valueBoolean !== undefined) return a.valueBoolean ? 'Yes' : 'No';
  if (a.valueCoding) return a.valueCoding.display ?? a.valueCoding.code ?? '';
  for (const k of [
    'valueDate',
    'valueDateTime',
    'valueTime',
    'valueInteger',
    'valueDecimal',
    'valueUri',
  ] as const)
    if (a[k] !== undefined) return String(a[k]);
  if (a.valueQuantity) return `${a.valueQuantity.value ?? ''} ${a.valueQuantity.unit ?? ''}`.trim();
  if (a.valueAttachment) return a.valueAttachment.title ?? 'attachment';
  return '';
}

function flatten(
  items: QuestionnaireResponseItem[] | undefined,
  out: { question: string; answer: string }[],
) {
  for (const item of items ?? []) {
    const answers = (item.answer ?? []).map(answerText).filter((a) => a !== '');
    if (answers.length > 0) out.push({ question: item.text ?? item.linkId, answer: answers.join('; ') });
    flatten(item.item, out);
    for (const a of item.answer ?? []) flatten(a.item, out);
    if (out.length >= 200) return;
  }
}

export async function referralSection(q: Queryable, patientId: string): Promise<ReferralView[]> {
  const rows = await referralsOfPatient(q, patientId);
  const views: ReferralView[] = [];
  for (const row of rows) {
    const stored = await readResource(q, 'ServiceRequest', row.serviceRequestId);
    if (!stored || stored.compartment !== patientId) continue;
    const sr = stored.resource;
    const answers: { question: string; answer: string }[] = [];
    const attachments: ReferralView['attachments'] = [];
    for (const info of sr.supportingInfo ?? []) {
      const [type, id] = (info.reference ?? '').split('/');
      if (type === 'QuestionnaireResponse' && id) {
        const qr = await readResource(q, 'QuestionnaireResponse', id);
        if (qr?.compartment === patientId) flatten((qr.resource as QuestionnaireResponse).item, answers);
      } else if (type === 'DocumentReference' && id) {
        const doc = await readResource(q, 'DocumentReference', id);
        if (doc?.compartment !== patientId) continue;
        const d = doc.resource as DocumentReference;
        if ((d.identifier ?? []).some((i) => i.value === row.referralId)) continue; // the letter
        const att = d.content?.[0]?.attachment;
        attachments.push({
          title: att?.title ?? d.description ?? text(d.type) ?? 'Attachment',
          url: att?.url,
        });
      }
    }
    const l = row.letter;
    const letter: ReferralView['letter'] = !l
      ? { state: 'none' }
      : l.status === 'fetched'
        ? { state: 'stored', href: `/patients/${encodeURIComponent(patientId)}/referrals/${sr.id}/letter` }
        : l.status === 'pending'
          ? { state: 'fetching', attempts: l.attempts, lastError: l.lastError }
          : l.status === 'failed'
            ? { state: 'failed', lastError: l.lastError }
            : { state: 'in-ocean' };
    views.push({
      serviceRequestId: sr.id!,
      service: text(sr.code) ?? text(sr.category?.[0]) ?? 'Referral',
      status: sr.status,
      priority: sr.priority,
      requester: who(sr, sr.requester),
      performer: who(sr, sr.performer?.[0]),
      authoredOn: sr.authoredOn,
      updatedAt: stored.lastUpdated.toISOString(),
      version: stored.versionId,
      notes: (sr.note ?? []).map((n) => sanitizeNote(n.text ?? '')).filter((n) => n.length > 0),
      answers,
      attachments,
      letter,
    });
  }
  return views;
}
