import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresAdapter, purgeExpiredModels } from '../../src/oidc/adapter.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createTestClient, issueTokens, tokenRequest } from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('PostgreSQL adapter for oidc-provider', () => {
  let t: TestDatabase;
  let s: TestServer;
  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  it('stores, finds and destroys a model instance', async () => {
    const Adapter = postgresAdapter(s.ctx);
    const codes = new Adapter('AuthorizationCode');
    await codes.upsert('c1', { kind: 'AuthorizationCode', grantId: 'g1', accountId: 'u' } as never, 60);
    expect(await codes.find('c1')).toMatchObject({ kind: 'AuthorizationCode', grantId: 'g1' });
    // Models are separate namespaces.
    expect(await new Adapter('RefreshToken').find('c1')).toBeUndefined();
    await codes.upsert('c1', { kind: 'AuthorizationCode', grantId: 'g1', accountId: 'v' } as never, 60);
    expect((await codes.find('c1'))?.accountId).toBe('v');
    await codes.destroy('c1');
    expect(await codes.find('c1')).toBeUndefined();
  });

  it('marks consumed codes, so a replay is seen', async () => {
    const codes = new (postgresAdapter(s.ctx))('AuthorizationCode');
    await codes.upsert('c2', { kind: 'AuthorizationCode', grantId: 'g2' } as never, 60);
    expect((await codes.find('c2'))?.consumed).toBeUndefined();
    await codes.consume('c2');
    expect(typeof (await codes.find('c2'))?.consumed).toBe('number');
  });

  it('never returns an expired row, and purges them', async () => {
    const sessions = new (postgresAdapter(s.ctx))('Session');
    await sessions.upsert('s1', { kind: 'Session', uid: 'uid-1' } as never, 60);
    expect(await sessions.findByUid!('uid-1')).toMatchObject({ uid: 'uid-1' });
    await t.db.query(`UPDATE oidc_models SET expires_at = now() - interval '1 second' WHERE id = 's1'`);
    expect(await sessions.find('s1')).toBeUndefined();
    expect(await sessions.findByUid!('uid-1')).toBeUndefined();
    expect(await purgeExpiredModels(s.ctx)).toBeGreaterThanOrEqual(1);
    expect((await t.db.query(`SELECT 1 FROM oidc_models WHERE id = 's1'`)).rows).toHaveLength(0);
  });

  it('finds by user code', async () => {
    const dc = new (postgresAdapter(s.ctx))('DeviceCode');
    await dc.upsert('d1', { kind: 'DeviceCode', userCode: 'ABCD-EFGH' } as never, 60);
    expect(await dc.findByUserCode!('ABCD-EFGH')).toMatchObject({ userCode: 'ABCD-EFGH' });
  });

  it('revokeByGrantId removes every artefact of the grant, whatever its model', async () => {
    const Adapter = postgresAdapter(s.ctx);
    await new Adapter('AuthorizationCode').upsert('c3', { grantId: 'g3' } as never, 60);
    await new Adapter('RefreshToken').upsert('r3', { grantId: 'g3' } as never, 60);
    await new Adapter('RefreshToken').upsert('r4', { grantId: 'g4' } as never, 60);
    await new Adapter('AuthorizationCode').revokeByGrantId('g3');
    expect(await new Adapter('AuthorizationCode').find('c3')).toBeUndefined();
    expect(await new Adapter('RefreshToken').find('r3')).toBeUndefined();
    expect(await new Adapter('RefreshToken').find('r4')).toBeDefined();
  });

  it('reads clients from the clients table, with the secret as its keyed hash only', async () => {
    const c = await createTestClient(s.ctx, { token_endpoint_auth_method: 'client_secret_post' });
    const found = await new (postgresAdapter(s.ctx))('Client').find(c.clientId);
    expect(found).toMatchObject({ client_id: c.clientId, token_endpoint_auth_method: 'client_secret_post' });
    expect(found?.client_secret).toBe(s.ctx.box.keyedHash(c.clientSecret!, 'client-secret'));
    expect(await new (postgresAdapter(s.ctx))('Client').find('unknown-client')).toBeUndefined();
  });

  it('a restart loses nothing: a refresh token works on a new server over the same database', async () => {
    const r = await issueTokens(s, {
      patientId: 'p-restart',
      scope: 'openid launch patient/*.read offline_access',
    });
    const publicUrl = s.url;
    await s.stop();
    s = await startTestServer(t.db, { PUBLIC_URL: publicUrl });
    const refreshed = await tokenRequest(
      s.url,
      { grant_type: 'refresh_token', refresh_token: r.body.refresh_token! },
      { clientId: r.client.clientId },
    );
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.patient).toBe('p-restart');
  });
});
