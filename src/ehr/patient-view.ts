/*
 * FHIR resources → the plain values the EHR screens show. Pure functions, no I/O.
 * - reads what is there and tolerates what is not (sparse imported patients are normal)
 * - Ontario health card: identifier system …/ca-on-patient-hcn (type JHN) and its version code
 *   from either extension Ocean reads (CONTRACT §2 item 7); other provinces' health cards are shown too
 */
import type {
  AllergyIntolerance,
  Attachment,
  CodeableConcept,
  Condition,
  ContactPoint,
  DocumentReference,
  HumanName,
  Identifier,
  MedicationRequest,
  MedicationStatement,
  Observation,
  Patient,
  Quantity,
} from '@medplum/fhirtypes';

export const ON_HCN_SYSTEM = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';
export const VERSION_CODE_EXTENSIONS = [
  'http://ehealthontario.ca/fhir/StructureDefinition/ext-id-health-card-version-code',
  'http://hl7.org/fhir/ca/baseline/StructureDefinition/ext-identifierversion',
];
const PROVINCE_HCN =
  /^https:\/\/fhir\.infoway-inforoute\.ca\/NamingSystem\/ca-([a-z]{2})-patient-(?:hcn|healthcare-id)$/;

export interface HealthCard {
  province: string;
  number: string;
  versionCode?: string;
}

export function healthCard(patient: Patient): HealthCard | undefined {
  const cards = (patient.identifier ?? []).flatMap((id: Identifier) => {
    const m = PROVINCE_HCN.exec(id.system ?? '');
    if (!m || !id.value) return [];
    const version = id.extension?.find((e) => VERSION_CODE_EXTENSIONS.includes(e.url))?.valueString;
    return [{ province: (m[1] ?? '').toUpperCase(), number: id.value, versionCode: version || undefined }];
  });
  return cards.find((c) => c.province === 'ON') ?? cards[0];
}

/** 1234567890 → "1234-567-890" (how Ontario cards print it). */
export function formatHcn(card: HealthCard): string {
  const n = /^\d{10}$/.test(card.number)
    ? `${card.number.slice(0, 4)}-${card.number.slice(4, 7)}-${card.number.slice(7)}`
    : card.number;
  return card.versionCode ? `${n} ${card.versionCode}` : n;
}

function officialName(names: HumanName[] | undefined): HumanName | undefined {
  if (!names?.length) return undefined;
  return names.find((n) => n.use === 'official') ?? names.find((n) => n.use === 'usual') ?? names[0];
}

/** "Family, Given Middle" for lists. */
export function listName(patient: Patient): string {
  const n = officialName(patient.name);
  if (!n) return '(no name)';
  const given = (n.given ?? []).join(' ');
  if (n.family && given) return `${n.family}, ${given}`;
  return n.family || given || n.text || '(no name)';
}

/** "Given Middle Family" for headings. */
export function fullName(patient: Patient): string {
  const n = officialName(patient.name);
  if (!n) return '(no name)';
  const text = [...(n.given ?? []), n.family].filter(Boolean).join(' ');
  return text || n.text || '(no name)';
}

export function preferredName(patient: Patient): string | undefined {
  const usual = patient.name?.find((n) => n.use === 'usual' || n.use === 'nickname');
  return usual?.given?.[0];
}

const GENDER: Record<string, string> = { male: 'Male', female: 'Female', other: 'Other', unknown: 'Unknown' };
export const genderLabel = (g: string | undefined) => (g ? (GENDER[g] ?? g) : '—');

/** Whole years between a YYYY-MM-DD birth date and today (undefined for partial dates). */
export function ageOf(birthDate: string | undefined, today = new Date()): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(birthDate ?? '');
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  let age = today.getUTCFullYear() - y;
  if (today.getUTCMonth() + 1 < mo || (today.getUTCMonth() + 1 === mo && today.getUTCDate() < d)) age--;
  return age >= 0 ? age : undefined;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** FHIR date/dateTime → "12 Mar 2024" (partial dates as far as they go). */
export function formatDate(value: string | undefined): string {
  if (!value) return '—';
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(value);
  if (!m) return value;
  if (!m[2]) return m[1] ?? value;
  const month = MONTHS[Number(m[2]) - 1] ?? m[2];
  return m[3] ? `${Number(m[3])} ${month} ${m[1]}` : `${month} ${m[1]}`;
}

export function addressLines(patient: Patient): string[] {
  const a = patient.address?.find((x) => x.use === 'home') ?? patient.address?.[0];
  if (!a) return [];
  if (!a.line?.length && !a.city && a.text) return [a.text];
  const lines = [...(a.line ?? [])];
  const cityLine = [a.city, a.state].filter(Boolean).join(', ');
  const last = [cityLine, a.postalCode].filter(Boolean).join('  ');
  if (last) lines.push(last);
  if (a.country && !/^(CA|Canada)$/i.test(a.country)) lines.push(a.country);
  return lines;
}

export function cityOf(patient: Patient): string {
  const a = patient.address?.find((x) => x.use === 'home') ?? patient.address?.[0];
  return [a?.city, a?.state].filter(Boolean).join(', ') || '—';
}

export interface Contact {
  label: string;
  value: string;
  href?: string;
}

const TELECOM_LABEL = (t: ContactPoint): string => {
  if (t.system === 'email') return 'E-mail';
  if (t.system === 'fax') return 'Fax';
  if (t.system === 'phone')
    return t.use === 'mobile' ? 'Mobile' : t.use === 'work' ? 'Work phone' : 'Home phone';
  return t.system ?? 'Contact';
};

export function contacts(patient: Patient): Contact[] {
  return (patient.telecom ?? [])
    .filter((t) => t.value)
    .map((t) => ({
      label: TELECOM_LABEL(t),
      value: t.value!,
      href:
        t.system === 'email'
          ? `mailto:${t.value}`
          : t.system === 'phone'
            ? `tel:${t.value!.replace(/[^\d+]/g, '')}`
            : undefined,
    }));
}

export function primaryPhone(patient: Patient): string {
  const phones = (patient.telecom ?? []).filter((t) => t.system === 'phone' && t.value);
  return (
    (phones.find((t) => t.use === 'home') ?? phones.find((t) => t.use === 'mobile') ?? phones[0])?.value ??
    '—'
  );
}

export function conceptText(c: CodeableConcept | undefined): string {
  if (!c) return '—';
  return c.text ?? c.coding?.find((x) => x.display)?.display ?? c.coding?.[0]?.code ?? '—';
}

function quantityText(q: Quantity | undefined): string | undefined {
  if (!q || q.value === undefined) return undefined;
  return `${q.value}${q.unit ? ` ${q.unit}` : q.code ? ` ${q.code}` : ''}`;
}

export interface ChartItem {
  title: string;
  detail?: string;
  date?: string;
  badge?: string;
  badgeHigh?: boolean;
}

export function allergyItem(a: AllergyIntolerance): ChartItem {
  const reactions = (a.reaction ?? []).flatMap((r) => r.manifestation?.map(conceptText) ?? []);
  return {
    title: conceptText(a.code),
    detail: reactions.length ? `Reaction: ${reactions.join(', ')}` : undefined,
    date: a.recordedDate ?? a.onsetDateTime,
    badge: a.criticality === 'high' ? 'High risk' : a.category?.[0],
    badgeHigh: a.criticality === 'high',
  };
}

export function medicationItem(m: MedicationStatement | MedicationRequest): ChartItem {
  const dosage = m.resourceType === 'MedicationStatement' ? m.dosage : m.dosageInstruction;
  const status = m.status;
  return {
    title:
      conceptText(m.medicationCodeableConcept) !== '—'
        ? conceptText(m.medicationCodeableConcept)
        : (m.medicationReference?.display ?? '—'),
    detail:
      dosage
        ?.map((d) => d.text)
        .filter(Boolean)
        .join('; ') || undefined,
    date:
      m.resourceType === 'MedicationStatement'
        ? (m.effectivePeriod?.start ?? m.effectiveDateTime ?? m.dateAsserted)
        : m.authoredOn,
    badge: status && status !== 'active' ? status : undefined,
  };
}

export function conditionItem(c: Condition): ChartItem {
  const status = c.clinicalStatus?.coding?.[0]?.code;
  return {
    title: conceptText(c.code),
    date: c.onsetDateTime ?? c.onsetPeriod?.start ?? c.recordedDate,
    badge: status && status !== 'active' ? status : undefined,
  };
}

export function observationValue(o: Observation): string {
  if (o.valueQuantity) return quantityText(o.valueQuantity) ?? '—';
  if (o.valueString) return o.valueString;
  if (o.valueCodeableConcept) return conceptText(o.valueCodeableConcept);
  if (o.valueBoolean !== undefined) return o.valueBoolean ? 'Yes' : 'No';
  if (o.component?.length) {
    // Blood pressure and other panels: "128/82 mmHg".
    const values = o.component.map((c) => c.valueQuantity?.value).filter((v) => v !== undefined);
    const unit = o.component[0]?.valueQuantity?.unit;
    if (values.length === o.component.length) return `${values.join('/')}${unit ? ` ${unit}` : ''}`;
  }
  return '—';
}

export function observationItem(o: Observation): ChartItem {
  return {
    title: conceptText(o.code),
    detail: observationValue(o),
    date: o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued,
    badge:
      o.interpretation?.[0]?.coding?.[0]?.code === 'H'
        ? 'High'
        : o.interpretation?.[0]?.coding?.[0]?.code === 'L'
          ? 'Low'
          : undefined,
    badgeHigh: o.interpretation?.[0]?.coding?.[0]?.code === 'H',
  };
}

export function observationDate(o: Observation): string {
  return o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued ?? '';
}

export interface DocumentItem extends ChartItem {
  id: string;
  /** True when the attachment's bytes are stored inline and can be opened here. */
  viewable: boolean;
  contentType?: string;
  size?: string;
}

function sizeText(bytes: number | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 102.4) / 10} KB`;
  return `${Math.round(bytes / 104857.6) / 10} MB`;
}

export function firstAttachment(d: DocumentReference): Attachment | undefined {
  return d.content?.[0]?.attachment;
}

/** `stored` tells about inline bytes the caller left out of `d` (the chart never loads them). */
export function documentItem(
  d: DocumentReference,
  stored?: { hasData: boolean; dataBytes?: number },
): DocumentItem {
  const a = firstAttachment(d);
  const inlineBytes = a?.data ? Math.floor((a.data.replace(/=+$/, '').length * 3) / 4) : undefined;
  const bytes = a?.size ?? stored?.dataBytes ?? inlineBytes;
  return {
    id: d.id ?? '',
    title: d.description ?? a?.title ?? conceptText(d.type),
    detail: d.type ? conceptText(d.type) : undefined,
    date: d.date ?? a?.creation,
    viewable: stored?.hasData ?? Boolean(a?.data),
    contentType: a?.contentType,
    size: sizeText(bytes),
  };
}
