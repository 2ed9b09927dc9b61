/*
 * The audit trail: every PHI access, token issue and admin change, as rows.
 * - events are written by group commit: callers await their event's durable write, while
 *   concurrent events share one multi-row INSERT (a FHIR read pays one round trip, not one per reader)
 * - an event never carries resource bodies, tokens or secrets; `detail` is for small, non-PHI facts
 * - a failed write rejects the waiting callers (the request fails rather than go unaudited)
 */
import type { Database } from '../db/database.ts';

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

const COLUMNS = 9;
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
    const params: unknown[] = [];
    const tuples = events.map((e, i) => {
      params.push(
        e.action,
        e.outcome ?? 'success',
        e.userId ?? null,
        e.clientId ?? null,
        e.patientId ?? null,
        e.entity ?? null,
        e.requestId ?? null,
        e.ip ?? null,
        e.detail ? JSON.stringify(e.detail) : null,
      );
      const base = i * COLUMNS;
      return `(${Array.from({ length: COLUMNS }, (_, j) => `$${base + j + 1}`).join(', ')})`;
    });
    await this.db.query(
      `INSERT INTO audit_events (action, outcome, user_id, client_id, patient_id, entity, request_id, ip, detail)
       VALUES ${tuples.join(', ')}`,
      params,
    );
  }
}
