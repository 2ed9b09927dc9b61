import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox, SecretBoxError } from '../../src/keys/secret-box.ts';

describe('secret box (AES-256-GCM at rest)', () => {
  const box = new SecretBox(randomBytes(32));

  it('round-trips text and never stores it in the clear', () => {
    const sealed = box.encrypt('my SEK: ünïcödé', 'sek');
    expect(sealed).not.toContain('SEK');
    expect(box.decryptText(sealed, 'sek')).toBe('my SEK: ünïcödé');
  });

  it('uses a fresh IV every time', () => {
    expect(box.encrypt('same', 'p')).not.toBe(box.encrypt('same', 'p'));
  });

  it('refuses tampered ciphertext', () => {
    const sealed = box.encrypt('secret', 'sek');
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[2]!, 'base64url');
    ct[0] = (ct[0] ?? 0) ^ 1;
    parts[2] = ct.toString('base64url');
    expect(() => box.decrypt(parts.join('.'), 'sek')).toThrow(SecretBoxError);
  });

  it('refuses a wrong key', () => {
    const sealed = box.encrypt('secret', 'sek');
    expect(() => new SecretBox(randomBytes(32)).decrypt(sealed, 'sek')).toThrow(SecretBoxError);
  });

  it('refuses a ciphertext moved to another purpose', () => {
    const sealed = box.encrypt('secret', 'sek:1');
    expect(() => box.decrypt(sealed, 'signing-key:abc')).toThrow(SecretBoxError);
  });

  it('refuses garbage', () => {
    expect(() => box.decrypt('hello', 'sek')).toThrow(SecretBoxError);
    expect(() => box.decrypt('v1.a.b.c', 'sek')).toThrow(SecretBoxError);
  });

  it('derives distinct subkeys and keyed hashes per purpose', () => {
    expect(box.deriveKey('a').equals(box.deriveKey('b'))).toBe(false);
    expect(box.keyedHash('v', 'a')).toBe(box.keyedHash('v', 'a'));
    expect(box.keyedHash('v', 'a')).not.toBe(box.keyedHash('v', 'b'));
  });
});
