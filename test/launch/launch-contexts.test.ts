import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteResource, putResource } from '../../src/fhir/writes.ts';
import { NotFoundError, ValidationError } from '../../src/http/errors.ts';
import {
  consumeLaunchContext,
  createLaunchContext,
  findLaunchContextByGrant,
  launchContextMembers,
  purgeLaunchContexts,
  usableLaunch,
} from '../../src/launch/launch-contexts.ts';
import { grantLivesSql } from '../../src/oidc/adapter.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createTestClient, createTestSite, createTestUser, type TestUser } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('launch contexts', () => {
  let t: TestDatabase;
  let s: TestServer;
  let user: TestUser;
  let other: TestUser;
  let clientId: string;
  let siteNum: string;
  const sek = 'Shared-Key ✓ 42';

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    user = await createTestUser(s.ctx);
    other = await createTestUser(s.ctx);
    clientId = (await createTestClient(s.ctx)).clientId;
    siteNum = (await createTestSite(s.ctx, clientId, { sek })).siteNum;
    // a launch names a stored patient
    for (const id of ['pat-1', 'pat-2', 'pat-3', 'pat-4', 'pat-race', 'pat-audit', 'p'])
      await putResource(t.db, { resourceType: 'Patient', id });
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const launch = (patientId = 'pat-1') =>
    createLaunchContext(s.ctx, { userId: user.id, patientId, siteNum, action: 'viewMap' });

  it('issues an opaque 256-bit id, stores only its SHA-256, and expires within five minutes', async () => {
    const { launchId, expiresAt, clientId: boundClient } = await launch();
    expect(launchId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(boundClient).toBe(clientId);
    const { rows } = await t.db.query<Record<string, unknown>>('SELECT * FROM launch_contexts');
    expect(JSON.stringify(rows)).not.toContain(launchId);
    const hash = createHash('sha256').update(launchId).digest('hex');
    const row = rows.find((r) => r.id_hash === hash)!;
    expect(row).toMatchObject({
      user_id: user.id,
      patient_id: 'pat-1',
      client_id: clientId,
      site_num: siteNum,
    });
    expect(JSON.stringify(row)).not.toContain(sek);
    const created = new Date(row.created_at as string).getTime();
    expect(new Date(expiresAt).getTime() - created).toBeLessThanOrEqual(300_000 + 1000);
  });

  it('refuses unknown users, patients, sites and actions, and bad patient ids, writing nothing', async () => {
    const count = async () =>
      (await t.db.query('SELECT 1 FROM launch_contexts')).rows.length +
      (await t.db.query("SELECT 1 FROM audit_events WHERE action = 'launch.created'")).rows.length;
    const before = await count();
    await expect(
      createLaunchContext(s.ctx, { userId: 'nobody', patientId: 'p', siteNum, action: 'viewMap' }),
    ).rejects.toThrow(/user/);
    await expect(
      createLaunchContext(s.ctx, { userId: user.id, patientId: 'p', siteNum: 'no-site', action: 'viewMap' }),
    ).rejects.toThrow(/site/);
    await expect(
      createLaunchContext(s.ctx, { userId: user.id, patientId: 'p', siteNum, action: 'hackTheGibson' }),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      createLaunchContext(s.ctx, { userId: user.id, patientId: 'p/../x', siteNum, action: 'viewMap' }),
    ).rejects.toBeInstanceOf(ValidationError);
    // a patient that is not stored, or no longer (deleted), is refused by the same statement
    await expect(
      createLaunchContext(s.ctx, { userId: user.id, patientId: 'nobody-here', siteNum, action: 'viewMap' }),
    ).rejects.toMatchObject({ name: 'LaunchRefusedError', reason: 'patient' });
    await putResource(t.db, { resourceType: 'Patient', id: 'pat-gone' });
    await deleteResource(t.db, 'Patient', 'pat-gone');
    await expect(
      createLaunchContext(s.ctx, { userId: user.id, patientId: 'pat-gone', siteNum, action: 'viewMap' }),
    ).rejects.toMatchObject({ name: 'LaunchRefusedError', reason: 'patient' });
    // a site whose client has no launch URL cannot send anyone to Ocean: no context either
    const bare = await createTestClient(s.ctx, { launch_url: null });
    const bareSite = (await createTestSite(s.ctx, bare.clientId)).siteNum;
    await expect(
      createLaunchContext(s.ctx, { userId: user.id, patientId: 'p', siteNum: bareSite, action: 'viewMap' }),
    ).rejects.toMatchObject({ name: 'LaunchRefusedError', reason: 'launch_url' });
    expect(await count()).toBe(before);
  });

  it('writes launch.created and launch.consumed in the statements that create and consume', async () => {
    const events = async (action: string, patientId: string) =>
      (
        await t.db.query<{ user_id: string; client_id: string; request_id: string; entity: string }>(
          'SELECT user_id, client_id, request_id, entity FROM audit_events WHERE action = $1 AND patient_id = $2',
          [action, patientId],
        )
      ).rows;
    const { launchId } = await createLaunchContext(
      s.ctx,
      { userId: user.id, patientId: 'pat-audit', siteNum, action: 'viewMap' },
      { requestId: 'req-create', ip: '192.0.2.1' },
    );
    expect(await events('launch.created', 'pat-audit')).toEqual([
      { user_id: user.id, client_id: clientId, request_id: 'req-create', entity: `site/${siteNum}` },
    ]);
    const c = { launchId, clientId, grantId: 'grant-audit', ehrSessionId: 'sid-audit', requestId: 'req-use' };
    // a refused consumption (another user) writes no event
    expect(await consumeLaunchContext(s.ctx, { ...c, userId: other.id })).toBeUndefined();
    expect(await events('launch.consumed', 'pat-audit')).toEqual([]);
    expect(await consumeLaunchContext(s.ctx, { ...c, userId: user.id })).toBeDefined();
    expect(await consumeLaunchContext(s.ctx, { ...c, userId: user.id })).toBeUndefined();
    expect(await events('launch.consumed', 'pat-audit')).toEqual([
      { user_id: user.id, client_id: clientId, request_id: 'req-use', entity: 'Patient/pat-audit' },
    ]);
  });

  it('is consumed once, only by its client and its user, binding grant and EHR session', async () => {
    const { launchId } = await launch('pat-2');
    expect(await usableLaunch(t.db, launchId, clientId)).toEqual({ userId: user.id, requestedBy: null });
    expect(await usableLaunch(t.db, launchId, 'another-client')).toBeUndefined();
    const c = { launchId, clientId, grantId: 'grant-1', ehrSessionId: 'sid-1' };
    expect(await consumeLaunchContext(s.ctx, { ...c, userId: other.id })).toBeUndefined();
    expect(
      await consumeLaunchContext(s.ctx, { ...c, userId: user.id, clientId: 'another-client' }),
    ).toBeUndefined();
    const lc = await consumeLaunchContext(s.ctx, { ...c, userId: user.id });
    expect(lc).toMatchObject({
      userId: user.id,
      patientId: 'pat-2',
      clientId,
      siteNum,
      action: 'viewMap',
      grantId: 'grant-1',
      ehrSessionId: 'sid-1',
      practitionerId: user.practitionerId,
    });
    expect(lc!.usedAt).not.toBeNull();
    expect(await consumeLaunchContext(s.ctx, { ...c, userId: user.id, grantId: 'grant-2' })).toBeUndefined();
    expect(await usableLaunch(t.db, launchId, clientId)).toBeUndefined();
    expect((await findLaunchContextByGrant(s.ctx, 'grant-1'))?.patientId).toBe('pat-2');
  });

  it('concurrent redemptions of one launch: exactly one wins', async () => {
    const { launchId } = await launch('pat-race');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        consumeLaunchContext(s.ctx, {
          launchId,
          clientId,
          userId: user.id,
          grantId: `g-race-${i}`,
          ehrSessionId: 's',
        }),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('cannot be consumed after it expires, and expired ones are purged', async () => {
    const { launchId } = await launch('pat-3');
    const hash = createHash('sha256').update(launchId).digest('hex');
    await t.db.query(
      `UPDATE launch_contexts SET expires_at = now() - interval '1 second' WHERE id_hash = $1`,
      [hash],
    );
    expect(await usableLaunch(t.db, launchId, clientId)).toBeUndefined();
    expect(
      await consumeLaunchContext(s.ctx, {
        launchId,
        clientId,
        userId: user.id,
        grantId: 'g3',
        ehrSessionId: 's',
      }),
    ).toBeUndefined();
    await purgeLaunchContexts(s.ctx, grantLivesSql);
    const { rows } = await t.db.query('SELECT 1 FROM launch_contexts WHERE id_hash = $1', [hash]);
    expect(rows).toHaveLength(0);
  });

  it('ignores ids that cannot be ours without querying for them', async () => {
    expect(await usableLaunch(t.db, "x' OR 1=1 --", clientId)).toBeUndefined();
    expect(
      await consumeLaunchContext(s.ctx, {
        launchId: '',
        clientId,
        userId: user.id,
        grantId: 'g',
        ehrSessionId: 's',
      }),
    ).toBeUndefined();
  });

  it('maps to token-response members, access-token claims and introspection members that agree', async () => {
    const { launchId } = await launch('pat-4');
    const lc = (await consumeLaunchContext(s.ctx, {
      launchId,
      clientId,
      userId: user.id,
      grantId: 'g4',
      ehrSessionId: 's',
    }))!;
    const m = launchContextMembers(s.ctx, lc);
    const sekB64 = Buffer.from(sek, 'utf8').toString('base64');
    const fhirUser = `${s.ctx.config.fhirBaseUrl}/Practitioner/${user.practitionerId}`;
    expect(m.tokenResponse).toEqual({
      patient: 'pat-4',
      need_patient_banner: true,
      smart_style_url: `${s.ctx.config.publicUrl}/smart-style.json`,
      oceanSharedEncryptionKey: sekB64,
    });
    expect(m.accessTokenClaims).toEqual({
      patient: 'pat-4',
      fhirUser,
      need_patient_banner: true,
      oceanSharedEncryptionKey: sekB64,
    });
    expect(m.introspection).toEqual({ ...m.tokenResponse, fhirUser });
    expect(Buffer.from(m.tokenResponse.oceanSharedEncryptionKey, 'base64').toString('utf8')).toBe(sek);
  });
});
