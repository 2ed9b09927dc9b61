import type { AppContext, Capability } from '../context.ts';

/** Admin capability (placeholder until its issue lands). */
export async function createAdmin(_ctx: AppContext): Promise<Capability> {
  return { name: 'admin' };
}
