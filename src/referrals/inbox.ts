/*
 * The inbox (`ocean_inbox`): every message received, with what became of it.
 * - claim() inserts the message in the caller's transaction; the unique index on
 *   (integration, MessageHeader id) makes a second copy — the same delivery twice, or two
 *   instances receiving it at once — find the first one instead (ON CONFLICT DO NOTHING waits
 *   for the first transaction to commit or roll back)
 * - a refused message is kept (its own statement, the filing having rolled back), for the
 *   administrator; it does not block a corrected resend with the same id
 * - problems stored here name elements, never values; nothing here is logged
 */
import { randomUUID } from 'node:crypto';
import { type Database, InvalidInputError, type Queryable } from '../db/database.ts';
import { NotFoundError } from '../http/errors.ts';

export type Outcome = 'filed' | 'unmatched' | 'ignored' | 'refused' | 'dismissed';

export interface InboxItem {
  id: string;
  integration_id: string | null;
  message_id: string | null;
  event: string | null;
  referral_id: string | null;
  outcome: Outcome;
  problem: string | null;
  patient_id: string | null;
  received_at: string;
  resolved_at: string | null;
}

interface Row extends Omit<InboxItem, 'received_at' | 'resolved_at'> {
  received_at: Date | string;
  resolved_at: Date | string | null;
}

const COLUMNS =
  'id, integration_id, message_id, event, referral_id, outcome, problem, patient_id, received_at, resolved_at';

const toItem = (r: Row): InboxItem => ({
  ...r,
  received_at: new Date(r.received_at).toISOString(),
  resolved_at: r.resolved_at ? new Date(r.resolved_at).toISOString() : null,
});

/**
 * Records a message as received; `undefined` when this integration already has it (a duplicate:
 * the caller answers 200 and changes nothing).
 */
export async function claim(
  q: Queryable,
  m: { integrationId: string; messageId: string; event: string; referralId?: string; text: string },
): Promise<string | undefined> {
  const { rows } = await q.query<{ id: string }>(
    `INSERT INTO ocean_inbox (id, integration_id, message_id, event, referral_id, outcome, message)
     VALUES ($1, $2, $3, $4, $5, 'ignored', $6)
     ON CONFLICT (integration_id, message_id) WHERE outcome <> 'refused' DO NOTHING
     RETURNING id`,
    [randomUUID(), m.integrationId, m.messageId, m.event, m.referralId ?? null, m.text],
    { prepare: true },
  );
  return rows[0]?.id;
}

/** What became of a claimed message. */
export async function settle(
  q: Queryable,
  id: string,
  outcome: Exclude<Outcome, 'refused'>,
  facts: { patientId?: string | null; problem?: string | null } = {},
): Promise<void> {
  await q.query(
    `UPDATE ocean_inbox SET outcome = $2, patient_id = $3, problem = $4,
            resolved_at = CASE WHEN $2 IN ('filed', 'ignored', 'dismissed') THEN now() END
      WHERE id = $1`,
    [id, outcome, facts.patientId ?? null, facts.problem ?? null],
    { prepare: true },
  );
}

/** Keeps a refused message for the administrator, as received. */
export async function keepRefused(
  db: Database,
  m: { integrationId: string; messageId?: string; event?: string; problem: string; text: string },
): Promise<void> {
  const insert = (text: string | null) =>
    db.query(
      `INSERT INTO ocean_inbox (id, integration_id, message_id, event, outcome, problem, message, resolved_at)
       VALUES ($1, $2, $3, $4, 'refused', $5, $6, now())`,
      [randomUUID(), m.integrationId, m.messageId ?? null, m.event ?? null, m.problem.slice(0, 500), text],
    );
  try {
    await insert(m.text);
  } catch (err) {
    // A body PostgreSQL cannot hold (a NUL character): keep the facts of the refusal without it.
    if (!(err instanceof InvalidInputError)) throw err;
    await insert(null);
  }
}

export async function listInbox(
  q: Queryable,
  filter: { outcome?: Outcome; limit: number },
): Promise<InboxItem[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM ocean_inbox
      WHERE ($1::text IS NULL OR outcome = $1)
      ORDER BY received_at DESC, id LIMIT $2`,
    [filter.outcome ?? null, filter.limit],
  );
  return rows.map(toItem);
}

/** One message with its body, locked when `lock` (matching and dismissing change it). */
export async function getInboxItem(
  q: Queryable,
  id: string,
  lock = false,
): Promise<InboxItem & { message: unknown }> {
  const { rows } = await q.query<Row & { message: string | null }>(
    `SELECT ${COLUMNS}, message FROM ocean_inbox WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  const row = rows[0];
  if (!row) throw new NotFoundError('no such message in the Ocean inbox');
  const { message, ...rest } = row;
  return { ...toItem(rest), message: parsedOrText(message) };
}

/** The body as JSON when it is JSON (every accepted message), else as the text received. */
function parsedOrText(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Counts by outcome, for the console. */
export async function inboxCounts(q: Queryable): Promise<Record<string, number>> {
  const { rows } = await q.query<{ outcome: string; n: unknown }>(
    'SELECT outcome, count(*) AS n FROM ocean_inbox GROUP BY outcome',
  );
  return Object.fromEntries(rows.map((r) => [r.outcome, Number(r.n)]));
}
