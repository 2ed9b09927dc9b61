/*
 * Who is posting a message: one of our Ocean integrations, or nobody (CONTRACT §3.7).
 * - HTTP Basic with an integration's username/password (compared as keyed hashes), or
 * - Bearer: a JWT access token of OUR authorization server (signature, issuer, audience, typ,
 *   expiry) issued by client_credentials to an integration's client, carrying the message scope,
 *   and issued after that integration's last credential rotation
 * - anything else is 401 with both challenges; a valid token of anyone else (a clinician's,
 *   an EHR system's) is 403: it may not post messages
 */
import type { Request } from 'express';
import { errors as joseErrors } from 'jose';
import { HttpError } from '../http/errors.ts';
import type { SigningKeys } from '../keys/signing-keys.ts';
import { bearerJwt, verifyAccessTokenJwt } from '../smart/access-token-jwt.ts';
import { splitScope } from '../smart/scopes.ts';
import {
  INTEGRATION_CLIENT_PREFIX,
  type IntegrationRef,
  type Integrations,
  MESSAGE_SCOPE,
} from './integrations.ts';

export interface Sender {
  integration: IntegrationRef;
  via: 'basic' | 'bearer';
  clientId?: string;
}

const CHALLENGE = 'Basic realm="ocean-messages", Bearer realm="fhir"';

const unauthorized = (description: string) =>
  new HttpError(401, 'invalid_token', description, { 'WWW-Authenticate': CHALLENGE }, 'login');

export function messageAuthenticator(integrations: Integrations, keys: SigningKeys, fhirBaseUrl: string) {
  return async function authenticate(req: Request): Promise<Sender> {
    const header = req.headers.authorization ?? '';
    const basic = /^Basic +([A-Za-z0-9+/=]{1,1000})$/i.exec(header);
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const found =
        colon > 0 ? await integrations.byBasic(decoded.slice(0, colon), decoded.slice(colon + 1)) : undefined;
      if (!found) throw unauthorized('the username or password is not valid');
      return { integration: found, via: 'basic' };
    }
    const bearer = bearerJwt(header);
    if (!bearer) throw unauthorized('credentials are required: HTTP Basic or a Bearer token');
    let payload: Record<string, unknown>;
    try {
      payload = await verifyAccessTokenJwt(keys, fhirBaseUrl, bearer, ['exp', 'iat', 'client_id', 'scope']);
    } catch (err) {
      throw unauthorized(
        err instanceof joseErrors.JWTExpired
          ? 'the access token has expired'
          : 'the access token is not valid',
      );
    }
    const clientId = String(payload.client_id);
    const found = await integrations.byClient(clientId);
    // An integration client that is gone (rotated, deleted) or was re-drawn after the token: a dead token.
    if (found ? Number(payload.iat) < found.issuedAfter : clientId.startsWith(INTEGRATION_CLIENT_PREFIX))
      throw unauthorized('the access token was revoked');
    if (!found || !splitScope(String(payload.scope)).includes(MESSAGE_SCOPE)) {
      throw new HttpError(
        403,
        'insufficient_scope',
        'this token may not post Ocean messages: get one with the integration client_id and secret',
        { 'WWW-Authenticate': 'Bearer realm="fhir", error="insufficient_scope"' },
        'forbidden',
      );
    }
    const { issuedAfter: _, ...integration } = found;
    return { integration, via: 'bearer', clientId };
  };
}
