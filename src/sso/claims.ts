/*
 * The identity provider's claims (id_token, filled in by userinfo) as the account's profile.
 * - names: given_name + family_name (OIDC Core §5.1), else `name` split at its last space;
 *   no name at all refuses the sign-in: Ocean links its users on the name (docs/CONTRACT.md §2), and an
 *   account without one would be a stranger to it
 * - e-mail: the `email` claim when it is an e-mail address; it is shown and released, never a key
 * - roles: every such user is a clinician; an administrator too when the roles claim
 *   (IDP_ROLES_CLAIM: a claim name, or a dotted path such as realm_access.roles) holds IDP_ADMIN_ROLE.
 *   The claim may be one string or an array of strings (Entra ID, Okta, Keycloak all differ)
 * - every text is trimmed, stripped of control characters and cut to the column's length
 */
import { z } from 'zod';
import type { IdentityProviderConfig } from '../config.ts';
import type { ExternalProfile } from '../users/identities.ts';
import type { Role } from '../users/users.ts';

type Claims = Record<string, unknown>;

const NAME_MAX = 100;
const email = z.email().max(254);

/** A profile, or the reason the claims cannot make one. */
export type ProfileResult = { profile: ExternalProfile } | { refused: 'no_name_claim' };

export function profileFromClaims(
  claims: Claims,
  settings: Pick<IdentityProviderConfig, 'rolesClaim' | 'adminRole'>,
): ProfileResult {
  let givenName = text(claims.given_name, NAME_MAX);
  let familyName = text(claims.family_name, NAME_MAX);
  const full = text(claims.name, 2 * NAME_MAX);
  if (!givenName && !familyName && full) {
    const cut = full.lastIndexOf(' ');
    givenName = cut > 0 ? full.slice(0, cut).slice(0, NAME_MAX).trim() : '';
    familyName = (cut > 0 ? full.slice(cut + 1) : full).slice(0, NAME_MAX).trim();
  }
  if (!givenName && !familyName) return { refused: 'no_name_claim' };
  const mail =
    typeof claims.email === 'string' && email.safeParse(claims.email).success ? claims.email : undefined;
  const roles: Role[] = ['clinician'];
  if (settings.adminRole && claimValues(claims, settings.rolesClaim).includes(settings.adminRole)) {
    roles.push('admin');
  }
  return {
    profile: {
      // One part missing: the other stands for both halves rather than leave the Practitioner nameless.
      givenName: givenName || familyName,
      familyName: familyName || givenName,
      email: mail,
      roles,
      usernameHint: text(claims.preferred_username, 254) || mail,
    },
  };
}

/** The values of a claim: the claim named exactly so (it may hold dots, like a URI), else a dotted path. */
export function claimValues(claims: Claims, name: string): string[] {
  let value: unknown = claims[name];
  if (value === undefined && name.includes('.')) {
    value = name.split('.').reduce<unknown>((at, key) => {
      if (at && typeof at === 'object' && !Array.isArray(at)) return (at as Claims)[key];
      return undefined;
    }, claims);
  }
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function text(value: unknown, max: number): string {
  if (typeof value !== 'string') return '';
  return value
    .replace(/\p{Cc}/gu, '')
    .trim()
    .slice(0, max)
    .trim();
}
