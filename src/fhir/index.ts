/*
 * The FHIR capability: the R4 API under /fhir (read, vread, history, search, Patient $everything,
 * metadata), bearer-token access checks, the audit of every access, and the admin import route.
 * Other capabilities use the resource repository directly (src/fhir/repository.ts).
 */
import type { AppContext, Capability } from '../context.ts';
import { sweepImportSpools } from './import-route.ts';
import { fhirRoutes } from './routes.ts';

export async function createFhir(ctx: AppContext): Promise<Capability> {
  const { api, router } = fhirRoutes(ctx);
  return {
    name: 'fhir',
    api,
    router,
    async start() {
      const removed = await sweepImportSpools();
      if (removed > 0) ctx.logger.warn({ removed }, 'removed import spools left by a process that died');
    },
  };
}
