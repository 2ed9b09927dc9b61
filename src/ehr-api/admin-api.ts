/*
 * Administration of EHR systems, for the admin API and the console alike (CONTRACT §3.5).
 * - each change and its audit event commit in ONE transaction (ids and field names, never a
 *   secret or a key)
 * - the sites named must be registered; removing a system drops the launches it asked for that
 *   are still unused, in the same transaction
 * - a secret appears once: in the answer to the request that drew it
 */
import type { Actor } from '../admin/operations.ts';
import { type AuditEvent, recordAuditEvent } from '../audit/audit.ts';
import { launchesRequestedBy, type RequestedLaunch } from '../audit/audit-query.ts';
import type { Database, Queryable } from '../db/database.ts';
import { ValidationError } from '../http/errors.ts';
import { dropUnusedLaunchesOf } from '../launch/launch-contexts.ts';
import { unknownSites } from '../sites/sites.ts';
import type { EhrSystem, EhrSystems } from './ehr-systems.ts';

const fieldNames = (input: unknown): string =>
  input && typeof input === 'object' && !Array.isArray(input)
    ? Object.keys(input).sort().join(',').slice(0, 300)
    : '';

export class EhrSystemAdmin {
  constructor(
    private readonly db: Database,
    readonly systems: EhrSystems,
  ) {}

  #audit(q: Queryable, actor: Actor, event: Omit<AuditEvent, 'userId' | 'requestId' | 'ip'>): Promise<void> {
    return recordAuditEvent(q, {
      ...event,
      userId: actor.userId,
      requestId: actor.requestId ?? null,
      ip: actor.ip ?? null,
      detail: { via: actor.via, ...(actor.via === 'api' ? { actor: 'admin-token' } : {}), ...event.detail },
    });
  }

  /** Registered sites only: a typo would otherwise be a system that can never launch there. */
  async #checkSites(q: Queryable, input: unknown): Promise<void> {
    const sites = (input as { sites?: unknown })?.sites;
    if (!Array.isArray(sites) || !sites.every((s) => typeof s === 'string')) return;
    const unknown = await unknownSites(q, sites as string[]);
    if (unknown.length > 0) {
      throw new ValidationError([
        { path: 'sites', message: `no Ocean site ${unknown.join(', ')} is registered here` },
      ]);
    }
  }

  create(actor: Actor, input: unknown): Promise<{ system: EhrSystem; client_secret?: string }> {
    return this.db.transaction(async (tx) => {
      const created = await this.systems.create(tx, input);
      await this.#checkSites(tx, input);
      await this.#audit(tx, actor, {
        action: 'admin.ehr_system.create',
        clientId: created.system.client_id,
        entity: `ehr-system/${created.system.client_id}`,
        detail: {
          auth: created.system.token_endpoint_auth_method,
          sites: created.system.sites?.join(',') ?? '*',
        },
      });
      return created;
    });
  }

  update(actor: Actor, clientId: string, input: unknown): Promise<EhrSystem> {
    return this.db.transaction(async (tx) => {
      const system = await this.systems.update(tx, clientId, input);
      await this.#checkSites(tx, input);
      await this.#audit(tx, actor, {
        action: 'admin.ehr_system.update',
        clientId,
        entity: `ehr-system/${clientId}`,
        detail: { fields: fieldNames(input) },
      });
      return system;
    });
  }

  resetSecret(actor: Actor, clientId: string): Promise<string> {
    return this.db.transaction(async (tx) => {
      const secret = await this.systems.resetSecret(tx, clientId);
      await this.#audit(tx, actor, {
        action: 'admin.ehr_system.secret_reset',
        clientId,
        entity: `ehr-system/${clientId}`,
      });
      return secret;
    });
  }

  delete(actor: Actor, clientId: string): Promise<void> {
    return this.db.transaction(async (tx) => {
      await this.systems.delete(tx, clientId);
      const dropped = await dropUnusedLaunchesOf(tx, clientId);
      await this.#audit(tx, actor, {
        action: 'admin.ehr_system.delete',
        clientId,
        entity: `ehr-system/${clientId}`,
        detail: { unused_launches_dropped: dropped },
      });
    });
  }

  /** The system's newest launches, from the audit trail. */
  lastLaunches(clientId: string, limit = 10): Promise<RequestedLaunch[]> {
    return launchesRequestedBy(this.db, clientId, limit);
  }
}
