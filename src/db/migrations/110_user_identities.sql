-- Accounts known by another system's identifier: an identity provider's (iss, sub), or an EHR
-- system's own user id (issuer 'ehr-system:' || client_id). One (issuer, subject) is one account, forever.
CREATE TABLE user_identities (
  issuer text NOT NULL,
  subject text NOT NULL,
  user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
