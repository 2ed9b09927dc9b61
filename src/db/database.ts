/*
 * One small query interface over both drivers.
 * - `pg` when DATABASE_URL is set (a real server shared by every instance)
 * - PGlite (embedded PostgreSQL in WebAssembly) otherwise, data under DATA_DIR
 * The same SQL, parameters ($1, $2 …) and migrations serve both.
 */
export type Row = Record<string, unknown>;

export interface QueryResult<R = Row> {
  rows: R[];
  rowCount: number;
}

export interface QueryOptions {
  /**
   * Keep this statement parsed and planned on each connection (a PostgreSQL named prepared
   * statement), so repeated runs skip parse and plan on the server. For fixed SQL text on hot
   * paths only: every distinct text stays prepared for the life of each connection.
   */
  prepare?: boolean;
}

/** Anything that runs SQL: the database itself or an open transaction. */
export interface Queryable {
  query<R = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction: committed when fn resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Cheap round trip used by /readyz. */
  ping(): Promise<void>;
  stats(): PoolStats;
  close(): Promise<void>;
}

/**
 * Raised when the database cannot be reached; the HTTP layer answers 503.
 * It is also shaped like an http-errors / oidc-provider error (status, expose, `message` = the
 * RFC 6749 error code, error_description), so that oidc-provider's own Koa error handlers —
 * which turn anything else into `500 server_error` — answer `503 temporarily_unavailable` in
 * their JSON, or render the error page for people with status 503.
 */
export class DatabaseUnavailableError extends Error {
  readonly status = 503;
  readonly statusCode = 503;
  readonly expose = true;
  readonly error = 'temporarily_unavailable';
  readonly error_description = 'the database is unavailable; try again shortly';

  constructor(cause: unknown) {
    super('temporarily_unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

/**
 * A value from the request that PostgreSQL cannot take (SQLSTATE class 22, "data exception": a
 * NUL character in text, an unpaired surrogate in JSON, a number out of range …): the client's
 * fault, so 400, not 500. Shaped for oidc-provider too (`400 invalid_request`), like
 * DatabaseUnavailableError. The driver's message is kept out of it: it can quote the value.
 */
export class InvalidInputError extends Error {
  readonly status = 400;
  readonly statusCode = 400;
  readonly expose = true;
  readonly error = 'invalid_request';
  readonly error_description =
    'the request contains a value that cannot be processed (such as a NUL character)';

  constructor(readonly sqlState: string) {
    super('invalid_request');
    this.name = 'InvalidInputError';
  }
}

/** Turns a driver error caused by the data (SQLSTATE class 22) into an InvalidInputError. */
export function asInputError(err: unknown): unknown {
  const code = sqlState(err);
  return code?.startsWith('22') ? new InvalidInputError(code) : err;
}

/** PostgreSQL SQLSTATE of a driver error, when there is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

export const UNIQUE_VIOLATION = '23505';

/**
 * Runs fn in a transaction: a new one when q is the database, the caller's own when q already is
 * an open transaction (so a store's multi-step write joins an admin change and its audit row).
 */
export function inTransaction<T>(q: Queryable, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  const db = q as Partial<Database>;
  return typeof db.transaction === 'function' ? db.transaction(fn) : fn(q);
}
