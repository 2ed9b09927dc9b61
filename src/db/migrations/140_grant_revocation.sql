-- Grants end by user and by client (src/oidc/grant-revocation.ts): a password reset, a
-- deactivation, an administrator's "end this user's access", a client deleted or its secret
-- reset each find the grants of one user or one client. Only Grant rows are indexed (a partial
-- index: the other oidc-provider models pay nothing on write), by the ids their payload names.
CREATE INDEX oidc_grants_account ON oidc_models ((payload->>'accountId')) WHERE model = 'Grant';
CREATE INDEX oidc_grants_client ON oidc_models ((payload->>'clientId')) WHERE model = 'Grant';
-- Signing out ends the online_access grants redeemed under that EHR session: found by session.
CREATE INDEX launch_contexts_ehr_session ON launch_contexts (ehr_session_id) WHERE ehr_session_id IS NOT NULL;
