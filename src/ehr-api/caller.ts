/*
 * Who is asking for a launch: an EHR system holding a token from our token endpoint
 * (client_credentials, scope ehr-launch), or nobody (CONTRACT §3.5).
 * - no token, a malformed header, a bad signature, an expired token: 401 with a Bearer challenge
 * - a token of an EHR system that was removed, or issued before its secret or keys last changed:
 *   401 invalid_token — such tokens end at once, though they are never stored
 * - a valid token without ehr-launch (a clinician's, Ocean's message integration's): 403
 * - a verified signature is remembered until the token expires (an EHR back end reuses its token
 *   for every launch); whether its EHR system still counts is asked of the database every time
 */
import type { Request } from 'express';
import { errors as joseErrors } from 'jose';
import { HttpError } from '../http/errors.ts';
import type { SigningKeys } from '../keys/signing-keys.ts';
import { bearerJwt, verifyAccessTokenJwt } from '../smart/access-token-jwt.ts';
import { splitScope } from '../smart/scopes.ts';
import {
  EHR_LAUNCH_SCOPE,
  EHR_SYSTEM_CLIENT_PREFIX,
  type EhrSystemRef,
  type EhrSystems,
} from './ehr-systems.ts';

const unauthorized = (
  description: string,
  error: 'invalid_token' | 'invalid_request' | null = 'invalid_token',
) =>
  new HttpError(
    401,
    error ?? 'invalid_token',
    description,
    { 'WWW-Authenticate': error ? `Bearer realm="ehr-api", error="${error}"` : 'Bearer realm="ehr-api"' },
    'login',
  );

const forbidden = (description: string) =>
  new HttpError(
    403,
    'insufficient_scope',
    description,
    { 'WWW-Authenticate': `Bearer realm="ehr-api", error="insufficient_scope", scope="${EHR_LAUNCH_SCOPE}"` },
    'forbidden',
  );

const MAX_REMEMBERED = 1000;

interface VerifiedClaims {
  clientId: string;
  scope: string;
  iat: number;
  exp: number;
}

export function ehrSystemAuthenticator(systems: EhrSystems, keys: SigningKeys, fhirBaseUrl: string) {
  const verified = new Map<string, VerifiedClaims>();
  keys.on?.('change', () => verified.clear());

  /** The token's claims once its signature, issuer, audience and expiry hold (remembered until exp). */
  async function verify(token: string): Promise<VerifiedClaims> {
    const hit = verified.get(token);
    if (hit && hit.exp > Date.now() / 1000) return hit;
    if (hit) verified.delete(token);
    let payload: Record<string, unknown>;
    try {
      payload = await verifyAccessTokenJwt(keys, fhirBaseUrl, token, ['exp', 'iat', 'client_id', 'scope']);
    } catch (err) {
      throw unauthorized(
        err instanceof joseErrors.JWTExpired
          ? 'the access token has expired'
          : 'the access token is not valid',
      );
    }
    const claims = {
      clientId: String(payload.client_id),
      scope: String(payload.scope),
      iat: Number(payload.iat),
      exp: Number(payload.exp),
    };
    if (verified.size >= MAX_REMEMBERED) verified.delete(verified.keys().next().value!);
    verified.set(token, claims);
    return claims;
  }

  return async function authenticate(req: Request): Promise<EhrSystemRef> {
    const header = req.headers.authorization;
    if (!header)
      throw unauthorized(
        `an access token is required: client_credentials with scope ${EHR_LAUNCH_SCOPE}`,
        null,
      );
    const token = bearerJwt(header);
    if (!token) throw unauthorized('the Authorization header must carry a Bearer JWT', 'invalid_request');
    const { clientId, scope, iat } = await verify(token);
    if (!clientId.startsWith(EHR_SYSTEM_CLIENT_PREFIX) || !splitScope(scope).includes(EHR_LAUNCH_SCOPE)) {
      throw forbidden(
        `this token may not ask for launches: an EHR system gets one with scope ${EHR_LAUNCH_SCOPE}`,
      );
    }
    const system = await systems.byClient(clientId);
    if (!system || iat < system.issuedAfter) throw unauthorized('the access token was revoked');
    return system;
  };
}

/** Whether the EHR system may launch this Ocean site; 403 otherwise. */
export function assertSiteAllowed(system: EhrSystemRef, siteNum: string): void {
  if (system.sites !== null && !system.sites.includes(siteNum)) {
    throw new HttpError(
      403,
      'forbidden',
      `this EHR system may not launch Ocean site ${siteNum}`,
      {},
      'forbidden',
    );
  }
}
