/*
 * A stand-in for Ocean in browser tests: a local HTTP server driving openid-client, a real OIDC
 * relying party. /sso/smart/auth receives the EHR launch (iss, launch, siteNum, action), does
 * discovery at the launch's iss (OpenID and SMART documents) and sends the browser to authorize
 * with PKCE S256, nonce, aud and launch; /sso/smart/callback redeems the code, checks the
 * id_token strictly against the JWKS (OIDC Core §3.1.3.7) and reads the Patient in context.
 * A public client (as Ocean's reference client) unless a clientSecret is set (client_secret_post).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';

export const OCEAN_SCOPE = 'openid fhirUser profile launch patient/Patient.read patient/*.read';

export interface LaunchResult {
  launchParams: Record<string, string>;
  smartConfiguration: Record<string, unknown>;
  tokenResponse: Record<string, unknown>;
  idTokenClaims: Record<string, unknown>;
  idTokenAlg: string;
  patient: Patient;
  /** The first page of Patient/{id}/$everything, read as Ocean does (no paging). */
  everything: Bundle;
}

export class OceanStandIn {
  server: Server = createServer((req, res) => void this.#handle(req, res));
  url = '';
  clientId = '';
  /** Set for a confidential client (client_secret_post); empty for a public one. */
  clientSecret = '';
  results: LaunchResult[] = [];
  errors: string[] = [];
  #pending = new Map<
    string,
    {
      config: oidc.Configuration;
      verifier: string;
      nonce: string;
      params: Record<string, string>;
      smart: Record<string, unknown>;
    }
  >();

  constructor(readonly scope = OCEAN_SCOPE) {}

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new Error('no port');
    this.url = `http://127.0.0.1:${a.port}`;
  }

  get launchUrl() {
    return `${this.url}/sso/smart/auth`;
  }

  get redirectUri() {
    return `${this.url}/sso/smart/callback`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    try {
      if (url.pathname === '/sso/smart/auth') return await this.#launch(url, res);
      if (url.pathname === '/sso/smart/callback') return await this.#callback(url, res);
      res.writeHead(404).end();
    } catch (err) {
      this.errors.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
      res
        .writeHead(500, { 'content-type': 'text/html' })
        .end(`<h1>Stand-in error</h1><pre>${String(err)}</pre>`);
    }
  }

  async #launch(url: URL, res: ServerResponse): Promise<void> {
    const params = Object.fromEntries(url.searchParams);
    const iss = params.iss!;
    // Discovery, as Ocean does it: the OpenID configuration under the issuer, and SMART's.
    const config = await oidc.discovery(
      new URL(iss),
      this.clientId,
      { redirect_uris: [this.redirectUri] },
      this.clientSecret ? oidc.ClientSecretPost(this.clientSecret) : oidc.None(),
      {
        execute: [oidc.allowInsecureRequests],
      },
    );
    const smart = (await (await fetch(`${iss}/.well-known/smart-configuration`)).json()) as Record<
      string,
      unknown
    >;
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = oidc.randomState();
    this.#pending.set(state, { config, verifier, nonce, params, smart });
    const authorize = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: this.scope,
      state,
      nonce,
      aud: iss,
      launch: params.launch!,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    res.writeHead(302, { location: authorize.toString() }).end();
  }

  async #callback(url: URL, res: ServerResponse): Promise<void> {
    const state = url.searchParams.get('state') ?? '';
    const pending = this.#pending.get(state);
    if (!pending) throw new Error(`unknown state; callback query: ${[...url.searchParams.keys()].join(',')}`);
    this.#pending.delete(state);
    const tokens = await oidc.authorizationCodeGrant(pending.config, url, {
      pkceCodeVerifier: pending.verifier,
      expectedState: state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    // Strict id_token validation, as Ocean does (OIDC Core §3.1.3.7): signature with a kid from the JWKS.
    const server = pending.config.serverMetadata();
    const idToken = tokens.id_token!;
    const jwks = createRemoteJWKSet(new URL(server.jwks_uri!));
    const { payload } = await jwtVerify(idToken, jwks, {
      issuer: pending.params.iss!,
      audience: this.clientId,
      algorithms: ['RS256', 'ES256'],
      requiredClaims: ['iat', 'exp', 'sub', 'nonce'],
    });
    if (payload.nonce !== pending.nonce) throw new Error('nonce mismatch');
    const patientId = String(tokens.patient);
    const read = await oidc.fetchProtectedResource(
      pending.config,
      tokens.access_token,
      new URL(`${pending.params.iss}/Patient/${encodeURIComponent(patientId)}`),
      'GET',
      undefined,
      new Headers({ accept: 'application/fhir+json' }),
    );
    if (read.status !== 200) throw new Error(`Patient read answered ${read.status}`);
    const patient = (await read.json()) as Patient;
    const all = await oidc.fetchProtectedResource(
      pending.config,
      tokens.access_token,
      new URL(`${pending.params.iss}/Patient/${encodeURIComponent(patientId)}/$everything`),
      'GET',
      undefined,
      new Headers({ accept: 'application/fhir+json' }),
    );
    if (all.status !== 200) throw new Error(`$everything answered ${all.status}`);
    const everything = (await all.json()) as Bundle;
    this.results.push({
      launchParams: pending.params,
      smartConfiguration: pending.smart,
      tokenResponse: { ...tokens },
      idTokenClaims: payload as Record<string, unknown>,
      idTokenAlg: decodeProtectedHeader(idToken).alg ?? '',
      patient,
      everything,
    });
    const name = `${patient.name?.[0]?.given?.join(' ') ?? ''} ${patient.name?.[0]?.family ?? ''}`;
    res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end(
        `<!doctype html><title>Ocean stand-in</title><body style="font:18px system-ui;margin:3rem"><h1>Ocean (test stand-in)</h1><p id="result">Launched for <strong>${name.replace(/[<>&]/g, '')}</strong> at site ${pending.params.siteNum}, action ${pending.params.action}.</p><p>Signed in as ${String(payload.name ?? payload.sub)} via SSO.</p></body>`,
      );
  }
}
