/*
 * openid-client (panva, v6) as a strict relying party: discovery at the launch `iss`, the code
 * flow with PKCE, state and nonce, and id_token validation (iss, aud, exp, iat, nonce, signature
 * with a kid from the JWKS) — for RS256 and ES256 clients. Plus the golden one-issuer test and a
 * code issued by one instance redeemed at another.
 */
import * as oidcClient from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  CookieJar,
  createTestClient,
  createTestLaunch,
  createTestSite,
  createTestUser,
  followRedirects,
  signIn,
  type TestClient,
  type TestUser,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('a strict OpenID Connect relying party (openid-client v6)', () => {
  let t: TestDatabase;
  let s: TestServer;
  let user: TestUser;
  let jar: CookieJar;

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    user = await createTestUser(s.ctx, { givenName: 'Mary', familyName: 'Seacole' });
    jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    await putResource(t.db, {
      resourceType: 'Patient',
      id: 'golden-patient',
      name: [{ family: 'Test', given: ['Golden'] }],
    });
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  /** The EHR launch through the real /launch route: what Ocean receives at its launch URL. */
  async function ehrLaunch(client: TestClient, siteNum: string, patient = 'golden-patient') {
    const res = await fetch(`${s.url}/launch?patient=${patient}&site=${siteNum}&action=viewMap`, {
      redirect: 'manual',
      headers: { cookie: jar.header('/launch') },
    });
    expect(res.status).toBe(302);
    const to = new URL(res.headers.get('location')!);
    expect(to.origin + to.pathname).toBe(client.client.launch_url);
    return { iss: to.searchParams.get('iss')!, launch: to.searchParams.get('launch')! };
  }

  async function rpFlow(alg: 'RS256' | 'ES256') {
    const client = await createTestClient(s.ctx, { id_token_signed_response_alg: alg });
    const { siteNum } = await createTestSite(s.ctx, client.clientId);
    const { iss, launch } = await ehrLaunch(client, siteNum);

    const config = await oidcClient.discovery(
      new URL(iss),
      client.clientId,
      { redirect_uris: client.client.redirect_uris, id_token_signed_response_alg: alg },
      oidcClient.None(),
      { execute: [oidcClient.allowInsecureRequests] },
    );
    const verifier = oidcClient.randomPKCECodeVerifier();
    const state = oidcClient.randomState();
    const nonce = oidcClient.randomNonce();
    const authUrl = oidcClient.buildAuthorizationUrl(config, {
      redirect_uri: client.client.redirect_uris[0]!,
      scope: 'openid fhirUser profile launch patient/*.read',
      state,
      nonce,
      code_challenge: await oidcClient.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      aud: iss,
      launch,
    });
    const back = await followRedirects(s.url, authUrl, jar);
    expect(back.code).toBeTruthy();
    const tokens = await oidcClient.authorizationCodeGrant(config, back.location, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    return { iss, config, tokens, client };
  }

  for (const alg of ['RS256', 'ES256'] as const) {
    it(`discovers at the launch iss, runs the code flow and validates an ${alg} id_token`, async () => {
      const { iss, tokens, client } = await rpFlow(alg);
      const claims = tokens.claims()!;
      expect(claims.iss).toBe(iss);
      expect(claims.aud).toBe(client.clientId);
      expect(claims.sub).toBe(user.id);
      expect(claims.fhirUser).toBe(`${iss}/Practitioner/${user.practitionerId}`);
      expect(claims.given_name).toBe('Mary');
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      expect((tokens as Record<string, unknown>).patient).toBe('golden-patient');
      expect(typeof (tokens as Record<string, unknown>).oceanSharedEncryptionKey).toBe('string');
    });
  }

  it('golden: the launch iss, both discovery issuers and the id_token iss are one string', async () => {
    const { iss, config, tokens } = await rpFlow('RS256');
    const smart = (await (await fetch(`${iss}/.well-known/smart-configuration`)).json()) as {
      issuer: string;
    };
    const strings = new Set([
      iss,
      config.serverMetadata().issuer,
      smart.issuer,
      tokens.claims()!.iss,
      s.ctx.config.fhirBaseUrl,
      `${s.url}/fhir`,
    ]);
    expect([...strings]).toEqual([`${s.url}/fhir`]);
  });

  it('a code issued by one instance is redeemed at another sharing the database (and survives a restart)', async () => {
    const client = await createTestClient(s.ctx);
    const { siteNum } = await createTestSite(s.ctx, client.clientId);
    const { launchId } = await createTestLaunch(s.ctx, {
      userId: user.id,
      patientId: 'golden-patient',
      siteNum,
      action: 'viewMap',
    });
    const verifier = oidcClient.randomPKCECodeVerifier();
    const start = new URL(`${s.url}/fhir/auth`);
    start.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: client.client.redirect_uris[0]!,
      scope: 'openid launch patient/*.read',
      aud: s.ctx.config.fhirBaseUrl,
      launch: launchId,
      code_challenge: await oidcClient.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const back = await followRedirects(s.url, start, jar);
    expect(back.code).toBeTruthy();

    // A second instance behind the same PUBLIC_URL (its own pool on PostgreSQL).
    const other = await startTestServer(await t.connectAnother(), { PUBLIC_URL: s.url });
    try {
      const r = await tokenRequest(
        other.url,
        {
          grant_type: 'authorization_code',
          code: back.code!,
          redirect_uri: client.client.redirect_uris[0]!,
          code_verifier: verifier,
        },
        { clientId: client.clientId },
      );
      expect(r.status).toBe(200);
      expect(r.body.patient).toBe('golden-patient');
      // And the first instance knows the code is spent.
      const again = await tokenRequest(
        s.url,
        {
          grant_type: 'authorization_code',
          code: back.code!,
          redirect_uri: client.client.redirect_uris[0]!,
          code_verifier: verifier,
        },
        { clientId: client.clientId },
      );
      expect(again.body.error).toBe('invalid_grant');
    } finally {
      await other.stop(); // buildServer was given the database: stopping does not close it
    }
  });
});
