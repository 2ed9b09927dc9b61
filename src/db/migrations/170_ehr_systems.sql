-- EHR systems (src/ehr-api/, SPEC §3.5): the back ends of other EHRs that ask for launches.
-- Each is an OAuth client of our authorization server with the client_credentials grant and the
-- ehr-launch scope only. It authenticates with private_key_jwt (its public keys inline in `jwks`
-- or fetched from `jwks_uri`) or client_secret_basic (the secret kept only as a keyed hash).
-- `sites` NULL means every Ocean site; `credentials_issued_at` moves when its secret or keys
-- change, so a token issued before stops working at once.
CREATE TABLE ehr_systems (
  client_id text PRIMARY KEY,
  name text NOT NULL,
  token_endpoint_auth_method text NOT NULL
    CHECK (token_endpoint_auth_method IN ('private_key_jwt', 'client_secret_basic')),
  jwks jsonb,
  jwks_uri text,
  client_secret_hash text,
  sites text[],
  credentials_issued_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (
    (token_endpoint_auth_method = 'private_key_jwt' AND client_secret_hash IS NULL
       AND (jwks IS NULL) <> (jwks_uri IS NULL))
    OR (token_endpoint_auth_method = 'client_secret_basic' AND client_secret_hash IS NOT NULL
       AND jwks IS NULL AND jwks_uri IS NULL)
  )
);

-- Launches asked for by an EHR system (expand only: the previous release keeps writing both
-- columns as before). `requested_by` is the EHR system's client_id (NULL: our own screens);
-- such a launch signs its user in for its one authorization. A launch for sign-on only has no
-- patient.
ALTER TABLE launch_contexts ADD COLUMN requested_by text;
ALTER TABLE launch_contexts ALTER COLUMN patient_id DROP NOT NULL;
CREATE INDEX launch_contexts_requested_by ON launch_contexts (requested_by, created_at)
  WHERE requested_by IS NOT NULL;

-- The console shows each EHR system's last launches from the audit trail (src/audit/audit-query.ts
-- launchesRequestedBy): a partial index, so only launch.created rows pay for it.
CREATE INDEX audit_events_requested_by ON audit_events ((detail->>'requested_by'), id)
  WHERE action = 'launch.created';
