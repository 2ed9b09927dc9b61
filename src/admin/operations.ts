/*
 * Every administrative change, once, for both the admin API and the console.
 * - each change runs in ONE transaction with its audit event: the stores write on the
 *   transaction, the event (who — the admin user or the admin token —, what, when) is inserted on
 *   it, and both commit together or not at all
 * - audit events carry ids and field NAMES only: never a secret, SEK, password or body
 * - refusals are the stores' typed HttpErrors (400 ValidationError, 404, 409), thrown unchanged
 */
import type Provider from 'oidc-provider';
import { createUser, linkPractitioner } from '../accounts/accounts.ts';
import { type AuditEvent, recordAuditEvent } from '../audit/audit.ts';
import { type AuditFilter, type AuditPage, searchAudit } from '../audit/audit-query.ts';
import {
  type ClientRecord,
  createClient,
  deleteClient,
  getClient,
  listClients,
  updateClient,
} from '../clients/clients.ts';
import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { NotFoundError, parseInput } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';
import type { SigningKeyInfo } from '../keys/signing-keys.ts';
import { forgetClient } from '../oidc/adapter.ts';
import { addSite, listSites, type SiteRecord, updateSite } from '../sites/sites.ts';
import {
  findUserIds,
  getUser,
  listUsers,
  lockUser,
  type NewUser,
  setActive,
  setRoles,
  type User,
  usernamesOf,
} from '../users/users.ts';
import { type AllowlistPacket, allowlistPacket } from './allowlist.ts';
import { newSiteSchema, passwordSchema, siteUpdateSchema, userUpdateSchema } from './shapes.ts';
import * as access from './user-access.ts';

/** Who is acting: an admin user of the console, or whoever holds the admin token. */
export interface Actor {
  via: 'api' | 'console';
  userId: string | null;
  requestId?: string | null;
  ip?: string | null;
}

/** An admin event before the actor's part (who, from where) is added. */
type AdminEvent = Omit<AuditEvent, 'userId' | 'requestId' | 'ip'>;

const withActor = (actor: Actor, e: AdminEvent): AuditEvent => ({
  ...e,
  userId: actor.userId,
  requestId: actor.requestId ?? null,
  ip: actor.ip ?? null,
  detail: { via: actor.via, ...(actor.via === 'api' ? { actor: 'admin-token' } : {}), ...e.detail },
});

/** A site's action names, for the audit trail (short; never a SEK). */
const actionNames = (site: SiteRecord): string =>
  site.actions
    .map((a) => a.action)
    .join(',')
    .slice(0, 300);

/** Field names of a client input, for the audit trail (values may be long; none is secret, but keep it small). */
const fieldNames = (input: unknown): string =>
  input && typeof input === 'object' && !Array.isArray(input)
    ? Object.keys(input).sort().join(',').slice(0, 300)
    : '';

/** What the admin needs of other capabilities, passed by the composition root. */
export interface AdminDeps {
  /** The authorization server serving now (its discovery document goes into the allowlist packet). */
  provider(): Provider;
}

export class AdminOperations {
  constructor(
    private readonly ctx: AppContext,
    private readonly deps: AdminDeps,
  ) {}

  /** The audit trail, filtered, with the username of each event's user. */
  searchAudit(filter: AuditFilter): Promise<AuditPage> {
    const db = this.ctx.db;
    const people = {
      idsOf: (u: string) => findUserIds(db, u),
      usernamesOf: (ids: string[]) => usernamesOf(db, ids),
    };
    return searchAudit(this.ctx, people, filter);
  }

  /** The seven values Ocean asks for (CONTRACT §2 item 10), for one client. */
  allowlist(clientId: string): Promise<AllowlistPacket> {
    return allowlistPacket(this.ctx, this.deps.provider(), clientId);
  }

  /**
   * Runs a change and records its audit event in one transaction: the stores get the transaction
   * (and the secret box), the event is built from the change's result.
   */
  private change<T>(
    actor: Actor,
    write: (store: { db: Queryable; box: SecretBox }) => Promise<T>,
    event: (result: T) => AdminEvent,
  ): Promise<T> {
    return this.ctx.db.transaction(async (tx) => {
      const result = await write({ db: tx, box: this.ctx.box });
      await recordAuditEvent(tx, withActor(actor, event(result)));
      return result;
    });
  }

  // ---- clients

  listClients(): Promise<ClientRecord[]> {
    return listClients(this.ctx);
  }

  getClient(clientId: string): Promise<ClientRecord> {
    return getClient(this.ctx, clientId);
  }

  createClient(actor: Actor, input: unknown) {
    return this.change(
      actor,
      (store) => createClient(store, input),
      ({ client: c, client_secret }) => ({
        action: 'admin.client.create',
        clientId: c.client_id,
        entity: `client/${c.client_id}`,
        detail: {
          auth_method: c.token_endpoint_auth_method,
          alg: c.id_token_signed_response_alg,
          require_pkce: c.require_pkce,
          secret_issued: client_secret !== undefined,
        },
      }),
    );
  }

  updateClient(actor: Actor, clientId: string, input: unknown) {
    return this.change(
      actor,
      (store) => updateClient(store, clientId, input),
      ({ client: c, client_secret }) => ({
        action: 'admin.client.update',
        clientId,
        entity: `client/${clientId}`,
        detail: {
          fields: fieldNames(input),
          require_pkce: c.require_pkce,
          secret_issued: client_secret !== undefined,
        },
      }),
    );
  }

  async deleteClient(actor: Actor, clientId: string): Promise<void> {
    await this.change(
      actor,
      async (store) => {
        await deleteClient(store, clientId);
        await forgetClient(store.db, clientId);
      },
      () => ({ action: 'admin.client.delete', clientId, entity: `client/${clientId}` }),
    );
  }

  resetClientSecret(actor: Actor, clientId: string): Promise<string> {
    return this.change(
      actor,
      (store) => access.newSecretEndingGrants(store, clientId, actor),
      () => ({ action: 'admin.client.secret_reset', clientId, entity: `client/${clientId}` }),
    );
  }

  // ---- sites

  async listSites(clientId: string): Promise<SiteRecord[]> {
    await getClient(this.ctx, clientId);
    return listSites(this.ctx, clientId);
  }

  async getSite(clientId: string, siteNum: string): Promise<SiteRecord> {
    const site = (await this.listSites(clientId)).find((s) => s.siteNum === siteNum);
    if (!site) throw new NotFoundError('no such site for this client');
    return site;
  }

  addSite(actor: Actor, clientId: string, input: unknown): Promise<SiteRecord> {
    const v = parseInput(newSiteSchema, input);
    return this.change(
      actor,
      (store) =>
        addSite(store, clientId, {
          siteNum: v.site_num,
          sharedEncryptionKey: v.shared_encryption_key,
          ...(v.actions ? { actions: v.actions } : {}),
        }),
      (site) => ({
        action: 'admin.site.create',
        clientId,
        entity: `site/${site.siteNum}`,
        detail: { actions: actionNames(site) },
      }),
    );
  }

  updateSite(actor: Actor, clientId: string, siteNum: string, input: unknown): Promise<SiteRecord> {
    const v = parseInput(siteUpdateSchema, input);
    return this.change(
      actor,
      (store) =>
        updateSite(store, clientId, siteNum, {
          ...(v.actions ? { actions: v.actions } : {}),
          ...(v.shared_encryption_key !== undefined ? { sharedEncryptionKey: v.shared_encryption_key } : {}),
        }),
      () => ({
        action: 'admin.site.update',
        clientId,
        entity: `site/${siteNum}`,
        detail: { fields: fieldNames(input) },
      }),
    );
  }

  async deleteSite(actor: Actor, clientId: string, siteNum: string): Promise<void> {
    await this.change(
      actor,
      (store) => access.deleteSiteEndingGrants(store, clientId, siteNum, actor),
      () => ({ action: 'admin.site.delete', clientId, entity: `site/${siteNum}` }),
    );
  }

  // ---- users

  listUsers(): Promise<User[]> {
    return listUsers(this.ctx);
  }

  async getUser(id: string): Promise<User> {
    const user = await getUser(this.ctx, id);
    if (!user) throw new NotFoundError('no such user');
    return user;
  }

  createUser(actor: Actor, input: unknown): Promise<User> {
    return this.change(
      actor,
      (store) => createUser(store, input as NewUser),
      (user) => ({
        action: 'admin.user.create',
        entity: `user/${user.id}`,
        detail: { practitioner: `Practitioner/${user.practitionerId}`, roles: user.roles.join(',') },
      }),
    );
  }

  /** A new password ends the user's access (sessions and what rides on them) and lifts sign-in locks, in one transaction. */
  async resetPassword(actor: Actor, id: string, input: unknown): Promise<void> {
    const { password } = parseInput(passwordSchema, input);
    await this.change(
      actor,
      (store) => access.newPasswordEndingAccess(store, id, password, actor),
      () => ({ action: 'admin.user.password_reset', entity: `user/${id}` }),
    );
  }

  unlockUser = (actor: Actor, id: string): Promise<User> => this.change(actor, ...access.unlockChange(id));

  /** Roles, active state and Practitioner change together or not at all; deactivation ends the user's access. */
  async updateUser(actor: Actor, id: string, input: unknown): Promise<User> {
    const v = parseInput(userUpdateSchema, input);
    return this.change(
      actor,
      async (store) => {
        if (!(await lockUser(store.db, id))) throw new NotFoundError('no such user');
        const rolesBefore = (await getUser(store, id))!.roles;
        if (v.practitioner !== undefined) await linkPractitioner(store.db, id, v.practitioner);
        if (v.roles !== undefined) await setRoles(store, id, v.roles);
        if (v.active !== undefined) await setActive(store, id, v.active);
        await access.endWhatTheChangeEnds(store.db, id, { ...v, rolesBefore }, actor);
        return (await getUser(store, id))!;
      },
      (user) => ({
        action: 'admin.user.update',
        entity: `user/${id}`,
        detail: {
          ...(v.roles !== undefined ? { roles: user.roles.join(',') } : {}),
          ...(v.active !== undefined ? { active: user.active } : {}),
          ...(v.practitioner !== undefined ? { practitioner: v.practitioner } : {}),
        },
      }),
    );
  }

  /** An administrator's "end this user's access": sessions and every grant. */
  endUserAccess(actor: Actor, id: string): Promise<access.EndedAccess> {
    return this.change(actor, (store) => access.endAccessOf(store.db, id, actor), access.accessEnded);
  }

  // ---- keys

  /** Where a SECRETS_KEY rotation stands (keys/secrets-rotation.ts): key ids and counts, never keys. */
  secretsKeyStatus = (): AppContext['box']['status'] => this.ctx.box.status;
  async listKeys(): Promise<SigningKeyInfo[]> {
    return this.ctx.keys.list();
  }

  async rotateKeys(actor: Actor): Promise<SigningKeyInfo[]> {
    const keys = await this.ctx.keys.rotate();
    // This instance signs with the new keys at once; the others on their next refresh.
    await this.ctx.keys.reload();
    // The rotation is the key store's own transaction; its event follows it.
    await this.ctx.audit.record(
      withActor(actor, {
        action: 'admin.keys.rotate',
        entity: 'signing_keys',
        detail: {
          active: keys
            .filter((k) => k.state === 'active')
            .map((k) => k.kid)
            .join(','),
        },
      }),
    );
    return keys;
  }
}
