import type { AppContext, Capability } from '../context.ts';

/** Ehr capability (placeholder until its issue lands). */
export async function createEhr(_ctx: AppContext): Promise<Capability> {
  return { name: 'ehr' };
}
