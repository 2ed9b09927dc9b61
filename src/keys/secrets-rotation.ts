/*
 * Online rotation of SECRETS_KEY (CONTRACT §3.1): SECRETS_KEY_PREVIOUS keeps old values readable while
 * every stored secret (sealed-columns.ts) is re-sealed under SECRETS_KEY in the background.
 * - at start, openKeyRing() reads (or seeds) the derivation root and opens every live sealed
 *   value that is not under a configured key id: one that neither key opens stops the start
 *   with an error naming table, row and key ids — never a failure in the middle of a launch
 * - every instance records the keys it can open (secrets_key_readers); new values are sealed
 *   under SECRETS_KEY only when every live instance can open it, and re-sealing starts then
 * - re-sealing is compare-and-set, row by row (UPDATE … WHERE sealed = the value read): several
 *   instances may run it at once, a value is never lost and never sealed twice over
 * - it repeats until a pass finds nothing left; the status (ring.status) is what the admin
 *   console and /readyz show; state "idle" with SECRETS_KEY_PREVIOUS set means it may be dropped
 * - without SECRETS_KEY_PREVIOUS there is nothing to do but the heartbeat: values are written
 *   in the format the previous release reads (key-ring.ts), and none is rewritten
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../db/database.ts';
import { KeyRing } from './key-ring.ts';
import { columnName, SEALED_COLUMNS, type SealedColumn } from './sealed-columns.ts';
import { SecretBoxError } from './secret-box.ts';

const BATCH = 200;

export class SecretsKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretsKeyError';
  }
}

/**
 * Opens the key ring of this instance: the derivation root from the database (seeded with the
 * first SECRETS_KEY ever used, so keyed hashes made before rotation existed stay valid), then the
 * start-up check of every stored secret.
 */
export async function openKeyRing(
  db: Database,
  keys: { current: Buffer; previous?: Buffer },
  columns: readonly SealedColumn[] = SEALED_COLUMNS,
): Promise<KeyRing> {
  // A ring whose root is not known yet can still seal and open; it seeds the root.
  const bootstrap = new KeyRing(keys.current, keys.current, keys.previous);
  bootstrap.sealUnderCurrent(false); // the seed must be readable by instances that lack the new key
  const readRoot = () =>
    db.query<{ root_sealed: string }>(`SELECT root_sealed FROM secrets_root WHERE id = 'root'`);
  // Read first: the seed is written once in a database's life, not at every start.
  let { rows } = await readRoot();
  if (rows.length === 0) {
    await db.query(
      `INSERT INTO secrets_root (id, root_sealed) VALUES ('root', $1) ON CONFLICT (id) DO NOTHING`,
      [bootstrap.encrypt(keys.previous ?? keys.current, 'secrets-root')],
    );
    ({ rows } = await readRoot()); // another instance's seed, if it won the race
  }
  let root: Buffer;
  try {
    root = bootstrap.decrypt(rows[0]!.root_sealed, 'secrets-root');
  } catch (err) {
    throw new SecretsKeyError(
      `secrets_root cannot be opened: ${(err as Error).message}. This database was set up with another SECRETS_KEY; ` +
        'set SECRETS_KEY (or SECRETS_KEY_PREVIOUS during a rotation) to that key',
    );
  }
  const ring = new KeyRing(root, keys.current, keys.previous);
  const unreadable = await findUnreadable(db, ring, columns);
  if (unreadable.length > 0) {
    const shown = unreadable.slice(0, 5).map((u) => `${u.column} (${u.row}): ${u.reason}`);
    throw new SecretsKeyError(
      `${unreadable.length} stored secret(s) cannot be opened with SECRETS_KEY (key id ${ring.keyId})` +
        (ring.previousKeyId ? ` or SECRETS_KEY_PREVIOUS (key id ${ring.previousKeyId})` : '') +
        `: ${shown.join('; ')}${unreadable.length > 5 ? '; …' : ''}. ` +
        'If a rotation of SECRETS_KEY has not finished, set SECRETS_KEY_PREVIOUS back to the old key.',
    );
  }
  return ring;
}

interface Unreadable {
  column: string;
  row: string;
  reason: string;
}

/** Live values not sealed under a key id this ring knows, that the ring cannot open. */
async function findUnreadable(
  db: Database,
  ring: KeyRing,
  columns: readonly SealedColumn[],
): Promise<Unreadable[]> {
  const known = ring.readableKeyIds.map((id) => `v2.${id}.`);
  const found: Unreadable[] = [];
  for (const c of columns) {
    const { rows } = await db.query<{ k: string; p: string; s: string }>(
      `SELECT ${c.key} AS k, ${c.purposeFrom} AS p, ${c.sealed} AS s FROM ${c.table}
        WHERE ${c.sealed} IS NOT NULL AND NOT (left(${c.sealed}, $1) = ANY($2::text[]))${c.live ? ` AND ${c.live}` : ''}`,
      [known[0]!.length, known],
    );
    for (const r of rows) {
      try {
        ring.decrypt(r.s, c.purpose(r.p));
      } catch (err) {
        found.push({ column: columnName(c), row: r.k, reason: (err as Error).message });
      }
    }
  }
  return found;
}

export interface RotationOptions {
  /** Seconds between heartbeats and passes (KEY_REFRESH_INTERVAL). */
  intervalSeconds: number;
  onError?: (err: unknown) => void;
  onResealed?: (column: string, count: number) => void;
  columns?: readonly SealedColumn[];
}

/** The background half: heartbeat, the decision to seal under the new key, and the re-sealing passes. */
export class SecretsRotation {
  readonly instanceId = randomUUID();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  readonly #columns: readonly SealedColumn[];

  constructor(
    private readonly db: Database,
    private readonly ring: KeyRing,
    private readonly options: RotationOptions,
  ) {
    this.#columns = options.columns ?? SEALED_COLUMNS;
  }

  /** Heartbeat, then the sealing key: SECRETS_KEY once every live instance can open it. */
  async register(): Promise<boolean> {
    await this.heartbeat();
    const everyoneReads = await this.everyoneCanOpenCurrent();
    this.ring.sealUnderCurrent(everyoneReads);
    return everyoneReads;
  }

  /** One heartbeat, one decision and (when allowed) re-sealing until nothing is left. */
  async tick(): Promise<void> {
    const everyoneReads = await this.register();
    if (!this.ring.previousKeyId) {
      // No rotation: everything stored opens with SECRETS_KEY (the start-up check saw to it).
      this.#idle();
      return;
    }
    if (!everyoneReads) {
      this.ring.status.state = 'waiting';
      this.ring.status.remaining = await this.remaining();
      this.ring.status.checkedAt = new Date().toISOString();
      return;
    }
    for (;;) {
      const remaining = await this.remaining();
      this.ring.status.remaining = remaining;
      this.ring.status.checkedAt = new Date().toISOString();
      const left = Object.values(remaining).reduce((a, b) => a + b, 0);
      this.ring.status.state = left === 0 ? 'idle' : 'resealing';
      if (left === 0) return;
      if ((await this.pass()) === 0) return; // what is left cannot be opened or is someone else's now
    }
  }

  /**
   * The timer. The start registered this instance a moment ago (register()), so the first tick
   * runs now only when a rotation may have work; otherwise the status is idle until the next
   * heartbeat. (It used to call stop(), whose goodbye deleted that fresh heartbeat.)
   */
  start(): void {
    if (this.#timer) clearInterval(this.#timer);
    const run = () => {
      if (this.#running) return;
      this.#running = this.tick()
        .catch((err) => this.options.onError?.(err))
        .finally(() => {
          this.#running = undefined;
        });
    };
    if (this.ring.previousKeyId) run();
    else this.#idle();
    this.#timer = setInterval(run, this.options.intervalSeconds * 1000);
    this.#timer.unref();
  }

  #idle(): void {
    this.ring.status.state = 'idle';
    this.ring.status.remaining = {};
    this.ring.status.checkedAt = new Date().toISOString();
  }

  /** Stops the timer, waits for a pass under way, and removes this instance's heartbeat. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
    await this.db
      .query('DELETE FROM secrets_key_readers WHERE instance_id = $1', [this.instanceId])
      .catch(() => {});
  }

  async heartbeat(): Promise<void> {
    await this.db.query(
      `INSERT INTO secrets_key_readers (instance_id, current_key_id, readable_key_ids, seen_at)
       VALUES ($1, $2, $3, now())
       ON CONFLICT (instance_id) DO UPDATE SET current_key_id = $2, readable_key_ids = $3, seen_at = now()`,
      [this.instanceId, this.ring.keyId, this.ring.readableKeyIds],
    );
    // Rows of instances that died without saying goodbye (a crash, SIGKILL) stop counting after
    // three intervals and go after a day.
    await this.db.query(`DELETE FROM secrets_key_readers WHERE seen_at < now() - interval '1 day'`);
  }

  /** Live: seen within three intervals (a crashed instance stops counting after that). */
  async everyoneCanOpenCurrent(): Promise<boolean> {
    const { rows } = await this.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM secrets_key_readers
        WHERE seen_at > now() - make_interval(secs => $1) AND NOT ($2 = ANY(readable_key_ids))`,
      [this.options.intervalSeconds * 3, this.ring.keyId],
    );
    return rows[0]!.n === 0;
  }

  /** Values not sealed under SECRETS_KEY, per column. */
  async remaining(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const prefix = this.ring.currentPrefix;
    for (const c of this.#columns) {
      const { rows } = await this.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${c.table} WHERE ${c.sealed} IS NOT NULL AND left(${c.sealed}, $1) <> $2`,
        [prefix.length, prefix],
      );
      out[columnName(c)] = rows[0]!.n;
    }
    return out;
  }

  /** One pass over every column; returns how many values this instance re-sealed. */
  async pass(): Promise<number> {
    let total = 0;
    const prefix = this.ring.currentPrefix;
    for (const c of this.#columns) {
      let after = '';
      let resealed = 0;
      for (;;) {
        const { rows } = await this.db.query<{ k: string; p: string; s: string }>(
          `SELECT ${c.key} AS k, ${c.purposeFrom} AS p, ${c.sealed} AS s FROM ${c.table}
            WHERE ${c.sealed} IS NOT NULL AND left(${c.sealed}, $1) <> $2 AND ${c.key} > $3
            ORDER BY ${c.key} LIMIT ${BATCH}`,
          [prefix.length, prefix, after],
        );
        for (const r of rows) {
          let fresh: string;
          try {
            fresh = this.ring.reseal(r.s, c.purpose(r.p));
          } catch (err) {
            // Sealed under a key this instance does not have: left for the start-up check of an
            // instance that does (or for the operator); never overwritten.
            if (err instanceof SecretBoxError) continue;
            throw err;
          }
          // Compare-and-set: another instance (or the owner of the row) may have written it meanwhile.
          const u = await this.db.query(
            `UPDATE ${c.table} SET ${c.sealed} = $1 WHERE ${c.key} = $2 AND ${c.sealed} = $3`,
            [fresh, r.k, r.s],
          );
          resealed += u.rowCount;
        }
        if (rows.length < BATCH) break;
        after = rows[rows.length - 1]!.k;
      }
      if (resealed > 0) this.options.onResealed?.(columnName(c), resealed);
      total += resealed;
    }
    this.ring.status.resealedHere += total;
    return total;
  }
}
