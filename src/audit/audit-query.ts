/*
 * Reading the audit trail for administrators: filter by user, patient, client, action and date.
 * - every filter is a bound parameter; `action` matches a dotted prefix ("admin." finds every admin change)
 * - newest first, keyset-paged by id (`before`), at most 200 rows a page
 * - bad filter values are a ValidationError naming the field, never an empty page
 */
import { z } from 'zod';
import type { Queryable } from '../db/database.ts';
import { parseInput } from '../http/errors.ts';

const text = (what: string) =>
  z
    .string({ message: `${what} must be text` })
    .trim()
    .max(200, { message: `${what} is too long` })
    .optional()
    .transform((v) => (v ? v : undefined));

const date = (what: string) =>
  z
    .string({ message: `${what} must be a date` })
    .trim()
    .optional()
    .transform((v, c) => {
      if (!v) return undefined;
      // A bare day (the console's date input) means that whole day, in UTC.
      const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
      if (Number.isNaN(d.getTime())) {
        c.addIssue({
          code: 'custom',
          message: `${what} must be a date such as 2026-01-31 or an ISO timestamp`,
        });
        return z.NEVER;
      }
      return { value: d, dayOnly: /^\d{4}-\d{2}-\d{2}$/.test(v) };
    });

export const auditFilterSchema = z.object({
  user: text('user'),
  patient: text('patient'),
  client: text('client'),
  action: text('action'),
  from: date('from'),
  to: date('to'),
  before: z
    .string()
    .regex(/^\d{1,18}$/, { message: 'before must be an event id' })
    .optional()
    .or(z.literal('').transform(() => undefined)),
  limit: z.coerce
    .number({ message: 'limit must be a number' })
    .int({ message: 'limit must be a whole number' })
    .min(1, { message: 'limit must be at least 1' })
    .max(200, { message: 'limit must be at most 200' })
    .optional()
    .or(z.literal('').transform(() => undefined)),
});

export type AuditFilter = z.output<typeof auditFilterSchema>;

export interface AuditRow {
  id: string;
  at: string;
  action: string;
  outcome: string;
  user_id: string | null;
  username: string | null;
  client_id: string | null;
  patient_id: string | null;
  entity: string | null;
  request_id: string | null;
  ip: string | null;
  detail: Record<string, unknown> | null;
}

export interface AuditPage {
  events: AuditRow[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next_before?: string;
}

export function parseAuditFilter(query: unknown): AuditFilter {
  return parseInput(auditFilterSchema, query ?? {});
}

/**
 * Who the events' users are, from the room that owns them: the user filter accepts an id or a
 * username, and each event names its user's username.
 */
export interface AuditPeople {
  idsOf(idOrUsername: string): Promise<string[]>;
  usernamesOf(ids: string[]): Promise<Map<string, string>>;
}

export async function searchAudit(
  ctx: { db: Queryable },
  people: AuditPeople,
  f: AuditFilter,
): Promise<AuditPage> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  // The user filter takes an id or a username, resolved first so that the filter is a plain
  // equality the (user_id, id) index answers in page order.
  if (f.user) {
    const found = await people.idsOf(f.user);
    const ids = found.length > 0 ? found : [f.user]; // a removed user's id stays searchable
    if (ids.length === 1) add('e.user_id = ?', ids[0]);
    else add('e.user_id = ANY(?)', ids);
  }
  if (f.patient) add('e.patient_id = ?', f.patient);
  if (f.client) add('e.client_id = ?', f.client);
  if (f.action)
    add(
      `e.action LIKE ? || '%'`,
      f.action.replace(/[\\%_]/g, (c) => `\\${c}`),
    );
  if (f.from) add('e.at >= ?', f.from.value);
  if (f.to) add('e.at < ?', f.to.dayOnly ? new Date(f.to.value.getTime() + 86_400_000) : f.to.value);
  if (f.before) add('e.id < ?', f.before);
  const limit = f.limit ?? 50;
  params.push(limit + 1);
  const { rows } = await ctx.db.query<
    Omit<AuditRow, 'at' | 'id' | 'username'> & { id: string | number; at: Date | string }
  >(
    `SELECT e.id, e.at, e.action, e.outcome, e.user_id, e.client_id, e.patient_id, e.entity,
            e.request_id, e.ip, e.detail
       FROM audit_events e
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY e.id DESC
      LIMIT $${params.length}`,
    params,
  );
  const page = rows.slice(0, limit);
  const usernames = await people.usernamesOf([
    ...new Set(page.flatMap((r) => (r.user_id ? [r.user_id] : []))),
  ]);
  const events = page.map((r) => ({
    ...r,
    username: (r.user_id && usernames.get(r.user_id)) ?? null,
    id: String(r.id),
    at: new Date(r.at).toISOString(),
  }));
  return {
    events,
    ...(rows.length > limit && events.length > 0 ? { next_before: events[events.length - 1]!.id } : {}),
  };
}

/** One launch an EHR system asked for, as the audit trail recorded it (ids only). */
export interface RequestedLaunch {
  at: string;
  user_id: string | null;
  patient_id: string | null;
  site: string | null;
  action: string | null;
}

/**
 * The newest launch.created events asked for by one EHR system (detail.requested_by), for the
 * console; answered by the partial index audit_events_requested_by (migration 170).
 */
export async function launchesRequestedBy(
  q: Queryable,
  clientId: string,
  limit = 10,
): Promise<RequestedLaunch[]> {
  const { rows } = await q.query<{
    at: Date | string;
    user_id: string | null;
    patient_id: string | null;
    entity: string | null;
    action: string | null;
  }>(
    `SELECT at, user_id, patient_id, entity, detail->>'action' AS action
       FROM audit_events
      WHERE action = 'launch.created' AND detail->>'requested_by' = $1
      ORDER BY id DESC LIMIT $2`,
    [clientId, limit],
  );
  return rows.map((r) => ({
    at: new Date(r.at).toISOString(),
    user_id: r.user_id,
    patient_id: r.patient_id,
    site: r.entity?.startsWith('site/') ? r.entity.slice(5) : null,
    action: r.action,
  }));
}
