/*
 * Encryption at rest for SEKs, signing private keys and other secrets.
 * - AES-256-GCM with a random 96-bit IV per value: confidentiality and integrity
 * - associated data binds a ciphertext to its purpose (a SEK row cannot be swapped into a key row)
 * - tampered ciphertext, wrong key or wrong purpose all fail with SecretBoxError, never garbage
 * Format: "v1.<iv b64url>.<ciphertext b64url>.<tag b64url>"
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

export class SecretBoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new SecretBoxError('SECRETS_KEY must be 32 bytes');
    this.#key = Buffer.from(key);
  }

  encrypt(plaintext: string | Buffer, purpose: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(purpose, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const tag = cipher.getAuthTag();
    return ['v1', iv.toString('base64url'), ct.toString('base64url'), tag.toString('base64url')].join('.');
  }

  decrypt(sealed: string, purpose: string): Buffer {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') throw new SecretBoxError('not a sealed secret');
    const [, iv, ct, tag] = parts as [string, string, string, string];
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(purpose, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
    } catch {
      throw new SecretBoxError('secret cannot be decrypted: wrong SECRETS_KEY or tampered data');
    }
  }

  decryptText(sealed: string, purpose: string): string {
    return this.decrypt(sealed, purpose).toString('utf8');
  }

  /**
   * A subkey for another purpose (session cookie signing, keyed hashes), derived so that the
   * one SECRETS_KEY is never used directly for two things.
   */
  deriveKey(purpose: string, length = 32): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), purpose, length));
  }

  /** Keyed hash for high-entropy secrets (client secrets, launch ids): fast and not reversible. */
  keyedHash(value: string, purpose: string): string {
    return createHmac('sha256', this.deriveKey(`hash:${purpose}`))
      .update(value, 'utf8')
      .digest('base64url');
  }
}
