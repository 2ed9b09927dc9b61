/*
 * Administration of Ocean's message integrations and of the inbox, for the admin API and the
 * console alike: every change validated, applied, then audited (ids and field names, never a
 * secret or a value from a message).
 * - matching an unmatched message files it in one transaction, with the same filing as a
 *   delivery (the message is read again: it was checked when it arrived, and still must be)
 * - a filed or dismissed message cannot be matched or dismissed again (409)
 */
import { z } from 'zod';
import type { Actor } from '../admin/operations.ts';
import type { AuditEvent, AuditTrail } from '../audit/audit.ts';
import type { Database } from '../db/database.ts';
import { readResource } from '../fhir/repository.ts';
import { ConflictError, NotFoundError, parseInput } from '../http/errors.ts';
import { fileClaimed } from './apply-message.ts';
import { getInboxItem, type InboxItem, listInbox, type Outcome, settle } from './inbox.ts';
import type { Integration, IntegrationCredentials, Integrations } from './integrations.ts';
import { requeueInOcean } from './letters.ts';
import { readMessage } from './message.ts';

/** Who acts: the admin token or a signed-in administrator (the admin room's one definition). */
export type { Actor };

const OUTCOMES = ['filed', 'unmatched', 'ignored', 'refused', 'dismissed'] as const;
export const inboxFilter = z.strictObject({
  outcome: z.enum(OUTCOMES, { message: `outcome must be one of ${OUTCOMES.join(', ')}` }).optional(),
  limit: z.coerce.number({ message: 'limit must be a number' }).int().min(1).max(500).default(100),
});
const matchInput = z.strictObject({
  patient_id: z.string({ message: 'patient_id is required' }).regex(/^[A-Za-z0-9\-.]{1,64}$/, {
    message: 'patient_id must be a FHIR id',
  }),
});

export class ReferralAdmin {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    readonly integrations: Integrations,
    private readonly onFiled: () => void = () => {},
  ) {}

  #audit(actor: Actor, event: Omit<AuditEvent, 'userId' | 'requestId' | 'ip'>): Promise<void> {
    return this.audit.record({ ...event, userId: actor.userId, requestId: actor.requestId, ip: actor.ip });
  }

  async createIntegration(
    actor: Actor,
    input: unknown,
  ): Promise<{ integration: Integration; credentials: IntegrationCredentials }> {
    const created = await this.integrations.create(input);
    await this.#audit(actor, {
      action: 'admin.ocean_integration.create',
      entity: `ocean-integration/${created.integration.id}`,
      detail: { site: created.integration.site_num, ocean_oauth: created.integration.ocean_oauth !== null },
    });
    return created;
  }

  async rotate(actor: Actor, id: string) {
    const rotated = await this.integrations.rotate(id);
    await this.#audit(actor, { action: 'admin.ocean_integration.rotate', entity: `ocean-integration/${id}` });
    return rotated;
  }

  async delete(actor: Actor, id: string): Promise<void> {
    await this.integrations.delete(id);
    await this.#audit(actor, { action: 'admin.ocean_integration.delete', entity: `ocean-integration/${id}` });
  }

  async setOceanOAuth(actor: Actor, id: string, input: unknown): Promise<Integration> {
    const integration = await this.integrations.setOutbound(id, input);
    // Letters shown as "available in Ocean" can be fetched now.
    if (integration.ocean_oauth && (await requeueInOcean(this.db, id)) > 0) this.onFiled();
    await this.#audit(actor, {
      action: 'admin.ocean_integration.ocean_oauth',
      entity: `ocean-integration/${id}`,
      detail: { set: integration.ocean_oauth !== null },
    });
    return integration;
  }

  listMessages(query: unknown): Promise<InboxItem[]> {
    const f = parseInput(inboxFilter, query);
    return listInbox(this.db, { outcome: f.outcome as Outcome | undefined, limit: f.limit });
  }

  getMessage(id: string) {
    return getInboxItem(this.db, id);
  }

  /** Files an unmatched message into the named patient's chart. */
  async match(actor: Actor, id: string, input: unknown): Promise<InboxItem> {
    const { patient_id } = parseInput(matchInput, input);
    await this.db.transaction(async (tx) => {
      const item = await getInboxItem(tx, id, true);
      if (item.outcome !== 'unmatched')
        throw new ConflictError(`only an unmatched message can be matched; this one is ${item.outcome}`);
      if (!item.integration_id) throw new ConflictError('the integration of this message was deleted');
      if (!(await readResource(tx, 'Patient', patient_id))) throw new NotFoundError('no such patient');
      const message = readMessage(item.message);
      const integration = await this.integrations.ref(tx, item.integration_id);
      if (!integration) throw new ConflictError('the integration of this message was deleted');
      const applied = await fileClaimed(tx, integration, message, id, patient_id);
      if (applied.outcome !== 'filed')
        throw new ConflictError('the referral is already filed in another chart; it cannot be filed here');
    });
    this.onFiled();
    await this.#audit(actor, {
      action: 'admin.ocean_message.match',
      patientId: patient_id,
      entity: `ocean-message/${id}`,
    });
    return getInboxItem(this.db, id);
  }

  async dismiss(actor: Actor, id: string): Promise<InboxItem> {
    await this.db.transaction(async (tx) => {
      const item = await getInboxItem(tx, id, true);
      if (item.outcome !== 'unmatched')
        throw new ConflictError(`only an unmatched message can be dismissed; this one is ${item.outcome}`);
      await settle(tx, id, 'dismissed', { problem: item.problem });
    });
    await this.#audit(actor, { action: 'admin.ocean_message.dismiss', entity: `ocean-message/${id}` });
    return getInboxItem(this.db, id);
  }
}
