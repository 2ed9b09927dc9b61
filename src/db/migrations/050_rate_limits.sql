-- Fixed-window request counters shared by every instance (src/http/rate-limit.ts).
CREATE TABLE rate_limit_hits (
  key text PRIMARY KEY,
  window_start timestamptz NOT NULL,
  hits integer NOT NULL
);
CREATE INDEX rate_limit_hits_window ON rate_limit_hits (window_start);
