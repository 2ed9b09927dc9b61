/*
 * The audit trail's own guarantees (src/audit/audit.ts), on the database the run was asked for:
 * - concurrent events share batched INSERTs and every caller's promise waits for its row
 * - values arrive exactly as given: quotes, backslashes, braces, commas, NULs-free unicode, nulls,
 *   JSON detail — the batch travels as arrays, whose literal syntax must not leak into the data
 * - a failed write rejects the waiting callers, and the next events are written normally
 * - auditedChange writes the event only when the change it records happened
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditEvent, AuditTrail, auditedChange } from '../../src/audit/audit.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

describe('audit trail', () => {
  let t: TestDatabase;
  let trail: AuditTrail;

  beforeAll(async () => {
    t = await createTestDatabase();
    await migrate(t.db);
    trail = new AuditTrail(t.db);
  });
  afterAll(async () => {
    await t?.drop();
  });

  const stored = async (requestId: string) =>
    (
      await t.db.query<Record<string, unknown>>(
        `SELECT action, outcome, user_id, client_id, patient_id, entity, request_id, ip, detail
           FROM audit_events WHERE request_id = $1 ORDER BY id`,
        [requestId],
      )
    ).rows;

  it('stores every concurrent event, each awaited until its row exists', async () => {
    const events: AuditEvent[] = Array.from({ length: 120 }, (_, i) => ({
      action: 'fhir.read',
      userId: `u${i % 7}`,
      patientId: `p${i}`,
      entity: `Patient/p${i}`,
      requestId: 'concurrent',
    }));
    await Promise.all(events.map((e) => trail.record(e)));
    const rows = await stored('concurrent');
    expect(rows).toHaveLength(120);
    expect(new Set(rows.map((r) => r.patient_id)).size).toBe(120);
  });

  it('keeps awkward values exactly as given', async () => {
    const awkward = `O'Brien "quoted" \\back\\slash {brace,comma} NULL é ✓ 🩺`;
    await Promise.all([
      trail.record({
        action: 'fhir.search',
        outcome: 'failure',
        userId: awkward,
        clientId: null,
        patientId: 'NULL',
        entity: '{}',
        requestId: 'awkward',
        ip: '2001:db8::1',
        detail: { status: 404, note: awkward, nothing: null, yes: true },
      }),
      trail.record({ action: 'fhir.read', requestId: 'awkward' }),
    ]);
    const [first, second] = await stored('awkward');
    expect(first).toEqual({
      action: 'fhir.search',
      outcome: 'failure',
      user_id: awkward,
      client_id: null,
      patient_id: 'NULL',
      entity: '{}',
      request_id: 'awkward',
      ip: '2001:db8::1',
      detail: { status: 404, note: awkward, nothing: null, yes: true },
    });
    expect(second).toMatchObject({ action: 'fhir.read', outcome: 'success', user_id: null, detail: null });
  });

  it('rejects the callers of a failed write and writes the next events normally', async () => {
    // a value PostgreSQL refuses (NUL in text)
    await expect(trail.record({ action: 'fhir.read', requestId: 'fail\u0000ing' })).rejects.toThrow();
    await trail.record({ action: 'fhir.read', requestId: 'after-failure' });
    expect(await stored('after-failure')).toHaveLength(1);
    await trail.flush();
  });

  it('auditedChange writes its event exactly when the change happens', async () => {
    await t.db.query(`CREATE TABLE IF NOT EXISTS audit_probe (id text PRIMARY KEY, used boolean NOT NULL)`);
    await t.db.query(`INSERT INTO audit_probe VALUES ('a', false)`);
    const use = async (id: string) => {
      const params: unknown[] = [id];
      const audited = auditedChange('used', { action: 'probe.used', requestId: 'change' }, params, {
        entity: `'probe/' || used.id`,
      });
      const { rows } = await t.db.query(
        `WITH used AS (UPDATE audit_probe SET used = true WHERE id = $1 AND NOT used RETURNING id), ${audited}
         SELECT id FROM used`,
        params,
      );
      return rows.length;
    };
    expect(await use('a')).toBe(1);
    expect(await use('a')).toBe(0);
    expect(await use('nope')).toBe(0);
    expect((await stored('change')).map((r) => r.entity)).toEqual(['probe/a']);
  });
});
