/*
 * Failed-sign-in throttling that an attacker cannot turn against a clinician.
 * - per (account, address): LOGIN_FAILURES_BEFORE_DELAY failures, then a wait of LOGIN_DELAY
 *   seconds that doubles with each further failure, up to LOGIN_THROTTLE_WINDOW. Someone guessing
 *   a clinician's password from elsewhere slows only themselves: the clinician at their own
 *   workstation is another pair
 * - per account, from all addresses: a lock of the whole account needs LOGIN_MAX_FAILURES_PER_ACCOUNT
 *   failures within the window (many more than one address may make before waiting) and lasts
 *   only LOGIN_ACCOUNT_LOCK seconds; its count starts again when it ends
 * - per address, whatever the usernames: LOGIN_MAX_FAILURES_PER_ADDRESS within the window (high: a
 *   hospital NAT is one address); refused until the window ends
 * - a wait or lock is judged before the password is checked, and a refused attempt counts nothing
 * - a failure-free LOGIN_THROTTLE_WINDOW forgives a pair's failures
 * - a successful sign-in clears its pair, never the account's or the address's count
 * - an administrator's password reset or explicit unlock deletes every row of the account
 * - an unknown username is counted exactly like a known one; usernames are stored only as keyed
 *   hashes (the table must not be a list of who has accounts)
 * - every count is a row in login_failures, so all instances enforce one limit
 */
import type { Config } from '../config.ts';
import type { Queryable } from '../db/database.ts';
import type { SecretBox } from '../keys/secret-box.ts';

export type ThrottleLimits = Config['loginThrottle'];

/** What is holding sign-in back: this username at this address, the whole account, or the address. */
export type ThrottleScope = 'pair' | 'account' | 'address';

export interface ThrottleVerdict {
  blocked: boolean;
  /** Seconds until sign-in may be tried again (when blocked). */
  retryAfterSeconds: number;
  /** The longest-lasting refusal, when blocked. */
  scope?: ThrottleScope;
}

/** The keyed hash that stands for a username in login_failures. */
export function accountKeyOf(box: SecretBox, username: string): string {
  return box.keyedHash(username.trim().toLowerCase(), 'login-throttle');
}

/** Deletes every wait and lock of one account (its pairs and its account-wide row). */
export async function unlockAccount(q: Queryable, box: SecretBox, username: string): Promise<number> {
  const r = await q.query('DELETE FROM login_failures WHERE account = $1', [accountKeyOf(box, username)]);
  return r.rowCount;
}

/** Seconds until the account's sign-in is free again from everywhere (0 = not locked), for the admin. */
export async function accountLockedFor(q: Queryable, box: SecretBox, username: string): Promise<number> {
  const r = await q.query<{ s: number | null }>(
    `SELECT ceil(extract(epoch FROM max(blocked_until) - now()))::int AS s
       FROM login_failures WHERE key = $1 AND blocked_until > now()`,
    [`account:${accountKeyOf(box, username)}`],
  );
  return Math.max(0, r.rows[0]?.s ?? 0);
}

// The failure count after this one: a pair forgets failures after a failure-free window, the
// account and address counts restart with their window.
const PAIR_COUNT = `CASE WHEN login_failures.last_failure_at IS NULL
                           OR login_failures.last_failure_at <= now() - make_interval(secs => $3)
                         THEN 1 ELSE login_failures.failures + 1 END`;
const WINDOW_COUNT = `CASE WHEN login_failures.window_started_at <= now() - make_interval(secs => $3)
                           THEN 1 ELSE login_failures.failures + 1 END`;
const WINDOW_START = `CASE WHEN login_failures.window_started_at <= now() - make_interval(secs => $3)
                           THEN now() ELSE login_failures.window_started_at END`;
/** delay × 2^(n − threshold), capped at the window (exponent capped too: no float overflow). */
const pairWait = (n: string) => `CASE WHEN ${n} >= $4
  THEN now() + make_interval(secs => least($3::float8, $5::float8 * power(2::float8, least(${n} - $4, 30))))
  END`;

export class LoginThrottle {
  constructor(
    private readonly db: Queryable,
    private readonly box: SecretBox,
    private readonly limits: ThrottleLimits,
  ) {}

  #keys(username: string, address: string) {
    const account = accountKeyOf(this.box, username);
    return {
      account,
      pair: `pair:${account}:${address}`,
      accountWide: `account:${account}`,
      address: `address:${address}`,
    };
  }

  async check(username: string, address: string): Promise<ThrottleVerdict> {
    const k = this.#keys(username, address);
    const r = await this.db.query<{ key: string; retry_after: number | null }>(
      `SELECT key,
              CASE WHEN key LIKE 'address:%'
                   THEN CASE WHEN failures >= $3 AND window_started_at > now() - make_interval(secs => $2)
                             THEN ceil(extract(epoch FROM window_started_at + make_interval(secs => $2) - now()))::int END
                   ELSE CASE WHEN blocked_until > now()
                             THEN ceil(extract(epoch FROM blocked_until - now()))::int END
              END AS retry_after
         FROM login_failures
        WHERE key = ANY($1)`,
      [[k.pair, k.accountWide, k.address], this.limits.windowSeconds, this.limits.maxFailuresPerAddress],
    );
    let verdict: ThrottleVerdict = { blocked: false, retryAfterSeconds: 0 };
    for (const row of r.rows) {
      if (row.retry_after === null) continue;
      const seconds = Math.max(1, row.retry_after);
      if (seconds > verdict.retryAfterSeconds) {
        const scope: ThrottleScope = row.key.startsWith('pair:')
          ? 'pair'
          : row.key.startsWith('account:')
            ? 'account'
            : 'address';
        verdict = { blocked: true, retryAfterSeconds: seconds, scope };
      }
    }
    return verdict;
  }

  /** Counts one failure for the pair, the account and the address (each one atomic statement). */
  async recordFailure(username: string, address: string): Promise<void> {
    const k = this.#keys(username, address);
    const { windowSeconds, failuresBeforeDelay, delaySeconds, maxFailuresPerAccount, accountLockSeconds } =
      this.limits;
    await this.db.query(
      `INSERT INTO login_failures (key, account, failures, window_started_at, last_failure_at, blocked_until)
       VALUES ($1, $2, 1, now(), now(), ${pairWait('1')})
       ON CONFLICT (key) DO UPDATE SET
         failures = ${PAIR_COUNT},
         window_started_at = CASE WHEN ${PAIR_COUNT} = 1 THEN now() ELSE login_failures.window_started_at END,
         last_failure_at = now(),
         blocked_until = ${pairWait(`(${PAIR_COUNT})`)}`,
      [k.pair, k.account, windowSeconds, failuresBeforeDelay, delaySeconds],
    );
    // The account-wide count: reaching the limit locks the account briefly and starts counting afresh.
    await this.db.query(
      `INSERT INTO login_failures (key, account, failures, window_started_at, last_failure_at, blocked_until)
       VALUES ($1, $2, CASE WHEN 1 >= $4 THEN 0 ELSE 1 END, now(), now(),
               CASE WHEN 1 >= $4 THEN now() + make_interval(secs => $5) END)
       ON CONFLICT (key) DO UPDATE SET
         failures = CASE WHEN ${WINDOW_COUNT} >= $4 THEN 0 ELSE ${WINDOW_COUNT} END,
         window_started_at = CASE WHEN ${WINDOW_COUNT} >= $4 THEN now() ELSE ${WINDOW_START} END,
         last_failure_at = now(),
         blocked_until = CASE WHEN ${WINDOW_COUNT} >= $4 THEN now() + make_interval(secs => $5)
                              ELSE login_failures.blocked_until END`,
      [k.accountWide, k.account, windowSeconds, maxFailuresPerAccount, accountLockSeconds],
    );
    await this.db.query(
      `INSERT INTO login_failures (key, account, failures, window_started_at, last_failure_at)
       VALUES ($1, $2::text, 1, now(), now())
       ON CONFLICT (key) DO UPDATE SET
         failures = ${WINDOW_COUNT}, window_started_at = ${WINDOW_START}, last_failure_at = now()`,
      [k.address, null, windowSeconds],
    );
  }

  /** A good password at this address: its pair starts afresh (the account and address counts do not). */
  async recordSuccess(username: string, address: string): Promise<void> {
    await this.db.query('DELETE FROM login_failures WHERE key = $1', [this.#keys(username, address).pair]);
  }

  /** Drops rows that neither block nor count any more (run periodically). */
  async purgeExpired(): Promise<number> {
    const r = await this.db.query(
      `DELETE FROM login_failures
        WHERE (blocked_until IS NULL OR blocked_until <= now())
          AND coalesce(last_failure_at, window_started_at) <= now() - make_interval(secs => $1)`,
      [this.limits.windowSeconds],
    );
    return r.rowCount;
  }
}
