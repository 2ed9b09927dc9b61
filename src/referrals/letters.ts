/*
 * The referral letter (a PDF at Ocean) fetched in the background, durably (`ocean_letters`).
 * - one row per referral: scheduled in the filing transaction; `pending` when the site has Ocean's
 *   OAuth2 credentials, else `in-ocean` (the chart says the letter is available in Ocean)
 * - any instance claims due rows with FOR UPDATE SKIP LOCKED and leases them (next_attempt_at
 *   moves past the fetch), so two instances never fetch one letter at once and a crash mid-fetch
 *   only delays it; failures back off exponentially (30 s doubling, at most 1 h) up to
 *   MAX_ATTEMPTS, then `failed` — every state and the last error visible to the chart and admins
 * - the token is a client_credentials token from the site's Ocean token URL; the letter URL must
 *   be on the token URL's origin, so a message cannot send our Ocean token, or our requests,
 *   anywhere else
 * - errors recorded name the step and the HTTP status, never a body
 */
import type { Database, Queryable } from '../db/database.ts';
import { loggableError } from '../http/errors.ts';
import type { Logger } from '../http/logger.ts';
import type { Integrations } from './integrations.ts';

export const MAX_ATTEMPTS = 8;
const LEASE_SECONDS = 120;
const MAX_LETTER_BYTES = 20 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 15_000;

/** Seconds to wait after failed attempt number `attempts` (1-based). */
export const backoffSeconds = (attempts: number) => Math.min(3600, 30 * 2 ** Math.max(0, attempts - 1));

/** Schedules (or re-schedules, when the URL changed) the letter of a referral, in the caller's transaction. */
export async function scheduleLetter(
  q: Queryable,
  referralId: string,
  url: string,
  fetchable: boolean,
): Promise<void> {
  await q.query(
    `INSERT INTO ocean_letters (referral_id, url, status) VALUES ($1, $2, $3)
     ON CONFLICT (referral_id) DO UPDATE
       SET url = EXCLUDED.url, status = EXCLUDED.status, attempts = 0, next_attempt_at = now(),
           last_error = NULL, content = NULL, content_type = NULL, fetched_at = NULL, updated_at = now()
     WHERE ocean_letters.url <> EXCLUDED.url
        OR (ocean_letters.status = 'in-ocean' AND EXCLUDED.status = 'pending')`,
    [referralId, url, fetchable ? 'pending' : 'in-ocean'],
    { prepare: true },
  );
}

/** Ocean's credentials were set for an integration: its letters shown as "in Ocean" are fetched now. */
export async function requeueInOcean(q: Queryable, integrationId: string): Promise<number> {
  const r = await q.query(
    `UPDATE ocean_letters l SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
       FROM ocean_referrals r
      WHERE r.referral_id = l.referral_id AND r.integration_id = $1 AND l.status IN ('in-ocean', 'failed')`,
    [integrationId],
  );
  return r.rowCount;
}

/** The stored letter of a referral in a patient's chart (the chart serves it). */
export async function readLetter(
  q: Queryable,
  patientId: string,
  serviceRequestId: string,
): Promise<{ contentType: string; content: Buffer } | undefined> {
  const { rows } = await q.query<{ content_type: string; content: Uint8Array }>(
    `SELECT l.content_type, l.content FROM ocean_letters l
       JOIN ocean_referrals r ON r.referral_id = l.referral_id
      WHERE r.patient_id = $1 AND r.service_request_id = $2 AND l.status = 'fetched'`,
    [patientId, serviceRequestId],
  );
  const row = rows[0];
  return row ? { contentType: row.content_type, content: Buffer.from(row.content) } : undefined;
}

class FetchFailure extends Error {}

interface Claimed {
  referral_id: string;
  url: string;
  attempts: number;
  integration_id: string | null;
}

export class LetterJob {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly db: Database,
    private readonly integrations: Integrations,
    private readonly logger: Logger,
    private readonly intervalMs = 5_000,
  ) {}

  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => this.kick(), this.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Runs a pass now unless one is running (after a filing, and on the timer). */
  kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = this.runOnce()
      .catch((err) => this.logger.warn({ err: loggableError(err) }, 'letter job pass failed'))
      .then(() => {
        this.#running = undefined;
      });
  }

  /** One pass: claims due letters and fetches them. Returns how many were attempted. */
  async runOnce(batch = 5): Promise<number> {
    let attempted = 0;
    for (;;) {
      if (this.#stopped) return attempted;
      const claimed = await this.#claim(batch);
      if (claimed.length === 0) return attempted;
      for (const job of claimed) {
        attempted++;
        await this.#attempt(job);
      }
    }
  }

  async #claim(batch: number): Promise<Claimed[]> {
    const { rows } = await this.db.query<Claimed>(
      `WITH due AS (
         SELECT referral_id FROM ocean_letters
          WHERE status = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT $1
          FOR UPDATE SKIP LOCKED)
       UPDATE ocean_letters l
          SET attempts = l.attempts + 1, next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
         FROM due, ocean_referrals r
        WHERE l.referral_id = due.referral_id AND r.referral_id = l.referral_id
       RETURNING l.referral_id, l.url, l.attempts, r.integration_id`,
      [batch, LEASE_SECONDS],
    );
    return rows;
  }

  async #attempt(job: Claimed): Promise<void> {
    try {
      const credentials = job.integration_id
        ? await this.integrations.outbound(this.db, job.integration_id)
        : undefined;
      if (!credentials) {
        await this.db.query(
          `UPDATE ocean_letters SET status = 'in-ocean', updated_at = now() WHERE referral_id = $1`,
          [job.referral_id],
        );
        return;
      }
      const { contentType, content } = await fetchLetter(credentials, job.url);
      await this.db.query(
        `UPDATE ocean_letters SET status = 'fetched', content = $2, content_type = $3, fetched_at = now(),
                last_error = NULL, updated_at = now()
          WHERE referral_id = $1 AND url = $4`,
        [job.referral_id, content, contentType, job.url],
      );
    } catch (err) {
      const message = err instanceof FetchFailure ? err.message : 'the letter could not be fetched';
      if (!(err instanceof FetchFailure))
        this.logger.warn({ err: loggableError(err) }, 'letter fetch failed');
      const failed = job.attempts >= MAX_ATTEMPTS;
      await this.db.query(
        `UPDATE ocean_letters
            SET status = $2, last_error = $3, next_attempt_at = now() + make_interval(secs => $4), updated_at = now()
          WHERE referral_id = $1 AND status = 'pending'`,
        [job.referral_id, failed ? 'failed' : 'pending', message.slice(0, 300), backoffSeconds(job.attempts)],
      );
    }
  }
}

async function call(url: string, init: RequestInit, step: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch {
    throw new FetchFailure(`${step}: Ocean could not be reached`);
  }
}

/** Gets a token from Ocean and the letter with it. */
export async function fetchLetter(
  credentials: { tokenUrl: string; clientId: string; clientSecret: string },
  letterUrl: string,
): Promise<{ contentType: string; content: Buffer }> {
  const origin = URL.parse(credentials.tokenUrl)?.origin;
  if (!origin || URL.parse(letterUrl)?.origin !== origin)
    throw new FetchFailure("the letter URL is not on the Ocean token URL's origin");
  const basic = Buffer.from(
    `${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.clientSecret)}`,
  ).toString('base64');
  const tokenResponse = await call(
    credentials.tokenUrl,
    {
      method: 'POST',
      headers: {
        Authorization: `Basic ${basic}`,
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
      },
      body: 'grant_type=client_credentials',
    },
    'token',
  );
  if (!tokenResponse.ok) throw new FetchFailure(`token: Ocean answered ${tokenResponse.status}`);
  const token = ((await tokenResponse.json().catch(() => ({}))) as { access_token?: unknown }).access_token;
  if (typeof token !== 'string' || token.length === 0)
    throw new FetchFailure('token: no access_token in the answer');
  const letter = await call(
    letterUrl,
    { headers: { Authorization: `Bearer ${token}`, Accept: 'application/pdf' } },
    'letter',
  );
  if (!letter.ok) throw new FetchFailure(`letter: Ocean answered ${letter.status}`);
  const contentType = (letter.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (contentType !== 'application/pdf') throw new FetchFailure('letter: Ocean did not answer with a PDF');
  const length = Number(letter.headers.get('content-length') ?? 0);
  if (length > MAX_LETTER_BYTES) throw new FetchFailure('letter: larger than 20 MB');
  const content = Buffer.from(await letter.arrayBuffer());
  if (content.length > MAX_LETTER_BYTES) throw new FetchFailure('letter: larger than 20 MB');
  if (content.subarray(0, 5).toString('latin1') !== '%PDF-') throw new FetchFailure('letter: not a PDF');
  return { contentType, content };
}
