import { describe, expect, it } from 'vitest';
import { grantScopes, parseClinicalScope, scopesPermitting } from '../../src/smart/scopes.ts';

describe('SMART scopes', () => {
  it('parses v1 scopes into read/search or write permissions', () => {
    const read = parseClinicalScope('patient/Observation.read')!;
    expect(read).toMatchObject({ level: 'patient', resourceType: 'Observation', version: 1 });
    expect([...read.permissions].sort()).toEqual(['r', 's']);
    expect([...parseClinicalScope('user/*.*')!.permissions].sort()).toEqual(['c', 'd', 'r', 's', 'u']);
    expect([...parseClinicalScope('patient/*.write')!.permissions].sort()).toEqual(['c', 'd', 'u']);
  });

  it('parses v2 scopes, with granular queries', () => {
    const v2 = parseClinicalScope('patient/Observation.rs?category=laboratory')!;
    expect(v2).toMatchObject({ level: 'patient', resourceType: 'Observation', version: 2 });
    expect([...v2.permissions]).toEqual(['r', 's']);
    expect(v2.query?.get('category')).toBe('laboratory');
    expect(parseClinicalScope('user/*.cruds')!.permissions.size).toBe(5);
  });

  it('rejects malformed scopes', () => {
    for (const s of [
      'patient/$everything',
      'patient/Observation.sr',
      'patient/observation.read',
      'patient/*.',
      'doctor/*.read',
      'patient/*.rx',
    ]) {
      expect(parseClinicalScope(s), s).toBeUndefined();
    }
  });

  it('grants Ocean what it can have and drops the rest, never refusing', () => {
    const requested =
      'openid fhirUser profile launch launch/patient online_access patient/Patient.read patient/*.read patient/$everything user/*.* system/*.read patient/Observation.rs?category=laboratory patient/*.cruds'.split(
        ' ',
      );
    const { granted, dropped } = grantScopes({ requested, hasLaunchContext: true });
    expect(granted).toEqual([
      'openid',
      'fhirUser',
      'profile',
      'launch',
      'launch/patient',
      'online_access',
      'patient/Patient.read',
      'patient/*.read',
      'patient/Observation.rs?category=laboratory',
    ]);
    expect(dropped).toEqual(['patient/$everything', 'user/*.*', 'system/*.read', 'patient/*.cruds']);
  });

  it('drops patient-level and launch scopes without a launch context, and honours the client allow-list', () => {
    const r = grantScopes({
      requested: ['openid', 'launch', 'patient/*.read', 'user/*.read', 'online_access'],
      hasLaunchContext: false,
    });
    expect(r.granted).toEqual(['openid', 'user/*.read']);
    const allowed = grantScopes({
      requested: ['openid', 'patient/*.read', 'user/*.read'],
      hasLaunchContext: true,
      clientAllowed: new Set(['openid', 'patient/*.read']),
    });
    expect(allowed.granted).toEqual(['openid', 'patient/*.read']);
  });

  it('tells a resource server which scopes permit an access', () => {
    const scope = 'openid patient/Patient.read patient/Observation.rs?category=laboratory';
    expect(scopesPermitting(scope, 'patient', 'Patient', 'r')).toHaveLength(1);
    expect(scopesPermitting(scope, 'patient', 'Observation', 's')[0]?.query?.get('category')).toBe(
      'laboratory',
    );
    expect(scopesPermitting(scope, 'patient', 'Condition', 'r')).toHaveLength(0);
    expect(scopesPermitting(scope, 'user', 'Patient', 'r')).toHaveLength(0);
  });
});
