/*
 * Every administrative change, once, for both the admin API and the console.
 * - each operation validates (zod, via the stores), writes, then records an audit event naming
 *   who (the admin user, or the admin token), what (action + entity) and when (the row's time)
 * - audit events carry ids and field NAMES only: never a secret, SEK, password or body
 * - refusals are the stores' typed HttpErrors (400 ValidationError, 404, 409), thrown unchanged
 */
import { z } from 'zod';
import type { AuditEvent } from '../audit/audit.ts';
import type { AppContext } from '../context.ts';
import {
  createUser,
  resetPassword as ehrResetPassword,
  setActive as ehrSetActive,
  setRoles as ehrSetRoles,
  getUser,
  listUsers,
  ROLES,
  type User,
} from '../ehr/users.ts';
import { NotFoundError, parseInput } from '../http/errors.ts';
import type { SigningKeyInfo } from '../keys/signing-keys.ts';
import {
  addSite,
  addSiteInput,
  type ClientRecord,
  createClient,
  deleteClient,
  deleteSite,
  getClient,
  listClients,
  listSites,
  resetClientSecret,
  type SiteRecord,
  updateClient,
} from '../oidc/clients-store.ts';
import { replaceSiteActions } from './sites.ts';
import { linkPractitioner } from './users.ts';

/** Who is acting: an admin user of the console, or whoever holds the admin token. */
export interface Actor {
  via: 'api' | 'console';
  userId: string | null;
  requestId?: string | null;
  ip?: string | null;
}

// ---- the API's JSON shapes (SPEC §3.3 names) -------------------------------------------------

export interface SiteJson {
  site_num: string;
  client_id: string;
  /** A masked hint of the SEK, never the SEK. */
  shared_encryption_key_hint: string;
  actions: { action: string; label: string }[];
  created_at: string;
  updated_at: string;
}

export const siteJson = (s: SiteRecord): SiteJson => ({
  site_num: s.siteNum,
  client_id: s.clientId,
  shared_encryption_key_hint: s.sekHint,
  actions: s.actions,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
});

export interface UserJson {
  id: string;
  username: string;
  practitioner: string;
  given_name: string;
  family_name: string;
  email: string | null;
  roles: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
  password_changed_at: string;
}

export const userJson = (u: User): UserJson => ({
  id: u.id,
  username: u.username,
  practitioner: `Practitioner/${u.practitionerId}`,
  given_name: u.givenName,
  family_name: u.familyName,
  email: u.email,
  roles: u.roles,
  active: u.active,
  created_at: u.createdAt.toISOString(),
  updated_at: u.updatedAt.toISOString(),
  password_changed_at: u.passwordChangedAt.toISOString(),
});

export interface KeyJson {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  publish_until: string | null;
}

export const keyJson = (k: SigningKeyInfo): KeyJson => ({
  kid: k.kid,
  alg: k.alg,
  state: k.state,
  created_at: k.createdAt,
  activated_at: k.activatedAt ?? null,
  retired_at: k.retiredAt ?? null,
  publish_until: k.publishUntil ?? null,
});

// ---- input schemas the stores do not already have, with the API's field names -----------------

/** Ocean site numbers are numbers; JSON clients may send them as one. */
const siteNumInput = z.union([
  addSiteInput.shape.siteNum,
  z
    .number({ message: 'site_num must be a string' })
    .int({ message: 'site_num must be a whole number or a string' })
    .nonnegative({ message: 'site_num must not be negative' })
    .transform(String),
]);

export const newSiteSchema = z.strictObject({
  site_num: siteNumInput,
  shared_encryption_key: addSiteInput.shape.sharedEncryptionKey,
  actions: addSiteInput.shape.actions,
});

export const siteUpdateSchema = z
  .strictObject({
    actions: addSiteInput.shape.actions.unwrap().optional(),
    shared_encryption_key: addSiteInput.shape.sharedEncryptionKey.optional(),
  })
  .refine((v) => v.actions !== undefined || v.shared_encryption_key !== undefined, {
    message: 'give actions or shared_encryption_key',
  });

export const passwordSchema = z.strictObject({
  password: z.string({ message: 'password must be a string' }),
});

export const userUpdateSchema = z
  .strictObject({
    active: z.boolean({ message: 'active must be true or false' }).optional(),
    roles: z
      .array(z.enum(ROLES, { message: `roles may be ${ROLES.join(', ')}` }), {
        message: 'roles must be a list',
      })
      .optional(),
    /** Links the user to another, existing Practitioner (e.g. one imported with the chart data). */
    practitioner: z
      .string({ message: 'practitioner must be a reference such as Practitioner/123' })
      .regex(/^Practitioner\/[A-Za-z0-9\-.]{1,64}$/, {
        message: 'practitioner must be a reference such as Practitioner/123',
      })
      .optional(),
  })
  .refine((v) => v.active !== undefined || v.roles !== undefined || v.practitioner !== undefined, {
    message: 'give active, roles or practitioner',
  });

/** Field names of a client input, for the audit trail (values may be long; none is secret, but keep it small). */
const fieldNames = (input: unknown): string =>
  input && typeof input === 'object' && !Array.isArray(input)
    ? Object.keys(input).sort().join(',').slice(0, 300)
    : '';

export class AdminOperations {
  constructor(private readonly ctx: AppContext) {}

  private audit(actor: Actor, event: Omit<AuditEvent, 'userId' | 'requestId' | 'ip'>): Promise<void> {
    return this.ctx.audit.record({
      ...event,
      userId: actor.userId,
      requestId: actor.requestId ?? null,
      ip: actor.ip ?? null,
      detail: { via: actor.via, ...(actor.via === 'api' ? { actor: 'admin-token' } : {}), ...event.detail },
    });
  }

  // ---- clients

  listClients(): Promise<ClientRecord[]> {
    return listClients(this.ctx);
  }

  getClient(clientId: string): Promise<ClientRecord> {
    return getClient(this.ctx, clientId);
  }

  async createClient(actor: Actor, input: unknown) {
    const created = await createClient(this.ctx, input);
    const c = created.client;
    await this.audit(actor, {
      action: 'admin.client.create',
      clientId: c.client_id,
      entity: `client/${c.client_id}`,
      detail: {
        auth_method: c.token_endpoint_auth_method,
        alg: c.id_token_signed_response_alg,
        require_pkce: c.require_pkce,
        secret_issued: created.client_secret !== undefined,
      },
    });
    return created;
  }

  async updateClient(actor: Actor, clientId: string, input: unknown) {
    const updated = await updateClient(this.ctx, clientId, input);
    const c = updated.client;
    await this.audit(actor, {
      action: 'admin.client.update',
      clientId,
      entity: `client/${clientId}`,
      detail: {
        fields: fieldNames(input),
        require_pkce: c.require_pkce,
        secret_issued: updated.client_secret !== undefined,
      },
    });
    return updated;
  }

  async deleteClient(actor: Actor, clientId: string): Promise<void> {
    await deleteClient(this.ctx, clientId);
    await this.audit(actor, { action: 'admin.client.delete', clientId, entity: `client/${clientId}` });
  }

  async resetClientSecret(actor: Actor, clientId: string): Promise<string> {
    const secret = await resetClientSecret(this.ctx, clientId);
    await this.audit(actor, { action: 'admin.client.secret_reset', clientId, entity: `client/${clientId}` });
    return secret;
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

  async addSite(actor: Actor, clientId: string, input: unknown): Promise<SiteRecord> {
    const v = parseInput(newSiteSchema, input);
    const site = await addSite(this.ctx, clientId, {
      siteNum: v.site_num,
      sharedEncryptionKey: v.shared_encryption_key,
      ...(v.actions ? { actions: v.actions } : {}),
    });
    await this.audit(actor, {
      action: 'admin.site.create',
      clientId,
      entity: `site/${site.siteNum}`,
      detail: {
        actions: site.actions
          .map((a) => a.action)
          .join(',')
          .slice(0, 300),
      },
    });
    return site;
  }

  async updateSite(actor: Actor, clientId: string, siteNum: string, input: unknown): Promise<SiteRecord> {
    const v = parseInput(siteUpdateSchema, input);
    const site = await replaceSiteActions(this.ctx, clientId, siteNum, {
      ...(v.actions ? { actions: v.actions } : {}),
      ...(v.shared_encryption_key !== undefined ? { sharedEncryptionKey: v.shared_encryption_key } : {}),
    });
    await this.audit(actor, {
      action: 'admin.site.update',
      clientId,
      entity: `site/${siteNum}`,
      detail: { fields: fieldNames(input) },
    });
    return site;
  }

  async deleteSite(actor: Actor, clientId: string, siteNum: string): Promise<void> {
    await deleteSite(this.ctx, clientId, siteNum);
    await this.audit(actor, { action: 'admin.site.delete', clientId, entity: `site/${siteNum}` });
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

  async createUser(actor: Actor, input: unknown): Promise<User> {
    const user = await createUser(this.ctx, input as never);
    await this.audit(actor, {
      action: 'admin.user.create',
      entity: `user/${user.id}`,
      detail: { practitioner: `Practitioner/${user.practitionerId}`, roles: user.roles.join(',') },
    });
    return user;
  }

  async resetPassword(actor: Actor, id: string, input: unknown): Promise<void> {
    const { password } = parseInput(passwordSchema, input);
    await ehrResetPassword(this.ctx, id, password);
    await this.audit(actor, { action: 'admin.user.password_reset', entity: `user/${id}` });
  }

  async updateUser(actor: Actor, id: string, input: unknown): Promise<User> {
    const v = parseInput(userUpdateSchema, input);
    // Roles, active state and Practitioner change together or not at all (setActive also ends sessions).
    await this.ctx.db.transaction(async (tx) => {
      const inTx = {
        db: { query: tx.query.bind(tx), transaction: <T>(fn: (q: typeof tx) => Promise<T>) => fn(tx) },
      };
      const exists = await tx.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [id]);
      if (exists.rowCount === 0) throw new NotFoundError('no such user');
      if (v.practitioner !== undefined) await linkPractitioner(tx, id, v.practitioner);
      if (v.roles !== undefined) await ehrSetRoles(inTx as never, id, v.roles);
      if (v.active !== undefined) await ehrSetActive(inTx as never, id, v.active);
    });
    const user = await this.getUser(id);
    await this.audit(actor, {
      action: 'admin.user.update',
      entity: `user/${id}`,
      detail: {
        ...(v.roles !== undefined ? { roles: user.roles.join(',') } : {}),
        ...(v.active !== undefined ? { active: user.active } : {}),
        ...(v.practitioner !== undefined ? { practitioner: v.practitioner } : {}),
      },
    });
    return user;
  }

  // ---- keys

  async listKeys(): Promise<SigningKeyInfo[]> {
    return this.ctx.keys.list();
  }

  async rotateKeys(actor: Actor): Promise<SigningKeyInfo[]> {
    const keys = await this.ctx.keys.rotate();
    // This instance signs with the new keys at once; the others on their next refresh.
    await this.ctx.keys.reload();
    await this.audit(actor, {
      action: 'admin.keys.rotate',
      entity: 'signing_keys',
      detail: {
        active: keys
          .filter((k) => k.state === 'active')
          .map((k) => k.kid)
          .join(','),
      },
    });
    return keys;
  }
}
