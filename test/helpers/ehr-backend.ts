/*
 * An EHR's back end, as the tests play it against a real server: its keys, its registration
 * through the admin API, SMART Backend Services tokens (RFC 7523 client assertions signed with
 * jose), and launch requests (POST /ehr-api/launches).
 */
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { tokenRequest } from './oidc.ts';
import { TEST_ADMIN_TOKEN } from './server.ts';

export type AssertionAlg = 'ES384' | 'RS384' | 'ES256' | 'RS256';

export interface EhrKey {
  alg: AssertionAlg;
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  publicJwk: JWK;
}

export async function ehrKey(alg: AssertionAlg = 'ES384'): Promise<EhrKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomBytes(8).toString('hex');
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface EhrSystemAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** POST /admin/api/ehr-systems. */
export async function registerEhrSystem(
  serverUrl: string,
  input: Record<string, unknown>,
): Promise<EhrSystemAnswer> {
  const res = await fetch(`${serverUrl}/admin/api/ehr-systems`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(input),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export interface AssertionOptions {
  aud?: string | string[];
  /** Seconds from now. */
  expiresIn?: number;
  jti?: string;
  iss?: string;
  withIat?: boolean;
}

/** A client assertion (RFC 7523) as SMART Backend Services signs it: no iat unless asked. */
export async function clientAssertion(
  serverUrl: string,
  clientId: string,
  key: EhrKey,
  o: AssertionOptions = {},
): Promise<string> {
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(o.iss ?? clientId)
    .setSubject(clientId)
    .setAudience(o.aud ?? `${serverUrl}/fhir/token`)
    .setExpirationTime(Math.floor(Date.now() / 1000) + (o.expiresIn ?? 60))
    .setJti(o.jti ?? randomBytes(16).toString('hex'));
  if (o.withIat) jwt.setIssuedAt();
  return jwt.sign(key.privateKey);
}

/** The form of a SMART Backend Services token request (RFC 7523 client assertion). */
export function assertionForm(assertion: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    grant_type: 'client_credentials',
    scope: 'ehr-launch',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    ...extra,
  };
}

/** The token request with a client assertion. */
export function assertionTokenRequest(
  serverUrl: string,
  clientId: string,
  assertion: string,
  scope = 'ehr-launch',
  grantType = 'client_credentials',
) {
  return tokenRequest(serverUrl, assertionForm(assertion, { scope, grant_type: grantType }), {
    clientId,
    method: 'none',
    extra: {},
  });
}

/** A token for an EHR system signing with `key`; throws when the token endpoint refuses. */
export async function ehrToken(serverUrl: string, clientId: string, key: EhrKey): Promise<string> {
  const r = await assertionTokenRequest(serverUrl, clientId, await clientAssertion(serverUrl, clientId, key));
  if (r.status !== 200) throw new Error(`token refused: ${r.status} ${JSON.stringify(r.body)}`);
  return String(r.body.access_token);
}

/** POST /ehr-api/launches with a bearer token (a raw string body is sent as it is). */
export async function askLaunch(
  serverUrl: string,
  token: string | undefined,
  body: unknown,
  contentType = 'application/json',
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(`${serverUrl}/ehr-api/launches`, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}
