/*
 * Applies one checked message, inside the caller's transaction (all of it or none of it):
 * 1. the inbox claims it — a message this integration already has changes nothing
 * 2. a message without a referral is kept as `ignored`
 * 3. the patient is matched (./patient-match.ts); no match → `unmatched`, for an administrator
 * 4. the referral row (`ocean_referrals`, by Ocean's referral id) is created or locked: messages
 *    of one referral apply one at a time, on any instance; a referral stays in the chart it was
 *    first filed into (a message naming another patient waits for an administrator), and a
 *    message older than the last one applied changes nothing
 * 5. the referral is filed (./filing.ts) and its letter scheduled (./letters.ts)
 */
import type { Queryable } from '../db/database.ts';
import { fileReferral } from './filing.ts';
import { claim, settle } from './inbox.ts';
import type { IntegrationRef } from './integrations.ts';
import { scheduleLetter } from './letters.ts';
import type { ReferralMessage } from './message.ts';
import { matchPatient } from './patient-match.ts';

export type Applied =
  | { outcome: 'duplicate' }
  | { outcome: 'ignored' | 'unmatched'; inboxId: string }
  | { outcome: 'filed'; inboxId: string; patientId: string; serviceRequestId: string };

/** Claims and applies a message received now. */
export async function applyMessage(
  q: Queryable,
  integration: IntegrationRef,
  message: ReferralMessage,
  text: string,
): Promise<Applied> {
  const inboxId = await claim(q, {
    integrationId: integration.id,
    messageId: message.messageId,
    event: message.event,
    referralId: message.referral?.referralId,
    text,
  });
  if (!inboxId) return { outcome: 'duplicate' };
  if (!message.referral) {
    await settle(q, inboxId, 'ignored', { problem: 'the event carries no referral' });
    return { outcome: 'ignored', inboxId };
  }
  const match = await matchPatient(q, message.referral.patient);
  if (!match.matched) {
    await settle(q, inboxId, 'unmatched', { problem: match.reason });
    return { outcome: 'unmatched', inboxId };
  }
  return fileClaimed(q, integration, message, inboxId, match.patientId);
}

/** Files a claimed message into a patient's chart (also used when an administrator matches one). */
export async function fileClaimed(
  q: Queryable,
  integration: IntegrationRef,
  message: ReferralMessage,
  inboxId: string,
  patientId: string,
): Promise<Applied> {
  const referral = message.referral!;
  const sentAt = message.sentAt ?? new Date();
  // Creates the referral row or locks the existing one, in one statement: DO UPDATE takes the row
  // lock (waiting for a concurrent filer) and RETURNING gives the row as it was.
  const { rows } = await q.query<{ patient_id: string; last_message_at: Date | string }>(
    `INSERT INTO ocean_referrals (referral_id, integration_id, patient_id, service_request_id, last_message_at)
     VALUES ($1, $2, $3, '', '-infinity')
     ON CONFLICT (referral_id) DO UPDATE SET referral_id = EXCLUDED.referral_id
     RETURNING patient_id, last_message_at`,
    [referral.referralId, integration.id, patientId],
    { prepare: true },
  );
  const row = rows[0]!;
  if (row.patient_id !== patientId) {
    await settle(q, inboxId, 'unmatched', {
      problem: 'the referral is filed in another chart than the patient this message matches',
    });
    return { outcome: 'unmatched', inboxId };
  }
  if (new Date(row.last_message_at).getTime() > sentAt.getTime()) {
    await settle(q, inboxId, 'ignored', {
      patientId,
      problem: 'older than the last message applied to this referral',
    });
    return { outcome: 'ignored', inboxId };
  }
  const filed = await fileReferral(q, message, patientId);
  if (filed.letterUrl)
    await scheduleLetter(q, referral.referralId, filed.letterUrl, integration.fetchesLetters);
  // The referral's newest message and the inbox outcome, in one statement.
  await q.query(
    `WITH referral AS (
       UPDATE ocean_referrals SET service_request_id = $2, last_message_at = $3::timestamptz,
              integration_id = $4, updated_at = now()
        WHERE referral_id = $1)
     UPDATE ocean_inbox SET outcome = 'filed', patient_id = $6, problem = NULL, resolved_at = now()
      WHERE id = $5`,
    [referral.referralId, filed.serviceRequestId, sentAt.toISOString(), integration.id, inboxId, patientId],
    { prepare: true },
  );
  return { outcome: 'filed', inboxId, patientId, serviceRequestId: filed.serviceRequestId };
}

export interface ReferralRow {
  referralId: string;
  serviceRequestId: string;
  letter?: { status: string; attempts: number; lastError: string | null; fetchedAt: string | null };
}

/** The referrals filed into a patient's chart, newest first, with their letter's state. */
export async function referralsOfPatient(q: Queryable, patientId: string): Promise<ReferralRow[]> {
  const { rows } = await q.query<{
    referral_id: string;
    service_request_id: string;
    status: string | null;
    attempts: number | null;
    last_error: string | null;
    fetched_at: Date | string | null;
  }>(
    `SELECT r.referral_id, r.service_request_id, l.status, l.attempts, l.last_error, l.fetched_at
       FROM ocean_referrals r LEFT JOIN ocean_letters l ON l.referral_id = r.referral_id
      WHERE r.patient_id = $1 AND r.service_request_id <> ''
      ORDER BY r.last_message_at DESC LIMIT 200`,
    [patientId],
  );
  return rows.map((r) => ({
    referralId: r.referral_id,
    serviceRequestId: r.service_request_id,
    ...(r.status
      ? {
          letter: {
            status: r.status,
            attempts: Number(r.attempts ?? 0),
            lastError: r.last_error,
            fetchedAt: r.fetched_at ? new Date(r.fetched_at).toISOString() : null,
          },
        }
      : {}),
  }));
}
