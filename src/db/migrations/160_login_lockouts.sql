-- Sign-in throttling that an attacker cannot turn against a clinician (src/web/login-throttle.ts):
-- failures counted per (account, address) with growing waits, a short whole-account lock after
-- many more, and an administrator's unlock. `account` (the keyed hash of the username) names
-- every row of one account, so an unlock or a password reset deletes them in one statement.
ALTER TABLE login_failures ADD COLUMN account text;
ALTER TABLE login_failures ADD COLUMN last_failure_at timestamptz;
ALTER TABLE login_failures ADD COLUMN blocked_until timestamptz;
CREATE INDEX login_failures_account ON login_failures (account);
