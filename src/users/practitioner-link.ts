/*
 * What the admin needs of EHR users beyond ./users.ts: linking a user to an existing
 * Practitioner (one imported with the chart data, say) instead of the one made at creation.
 * - the Practitioner must exist and not be deleted: a ValidationError on `practitioner` otherwise
 * - the user's id (the id_token sub) never changes; only fhirUser / profile now name the new resource
 */
import type { Queryable } from '../db/database.ts';
import { ValidationError } from '../http/errors.ts';

export async function linkPractitioner(tx: Queryable, userId: string, reference: string): Promise<void> {
  const practitionerId = reference.slice('Practitioner/'.length);
  const found = await tx.query(
    `SELECT 1 FROM fhir_resources WHERE resource_type = 'Practitioner' AND id = $1 AND NOT deleted`,
    [practitionerId],
  );
  if (found.rowCount === 0) {
    throw new ValidationError([{ path: 'practitioner', message: `${reference} does not exist` }]);
  }
  await tx.query('UPDATE users SET practitioner_id = $2, updated_at = now() WHERE id = $1', [
    userId,
    practitionerId,
  ]);
}
