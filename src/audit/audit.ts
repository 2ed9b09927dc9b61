/*
 * The audit trail: every PHI access, token issue and admin change, as rows.
 * - events are written by group commit: callers await their event's durable write, while
 *   concurrent events share one multi-row INSERT (a FHIR read pays one round trip, not one per reader)
 * - an event never carries resource bodies, tokens or secrets; `detail` is for small, non-PHI facts
 * - a failed write rejects the waiting callers (the request fails rather than go unaudited)
 * - an event that records one database change is better written by the statement that makes it
 *   (auditedChange): one round trip, and the row exists exactly when the change does; one that
 *   records a multi-statement change is inserted on its transaction (recordAuditEvent)
 */
import type { Database, Queryable } from '../db/database.ts';

export interface AuditEvent {
  /** Dotted verb, e.g. fhir.read, fhir.search, fhir.everything, token.issued, launch.created, admin.client.create */
  action: string;
  outcome?: 'success' | 'failure';
  userId?: string | null;
  clientId?: string | null;
  patientId?: string | null;
  /** What was touched: "Patient/123", "Observation?patient=…", "client/abc" — never a body. */
  entity?: string | null;
  requestId?: string | null;
  ip?: string | null;
  detail?: Record<string, string | number | boolean | null> | null;
}

/** The columns an event fills, in the order of eventValues(). */
const COLUMNS = [
  'action',
  'outcome',
  'user_id',
  'client_id',
  'patient_id',
  'entity',
  'request_id',
  'ip',
  'detail',
] as const;
type Column = (typeof COLUMNS)[number];
const sqlType = (c: Column) => (c === 'detail' ? 'jsonb' : 'text');
const INSERT_COLUMNS = `INSERT INTO audit_events (${COLUMNS.join(', ')})`;
const INSERT_BATCH = `${INSERT_COLUMNS}
  SELECT * FROM unnest(${COLUMNS.map((c, i) => `$${i + 1}::${sqlType(c)}[]`).join(', ')})`;
const MAX_BATCH = 500;

interface Pending {
  event: AuditEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditTrail {
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;

  constructor(private readonly db: Database) {}

  /** Resolves once the event is stored. */
  record(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      if (!this.#flushing) this.#flushing = this.#drain();
    });
  }

  /** Waits for every queued event (graceful shutdown). */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_BATCH);
        try {
          await this.#insert(batch.map((p) => p.event));
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #insert(events: AuditEvent[]): Promise<void> {
    // One array per column: the statement text is the same whatever the batch size, so it is
    // prepared once per connection instead of parsed and planned for every batch.
    const columns: unknown[][] = COLUMNS.map(() => []);
    for (const e of events) {
      eventValues(e).forEach((v, i) => {
        columns[i]!.push(v);
      });
    }
    await this.db.query(INSERT_BATCH, columns, { prepare: true });
  }
}

const eventValues = (e: AuditEvent): unknown[] => [
  e.action,
  e.outcome ?? 'success',
  e.userId ?? null,
  e.clientId ?? null,
  e.patientId ?? null,
  e.entity ?? null,
  e.requestId ?? null,
  e.ip ?? null,
  e.detail ? JSON.stringify(e.detail) : null,
];

/**
 * Inserts one event on the caller's Queryable: inside a transaction, the event commits (or rolls
 * back) with the change it records — for multi-statement changes such as the admin's.
 */
export async function recordAuditEvent(q: Queryable, event: AuditEvent): Promise<void> {
  const values = eventValues(event);
  await q.query(
    `${INSERT_COLUMNS} VALUES (${COLUMNS.map((c, i) => `$${i + 1}::${sqlType(c)}`).join(', ')})`,
    values,
    { prepare: true },
  );
}

/**
 * Folds an audit event into the statement that makes the change it records:
 *
 *   WITH changed AS (UPDATE … RETURNING …), ${auditedChange('changed', event, params)} SELECT … FROM changed
 *
 * One audit row is inserted per row of `source` (none when the change found nothing), in the same
 * statement and so the same transaction. The event's values are appended to `params`; an
 * expression over `source`'s columns can stand in for the user, client, patient, entity or detail when
 * only the change knows them.
 */
export function auditedChange(
  source: string,
  event: AuditEvent,
  params: unknown[],
  fromSource: Partial<Record<'user_id' | 'client_id' | 'patient_id' | 'entity' | 'detail', string>> = {},
): string {
  const values = eventValues(event);
  const select = COLUMNS.map((column, i) => {
    const expression = fromSource[column as keyof typeof fromSource];
    if (expression) return expression;
    params.push(values[i]);
    return `$${params.length}::${sqlType(column)}`;
  });
  return `audited AS (${INSERT_COLUMNS}
      SELECT ${select.join(', ')}
        FROM ${source})`;
}
