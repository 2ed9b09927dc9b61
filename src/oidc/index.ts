import type { AppContext, Capability } from '../context.ts';

/** Oidc capability (placeholder until its issue lands). */
export async function createOidc(_ctx: AppContext): Promise<Capability> {
  return { name: 'oidc' };
}
