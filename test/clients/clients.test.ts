import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createClient,
  deleteClient,
  getClient,
  listClients,
  resetClientSecret,
  updateClient,
} from '../../src/clients/clients.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../src/http/errors.ts';
import { forgetClient } from '../../src/oidc/adapter.ts';
import { addSite, getSite } from '../../src/sites/sites.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('client store', () => {
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

  const base = {
    name: 'Ocean',
    redirect_uris: ['https://ocean.example.test/cb'],
    launch_url: 'https://ocean.example.test/sso/smart/auth',
  };

  it('draws an unguessable client_id and defaults RS256, PKCE on, pre-authorized', async () => {
    const { client, client_secret } = await createClient(s.ctx, {
      ...base,
      token_endpoint_auth_method: 'none',
    });
    expect(client.client_id).toMatch(/^[A-Za-z0-9_-]{24}$/); // 18 random bytes = 144 bits
    expect(client_secret).toBeUndefined();
    expect(client).toMatchObject({
      id_token_signed_response_alg: 'RS256',
      require_pkce: true,
      pre_authorized: true,
      has_secret: false,
    });
    const other = await createClient(s.ctx, { ...base, token_endpoint_auth_method: 'none' });
    expect(other.client.client_id).not.toBe(client.client_id);
  });

  it('returns a URL-safe secret once and stores only its keyed hash', async () => {
    const { client, client_secret } = await createClient(s.ctx, {
      ...base,
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const { rows } = await t.db.query<{ client_secret_hash: string; metadata: unknown }>(
      'SELECT client_secret_hash, metadata FROM clients WHERE client_id = $1',
      [client.client_id],
    );
    expect(rows[0]!.client_secret_hash).toBe(s.ctx.box.keyedHash(client_secret!, 'client-secret'));
    expect(JSON.stringify(rows[0])).not.toContain(client_secret);
    expect(JSON.stringify(await getClient(s.ctx, client.client_id))).not.toContain(client_secret);

    const fresh = await resetClientSecret(s.ctx, client.client_id);
    expect(fresh).not.toBe(client_secret);
    const after = await t.db.query<{ client_secret_hash: string }>(
      'SELECT client_secret_hash FROM clients WHERE client_id = $1',
      [client.client_id],
    );
    expect(after.rows[0]!.client_secret_hash).toBe(s.ctx.box.keyedHash(fresh, 'client-secret'));
  });

  it('refuses a duplicate client_id with a ConflictError and keeps the first', async () => {
    await createClient(s.ctx, { ...base, client_id: 'ocean-fixed-id', token_endpoint_auth_method: 'none' });
    await expect(
      createClient(s.ctx, {
        ...base,
        name: 'Other',
        client_id: 'ocean-fixed-id',
        token_endpoint_auth_method: 'none',
      }),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await getClient(s.ctx, 'ocean-fixed-id')).name).toBe('Ocean');
  });

  it('names every bad field and writes nothing', async () => {
    const before = (await listClients(s.ctx)).length;
    const err = await createClient(s.ctx, {
      name: '',
      redirect_uris: ['not a url', 'https://x.test/cb#frag'],
      token_endpoint_auth_method: 'client_secret_jwt',
      id_token_signed_response_alg: 'none',
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.status).toBe(400);
    const paths = (err as ValidationError).issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'name',
        'redirect_uris.0',
        'redirect_uris.1',
        'token_endpoint_auth_method',
        'id_token_signed_response_alg',
      ]),
    );
    await expect(
      createClient(s.ctx, { ...base, token_endpoint_auth_method: 'private_key_jwt' }),
    ).rejects.toThrow(/jwks_uri or jwks/);
    await expect(
      createClient(s.ctx, {
        ...base,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' }] },
      }),
    ).rejects.toThrow(/public keys only/);
    await expect(
      createClient(s.ctx, { ...base, token_endpoint_auth_method: 'none', extra: 1 }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect((await listClients(s.ctx)).length).toBe(before);
  });

  it('updates partially, draws a secret when switching to a secret method, forgets it when switching away', async () => {
    const { client } = await createClient(s.ctx, { ...base, token_endpoint_auth_method: 'none' });
    const r1 = await updateClient(s.ctx, client.client_id, {
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'ES256',
      require_pkce: false,
    });
    expect(r1.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r1.client).toMatchObject({
      name: 'Ocean',
      id_token_signed_response_alg: 'ES256',
      require_pkce: false,
      has_secret: true,
    });
    const r2 = await updateClient(s.ctx, client.client_id, { name: 'Ocean 2' });
    expect(r2.client_secret).toBeUndefined();
    expect(r2.client.has_secret).toBe(true);
    const r3 = await updateClient(s.ctx, client.client_id, { token_endpoint_auth_method: 'none' });
    expect(r3.client.has_secret).toBe(false);
    await expect(updateClient(s.ctx, 'no-such-client-id', { name: 'x' })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(updateClient(s.ctx, client.client_id, { require_pkce: 'no' })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(resetClientSecret(s.ctx, client.client_id)).rejects.toBeInstanceOf(ValidationError);
  });

  it('deletes a client with its sites and its OIDC state', async () => {
    const { client } = await createClient(s.ctx, { ...base, token_endpoint_auth_method: 'none' });
    await addSite(s.ctx, client.client_id, { siteNum: '555', sharedEncryptionKey: 'k' });
    await t.db.query(`INSERT INTO oidc_models (model, id, payload) VALUES ('Grant', 'g-del', $1)`, [
      JSON.stringify({ clientId: client.client_id }),
    ]);
    await s.ctx.db.transaction(async (tx) => {
      await deleteClient({ db: tx }, client.client_id);
      await forgetClient(tx, client.client_id);
    });
    await expect(getClient(s.ctx, client.client_id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(getSite(s.ctx, '555')).rejects.toBeInstanceOf(NotFoundError);
    const { rows } = await t.db.query(`SELECT 1 FROM oidc_models WHERE id = 'g-del'`);
    expect(rows).toHaveLength(0);
    await expect(deleteClient(s.ctx, client.client_id)).rejects.toBeInstanceOf(NotFoundError);
  });
});
