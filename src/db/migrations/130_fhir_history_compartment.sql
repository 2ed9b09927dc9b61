-- Each version's own Patient compartment (src/fhir/writes.ts writes it with every version):
-- _history and vread judge a version by the chart *it* was filed in, so a result first filed
-- under one patient and then refiled under another never shows its first version to the second.
ALTER TABLE fhir_resource_history ADD COLUMN compartment_patient text;

-- Backfill from each version's own body, by the R4 Patient CompartmentDefinition paths of
-- src/fhir/resource-types.ts as they stand when this migration is written: the first path (in
-- rank order) holding a local reference Patient/{id} decides; a Patient is its own compartment.
WITH paths (resource_type, rank, path) AS (
  VALUES
    ('AllergyIntolerance', 1, '$.patient.reference'),
    ('AllergyIntolerance', 2, '$.recorder.reference'),
    ('AllergyIntolerance', 3, '$.asserter.reference'),
    ('CarePlan', 1, '$.subject.reference'),
    ('CarePlan', 2, '$.activity.detail.performer.reference'),
    ('CareTeam', 1, '$.subject.reference'),
    ('CareTeam', 2, '$.participant.member.reference'),
    ('Claim', 1, '$.patient.reference'),
    ('Claim', 2, '$.payee.party.reference'),
    ('Condition', 1, '$.subject.reference'),
    ('Condition', 2, '$.asserter.reference'),
    ('Coverage', 1, '$.beneficiary.reference'),
    ('Coverage', 2, '$.subscriber.reference'),
    ('Coverage', 3, '$.policyHolder.reference'),
    ('Coverage', 4, '$.payor.reference'),
    ('Device', 1, '$.patient.reference'),
    ('DiagnosticReport', 1, '$.subject.reference'),
    ('DocumentReference', 1, '$.subject.reference'),
    ('DocumentReference', 2, '$.author.reference'),
    ('Encounter', 1, '$.subject.reference'),
    ('ExplanationOfBenefit', 1, '$.patient.reference'),
    ('ExplanationOfBenefit', 2, '$.payee.party.reference'),
    ('Goal', 1, '$.subject.reference'),
    ('ImagingStudy', 1, '$.subject.reference'),
    ('Immunization', 1, '$.patient.reference'),
    ('MedicationAdministration', 1, '$.subject.reference'),
    ('MedicationAdministration', 2, '$.performer.actor.reference'),
    ('MedicationRequest', 1, '$.subject.reference'),
    ('MedicationStatement', 1, '$.subject.reference'),
    ('Observation', 1, '$.subject.reference'),
    ('Observation', 2, '$.performer.reference'),
    ('Procedure', 1, '$.subject.reference'),
    ('Procedure', 2, '$.performer.actor.reference'),
    ('Provenance', 1, '$.target.reference'),
    ('ServiceRequest', 1, '$.subject.reference'),
    ('ServiceRequest', 2, '$.performer.reference'),
    ('SupplyDelivery', 1, '$.patient.reference')
)
UPDATE fhir_resource_history h
   SET compartment_patient = CASE
     WHEN h.resource_type = 'Patient' THEN h.id
     ELSE (
       SELECT substring(ref.value #>> '{}' FROM '^Patient/([A-Za-z0-9.-]{1,64})(?:/_history/[A-Za-z0-9.-]{1,64})?$')
         FROM paths p
        CROSS JOIN LATERAL jsonb_path_query(h.resource, p.path::jsonpath) WITH ORDINALITY AS ref (value, n)
        WHERE p.resource_type = h.resource_type
          AND jsonb_typeof(ref.value) = 'string'
          AND (ref.value #>> '{}') ~ '^Patient/[A-Za-z0-9.-]{1,64}(/_history/[A-Za-z0-9.-]{1,64})?$'
        ORDER BY p.rank, ref.n
        LIMIT 1
     )
   END
 WHERE NOT h.deleted;

-- A deletion keeps the compartment of the version it deleted (as the current row does).
UPDATE fhir_resource_history h
   SET compartment_patient = prev.compartment_patient
  FROM fhir_resource_history prev
 WHERE h.deleted
   AND prev.resource_type = h.resource_type AND prev.id = h.id AND prev.version_id = h.version_id - 1;
