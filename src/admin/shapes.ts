/*
 * The admin API's JSON, both ways, with the contract's field names (docs/CONTRACT.md §3.3):
 * - answers: sites, users and keys as JSON (a SEK only as its masked hint, never a key's private part)
 * - inputs the stores do not already validate (site and user changes, a new password)
 */
import { z } from 'zod';
import type { SigningKeyInfo } from '../keys/signing-keys.ts';
import { addSiteInput, type SiteRecord } from '../sites/sites.ts';
import { ROLES, type User } from '../users/users.ts';

// ---- the API's JSON shapes (CONTRACT §3.3 names) ---------------------------------------------

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
