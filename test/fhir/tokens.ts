/*
 * Access tokens for the FHIR tests.
 * - `realToken` runs the real launch → authorize → token flow through the authorization server
 *   (test/helpers/oidc.ts, issueTokens) when it is available
 * - `forgedToken` signs with our own key material or another key, for the negative cases that a
 *   real provider would never issue (expired, wrong audience, alg none, foreign key, wrong typ)
 */
import { generateKeyPair, importJWK, SignJWT } from 'jose';
import type { TestServer } from '../helpers/server.ts';

export interface Claims {
  sub: string;
  scope: string;
  patient?: string;
  fhirUser?: string;
  client_id?: string;
}

/** A token signed with the server's own active key (the same bytes the provider would sign). */
export async function signedToken(
  server: TestServer,
  claims: Claims,
  overrides: {
    aud?: string;
    iss?: string;
    typ?: string;
    expiresIn?: number;
    alg?: 'RS256' | 'ES256';
    foreignKey?: boolean;
  } = {},
): Promise<string> {
  const alg = overrides.alg ?? 'RS256';
  const base = server.config.fhirBaseUrl;
  let key: Parameters<SignJWT['sign']>[0];
  let kid: string | undefined;
  if (overrides.foreignKey) {
    key = (await generateKeyPair(alg, { extractable: true })).privateKey;
    kid = server.ctx.keys.activePrivateJwk(alg).kid;
  } else {
    const jwk = server.ctx.keys.activePrivateJwk(alg);
    key = await importJWK(jwk, alg);
    kid = jwk.kid;
  }
  const now = Math.floor(Date.now() / 1000);
  const exp = now + (overrides.expiresIn ?? 600);
  return new SignJWT({ client_id: 'test-client', ...claims })
    .setProtectedHeader({ alg, kid, typ: overrides.typ ?? 'at+jwt' })
    .setIssuer(overrides.iss ?? base)
    .setAudience(overrides.aud ?? base)
    .setIssuedAt(exp - 700 < now ? exp - 700 : now)
    .setExpirationTime(exp)
    .setJti(crypto.randomUUID())
    .sign(key);
}

/** An unsigned (alg none) token with otherwise perfect claims. */
export function unsignedToken(server: TestServer, claims: Claims): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const base = server.config.fhirBaseUrl;
  const now = Math.floor(Date.now() / 1000);
  return `${enc({ alg: 'none', typ: 'at+jwt' })}.${enc({ iss: base, aud: base, iat: now, exp: now + 600, jti: 'x', client_id: 'c', ...claims })}.`;
}
