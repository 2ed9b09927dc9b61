/*
 * The SecretBox every capability uses (ctx.box): SECRETS_KEY, and SECRETS_KEY_PREVIOUS during a rotation.
 * - during a rotation (SECRETS_KEY_PREVIOUS set) values are sealed as
 *   "v2.<key id>.<iv>.<ciphertext>.<tag>": the key id (a keyed hash of the key, never the key)
 *   says which key opens a value, so the re-sealer knows what is left without opening anything
 * - otherwise as "v1.<iv>.<ciphertext>.<tag>" (SecretBox's own format, no key id), which the
 *   previous release also reads: during a rolling upgrade it opens everything this one writes.
 *   v1 values are tried under SECRETS_KEY, then SECRETS_KEY_PREVIOUS (the GCM tag tells)
 * - new values are sealed under SECRETS_KEY only once every running instance can open it
 *   (sealingKeyId, decided by the rotation job from secrets_key_readers); until then under the
 *   previous key, which all of them have
 * - a value sealed under neither key fails with SecretBoxError naming both key ids, never garbage
 * - keyed hashes and derived cookie keys come from the derivation root (secrets_root), not from
 *   SECRETS_KEY, so they stay valid across a rotation
 */
import { createHmac } from 'node:crypto';
import { SecretBox, SecretBoxError } from './secret-box.ts';

/** Public, stable name of a key: a keyed hash of it, short enough to prefix every sealed value. */
export function secretsKeyId(key: Buffer): string {
  return createHmac('sha256', key)
    .update('smart-ocean-launch secrets key id')
    .digest('base64url')
    .slice(0, 12);
}

/** Progress of re-sealing stored secrets under SECRETS_KEY (admin console, /readyz). */
export interface RotationStatus {
  /** Key id of SECRETS_KEY. */
  keyId: string;
  /** Key id of SECRETS_KEY_PREVIOUS, when set. */
  previousKeyId: string | null;
  /** Key id new values are sealed under now. */
  sealingKeyId: string;
  /**
   * idle: everything is under SECRETS_KEY (SECRETS_KEY_PREVIOUS may be dropped);
   * waiting: some running instance cannot open SECRETS_KEY yet, so nothing is re-sealed;
   * resealing: stored values are being re-sealed under SECRETS_KEY
   */
  state: 'idle' | 'waiting' | 'resealing';
  /** Stored values not yet sealed under SECRETS_KEY, per table.column (after the last pass). */
  remaining: Record<string, number>;
  /** Values re-sealed by this instance since it started. */
  resealedHere: number;
  checkedAt: string | null;
}

/** What /readyz tells anyone: the state and how many values are left, no key ids. */
export function rotationSummary(s: RotationStatus): { state: RotationStatus['state']; remaining: number } {
  return { state: s.state, remaining: Object.values(s.remaining).reduce((a, b) => a + b, 0) };
}

interface Sealer {
  id: string;
  box: SecretBox;
}

export class KeyRing extends SecretBox {
  readonly #current: Sealer;
  readonly #previous: Sealer | undefined;
  #sealing: Sealer;
  status: RotationStatus;

  /**
   * @param root derivation root (secrets_root): what deriveKey and keyedHash use
   * @param current SECRETS_KEY
   * @param previous SECRETS_KEY_PREVIOUS
   */
  constructor(root: Buffer, current: Buffer, previous?: Buffer) {
    super(root);
    this.#current = { id: secretsKeyId(current), box: new SecretBox(current) };
    this.#previous = previous ? { id: secretsKeyId(previous), box: new SecretBox(previous) } : undefined;
    // Until the rotation job has seen that every instance can open the new key, seal under the
    // one they all have.
    this.#sealing = this.#previous ?? this.#current;
    this.status = {
      keyId: this.#current.id,
      previousKeyId: this.#previous?.id ?? null,
      sealingKeyId: this.#sealing.id,
      state: this.#previous ? 'waiting' : 'idle',
      remaining: {},
      resealedHere: 0,
      checkedAt: null,
    };
  }

  get keyId(): string {
    return this.#current.id;
  }

  get previousKeyId(): string | undefined {
    return this.#previous?.id;
  }

  /** Key ids this instance can open. */
  get readableKeyIds(): string[] {
    return this.#previous ? [this.#current.id, this.#previous.id] : [this.#current.id];
  }

  get sealingKeyId(): string {
    return this.#sealing.id;
  }

  /** Seal new values under SECRETS_KEY (true) or under SECRETS_KEY_PREVIOUS (false: some instance lacks the new key). */
  sealUnderCurrent(yes: boolean): void {
    this.#sealing = yes || !this.#previous ? this.#current : this.#previous;
    this.status.sealingKeyId = this.#sealing.id;
  }

  /** During a rotation, the prefix of every value re-sealed under SECRETS_KEY (for SQL `left(col, n) = prefix`). */
  get currentPrefix(): string {
    return `v2.${this.#current.id}.`;
  }

  override encrypt(plaintext: string | Buffer, purpose: string): string {
    return this.#seal(this.#sealing, plaintext, purpose);
  }

  override decrypt(sealed: string, purpose: string): Buffer {
    const parts = sealed.split('.');
    if (parts[0] === 'v2' && parts.length === 5) {
      const sealer = this.#byId(parts[1]!);
      if (!sealer)
        throw new SecretBoxError(
          `secret sealed under key ${parts[1]}, which is neither SECRETS_KEY (${this.#current.id})` +
            (this.#previous
              ? ` nor SECRETS_KEY_PREVIOUS (${this.#previous.id})`
              : ' (SECRETS_KEY_PREVIOUS is not set)'),
        );
      return sealer.box.decrypt(['v1', ...parts.slice(2)].join('.'), purpose);
    }
    // v1: sealed before values carried a key id; the GCM tag tells which key fits.
    try {
      return this.#current.box.decrypt(sealed, purpose);
    } catch (err) {
      if (!this.#previous) throw err;
      return this.#previous.box.decrypt(sealed, purpose);
    }
  }

  /** The same secret sealed under SECRETS_KEY (whatever the sealing key is now). */
  reseal(sealed: string, purpose: string): string {
    return this.#seal(this.#current, this.decrypt(sealed, purpose), purpose);
  }

  #byId(id: string): Sealer | undefined {
    if (id === this.#current.id) return this.#current;
    if (id === this.#previous?.id) return this.#previous;
    return undefined;
  }

  #seal(sealer: Sealer, plaintext: string | Buffer, purpose: string): string {
    const v1 = sealer.box.encrypt(plaintext, purpose); // "v1.<iv>.<ct>.<tag>"
    return this.#previous ? `v2.${sealer.id}.${v1.slice(3)}` : v1;
  }
}
