-- Ocean's eReferral messages (src/referrals/, SPEC §3.7): inbound integrations, the inbox of
-- received messages, the referrals filed from them and the background fetch of their letters.
-- Every table here is owned by the referrals room.

-- One inbound integration per Ocean site. Inbound credentials are high-entropy secrets drawn by
-- the server, kept only as keyed hashes; `credentials_issued_at` moves on rotation, so a Bearer
-- token issued before it stops working. Ocean's own OAuth2 credentials (outbound, to fetch
-- letters) are optional; the secret is sealed with SECRETS_KEY.
CREATE TABLE ocean_integrations (
  id text PRIMARY KEY,
  site_num text NOT NULL UNIQUE,
  username text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  client_id text NOT NULL UNIQUE,
  client_secret_hash text NOT NULL,
  credentials_issued_at timestamptz NOT NULL DEFAULT now(),
  outbound_token_url text,
  outbound_client_id text,
  outbound_secret_encrypted text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every message received, accepted or not: the body exactly as received (text: stored, never
-- parsed again by the database), for the administrator; never logged.
-- outcome: filed (applied to a chart), duplicate-free by the unique index below; unmatched (no
-- patient found: waits for an administrator); ignored (a known event without a referral, or
-- older than what is filed); refused (400: kept, nothing filed); dismissed (by an administrator).
CREATE TABLE ocean_inbox (
  id text PRIMARY KEY,
  integration_id text REFERENCES ocean_integrations (id) ON DELETE SET NULL,
  message_id text,
  event text,
  referral_id text,
  outcome text NOT NULL CHECK (outcome IN ('filed', 'unmatched', 'ignored', 'refused', 'dismissed')),
  problem text,
  patient_id text,
  message text,
  received_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz
);
-- The same MessageHeader id twice from one site is one message (Ocean may deliver twice, and two
-- instances may receive both copies at once): the second INSERT … ON CONFLICT DO NOTHING waits
-- for the first transaction and then finds the row. Refused messages do not count.
CREATE UNIQUE INDEX ocean_inbox_message ON ocean_inbox (integration_id, message_id)
  WHERE outcome <> 'refused';
CREATE INDEX ocean_inbox_outcome ON ocean_inbox (outcome, received_at);

-- One row per referral filed into a chart, keyed by Ocean's referral id: locked while a message
-- is applied (messages of one referral apply one at a time) and remembers the newest message's
-- time, so an older message delivered late never rolls a referral back.
CREATE TABLE ocean_referrals (
  referral_id text PRIMARY KEY,
  integration_id text REFERENCES ocean_integrations (id) ON DELETE SET NULL,
  patient_id text NOT NULL,
  service_request_id text NOT NULL,
  last_message_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ocean_referrals_patient ON ocean_referrals (patient_id);

-- The referral letter (a PDF at Ocean): one durable fetch job per referral, retried with
-- backoff by whichever instance claims it first (FOR UPDATE SKIP LOCKED), and the bytes once fetched.
CREATE TABLE ocean_letters (
  referral_id text PRIMARY KEY REFERENCES ocean_referrals (referral_id) ON DELETE CASCADE,
  url text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'fetched', 'failed', 'in-ocean')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  content_type text,
  content bytea,
  fetched_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ocean_letters_due ON ocean_letters (next_attempt_at) WHERE status = 'pending';
