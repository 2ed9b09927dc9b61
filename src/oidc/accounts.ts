/*
 * EHR users as OpenID Connect accounts (oidc-provider findAccount).
 * - accountId = users.id: the id_token `sub`, drawn once and never changed (CONTRACT §2 item 5)
 * - fhirUser and profile are the absolute URL of the user's Practitioner (SMART 2.2 §"fhirUser")
 * - the demographic claims Ocean matches on (name, given_name, family_name, email) are released
 *   with `fhirUser` as well as `profile`, because Ocean links users on them (CONTRACT §2 item 5)
 * - an inactive or deleted user is no account: their codes and refresh tokens stop working
 */
import type { Account } from 'oidc-provider';
import type { AppContext } from '../context.ts';
import { fhirUserUrl } from '../smart/fhir-user.ts';
import { getUser } from '../users/users.ts';

/** Which claims each scope releases (oidc-provider `claims`). */
export const CLAIMS_BY_SCOPE = {
  openid: ['sub'],
  fhirUser: ['fhirUser', 'profile', 'name', 'given_name', 'family_name', 'email'],
  profile: ['profile', 'name', 'given_name', 'family_name'],
  email: ['email'],
};

export async function loadAccount(ctx: AppContext, accountId: string): Promise<Account | undefined> {
  if (typeof accountId !== 'string' || accountId.length === 0 || accountId.length > 200) return undefined;
  const user = await getUser(ctx, accountId);
  if (!user?.active) return undefined;
  const fhirUser = fhirUserUrl(ctx.config, user.practitionerId);
  return {
    accountId: user.id,
    claims: () => ({
      sub: user.id,
      fhirUser,
      profile: fhirUser,
      name: `${user.givenName} ${user.familyName}`.trim(),
      given_name: user.givenName,
      family_name: user.familyName,
      ...(user.email ? { email: user.email } : {}),
    }),
  };
}
