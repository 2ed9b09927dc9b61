import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../src/http/errors.ts';
import { addSite, decryptSek, deleteSite, getSite, listSites } from '../../src/sites/sites.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('site store', () => {
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

  it('stores a site SEK encrypted with a masked hint and returns it only through decryptSek', async () => {
    const { client } = await createClient(s.ctx, { ...base, token_endpoint_auth_method: 'none' });
    const sek = 'Ocean-SEK-value-ünïcode-1234';
    const site = await addSite(s.ctx, client.client_id, {
      siteNum: '4321',
      sharedEncryptionKey: sek,
      actions: ['viewMap', { action: 'referDirect', label: 'Refer' }],
    });
    expect(site.sekHint).toBe('••••••1234');
    expect(JSON.stringify(site)).not.toContain(sek);
    const { rows } = await t.db.query('SELECT * FROM sites WHERE site_num = $1', ['4321']);
    expect(JSON.stringify(rows)).not.toContain(sek);

    const full = await getSite(s.ctx, '4321');
    expect(full).toMatchObject({
      clientId: client.client_id,
      actions: [
        { action: 'viewMap', label: 'viewMap' },
        { action: 'referDirect', label: 'Refer' },
      ],
    });
    expect(decryptSek(s.ctx, '4321', full.sekEncrypted)).toBe(sek);
    // The ciphertext is bound to its site: it cannot be replayed as another site's SEK.
    expect(() => decryptSek(s.ctx, '9999', full.sekEncrypted)).toThrow();
    expect((await listSites(s.ctx, client.client_id)).map((x) => x.siteNum)).toEqual(['4321']);
  });

  it('refuses duplicate sites, unknown clients and bad site input', async () => {
    const { client } = await createClient(s.ctx, { ...base, token_endpoint_auth_method: 'none' });
    await addSite(s.ctx, client.client_id, { siteNum: '777', sharedEncryptionKey: 'k' });
    await expect(
      addSite(s.ctx, client.client_id, { siteNum: '777', sharedEncryptionKey: 'k2' }),
    ).rejects.toBeInstanceOf(ConflictError);
    await expect(
      addSite(s.ctx, 'nope-nope-nope', { siteNum: '778', sharedEncryptionKey: 'k' }),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      addSite(s.ctx, client.client_id, { siteNum: '7 8', sharedEncryptionKey: ' ' }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      addSite(s.ctx, client.client_id, {
        siteNum: '779',
        sharedEncryptionKey: 'k',
        actions: ['viewMap', 'viewMap'],
      }),
    ).rejects.toThrow(/unique/);
    const defaults = await getSite(s.ctx, '777');
    expect(defaults.actions.map((a) => a.action)).toContain('viewMap');
    await expect(getSite(s.ctx, '778')).rejects.toBeInstanceOf(NotFoundError);
    await deleteSite(s.ctx, client.client_id, '777');
    await expect(deleteSite(s.ctx, client.client_id, '777')).rejects.toBeInstanceOf(NotFoundError);
  });
});
