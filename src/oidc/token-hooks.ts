/*
 * What SMART needs from the token, introspection and revocation endpoints that oidc-provider
 * does not do by itself (each verified by a test in test/oidc/):
 * - the token response carries the launch context at top level (SMART 2.2 §"Launch context
 *   arrives with your access_token") and `Pragma: no-cache` (RFC 6749 §5.1; oidc-provider dropped it)
 * - JWT access tokens cannot be introspected or revoked by oidc-provider: we verify them against
 *   our JWKS, after oidc-provider has authenticated the client, and answer RFC 7662 / RFC 7009
 * - every issued JWT access token leaves a reference row (model "JwtAccessToken", by grant);
 *   introspection says active only while ./grant-revocation.ts's liveAccessToken() holds, the same
 *   condition the FHIR API checks, and revoking an access token ends its whole grant there
 * - an online_access refresh token stops working when the EHR session it was issued under ends
 */
import { decodeJwt, jwtVerify } from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { auditedChange } from '../audit/audit.ts';
import type { AppContext } from '../context.ts';
import { DatabaseUnavailableError } from '../db/database.ts';
import { loggableError } from '../http/errors.ts';
import {
  findLaunchContextByGrant,
  type LaunchContext,
  type LaunchContextMembers,
  launchContextMembers,
} from '../launch/launch-contexts.ts';
import { splitScope } from '../smart/scopes.ts';
import { isSessionAlive } from '../web/session.ts';
import { JWT_ACCESS_TOKEN_MODEL, liveAccessTokenGrant, revokeGrants } from './grant-revocation.ts';

interface Resolved {
  context: LaunchContext;
  members: LaunchContextMembers;
}

const perRequest = new WeakMap<object, Map<string, Promise<Resolved | undefined>>>();

/** The launch context of a grant, looked up once per request however many hooks ask for it. */
export function contextForGrant(
  ctx: AppContext,
  kctx: object,
  grantId: string,
): Promise<LaunchContextMembers | undefined> {
  return resolveForGrant(ctx, kctx, grantId).then((r) => r?.members);
}

function resolveForGrant(ctx: AppContext, kctx: object, grantId: string): Promise<Resolved | undefined> {
  let cache = perRequest.get(kctx);
  if (!cache) {
    cache = new Map();
    perRequest.set(kctx, cache);
  }
  let hit = cache.get(grantId);
  if (!hit) {
    hit = findLaunchContextByGrant(ctx, grantId).then((context) =>
      context ? { context, members: launchContextMembers(ctx, context) } : undefined,
    );
    cache.set(grantId, hit);
  }
  return hit;
}

/** Whether the EHR session an online_access grant was redeemed under is still signed in. */
async function ehrSessionAlive(ctx: AppContext, sid: string | null): Promise<boolean> {
  if (!sid) return false;
  return isSessionAlive(ctx.db, sid);
}

const onlineOnly = (scope: string | undefined) => {
  const s = new Set(splitScope(scope));
  return s.has('online_access') && !s.has('offline_access');
};

const looksLikeJwt = (v: unknown): v is string =>
  typeof v === 'string' && v.length < 16_384 && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(v);

export function installTokenHooks(ctx: AppContext, provider: Provider): void {
  const fhirBase = ctx.config.fhirBaseUrl;

  // online_access ends with the EHR session (SMART 2.2 §"online_access"): a refresh token of an
  // ended session is, from then on, a token that does not exist (invalid_grant; introspection inactive).
  const RefreshToken = provider.RefreshToken as unknown as {
    find(value: string, options?: object): Promise<{ scope?: string; grantId?: string } | undefined>;
  };
  const findRefreshToken = RefreshToken.find.bind(RefreshToken);
  RefreshToken.find = async (value, options) => {
    const token = await findRefreshToken(value, options);
    if (!token || !onlineOnly(token.scope)) return token;
    const context = token.grantId ? await findLaunchContextByGrant(ctx, token.grantId) : undefined;
    return context && (await ehrSessionAlive(ctx, context.ehrSessionId)) ? token : undefined;
  };

  /** Verifies one of our JWT access tokens; undefined for anything else. */
  async function verifyAccessToken(token: string) {
    try {
      const { payload } = await jwtVerify(token, ctx.keys.verificationKeys, {
        issuer: fhirBase,
        audience: fhirBase,
        typ: 'at+jwt',
        algorithms: ['RS256', 'ES256'],
      });
      const { jti, sub } = payload;
      if (typeof jti !== 'string' || typeof sub !== 'string' || typeof payload.client_id !== 'string')
        return undefined;
      const grantId = await liveAccessTokenGrant(ctx.db, jti, sub);
      return grantId ? { payload, grantId } : undefined;
    } catch {
      return undefined;
    }
  }

  // Prometheus: tokens issued by grant type (oidc-provider only lets enabled grant types succeed).
  provider.on('grant.success', (kctx: KoaContextWithOIDC) =>
    ctx.metrics.tokensIssued.inc({ grant_type: String(kctx.oidc.params?.grant_type ?? 'unknown') }),
  );

  provider.use(async (kctx: KoaContextWithOIDC, next) => {
    await next();
    const route = kctx.oidc?.route;
    try {
      if (route === 'token') await afterToken(kctx);
      else if (route === 'introspection') await afterIntrospection(kctx);
      else if (route === 'revocation') await afterRevocation(kctx);
    } catch (err) {
      // The database went away between oidc-provider's work and ours: 503, like every endpoint in an outage.
      if (err instanceof DatabaseUnavailableError) {
        kctx.status = 503;
        kctx.body = { error: err.error, error_description: err.error_description };
        return;
      }
      kctx.oidc?.provider?.emit?.('server_error', kctx, err);
      ctx.logger.error({ err: loggableError(err), route }, 'token hook failed');
      kctx.status = 500;
      kctx.body = { error: 'server_error', error_description: 'an unexpected error occurred' };
    }
  });

  async function afterToken(kctx: KoaContextWithOIDC) {
    // RFC 6749 §5.1: no-store and no-cache on every token response, errors included.
    kctx.set('Cache-Control', 'no-store');
    kctx.set('Pragma', 'no-cache');
    const body = kctx.body as Record<string, unknown> | undefined;
    if (kctx.status !== 200 || !body || typeof body.access_token !== 'string') return;
    // SMART Backend Services answers client_credentials with token_type "bearer" (case-insensitive
    // by RFC 6749 §5.1, but test kits compare it as written).
    if (kctx.oidc.params?.grant_type === 'client_credentials' && body.token_type === 'Bearer') {
      body.token_type = 'bearer';
    }
    const grant = kctx.oidc.entities.Grant;
    const grantId = grant?.jti;
    if (!grantId) return;
    const resolved = await resolveForGrant(ctx, kctx, grantId);
    if (resolved) Object.assign(body, resolved.members.tokenResponse);

    const at = decodeJwt(body.access_token);
    // The reference row and the token.issued audit event, in one statement (the event is written
    // even if the reference row was already there: the token in this response was issued).
    const params: unknown[] = [
      JWT_ACCESS_TOKEN_MODEL,
      at.jti,
      JSON.stringify({ jti: at.jti, grantId, clientId: at.client_id, accountId: at.sub, exp: at.exp }),
      grantId,
      at.exp,
    ];
    const audited = auditedChange(
      '(SELECT 1) AS issuing',
      {
        action: 'token.issued',
        userId: grant.accountId ?? null,
        clientId: kctx.oidc.client?.clientId ?? null,
        patientId: resolved?.context.patientId ?? null,
        entity: resolved?.context.patientId ? `Patient/${resolved.context.patientId}` : null,
        requestId: (kctx.req as { id?: string }).id ?? null,
        ip: kctx.ip,
        detail: {
          grant_type: String(kctx.oidc.params?.grant_type ?? ''),
          scope: String(body.scope ?? ''),
          refresh_token: typeof body.refresh_token === 'string',
        },
      },
      params,
    );
    await ctx.db.query(
      `WITH issued AS (
         INSERT INTO oidc_models (model, id, payload, grant_id, expires_at)
         VALUES ($1, $2, $3, $4, to_timestamp($5)) ON CONFLICT (model, id) DO NOTHING),
       ${audited}
       SELECT 1`,
      params,
      { prepare: true },
    );
  }

  async function afterIntrospection(kctx: KoaContextWithOIDC) {
    const body = kctx.body as Record<string, unknown> | undefined;
    const client = kctx.oidc.client;
    if (!client || !body) return; // client authentication failed: oidc-provider's 401 stands
    const token = kctx.oidc.params?.token;
    if (body.error === 'unsupported_token_type' && looksLikeJwt(token)) {
      // RFC 7662 §2.2: anything we cannot vouch for is simply inactive.
      kctx.status = 200;
      kctx.body = { active: false };
      const verified = await verifyAccessToken(token);
      if (!verified || verified.payload.client_id !== client.clientId) return;
      const { payload, grantId } = verified;
      const resolved = await resolveForGrant(ctx, kctx, grantId);
      kctx.body = {
        active: true,
        scope: payload.scope,
        client_id: payload.client_id,
        token_type: 'Bearer',
        exp: payload.exp,
        iat: payload.iat,
        iss: payload.iss,
        aud: payload.aud,
        sub: payload.sub,
        jti: payload.jti,
        ...(typeof payload.fhirUser === 'string' ? { fhirUser: payload.fhirUser } : {}),
        ...resolved?.members.introspection,
      };
      return;
    }
    if (body.active === true) {
      const grantId = kctx.oidc.entities.Grant?.jti;
      const resolved = grantId ? await resolveForGrant(ctx, kctx, grantId) : undefined;
      if (resolved) Object.assign(body, resolved.members.introspection);
    }
  }

  async function afterRevocation(kctx: KoaContextWithOIDC) {
    const body = kctx.body as Record<string, unknown> | undefined;
    const client = kctx.oidc.client;
    const token = kctx.oidc.params?.token;
    if (!client || body?.error !== 'unsupported_token_type' || !looksLikeJwt(token)) return;
    // RFC 7009 §2.2: 200 whatever the token was. Revoking our access token ends its whole grant
    // (refresh tokens and the grant's other access tokens included), at the FHIR API too.
    kctx.status = 200;
    kctx.body = '';
    const verified = await verifyAccessToken(token);
    if (!verified || verified.payload.client_id !== client.clientId) return;
    await revokeGrants(
      ctx.db,
      { grantIds: [verified.grantId] },
      { reason: 'access_token_revoked', requestId: (kctx.req as { id?: string }).id ?? null, ip: kctx.ip },
    );
  }
}
