-- Failed EHR sign-ins, counted per account and per client address (src/ehr/throttle.ts).
-- In the database so every instance behind a load balancer enforces the same limit.
-- `key` is "account:" + a keyed hash of the lower-cased username, or "address:" + the client address.
CREATE TABLE login_failures (
  key text PRIMARY KEY,
  failures integer NOT NULL,
  window_started_at timestamptz NOT NULL
);
CREATE INDEX login_failures_window ON login_failures (window_started_at);
