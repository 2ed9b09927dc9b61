/*
 * The FHIR API's route table (under the FHIR base, /fhir).
 * - every interaction runs the whole guard pipeline (pipeline.ts): authenticate → typeAllowed →
 *   perform → activeUser → audit → answer
 * - known types only; an unknown capitalised type is a FHIR 404; writes are 405 (read-only API)
 */
import { type NextFunction, type Request, type Response, Router } from 'express';
import type { AppContext } from '../context.ts';
import { HttpError, speaks } from '../http/errors.ts';
import type { HotRoute } from '../http/lean-dispatch.ts';
import { AccessTokenVerifier } from './access-token.ts';
import { capabilityStatement } from './capability-statement.ts';
import { everythingInteraction } from './everything.ts';
import { cors, FHIR_JSON, negotiate } from './fhir-http.ts';
import { historyInteraction } from './history.ts';
import type { LiveTokenSql } from './live-token.ts';
import { fhirPipeline } from './pipeline.ts';
import { readInteraction, vreadInteraction } from './read.ts';
import { isSupportedType } from './resource-types.ts';
import { searchInteraction } from './search.ts';

/** metadata or a capitalised resource type (known or not: unknown ones get a FHIR 404). */
const FHIR_PATH = /^\/(metadata|[A-Z][A-Za-z]{0,63})(\/|$)/;

/** Known types only; an unknown capitalised name is a FHIR 404, anything else is left to later routers. */
function knownType(req: Request, _res: Response, next: NextFunction) {
  const type = req.params.type as string;
  if (isSupportedType(type)) return next();
  if (/^[A-Z][A-Za-z]{1,63}$/.test(type))
    return next(
      new HttpError(
        404,
        'not_found',
        `resource type ${type} is not supported by this server`,
        {},
        'not-supported',
      ),
    );
  next('route');
}

function readOnly(_req: Request, _res: Response, next: NextFunction) {
  next(
    new HttpError(
      405,
      'method_not_allowed',
      'this FHIR server is read-only; load data through the admin import',
      { Allow: 'GET, HEAD' },
      'not-supported',
    ),
  );
}

/** `/fhir/{Type}/{id}` exactly, for a supported type and a valid id: the read's hot path. */
const READ_PATH = /^\/fhir\/([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})$/;

/** The FHIR API under /fhir (bearer tokens, read-only), and its hot route (the read). */
export function fhirRoutes(
  ctx: AppContext,
  liveTokenSql: LiveTokenSql,
): { api: Router; hotRoutes: HotRoute[] } {
  const guarded = fhirPipeline(ctx, new AccessTokenVerifier(ctx), liveTokenSql);
  const metadataText = JSON.stringify(capabilityStatement(ctx)());
  const metadata = (_req: Request, res: Response) => {
    res.status(200).setHeader('Content-Type', FHIR_JSON);
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.end(metadataText);
  };

  const fhir = Router();
  fhir.use(speaks('fhir'));
  fhir.options('/metadata', cors);
  fhir.get('/metadata', cors, negotiate, metadata);
  fhir.options(['/:type', '/:type/*rest'], knownType, cors);
  fhir.get('/Patient/:id/\\$everything', cors, negotiate, guarded(everythingInteraction(ctx, liveTokenSql)));
  fhir.get('/:type', knownType, cors, negotiate, guarded(searchInteraction(ctx)));
  const read = [cors, negotiate, guarded(readInteraction(ctx, liveTokenSql))];
  fhir.get('/:type/:id', knownType, ...read);
  fhir.get('/:type/:id/_history', knownType, cors, negotiate, guarded(historyInteraction(ctx)));
  fhir.get('/:type/:id/_history/:vid', knownType, cors, negotiate, guarded(vreadInteraction(ctx)));
  fhir.all(['/:type', '/:type/*rest'], knownType, cors, readOnly);

  // Only FHIR interaction paths enter: the provider's endpoints under the same base (/fhir/token,
  // /fhir/.well-known/…) must not meet this router, whose OPTIONS answer would shadow theirs.
  const api = Router();
  api.use('/fhir', (req, res, next) => (FHIR_PATH.test(req.path) ? fhir(req, res, next) : next()));

  // The same read, its handlers unchanged, for the lean dispatcher: an exact path only.
  const readRoute: HotRoute = {
    match(path) {
      const m = READ_PATH.exec(path);
      return m && isSupportedType(m[1]!) ? { type: m[1]!, id: m[2]! } : undefined;
    },
    handlers: [speaks('fhir'), ...read],
  };
  return { api, hotRoutes: [readRoute] };
}
