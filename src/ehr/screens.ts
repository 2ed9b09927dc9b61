/*
 * The clinician's screens: patient list with search and paging, the chart, a chart document.
 * - one search box takes a name, a health card number (with or without version code) or a
 *   date of birth; a separate date field narrows by date of birth
 * - every look at PHI is audited (ehr.patient.search without the terms, ehr.chart.view,
 *   ehr.document.view) and sent with Cache-Control: no-store
 * - a document is served only from the chart it belongs to, and only inline types a browser
 *   shows safely; anything else downloads
 */
import type {
  AllergyIntolerance,
  Condition,
  DocumentReference,
  MedicationRequest,
  MedicationStatement,
  Observation,
  Resource,
} from '@medplum/fhirtypes';
import type { Request, RequestHandler } from 'express';
import type { AppContext } from '../context.ts';
import { recentDocuments, recentInCompartment } from '../fhir/chart-data.ts';
import { readResource, searchPatients } from '../fhir/repository.ts';
import { isValidId } from '../fhir/resource-types.ts';
import { badRequest, notFound } from '../http/errors.ts';
import { referralSection } from '../referrals/chart-section.ts';
import { oceanButtons } from './ocean-buttons.ts';
import * as view from './patient-view.ts';

export const PAGE_SIZE = 20;
const MAX_PAGE = 10_000;
/** How much of each list the chart shows (newest first); a longer list says so. */
const CHART_LIMIT = 200;
const RECENT_OBSERVATIONS = 15;

export interface ParsedSearch {
  q: string;
  birthdate: string;
  page: number;
  query?: string;
  hcn?: string;
  birthDate?: string;
}

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/** Reads ?q=&birthdate=&page= into a patient search; throws 400 for values no person would type. */
export function parseSearch(query: Request['query']): ParsedSearch {
  const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const q = text(query.q);
  const birthdate = text(query.birthdate);
  const pageText = text(query.page) || '1';
  if (q.length > 100) throw badRequest('The search text is too long (100 characters at most).');
  if (!/^\d{1,5}$/.test(pageText) || Number(pageText) < 1 || Number(pageText) > MAX_PAGE)
    throw badRequest('That page number does not exist.');
  if (birthdate && !DATE.test(birthdate)) throw badRequest('Enter the date of birth as YYYY-MM-DD.');
  const out: ParsedSearch = { q, birthdate, page: Number(pageText) };
  if (birthdate) out.birthDate = birthdate;
  // A health card number: 10 digits, spaces or dashes allowed, maybe followed by the version code.
  const hcn = /^(\d{4})[\s-]?(\d{3})[\s-]?(\d{3})(?:[\s-]?[A-Za-z]{1,2})?$/.exec(q);
  if (hcn) out.hcn = `${hcn[1]}${hcn[2]}${hcn[3]}`;
  else if (DATE.test(q)) out.birthDate = out.birthDate && out.birthDate !== q ? out.birthDate : q;
  else if (q) out.query = q;
  if (out.birthDate && birthdate && DATE.test(q) && q !== birthdate) {
    throw badRequest('Two different dates of birth were given; search with one.');
  }
  return out;
}

function auditBase(req: Request, userId: string) {
  return { userId, requestId: String(req.id ?? ''), ip: req.ip ?? null };
}

export function screenRoutes(ctx: AppContext) {
  const list: RequestHandler = async (req, res) => {
    const user = res.locals.currentUser!;
    const search = parseSearch(req.query);
    const offset = (search.page - 1) * PAGE_SIZE;
    const { patients, total } = await searchPatients(ctx.db, {
      query: search.query,
      hcn: search.hcn,
      birthDate: search.birthDate,
      count: PAGE_SIZE,
      offset,
    });
    await ctx.audit.record({
      action: 'ehr.patient.search',
      ...auditBase(req, user.id),
      entity: 'Patient?search',
      detail: { results: patients.length, page: search.page },
    });
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const pageHref = (page: number) => {
      const p = new URLSearchParams();
      if (search.q) p.set('q', search.q);
      if (search.birthdate) p.set('birthdate', search.birthdate);
      if (page > 1) p.set('page', String(page));
      const s = p.toString();
      return s ? `/patients?${s}` : '/patients';
    };
    res.render('ehr/patients', {
      title: 'Patients',
      q: search.q,
      birthdate: search.birthdate,
      searching: Boolean(search.q || search.birthdate),
      total,
      page: search.page,
      pages,
      first: total === 0 ? 0 : offset + 1,
      last: offset + patients.length,
      prevHref: search.page > 1 ? pageHref(Math.min(search.page - 1, pages)) : undefined,
      nextHref: search.page < pages ? pageHref(search.page + 1) : undefined,
      rows: patients.map((p) => {
        const card = view.healthCard(p);
        const age = view.ageOf(p.birthDate);
        return {
          id: p.id!,
          name: view.listName(p),
          gender: view.genderLabel(p.gender),
          birthDate: view.formatDate(p.birthDate),
          age,
          hcn: card ? view.formatHcn(card) : '—',
          city: view.cityOf(p),
          phone: view.primaryPhone(p),
        };
      }),
    });
  };

  const chart: RequestHandler = async (req, res) => {
    const user = res.locals.currentUser!;
    const id = String(req.params.id);
    const stored = isValidId(id) ? await readResource(ctx.db, 'Patient', id) : undefined;
    if (!stored)
      throw notFound('There is no patient with that chart number. They may have been merged or removed.');
    const patient = stored.resource;
    const listOf = async <T extends Resource>(types: string[], limit = CHART_LIMIT) => {
      const list = await recentInCompartment<T>(ctx.db, id, types, limit);
      return { items: list.items, total: list.total, more: list.total > list.items.length };
    };
    const [allergies, medications, conditions, observations, documents, buttons, referrals] =
      await Promise.all([
        listOf<AllergyIntolerance>(['AllergyIntolerance']),
        listOf<MedicationStatement | MedicationRequest>(['MedicationStatement', 'MedicationRequest']),
        listOf<Condition>(['Condition']),
        listOf<Observation>(['Observation'], RECENT_OBSERVATIONS),
        recentDocuments(ctx.db, id, CHART_LIMIT),
        oceanButtons(ctx, id),
        referralSection(ctx.db, id),
      ]);
    await ctx.audit.record({
      action: 'ehr.chart.view',
      ...auditBase(req, user.id),
      patientId: id,
      entity: `Patient/${id}`,
    });
    const card = view.healthCard(patient);
    res.render('ehr/chart', {
      title: view.fullName(patient),
      patient: {
        id,
        name: view.fullName(patient),
        preferred: view.preferredName(patient),
        gender: view.genderLabel(patient.gender),
        birthDate: view.formatDate(patient.birthDate),
        age: view.ageOf(patient.birthDate),
        hcn: card ? view.formatHcn(card) : undefined,
        hcnProvince: card?.province,
        hcnVersionMissing: card !== undefined && !card.versionCode && card.province === 'ON',
        address: view.addressLines(patient),
        contacts: view.contacts(patient),
        language: patient.communication?.[0]?.language
          ? view.conceptText(patient.communication[0].language)
          : undefined,
        deceased: Boolean(patient.deceasedBoolean || patient.deceasedDateTime),
      },
      oceanSites: buttons,
      allergies: allergies.items.map(view.allergyItem),
      allergiesMore: allergies.more,
      medications: medications.items.map(view.medicationItem),
      medicationsMore: medications.more,
      conditions: conditions.items.map(view.conditionItem),
      conditionsMore: conditions.more,
      observations: observations.items.map(view.observationItem),
      observationsTotal: observations.total,
      documents: documents.items.map((d) => view.documentItem(d.resource as DocumentReference, d)),
      documentsMore: documents.total > documents.items.length,
      referrals,
      formatDate: view.formatDate,
    });
  };

  /** Content types a browser may show inline from our origin; anything else is downloaded. */
  const INLINE_TYPES = new Set(['application/pdf', 'image/png', 'image/jpeg', 'image/gif', 'text/plain']);

  const document: RequestHandler = async (req, res) => {
    const user = res.locals.currentUser!;
    const id = String(req.params.id);
    const docId = String(req.params.docId);
    const stored = isValidId(docId) ? await readResource(ctx.db, 'DocumentReference', docId) : undefined;
    // A document is shown only from its own patient's chart.
    if (!stored || stored.compartment !== id) throw notFound('That document is not in this chart.');
    const attachment = view.firstAttachment(stored.resource);
    if (!attachment?.data) throw notFound('This document has no stored content to show.');
    await ctx.audit.record({
      action: 'ehr.document.view',
      ...auditBase(req, user.id),
      patientId: id,
      entity: `DocumentReference/${docId}`,
    });
    const type = (attachment.contentType ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase();
    const inline = INLINE_TYPES.has(type);
    const extension = type === 'application/pdf' ? '.pdf' : type === 'text/plain' ? '.txt' : '';
    res.setHeader('Content-Type', inline ? type : 'application/octet-stream');
    res.setHeader(
      'Content-Disposition',
      `${inline ? 'inline' : 'attachment'}; filename="document-${docId}${extension}"`,
    );
    res.send(Buffer.from(attachment.data, 'base64'));
  };

  return { list, chart, document };
}
