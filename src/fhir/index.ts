import type { AppContext, Capability } from '../context.ts';

/** Fhir capability (placeholder until its issue lands). */
export async function createFhir(_ctx: AppContext): Promise<Capability> {
  return { name: 'fhir' };
}
