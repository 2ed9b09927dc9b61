/*
 * Our own JWT access tokens (RFC 9068), checked by the rooms that accept them besides the FHIR API
 * (Ocean's message endpoint, the EHR launch API): signature against our JWKS (RS256 / ES256 only),
 * `typ: at+jwt`, `iss` = `aud` = the FHIR base, not expired, the named claims present.
 * What a token may do there (its scope, whether its client still counts) is each room's to decide.
 */
import { type JWTPayload, jwtVerify } from 'jose';
import type { SigningKeys } from '../keys/signing-keys.ts';

/** The JWT of an `Authorization: Bearer …` header; undefined when the header is not one. */
export function bearerJwt(header: string | undefined): string | undefined {
  return /^Bearer +([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*)$/i.exec(header ?? '')?.[1];
}

/** The verified payload; throws jose's errors (JWTExpired among them) for anything else. */
export async function verifyAccessTokenJwt(
  keys: SigningKeys,
  fhirBaseUrl: string,
  token: string,
  requiredClaims: string[],
): Promise<JWTPayload> {
  const { payload } = await jwtVerify(token, keys.verificationKeys, {
    issuer: fhirBaseUrl,
    audience: fhirBaseUrl,
    typ: 'at+jwt',
    algorithms: ['RS256', 'ES256'],
    requiredClaims,
  });
  return payload;
}
