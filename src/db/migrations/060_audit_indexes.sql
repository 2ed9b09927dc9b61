-- Audit trail indexes shaped for what reads them, and fewer of them for what writes them
-- (every PHI access inserts a row; each index is one more insertion per row):
-- - the admin audit query (src/admin/audit-query.ts) pages newest first by id, so the person
--   filters are (column, id): a patient's or a user's page is one backward index range scan;
-- - action (LIKE prefix under a non-C collation) and client (a handful of values) filters could
--   not use their btrees well; they now read in id order like an unfiltered page.
-- The date index on `at` stays as it is.
DROP INDEX audit_events_user;
DROP INDEX audit_events_patient;
DROP INDEX audit_events_client;
DROP INDEX audit_events_action;
CREATE INDEX audit_events_user ON audit_events (user_id, id);
CREATE INDEX audit_events_patient ON audit_events (patient_id, id);
