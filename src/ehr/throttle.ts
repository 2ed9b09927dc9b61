/*
 * Failed-sign-in throttling, per account and per client address.
 * - counts live in the database (login_failures), so every instance enforces one limit
 * - a key is refused once it reaches its limit within the window; the window restarts after it ends
 * - an unknown username is counted exactly like a known one (nothing tells them apart)
 * - a successful sign-in clears its account's count, never the address's (one good password
 *   must not reset the count of an address shared by an attacker)
 */
import type { Queryable } from '../db/database.ts';
import type { SecretBox } from '../keys/secret-box.ts';

export interface ThrottleLimits {
  maxFailuresPerAccount: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

export interface ThrottleVerdict {
  blocked: boolean;
  /** Seconds until the oldest blocking window ends (when blocked). */
  retryAfterSeconds: number;
}

export class LoginThrottle {
  constructor(
    private readonly db: Queryable,
    private readonly box: SecretBox,
    private readonly limits: ThrottleLimits,
  ) {}

  /** Usernames are hashed: the table should not be a list of who has accounts. */
  #accountKey(username: string): string {
    return `account:${this.box.keyedHash(username.trim().toLowerCase(), 'login-throttle')}`;
  }

  #addressKey(address: string): string {
    return `address:${address}`;
  }

  async check(username: string, address: string): Promise<ThrottleVerdict> {
    const r = await this.db.query<{ key: string; failures: number; retry_after: number }>(
      `SELECT key, failures,
              ceil(extract(epoch FROM (window_started_at + make_interval(secs => $2) - now())))::int AS retry_after
         FROM login_failures
        WHERE key = ANY($1) AND window_started_at > now() - make_interval(secs => $2)`,
      [[this.#accountKey(username), this.#addressKey(address)], this.limits.windowSeconds],
    );
    let retryAfterSeconds = 0;
    for (const row of r.rows) {
      const limit = row.key.startsWith('account:')
        ? this.limits.maxFailuresPerAccount
        : this.limits.maxFailuresPerAddress;
      if (row.failures >= limit) retryAfterSeconds = Math.max(retryAfterSeconds, row.retry_after, 1);
    }
    return { blocked: retryAfterSeconds > 0, retryAfterSeconds };
  }

  /** Counts one failure against both keys (one statement each; atomic under concurrency). */
  async recordFailure(username: string, address: string): Promise<void> {
    for (const key of [this.#accountKey(username), this.#addressKey(address)]) {
      await this.db.query(
        `INSERT INTO login_failures (key, failures, window_started_at) VALUES ($1, 1, now())
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN login_failures.window_started_at <= now() - make_interval(secs => $2)
                           THEN 1 ELSE login_failures.failures + 1 END,
           window_started_at = CASE WHEN login_failures.window_started_at <= now() - make_interval(secs => $2)
                           THEN now() ELSE login_failures.window_started_at END`,
        [key, this.limits.windowSeconds],
      );
    }
  }

  async recordSuccess(username: string): Promise<void> {
    await this.db.query('DELETE FROM login_failures WHERE key = $1', [this.#accountKey(username)]);
  }

  /** Drops rows whose window has ended (run periodically). */
  async purgeExpired(): Promise<number> {
    const r = await this.db.query(
      'DELETE FROM login_failures WHERE window_started_at <= now() - make_interval(secs => $1)',
      [this.limits.windowSeconds],
    );
    return r.rowCount;
  }
}
