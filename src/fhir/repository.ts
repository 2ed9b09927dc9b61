/*
 * The FHIR store as other rooms see it: every capability reads and writes resources through
 * these functions, on any Queryable (so inside its own transaction), never through the SQL.
 * - a resource is one JSONB row (type, id, version, last-updated, Patient compartment, seq) plus
 *   one history row per version, which records the compartment that version was filed under
 * - what is stored and how: resource-rules.ts; writes: writes.ts; reads of one resource:
 *   reads.ts; a Patient's compartment page by page: compartment-listing.ts (keyset cursors:
 *   cursor.ts); the EHR patient list: patient-list.ts
 */
export { listCompartment } from './compartment-listing.ts';
export { type PatientSearch, searchPatients } from './patient-list.ts';
export { type RawResource, readRaw, readResource, readVersion, type StoredResource } from './reads.ts';
export { InvalidResourceError } from './resource-rules.ts';
export { createResource, deleteResource, type PutOutcome, putResource, putResources } from './writes.ts';
