/*
 * The FHIR API's route table (under the FHIR base, /fhir).
 */
import { type NextFunction, type Request, type Response, Router } from 'express';
import type { AppContext } from '../context.ts';
import { HttpError, speaks } from '../http/errors.ts';
import { AccessTokenVerifier } from './access-token.ts';
import { capabilityStatement } from './capability-statement.ts';
import { everythingHandler } from './everything.ts';
import { audit, cors, FHIR_JSON, handle, negotiate } from './fhir-http.ts';
import { readHandlers } from './read.ts';
import { isSupportedType } from './resource-types.ts';
import { searchHandler } from './search.ts';

/** metadata or a capitalised resource type (known or not: unknown ones get a FHIR 404). */
const FHIR_PATH = /^\/(metadata|[A-Z][A-Za-z]{0,63})(\/|$)/;

/** The FHIR API under /fhir (bearer tokens, read-only). */
export function fhirRoutes(ctx: AppContext): Router {
  const verifier = new AccessTokenVerifier(ctx);
  const { read, vread, history } = readHandlers(ctx);
  const metadata = capabilityStatement(ctx);

  const authenticate = (req: Request, res: Response, next: NextFunction) => {
    verifier.authenticate(req).then(
      (principal) => {
        res.locals.principal = principal;
        next();
      },
      (err: unknown) => {
        audit(ctx, req, undefined, {
          action: 'fhir.denied',
          entity: req.path.split('/').slice(0, 3).join('/'),
          outcome: 'failure',
          detail: { status: 401 },
        }).then(
          () => next(err),
          (auditErr: unknown) => next(auditErr),
        );
      },
    );
  };
  /** Known types only; an unknown capitalised name is a FHIR 404, anything else is left to later routers. */
  const knownType = (req: Request, _res: Response, next: NextFunction) => {
    const type = req.params.type as string;
    if (isSupportedType(type)) return next();
    if (/^[A-Z][A-Za-z]{1,63}$/.test(type)) {
      return next(
        new HttpError(
          404,
          'not_found',
          `resource type ${type} is not supported by this server`,
          {},
          'not-supported',
        ),
      );
    }
    next('route');
  };
  const readOnly = (_req: Request, _res: Response, next: NextFunction) =>
    next(
      new HttpError(
        405,
        'method_not_allowed',
        'this FHIR server is read-only; load data through the admin import',
        { Allow: 'GET, HEAD' },
        'not-supported',
      ),
    );

  const fhir = Router();
  fhir.use(speaks('fhir'));
  fhir.options('/metadata', cors);
  const metadataText = JSON.stringify(metadata());
  fhir.get('/metadata', cors, negotiate, (_req, res) => {
    res.status(200).setHeader('Content-Type', FHIR_JSON);
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.end(metadataText);
  });
  fhir.options(['/:type', '/:type/*rest'], knownType, cors);
  fhir.get('/Patient/:id/\\$everything', cors, negotiate, authenticate, handle(everythingHandler(ctx)));
  fhir.get('/:type', knownType, cors, negotiate, authenticate, handle(searchHandler(ctx)));
  fhir.get('/:type/:id', knownType, cors, negotiate, authenticate, handle(read));
  fhir.get('/:type/:id/_history', knownType, cors, negotiate, authenticate, handle(history));
  fhir.get('/:type/:id/_history/:vid', knownType, cors, negotiate, authenticate, handle(vread));
  fhir.all(['/:type', '/:type/*rest'], knownType, cors, readOnly);

  // Only FHIR interaction paths enter: the provider's endpoints under the same base (/fhir/token,
  // /fhir/.well-known/…) must not meet this router, whose OPTIONS answer would shadow theirs.
  const api = Router();
  api.use('/fhir', (req, res, next) => (FHIR_PATH.test(req.path) ? fhir(req, res, next) : next()));
  return api;
}
