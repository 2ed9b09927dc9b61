import type { AppContext, Capability } from '../context.ts';

/** Launch capability (placeholder until its issue lands). */
export async function createLaunch(_ctx: AppContext): Promise<Capability> {
  return { name: 'launch' };
}
