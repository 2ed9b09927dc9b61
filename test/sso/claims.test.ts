/*
 * The provider's claims as an account profile: names (with the `name` fallback), e-mail, and the
 * administrator role read from the roles claim however the provider shapes it.
 */
import { describe, expect, it } from 'vitest';
import { claimValues, profileFromClaims } from '../../src/sso/claims.ts';

const settings = { rolesClaim: 'roles', adminRole: 'ehr-admin' };

describe('claims → profile', () => {
  it('takes given_name, family_name, email and preferred_username; everyone is a clinician', () => {
    expect(
      profileFromClaims(
        {
          given_name: ' Ada ',
          family_name: 'Lovelace',
          email: 'ada@hospital.example',
          preferred_username: 'ada',
        },
        settings,
      ),
    ).toEqual({
      profile: {
        givenName: 'Ada',
        familyName: 'Lovelace',
        email: 'ada@hospital.example',
        roles: ['clinician'],
        usernameHint: 'ada',
      },
    });
  });

  it('splits `name` at its last space when the parts are missing (Entra ID sends only name)', () => {
    const r = profileFromClaims({ name: 'Mary Jane Watson', email: 'not an e-mail' }, settings);
    expect(r).toMatchObject({ profile: { givenName: 'Mary Jane', familyName: 'Watson', email: undefined } });
    expect(profileFromClaims({ name: 'Madonna' }, settings)).toMatchObject({
      profile: { givenName: 'Madonna', familyName: 'Madonna' },
    });
  });

  it('refuses claims without any name, and strips control characters', () => {
    expect(profileFromClaims({ email: 'x@y.example' }, settings)).toEqual({ refused: 'no_name_claim' });
    expect(profileFromClaims({ given_name: '\u0000\u0007', family_name: 5 }, settings)).toEqual({
      refused: 'no_name_claim',
    });
    expect(profileFromClaims({ given_name: 'A\u0000b', family_name: 'C\r\nD' }, settings)).toMatchObject({
      profile: { givenName: 'Ab', familyName: 'CD' },
    });
  });

  it('makes an administrator only for the configured value of the roles claim', () => {
    const roles = (claims: Record<string, unknown>, s = settings) =>
      'profile' in profileFromClaims({ name: 'A B', ...claims }, s)
        ? (profileFromClaims({ name: 'A B', ...claims }, s) as { profile: { roles: string[] } }).profile.roles
        : [];
    expect(roles({ roles: ['ehr-admin', 'x'] })).toEqual(['clinician', 'admin']);
    expect(roles({ roles: 'ehr-admin' })).toEqual(['clinician', 'admin']);
    expect(roles({ roles: ['EHR-ADMIN', 'ehr-admins'] })).toEqual(['clinician']);
    expect(roles({ roles: { 'ehr-admin': true } })).toEqual(['clinician']);
    expect(
      roles({ roles: ['ehr-admin'] }, { rolesClaim: 'roles', adminRole: undefined as unknown as string }),
    ).toEqual(['clinician']);
  });

  it('reads a dotted path (Keycloak) and a claim whose name holds dots (namespaced URIs)', () => {
    expect(claimValues({ realm_access: { roles: ['a', 'b', 3] } }, 'realm_access.roles')).toEqual(['a', 'b']);
    expect(claimValues({ 'https://ehr.example.org/roles': ['a'] }, 'https://ehr.example.org/roles')).toEqual([
      'a',
    ]);
    expect(claimValues({ realm_access: ['x'] }, 'realm_access.roles')).toEqual([]);
    expect(claimValues({}, 'groups')).toEqual([]);
  });
});
