/*
 * Bearer access tokens of our authorization server (RFC 9068 JWTs), verified in-process.
 * - signature against our own JWKS (RS256 / ES256 only; `none` and HMAC refused), `typ: at+jwt`,
 *   `iss` = `aud` = the FHIR base, `exp` in the future; `sub`, `client_id`, `scope` required
 * - a missing or bad token → 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3) and no detail
 *   that helps forge one
 * - verified tokens are remembered, by their whole Authorization header, until they expire
 *   (verification is the costly part of a read; a header seen before is not even parsed again);
 *   the memory is cleared whenever the key set changes. It remembers signatures only: whether the
 *   token's grant is still live is asked of the database by every request, inside the query the
 *   request makes anyway (src/oidc/grant-revocation.ts), so a revocation reaches every instance
 */
import type { Request } from 'express';
import { errors as joseErrors, jwtVerify } from 'jose';
import type { AppContext } from '../context.ts';
import { HttpError } from '../http/errors.ts';
import type { Principal } from './access.ts';
import { parseScopes } from './scopes.ts';

const MAX_CACHED = 10_000;

export function unauthorized(
  description: string,
  error: 'invalid_token' | 'invalid_request' | null = 'invalid_token',
) {
  const challenge = error
    ? `Bearer realm="fhir", error="${error}", error_description="${description}"`
    : 'Bearer realm="fhir"';
  return new HttpError(
    401,
    error ?? 'invalid_token',
    description,
    { 'WWW-Authenticate': challenge },
    'login',
  );
}

export function insufficientScope(description: string) {
  return new HttpError(
    403,
    'insufficient_scope',
    description,
    {
      'WWW-Authenticate': `Bearer realm="fhir", error="insufficient_scope", error_description="${description}"`,
    },
    'forbidden',
  );
}

export class AccessTokenVerifier {
  #cache = new Map<string, { principal: Principal; exp: number }>();
  readonly #issuer: string;
  readonly #fhirUserPrefix: string;

  constructor(private readonly ctx: AppContext) {
    this.#issuer = ctx.config.fhirBaseUrl;
    this.#fhirUserPrefix = `${ctx.config.fhirBaseUrl}/`;
    ctx.keys.on?.('change', () => this.#cache.clear());
  }

  async authenticate(req: Request): Promise<Principal> {
    const header = req.headers.authorization;
    if (!header) throw unauthorized('an access token is required', null);
    const now = Math.floor(Date.now() / 1000);
    // Keyed by the whole header: a header verified once is found again without parsing it.
    const hit = this.#cache.get(header);
    if (hit) {
      if (hit.exp > now) return hit.principal;
      this.#cache.delete(header);
      throw unauthorized('the access token has expired');
    }
    const m = /^Bearer +([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*)$/i.exec(header);
    if (!m) throw unauthorized('the Authorization header must carry a Bearer JWT', 'invalid_request');
    const token = m[1]!;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.ctx.keys.verificationKeys, {
        issuer: this.#issuer,
        audience: this.#issuer,
        typ: 'at+jwt',
        algorithms: ['RS256', 'ES256'],
        requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'scope', 'jti'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw unauthorized('the access token has expired');
      throw unauthorized('the access token is not valid for this server');
    }
    const principal = this.#principal(payload);
    if (this.#cache.size >= MAX_CACHED) this.#evict(now);
    this.#cache.set(header, { principal, exp: payload.exp as number });
    return principal;
  }

  #principal(payload: Record<string, unknown>): Principal {
    const { sub, client_id, scope, patient, fhirUser, jti } = payload;
    if (
      typeof sub !== 'string' ||
      typeof client_id !== 'string' ||
      typeof scope !== 'string' ||
      typeof jti !== 'string'
    ) {
      throw unauthorized('the access token is missing required claims');
    }
    let user: Principal['fhirUser'];
    if (typeof fhirUser === 'string' && fhirUser.startsWith(this.#fhirUserPrefix)) {
      const m = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(fhirUser.slice(this.#fhirUserPrefix.length));
      if (m) user = { type: m[1]!, id: m[2]! };
    }
    return {
      userId: sub,
      clientId: client_id,
      scope,
      scopes: parseScopes(scope),
      patient: typeof patient === 'string' && patient.length > 0 ? patient : undefined,
      fhirUser: user,
      tokenId: jti,
    };
  }

  #evict(now: number) {
    for (const [k, v] of this.#cache) if (v.exp <= now) this.#cache.delete(k);
    // still full of live tokens: drop the oldest half (Map keeps insertion order)
    if (this.#cache.size >= MAX_CACHED) {
      let n = this.#cache.size / 2;
      for (const k of this.#cache.keys()) {
        if (n-- <= 0) break;
        this.#cache.delete(k);
      }
    }
  }
}
