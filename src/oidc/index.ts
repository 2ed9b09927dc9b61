/*
 * The oidc capability: the SMART on FHIR authorization server.
 *   GET  /fhir/.well-known/smart-configuration   ours (SMART 2.2), CORS *
 *   GET  /fhir/.well-known/openid-configuration  oidc-provider, CORS *
 *   GET  /fhir/jwks                              ours: active + next + still-published retired keys
 *   GET|POST /fhir/auth, GET /fhir/auth/:uid      oidc-provider (POST normalised, ./authorize-request.ts)
 *   POST /fhir/token, /fhir/token/introspection, /fhir/token/revocation   oidc-provider + ./token-hooks.ts
 *   GET  /interaction/:uid, POST …/confirm       ./interactions.ts (EHR session → login, grant, consent)
 *   GET  /account/apps, POST …/:grantId/revoke   ./connected-apps.ts (the user's standing grants)
 *   GET  /smart-style.json                       the SMART style document
 * The provider is rebuilt behind a stable handler when the signing keys change; expired OIDC
 * rows and launch contexts are purged in the background.
 */
import express, { type RequestHandler, Router } from 'express';
import type Provider from 'oidc-provider';
import type { AppContext, Capability } from '../context.ts';
import { loggableError } from '../http/errors.ts';
import { purgeLaunchContexts } from '../launch/launch-contexts.ts';
import { smartConfiguration } from '../smart/configuration.ts';
import { ROUTES } from '../smart/endpoints.ts';
import { SMART_STYLE_PATH, smartStyleHandler } from '../smart/style.ts';
import { grantLivesSql, type MachineClients, purgeExpiredModels } from './adapter.ts';
import { prepareAuthorizationRequest } from './authorize-request.ts';
import { connectedAppsRoutes } from './connected-apps.ts';
import { liveAccessToken } from './grant-revocation.ts';
import { interactionRoutes } from './interactions.ts';
import { buildProvider } from './provider.ts';

const FHIR_MOUNT = '/fhir';
const PURGE_INTERVAL_MS = 60_000;

/** Paths below /fhir that belong to the provider (everything else falls through to the FHIR API). */
const DISCOVERY_PATHS = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'];
const PROVIDER_PATHS = new Set<string>([
  ROUTES.authorization,
  ROUTES.token,
  ROUTES.introspection,
  ROUTES.revocation,
  ...DISCOVERY_PATHS,
]);
const RESUME_PATH = new RegExp(`^${ROUTES.authorization}/[\\w-]{1,64}$`);
const SESSION_END_PATH = new RegExp(`^${ROUTES.end_session}(/|$)`);

/** The provider's endpoints that speak OAuth JSON, and authorize, which speaks to people. */
const OAUTH_PATH = new RegExp(
  `^${FHIR_MOUNT}(${[ROUTES.token, ROUTES.introspection, ROUTES.revocation].join('|')})/?$`,
  'i',
);
const AUTHORIZE_PATH = new RegExp(`^${FHIR_MOUNT}${ROUTES.authorization}(/|$)`, 'i');

export interface OidcCapability extends Capability {
  /** The provider serving now (rebuilt on key changes). */
  provider(): Provider;
  /** SQL "this access token still counts" for the FHIR API (./grant-revocation.ts). */
  liveTokenSql: typeof liveAccessToken;
}

export async function createOidc(
  ctx: AppContext,
  deps: { machineClients?: MachineClients } = {},
): Promise<OidcCapability> {
  let provider = buildProvider(ctx, deps.machineClients);
  let callback = provider.callback();
  const onKeysChange = () => {
    try {
      provider = buildProvider(ctx, deps.machineClients);
      callback = provider.callback();
      ctx.logger.info('signing keys changed: authorization server reloaded');
    } catch (err) {
      ctx.logger.error(
        { err: loggableError(err) },
        'authorization server reload failed; keeping the previous keys',
      );
    }
  };
  ctx.keys.on('change', onKeysChange);
  const getProvider = () => provider;

  const cors: RequestHandler = (req, res, next) => {
    res.set('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS') {
      res.set('Access-Control-Allow-Methods', 'GET, OPTIONS');
      res.set('Access-Control-Allow-Headers', String(req.headers['access-control-request-headers'] ?? ''));
      res.set('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  };

  const toProvider: RequestHandler = (req, res) => {
    callback(req, res);
  };

  const router = Router();
  router.get(SMART_STYLE_PATH, smartStyleHandler);
  router.options(SMART_STYLE_PATH, cors);

  const fhir = Router();
  fhir.all('/.well-known/smart-configuration', cors, (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    res.set('Cache-Control', 'public, max-age=300');
    res.json(smartConfiguration(ctx.config));
  });
  fhir.all(ROUTES.jwks, cors, (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    res.set('Cache-Control', 'public, max-age=60');
    res.type('application/jwk-set+json').send(JSON.stringify(ctx.keys.publicJwks()));
  });
  // The EHR session is read at the authorization endpoint too: single sign-on without an interaction.
  fhir.post(
    ROUTES.authorization,
    ctx.sessions.middleware,
    express.urlencoded({ extended: false, limit: ctx.config.bodyLimit }),
    (req, _res, next) => {
      prepareAuthorizationRequest(req, FHIR_MOUNT);
      next();
    },
    toProvider,
  );
  fhir.get(
    ROUTES.authorization,
    ctx.sessions.middleware,
    (req, _res, next) => {
      prepareAuthorizationRequest(req, FHIR_MOUNT);
      next();
    },
    toProvider,
  );
  // Discovery names only PUBLIC_URL endpoints whatever the request's Host (./public-origin.ts), so
  // the document is the same for every requester and CORS is "*": a shared cache keyed on the URL
  // alone cannot serve anyone a wrong copy. Had it depended on Host, the only safe answer would
  // have been `Vary: Host, X-Forwarded-Host` or no-store.
  fhir.get(DISCOVERY_PATHS, (_req, res, next) => {
    res.set('Cache-Control', 'public, max-age=300');
    next();
  });
  fhir.use((req, res, next) => {
    if (PROVIDER_PATHS.has(req.path) || RESUME_PATH.test(req.path) || SESSION_END_PATH.test(req.path)) {
      toProvider(req, res, next);
      return;
    }
    next();
  });
  router.use(FHIR_MOUNT, fhir);
  router.use(interactionRoutes(ctx, getProvider));
  router.use(connectedAppsRoutes(ctx));

  let timer: NodeJS.Timeout | undefined;
  const purge = async () => {
    try {
      const models = await purgeExpiredModels(ctx);
      const launches = await purgeLaunchContexts(ctx, grantLivesSql);
      if (models + launches > 0) ctx.logger.debug({ models, launches }, 'purged expired authorization state');
    } catch (err) {
      ctx.logger.warn({ err: loggableError(err) }, 'purging expired authorization state failed');
    }
  };

  const limits = ctx.config.rateLimits;
  return {
    name: 'oidc',
    router,
    provider: getProvider,
    liveTokenSql: liveAccessToken,
    paths: [
      { path: AUTHORIZE_PATH, errorFormat: 'html' },
      { path: OAUTH_PATH, errorFormat: 'oauth' },
    ],
    rateLimits: [
      {
        name: 'token',
        method: 'POST',
        path: `${FHIR_MOUNT}${ROUTES.token}`,
        limit: limits.token,
        format: 'oauth',
      },
      {
        name: 'introspection',
        method: 'POST',
        path: `${FHIR_MOUNT}${ROUTES.introspection}`,
        limit: limits.introspection,
        format: 'oauth',
      },
    ],
    start() {
      timer = setInterval(() => void purge(), PURGE_INTERVAL_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      ctx.keys.off('change', onKeysChange);
    },
  };
}
