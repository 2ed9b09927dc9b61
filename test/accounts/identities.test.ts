/*
 * Accounts by external identity (src/users/identities.ts) on the real database: one (issuer,
 * subject) is one account even when its first sign-ins race; the same subject at another issuer
 * is another account; the Practitioner keeps what the other system does not own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExternalProfile, findOrCreateByIdentity } from '../../src/accounts/identities.ts';
import { migrate } from '../../src/db/migrate.ts';
import { putResource, readResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const profile = (over: Partial<ExternalProfile> = {}): ExternalProfile => ({
  givenName: 'Rosa',
  familyName: 'Parks',
  email: 'rosa@hospital.example',
  roles: ['clinician'],
  usernameHint: 'rparks',
  ...over,
});

describe('accounts by external identity', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await migrate(t.db);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('makes one account of concurrent first sign-ins of one identity', async () => {
    const id = { issuer: 'https://idp.example.org', subject: 'race-1' };
    const results = await Promise.all([1, 2, 3, 4].map(() => findOrCreateByIdentity(t.db, id, profile())));
    expect(new Set(results.map((r) => r.user.id)).size).toBe(1);
    expect(results.filter((r) => r.outcome === 'created')).toHaveLength(1);
    const { rows } = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM users WHERE username LIKE 'rparks%'`,
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('keeps the same subject at another issuer apart', async () => {
    const a = await findOrCreateByIdentity(t.db, { issuer: 'https://a.example', subject: 's' }, profile());
    const b = await findOrCreateByIdentity(t.db, { issuer: 'https://b.example', subject: 's' }, profile());
    expect(a.user.id).not.toBe(b.user.id);
    expect(a.user.username).not.toBe(b.user.username);
  });

  it('updates the Practitioner’s name and e-mail and keeps its other data', async () => {
    const id = { issuer: 'https://idp.example.org', subject: 'keep-1' };
    const { user } = await findOrCreateByIdentity(t.db, id, profile({ usernameHint: 'keep' }));
    const stored = await readResource(t.db, 'Practitioner', user.practitionerId);
    await putResource(t.db, {
      ...stored!.resource,
      identifier: [{ system: 'https://cpso.on.ca', value: '12345' }],
      telecom: [...(stored!.resource.telecom ?? []), { system: 'phone', value: '416-555-0100' }],
    });
    const again = await findOrCreateByIdentity(
      t.db,
      id,
      profile({ familyName: 'Parks-McCauley', email: undefined }),
    );
    expect(again.outcome).toBe('updated');
    const after = await readResource(t.db, 'Practitioner', user.practitionerId);
    expect(after!.resource.identifier).toEqual([{ system: 'https://cpso.on.ca', value: '12345' }]);
    expect(after!.resource.telecom).toEqual([{ system: 'phone', value: '416-555-0100' }]);
    expect(after!.resource.name?.[0]?.family).toBe('Parks-McCauley');
    expect(again.user.email).toBeNull();
    expect(
      (await findOrCreateByIdentity(t.db, id, profile({ familyName: 'Parks-McCauley', email: undefined })))
        .outcome,
    ).toBe('unchanged');
    expect((await readResource(t.db, 'Practitioner', user.practitionerId))!.versionId).toBe(after!.versionId);
  });

  it('turns any hint into a valid username', async () => {
    const { user } = await findOrCreateByIdentity(
      t.db,
      { issuer: 'https://idp.example.org', subject: 'hint-1' },
      profile({ usernameHint: "Zoë O'Brien <zob>" }),
    );
    expect(user.username).toBe('ZoeOBrienzob');
    const none = await findOrCreateByIdentity(
      t.db,
      { issuer: 'https://idp.example.org', subject: 'hint-2' },
      profile({ usernameHint: '😀' }),
    );
    expect(none.user.username).toMatch(/^user(-[0-9a-f]{6})?$/);
  });
});
