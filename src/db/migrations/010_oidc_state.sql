-- oidc-provider state (src/oidc/adapter.ts): one row per model instance (Session, Interaction,
-- Grant, AuthorizationCode, RefreshToken, AccessToken reference, ReplayDetection …).
-- `payload` is the model exactly as oidc-provider hands it over; the other columns are the
-- lookups the adapter contract needs (by grant, by uid, by user code) and the expiry.
CREATE TABLE oidc_models (
  model text NOT NULL,
  id text NOT NULL,
  payload jsonb NOT NULL,
  grant_id text,
  uid text,
  user_code text,
  expires_at timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_models_grant ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_uid ON oidc_models (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_user_code ON oidc_models (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oidc_models_expires ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;

-- The EHR sign-in session a launch was redeemed under: an online_access refresh token lives
-- only as long as that session does.
ALTER TABLE launch_contexts ADD COLUMN ehr_session_id text;
