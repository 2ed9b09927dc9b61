-- FHIR storage, part 2 (src/fhir/repository.ts, src/fhir/search-index.ts).

-- A write-order key for keyset paging: assigned when a resource is first created and kept on
-- update, so a cursor "after seq N" neither skips nor repeats a resource while a chart changes.
CREATE SEQUENCE fhir_resources_seq;
ALTER TABLE fhir_resources ADD COLUMN seq bigint NOT NULL DEFAULT nextval('fhir_resources_seq');
ALTER SEQUENCE fhir_resources_seq OWNED BY fhir_resources.seq;
CREATE UNIQUE INDEX fhir_resources_by_seq ON fhir_resources (seq);

-- $everything and Patient compartment listings: one range scan in seq order.
CREATE INDEX fhir_resources_compartment_seq ON fhir_resources (compartment_patient, seq)
  WHERE compartment_patient IS NOT NULL;
-- {type}?patient=… searches, and type-wide searches.
CREATE INDEX fhir_resources_compartment_type_seq ON fhir_resources (compartment_patient, resource_type, seq)
  WHERE compartment_patient IS NOT NULL;
CREATE INDEX fhir_resources_type_seq ON fhir_resources (resource_type, seq);

-- Search parameter values extracted at write time (name parts normalised to lower case without
-- accents, identifiers as "system|value" and bare value, gender, birth date). Rewritten with
-- every version of the resource in the same transaction.
CREATE TABLE fhir_search_index (
  resource_type text NOT NULL,
  id text NOT NULL,
  param text NOT NULL,
  value text NOT NULL,
  FOREIGN KEY (resource_type, id) REFERENCES fhir_resources (resource_type, id) ON DELETE CASCADE
);
CREATE INDEX fhir_search_index_lookup ON fhir_search_index (resource_type, param, value text_pattern_ops);
CREATE INDEX fhir_search_index_resource ON fhir_search_index (resource_type, id);
