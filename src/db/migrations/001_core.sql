-- Core schema shared by every capability. Later capabilities add their own numbered files:
-- 010-019 oidc/smart, 020-029 ehr, 030-039 fhir, 040-049 admin, 050-059 operations.

-- Signing keys (src/keys/signing-keys.ts): private parts encrypted with SECRETS_KEY.
CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL CHECK (alg IN ('RS256', 'ES256')),
  state text NOT NULL CHECK (state IN ('next', 'active', 'retired')),
  public_jwk jsonb NOT NULL,
  private_jwk_encrypted text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  retired_at timestamptz,
  publish_until timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (alg) WHERE state = 'next';

-- EHR users. `id` is the id_token `sub`: drawn once, never changed (SPEC §2).
CREATE TABLE users (
  id text PRIMARY KEY,
  username text NOT NULL,
  password_hash text NOT NULL,
  practitioner_id text NOT NULL,
  given_name text NOT NULL,
  family_name text NOT NULL,
  email text,
  roles text[] NOT NULL DEFAULT '{}',
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  password_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username ON users (lower(username));

-- EHR sign-in sessions (express-session store): shared by all instances, survive restarts.
CREATE TABLE ehr_sessions (
  sid text PRIMARY KEY,
  user_id text REFERENCES users(id) ON DELETE CASCADE,
  data jsonb NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX ehr_sessions_expires ON ehr_sessions (expires_at);
CREATE INDEX ehr_sessions_user ON ehr_sessions (user_id) WHERE user_id IS NOT NULL;

-- OAuth clients (Ocean). `metadata` is oidc-provider client metadata without any secret;
-- the secret is kept only as a keyed hash.
CREATE TABLE clients (
  client_id text PRIMARY KEY,
  name text NOT NULL,
  metadata jsonb NOT NULL,
  client_secret_hash text,
  launch_url text,
  require_pkce boolean NOT NULL DEFAULT true,
  pre_authorized boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Ocean sites: site number, its SEK (encrypted) and the chart buttons it offers.
-- site_num is unique across clients: /launch?site= names a site alone.
CREATE TABLE sites (
  site_num text PRIMARY KEY,
  client_id text NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
  sek_encrypted text NOT NULL,
  sek_hint text NOT NULL,
  actions jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_client ON sites (client_id);

-- Launch contexts (src/launch/launch-contexts.ts): single-use, short-lived, bound to
-- user, patient, site and client. The opaque id is stored only as its SHA-256.
CREATE TABLE launch_contexts (
  id_hash text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  patient_id text NOT NULL,
  client_id text NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
  site_num text NOT NULL,
  action text NOT NULL,
  sek_encrypted text NOT NULL,
  need_patient_banner boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  grant_id text
);
CREATE INDEX launch_contexts_expires ON launch_contexts (expires_at);
CREATE INDEX launch_contexts_grant ON launch_contexts (grant_id) WHERE grant_id IS NOT NULL;

-- FHIR resources, current version (src/fhir/repository.ts). `compartment_patient` is the id
-- of the Patient whose compartment holds the resource (R4 Patient CompartmentDefinition).
CREATE TABLE fhir_resources (
  resource_type text NOT NULL,
  id text NOT NULL,
  version_id integer NOT NULL,
  last_updated timestamptz NOT NULL,
  compartment_patient text,
  deleted boolean NOT NULL DEFAULT false,
  resource jsonb NOT NULL,
  PRIMARY KEY (resource_type, id)
);
CREATE INDEX fhir_resources_compartment ON fhir_resources (compartment_patient, resource_type, id)
  WHERE compartment_patient IS NOT NULL;

-- Every version ever written (vread).
CREATE TABLE fhir_resource_history (
  resource_type text NOT NULL,
  id text NOT NULL,
  version_id integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  resource jsonb NOT NULL,
  PRIMARY KEY (resource_type, id, version_id)
);

-- Audit trail (src/audit/audit.ts): who did what to which patient, when. Never bodies or secrets.
CREATE TABLE audit_events (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  action text NOT NULL,
  outcome text NOT NULL DEFAULT 'success',
  user_id text,
  client_id text,
  patient_id text,
  entity text,
  request_id text,
  ip text,
  detail jsonb
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_patient ON audit_events (patient_id, at);
CREATE INDEX audit_events_client ON audit_events (client_id, at);
CREATE INDEX audit_events_action ON audit_events (action, at);
