/*
 * The FHIR capability: the R4 API under /fhir (read, vread, history, search, Patient $everything,
 * metadata), bearer-token access checks and the audit of every access. The import (a Bundle into
 * the store) is here too; the admin capability mounts its route. Other capabilities use the
 * resource store's functions (src/fhir/repository.ts).
 */
import type { AppContext, Capability } from '../context.ts';
import { loggableError } from '../http/errors.ts';
import { sweepImportSpools } from './import-route.ts';
import type { LiveTokenSql } from './live-token.ts';
import { fhirRoutes } from './routes.ts';

/** `liveTokenSql`: the authorization server's "this access token still counts" (./live-token.ts). */
export async function createFhir(ctx: AppContext, deps: { liveTokenSql: LiveTokenSql }): Promise<Capability> {
  const { api, hotRoutes } = fhirRoutes(ctx, deps.liveTokenSql);
  return {
    name: 'fhir',
    api,
    hotRoutes,
    // The FHIR base (the API and the authorization server's endpoints under it) is for machines.
    paths: [{ path: /^\/fhir(\/|$)/, sessionless: true }],
    // Spools a dead process left are swept in the background: nothing waits for them, and the
    // scan of the temporary folder is not start-up time.
    start() {
      sweepImportSpools().then(
        (removed) => {
          if (removed > 0) ctx.logger.warn({ removed }, 'removed import spools left by a process that died');
        },
        (err: unknown) => ctx.logger.warn({ err: loggableError(err) }, 'sweeping import spools failed'),
      );
    },
  };
}
