-- SECRETS_KEY rotation (src/keys/): the derivation root and the instances' readable keys.

-- The root that keyed hashes (client secrets, throttle keys) and cookie-signing keys are derived
-- from, sealed like any other secret. It is seeded with the first SECRETS_KEY an instance starts
-- with, so hashes and cookies made before it existed stay valid, and it survives a rotation of
-- SECRETS_KEY (only its sealing changes): client secrets and sessions outlive the old key.
CREATE TABLE secrets_root (
  id text PRIMARY KEY CHECK (id = 'root'),
  root_sealed text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per running instance, refreshed every KEY_REFRESH_INTERVAL: which key it seals with
-- and which keys it can open. A new SECRETS_KEY seals nothing until every live instance can
-- open it, so instances still on the old configuration never meet a value they cannot read.
CREATE TABLE secrets_key_readers (
  instance_id text PRIMARY KEY,
  current_key_id text NOT NULL,
  readable_key_ids text[] NOT NULL,
  seen_at timestamptz NOT NULL DEFAULT now()
);
