/*
 * Password hashing with scrypt (memory-hard, node:crypto).
 * - encoded as `scrypt$ln=15,r=8,p=1$<salt b64url>$<hash b64url>`: parameters travel with the hash,
 *   so raising them later still verifies old hashes (and needsRehash tells when to upgrade)
 * - a fresh 16-byte random salt per hash; comparison in constant time
 * - verifyAgainstDummy spends the same work when a username does not exist, so timing does not
 *   tell an unknown user from a wrong password
 */
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

/** OWASP's scrypt floor is N=2^17 with r=8; 2^15 keeps a 2-core clinic server responsive while still costing 32 MiB per guess. */
const CURRENT = { ln: 15, r: 8, p: 1 };
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

function derive(
  password: string,
  salt: Buffer,
  params: { ln: number; r: number; p: number },
): Promise<Buffer> {
  const N = 2 ** params.ln;
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_LENGTH, options, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, CURRENT);
  return `scrypt$ln=${CURRENT.ln},r=${CURRENT.r},p=${CURRENT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

interface Parsed {
  params: { ln: number; r: number; p: number };
  salt: Buffer;
  key: Buffer;
}

function parse(encoded: string): Parsed | undefined {
  const m = /^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(
    encoded,
  );
  if (!m) return undefined;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 10 || params.ln > 20 || params.r < 1 || params.p < 1) return undefined;
  return { params, salt: Buffer.from(m[4] ?? '', 'base64url'), key: Buffer.from(m[5] ?? '', 'base64url') };
}

/** True when password matches; false for a wrong password or an unreadable hash. */
export async function verifyPasswordHash(password: string, encoded: string): Promise<boolean> {
  const parsed = parse(encoded);
  if (!parsed) {
    await verifyAgainstDummy(password);
    return false;
  }
  const key = await derive(password, parsed.salt, parsed.params);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

/** True when the hash was made with weaker parameters than today's. */
export function needsRehash(encoded: string): boolean {
  const parsed = parse(encoded);
  return !parsed || parsed.params.ln < CURRENT.ln || parsed.params.r < CURRENT.r;
}

let dummy: Promise<string> | undefined;

/** Spends the work of one verification and returns false (for usernames that do not exist). */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'));
  const encoded = await dummy;
  const parsed = parse(encoded)!;
  const key = await derive(password, parsed.salt, parsed.params);
  timingSafeEqual(key, parsed.key);
  return false;
}
