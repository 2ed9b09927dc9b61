import { randomBytes } from 'node:crypto';
import { importJWK, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.ts';
import { SecretBox } from '../../src/keys/secret-box.ts';
import { SigningKeys } from '../../src/keys/signing-keys.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const options = { maxTokenLifetimeSeconds: 3600, refreshIntervalSeconds: 5 };

describe('signing keys', () => {
  let t: TestDatabase;
  const key = randomBytes(32);
  beforeAll(async () => {
    t = await createTestDatabase();
    await migrate(t.db);
  });
  afterAll(async () => {
    await t.drop();
  });

  it('generates one active and one next key per algorithm on first start, with unique kids', async () => {
    const keys = new SigningKeys(t.db, new SecretBox(key), options);
    await keys.init();
    const list = await keys.list();
    expect(list.map((k) => `${k.alg}:${k.state}`).sort()).toEqual([
      'ES256:active',
      'ES256:next',
      'RS256:active',
      'RS256:next',
    ]);
    const jwks = keys.publicJwks();
    expect(new Set(jwks.keys.map((k) => k.kid)).size).toBe(4);
    for (const k of jwks.keys) {
      expect(k).not.toHaveProperty('d');
      expect(k.use).toBe('sig');
    }
    const rsa = jwks.keys.find((k) => k.alg === 'RS256')!;
    expect(Buffer.from(rsa.n!, 'base64url').length * 8).toBeGreaterThanOrEqual(2048);
    expect(jwks.keys.find((k) => k.alg === 'ES256')?.crv).toBe('P-256');
  });

  it('stores private keys only encrypted', async () => {
    const { rows } = await t.db.query<{ private_jwk_encrypted: string; public_jwk: object }>(
      'SELECT private_jwk_encrypted, public_jwk FROM signing_keys',
    );
    for (const r of rows) {
      expect(r.private_jwk_encrypted).toMatch(/^v1\./);
      expect(r.private_jwk_encrypted).not.toContain('"d"');
      expect(r.public_jwk).not.toHaveProperty('d');
    }
  });

  it('persists across restarts and is identical for two instances sharing database and SECRETS_KEY', async () => {
    const a = new SigningKeys(t.db, new SecretBox(key), options);
    const b = new SigningKeys(await t.connectAnother(), new SecretBox(key), options);
    await Promise.all([a.init(), b.init()]);
    expect(a.publicJwks()).toEqual(b.publicJwks());
    expect((await a.list()).length).toBe(4); // no duplicate generation
  });

  it('cannot load keys with another SECRETS_KEY', async () => {
    const other = new SigningKeys(t.db, new SecretBox(randomBytes(32)), options);
    await expect(other.init()).rejects.toThrow(/cannot be decrypted/);
  });

  it('rotates next → active → retired and keeps retired keys published', async () => {
    const a = new SigningKeys(t.db, new SecretBox(key), options);
    const b = new SigningKeys(await t.connectAnother(), new SecretBox(key), options);
    await a.init();
    await b.init();
    const before = await a.list();
    const oldActive = before.find((k) => k.alg === 'RS256' && k.state === 'active')!;
    const oldNext = before.find((k) => k.alg === 'RS256' && k.state === 'next')!;

    // A token signed before the rotation…
    const signer = await importJWK(a.activePrivateJwk('RS256'), 'RS256');
    const token = await new SignJWT({ x: 1 })
      .setProtectedHeader({ alg: 'RS256', kid: oldActive.kid })
      .setExpirationTime('10m')
      .sign(signer);

    await a.rotate();
    const after = await a.list();
    expect(after.find((k) => k.kid === oldActive.kid)?.state).toBe('retired');
    expect(after.find((k) => k.kid === oldNext.kid)?.state).toBe('active');
    expect(after.filter((k) => k.alg === 'RS256' && k.state === 'next')).toHaveLength(1);
    expect(a.activePrivateJwk('RS256').kid).toBe(oldNext.kid);

    // …still verifies against the published JWKS, on this instance and (after reload) the other.
    expect(a.publicJwks().keys.map((k) => k.kid)).toContain(oldActive.kid);
    await expect(jwtVerify(token, a.verificationKeys)).resolves.toBeTruthy();
    await b.reload();
    expect(b.publicJwks()).toEqual(a.publicJwks());
    await expect(jwtVerify(token, b.verificationKeys)).resolves.toBeTruthy();
  });

  it('drops retired keys from the JWKS once their tokens have expired', async () => {
    const a = new SigningKeys(t.db, new SecretBox(key), options);
    await a.init();
    await t.db.query(
      "UPDATE signing_keys SET publish_until = now() - interval '1 second' WHERE state = 'retired'",
    );
    await a.reload();
    const states = (await a.list())
      .filter((k) => a.publicJwks().keys.some((j) => j.kid === k.kid))
      .map((k) => k.state);
    expect(states).not.toContain('retired');
  });
});
