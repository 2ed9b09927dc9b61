import { createServer, type Server } from 'node:http';
import {
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  authorizeLaunch,
  createTestClient,
  createTestLaunch,
  createTestSite,
  createTestUser,
  type IssuedTokens,
  issueTokens,
  type TestClient,
  tokenRequest,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('token, refresh, introspection and revocation', () => {
  let t: TestDatabase;
  let s: TestServer;
  let launched: IssuedTokens;
  const sek = 'Ocean SEK: ümlaut & 42';

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    const client = await createTestClient(s.ctx);
    const { siteNum } = await createTestSite(s.ctx, client.clientId, { sek });
    launched = await issueTokens(s, {
      client,
      siteNum,
      patientId: 'pat-42',
      nonce: 'nonce-42',
      scope: 'openid fhirUser profile launch patient/*.read online_access',
    });
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const fhirBase = () => s.ctx.config.fhirBaseUrl;
  const auth = (c: TestClient) => ({
    clientId: c.clientId,
    ...(c.clientSecret ? { clientSecret: c.clientSecret } : {}),
  });
  const introspect = (token: string, c: TestClient = launched.client) =>
    tokenRequest(s.url, { token }, auth(c), '/fhir/token/introspection');

  it('answers with the tokens, the launch context at top level, and no-store / no-cache', () => {
    const { status, body, headers } = launched;
    expect(status).toBe(200);
    expect(body.token_type).toBe('Bearer');
    expect(typeof body.expires_in).toBe('number');
    expect(body.expires_in).toBeLessThanOrEqual(3600);
    expect(body.scope).toBe('openid fhirUser profile launch patient/*.read online_access');
    expect(body.patient).toBe('pat-42');
    expect(body.need_patient_banner).toBe(true);
    expect(body.smart_style_url).toBe(`${s.ctx.config.publicUrl}/smart-style.json`);
    expect(body.oceanSharedEncryptionKey).toBe(Buffer.from(sek, 'utf8').toString('base64'));
    expect(body.refresh_token).toBeTruthy();
    expect(headers.get('cache-control')).toBe('no-store');
    expect(headers.get('pragma')).toBe('no-cache');
  });

  it('issues an RFC 9068 JWT access token carrying the same context, verifiable with the published keys', async () => {
    const at = launched.body.access_token!;
    const { payload, protectedHeader } = await jwtVerify(at, s.ctx.keys.verificationKeys, {
      issuer: fhirBase(),
      audience: fhirBase(),
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('RS256');
    expect(s.ctx.keys.publicJwks().keys.map((k) => k.kid)).toContain(protectedHeader.kid);
    expect(payload).toMatchObject({
      iss: fhirBase(),
      aud: fhirBase(),
      sub: launched.user.id,
      client_id: launched.client.clientId,
      scope: launched.body.scope,
      patient: 'pat-42',
      fhirUser: `${fhirBase()}/Practitioner/${launched.user.practitionerId}`,
      need_patient_banner: true,
      oceanSharedEncryptionKey: launched.body.oceanSharedEncryptionKey,
    });
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBe(s.ctx.config.ttl.accessToken);
  });

  it('issues an id_token with the stable sub, fhirUser/profile, demographics and the nonce', async () => {
    const { payload, protectedHeader } = await jwtVerify(
      launched.body.id_token!,
      s.ctx.keys.verificationKeys,
      {
        issuer: fhirBase(),
        audience: launched.client.clientId,
      },
    );
    expect(protectedHeader.alg).toBe('RS256');
    const fhirUser = `${fhirBase()}/Practitioner/${launched.user.practitionerId}`;
    expect(payload).toMatchObject({
      sub: launched.user.id,
      fhirUser,
      profile: fhirUser,
      name: `${launched.user.givenName} ${launched.user.familyName}`,
      given_name: launched.user.givenName,
      family_name: launched.user.familyName,
      email: launched.user.email,
      nonce: 'nonce-42',
    });
  });

  it('signs with ES256 for a client registered for it', async () => {
    const es = await createTestClient(s.ctx, { id_token_signed_response_alg: 'ES256' });
    const r = await issueTokens(s, { client: es, patientId: 'pat-es' });
    expect(decodeProtectedHeader(r.body.id_token!).alg).toBe('ES256');
    expect(decodeProtectedHeader(r.body.access_token!).alg).toBe('ES256');
    await jwtVerify(r.body.id_token!, s.ctx.keys.verificationKeys, { algorithms: ['ES256'] });
  });

  it('refuses a reused code with invalid_grant and revokes what the first use issued', async () => {
    const { form, client } = await authorizeLaunch(s, {
      patientId: 'p-r',
      scope: 'openid launch patient/*.read offline_access',
    });
    const first = await tokenRequest(s.url, form, auth(client));
    expect(first.status).toBe(200);
    const second = await tokenRequest(s.url, form, auth(client));
    expect(second.status).toBe(400);
    expect(second.body.error).toBe('invalid_grant');
    expect(second.body).not.toHaveProperty('access_token');
    // RFC 6749 §4.1.2: the tokens of the first redemption are revoked.
    expect((await introspect(String(first.body.access_token), client)).body).toEqual({ active: false });
    const refresh = await tokenRequest(
      s.url,
      { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token) },
      auth(client),
    );
    expect(refresh.body.error).toBe('invalid_grant');
  });

  it('refuses an unknown code and a wrong PKCE verifier with invalid_grant', async () => {
    const unknown = await tokenRequest(
      s.url,
      {
        grant_type: 'authorization_code',
        code: 'nope',
        redirect_uri: launched.client.client.redirect_uris[0],
        code_verifier: 'x'.repeat(43),
      },
      auth(launched.client),
    );
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe('invalid_grant');
    expect(unknown.headers.get('pragma')).toBe('no-cache');
    expect(JSON.stringify(unknown.body)).not.toMatch(/at .*\.js:\d+/);
  });

  it('errors are RFC 6749 JSON: unsupported grant type, missing parameters', async () => {
    const r1 = await tokenRequest(
      s.url,
      { grant_type: 'password', username: 'a', password: 'b' },
      auth(launched.client),
    );
    expect(r1.status).toBe(400);
    expect(r1.body.error).toBe('unsupported_grant_type');
    const r2 = await tokenRequest(s.url, { grant_type: 'authorization_code' }, auth(launched.client));
    expect(r2.status).toBe(400);
    expect(r2.body.error).toBe('invalid_request');
    expect(typeof r2.body.error_description).toBe('string');
  });

  describe('confidential clients', () => {
    it('client_secret_basic and client_secret_post work; a wrong secret is 401 invalid_client', async () => {
      for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
        const c = await createTestClient(s.ctx, { token_endpoint_auth_method: method });
        const ok = await issueTokens(s, { client: c, patientId: `p-${method.length}` });
        expect(ok.status, method).toBe(200);
        const bad = await issueTokens(s, {
          client: { ...c, clientSecret: `${c.clientSecret}x` },
          patientId: 'p',
        });
        expect(bad.status, method).toBe(401);
        expect(bad.body.error, method).toBe('invalid_client');
        expect(bad.body).not.toHaveProperty('access_token');
      }
    });

    it('compares secrets through the keyed hash: the stored hash itself is not a valid secret', async () => {
      const c = await createTestClient(s.ctx, { token_endpoint_auth_method: 'client_secret_basic' });
      const { rows } = await t.db.query<{ client_secret_hash: string }>(
        'SELECT client_secret_hash FROM clients WHERE client_id = $1',
        [c.clientId],
      );
      const stored = rows[0]!.client_secret_hash;
      expect(stored).not.toBe(c.clientSecret);
      const withHash = await issueTokens(s, { client: { ...c, clientSecret: stored }, patientId: 'p' });
      expect(withHash.status).toBe(401);
      expect((await issueTokens(s, { client: c, patientId: 'p' })).status).toBe(200);
    });

    describe('private_key_jwt', () => {
      let jwksServer: Server;
      let jwksUrl: string;
      let keys: Awaited<ReturnType<typeof generateKeyPair>>;
      let publicJwk: Record<string, unknown>;
      beforeAll(async () => {
        keys = await generateKeyPair('ES256', { extractable: true });
        publicJwk = { ...(await exportJWK(keys.publicKey)), alg: 'ES256', use: 'sig' };
        publicJwk.kid = await calculateJwkThumbprint(publicJwk as never);
        jwksServer = createServer((_req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ keys: [publicJwk] }));
        });
        await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
        const a = jwksServer.address();
        jwksUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/jwks.json`;
      });
      afterAll(async () => {
        jwksServer.closeAllConnections();
        await new Promise<void>((r) => jwksServer.close(() => r()));
      });

      const assertion = (clientId: string, key = keys.privateKey, aud = `${fhirBase()}/token`) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid: String(publicJwk.kid) })
          .setIssuer(clientId)
          .setSubject(clientId)
          .setAudience(aud)
          .setJti(crypto.randomUUID())
          .setIssuedAt()
          .setExpirationTime('2m')
          .sign(key);

      const redeemWith = async (c: TestClient, makeAssertion: (id: string) => Promise<string>) => {
        const { signIn, CookieJar, authorize, pkce } = await import('../helpers/oidc.ts');
        const site = (await createTestSite(s.ctx, c.clientId)).siteNum;
        const user = await createTestUser(s.ctx);
        const jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
        const { launchId } = await createTestLaunch(s.ctx, {
          userId: user.id,
          patientId: 'p-pkj',
          siteNum: site,
          action: 'viewMap',
        });
        const p = pkce();
        const r = await authorize(
          s.url,
          {
            response_type: 'code',
            client_id: c.clientId,
            redirect_uri: c.client.redirect_uris[0],
            scope: 'openid launch patient/*.read',
            aud: fhirBase(),
            launch: launchId,
            code_challenge: p.challenge,
            code_challenge_method: 'S256',
          },
          jar,
        );
        return tokenRequest(
          s.url,
          {
            grant_type: 'authorization_code',
            code: r.code!,
            redirect_uri: c.client.redirect_uris[0],
            code_verifier: p.verifier,
          },
          {
            clientId: c.clientId,
            method: 'none',
            extra: {
              client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
              client_assertion: await makeAssertion(c.clientId),
            },
          },
        );
      };

      it('accepts a client assertion signed with a key from registered jwks', async () => {
        const c = await createTestClient(s.ctx, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [publicJwk as never] },
        });
        const r = await redeemWith(c, (id) => assertion(id));
        expect(r.status).toBe(200);
        expect(r.body.patient).toBe('p-pkj');
      });

      it('accepts a client assertion verified through jwks_uri', async () => {
        const c = await createTestClient(s.ctx, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks_uri: jwksUrl,
        });
        // oidc-provider refuses to fetch from special-use addresses (SSRF protection, kept in
        // production); this one test lets the loopback JWKS server through, nothing else.
        const realFetch = globalThis.fetch;
        globalThis.fetch = ((url: string | URL | Request, init?: RequestInit & { dispatcher?: unknown }) => {
          if (String(url) === jwksUrl && init) delete init.dispatcher;
          return realFetch(url, init);
        }) as typeof fetch;
        try {
          const r = await redeemWith(c, (id) => assertion(id));
          expect(r.status).toBe(200);
          expect(r.body.patient).toBe('p-pkj');
        } finally {
          globalThis.fetch = realFetch;
        }
      });

      it('will not fetch a jwks_uri on a special-use address (SSRF protection)', async () => {
        const c = await createTestClient(s.ctx, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks_uri: jwksUrl,
        });
        const r = await redeemWith(c, (id) => assertion(id));
        expect(r.status).toBe(401);
        expect(r.body.error).toBe('invalid_client');
      });

      it('refuses an assertion signed by another key with 401 invalid_client', async () => {
        const c = await createTestClient(s.ctx, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [publicJwk as never] },
        });
        const stranger = await generateKeyPair('ES256');
        const r = await redeemWith(c, (id) => assertion(id, stranger.privateKey));
        expect(r.status).toBe(401);
        expect(r.body.error).toBe('invalid_client');
      });
    });
  });

  describe('refresh', () => {
    const refresh = (rt: string, scope?: string) =>
      tokenRequest(s.url, { grant_type: 'refresh_token', refresh_token: rt, scope }, auth(launched.client));

    it('keeps the launch context; a narrower scope works, a wider one is refused', async () => {
      const r = await issueTokens(s, {
        client: launched.client,
        siteNum: launched.siteNum,
        patientId: 'pat-rt',
        scope: 'openid fhirUser launch patient/*.read patient/Patient.read offline_access',
      });
      const rt = r.body.refresh_token!;
      const same = await refresh(rt);
      expect(same.status).toBe(200);
      expect(same.headers.get('pragma')).toBe('no-cache');
      expect(same.body).toMatchObject({
        patient: 'pat-rt',
        need_patient_banner: true,
        oceanSharedEncryptionKey: r.body.oceanSharedEncryptionKey,
        smart_style_url: r.body.smart_style_url,
        scope: r.body.scope,
      });
      expect(decodeJwt(String(same.body.access_token)).patient).toBe('pat-rt');

      const narrower = await refresh(
        String(same.body.refresh_token ?? rt),
        'openid launch patient/Patient.read',
      );
      expect(narrower.status).toBe(200);
      expect(narrower.body.scope).toBe('openid launch patient/Patient.read');
      expect(decodeJwt(String(narrower.body.access_token)).scope).toBe('openid launch patient/Patient.read');
      expect(narrower.body.patient).toBe('pat-rt');

      const wider = await refresh(
        String(narrower.body.refresh_token ?? rt),
        'openid launch patient/*.read user/*.read',
      );
      expect(wider.status).toBe(400);
      expect(wider.body.error).toBe('invalid_scope');
    });

    it('online_access ends with the EHR session it was issued under', async () => {
      const { signIn, CookieJar } = await import('../helpers/oidc.ts');
      const user = await createTestUser(s.ctx);
      const session = await signIn(s.ctx, user.id);
      const r = await issueTokens(s, {
        client: launched.client,
        siteNum: launched.siteNum,
        user,
        jar: new CookieJar(session.cookie),
        patientId: 'pat-online',
        scope: 'openid fhirUser launch patient/*.read online_access',
      });
      expect(r.body.refresh_token).toBeTruthy();
      const ok = await refresh(r.body.refresh_token!);
      expect(ok.status).toBe(200);
      const rt = String(ok.body.refresh_token ?? r.body.refresh_token);
      expect((await introspect(rt)).body.active).toBe(true);
      // POST /logout destroys the session row.
      await t.db.query('DELETE FROM ehr_sessions WHERE sid = $1', [session.sid]);
      const after = await refresh(rt);
      expect(after.status).toBe(400);
      expect(after.body.error).toBe('invalid_grant');
      expect((await introspect(rt)).body).toEqual({ active: false });
    });
  });

  describe('introspection', () => {
    it('answers a live access token with the scope, client, times, subject and launch context', async () => {
      const r = await introspect(launched.body.access_token!);
      expect(r.status).toBe(200);
      const at = decodeJwt(launched.body.access_token!);
      expect(r.body).toMatchObject({
        active: true,
        scope: launched.body.scope,
        client_id: launched.client.clientId,
        exp: at.exp,
        iat: at.iat,
        iss: fhirBase(),
        sub: launched.user.id,
        fhirUser: `${fhirBase()}/Practitioner/${launched.user.practitionerId}`,
        patient: 'pat-42',
        need_patient_banner: true,
        smart_style_url: launched.body.smart_style_url,
        oceanSharedEncryptionKey: launched.body.oceanSharedEncryptionKey,
      });
    });

    it('answers a live refresh token with its context too', async () => {
      const r = await introspect(launched.body.refresh_token!);
      expect(r.body).toMatchObject({
        active: true,
        client_id: launched.client.clientId,
        patient: 'pat-42',
        sub: launched.user.id,
      });
    });

    it('answers anything else with 200 {"active": false}', async () => {
      const at = launched.body.access_token!;
      const [h, p, sig] = at.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      const edited = `${h}.${Buffer.from(JSON.stringify({ ...claims, patient: 'someone-else' })).toString('base64url')}.${sig}`;
      const none = new UnsecuredJWT({ ...claims }).encode();
      const foreignKey = await generateKeyPair('RS256');
      const foreign = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: decodeProtectedHeader(at).kid! })
        .sign(foreignKey.privateKey);
      const forgedAlg = `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt' })).toString('base64url')}.${p}.${sig}`;
      for (const [what, token] of Object.entries({
        garbage: 'not-a-token',
        edited,
        none,
        foreign,
        forgedAlg,
        empty: ' ',
        idToken: launched.body.id_token!,
      })) {
        const r = await introspect(token);
        expect(r.status, what).toBe(200);
        expect(r.body, what).toEqual({ active: false });
      }
    });

    it("does not tell one client about another client's tokens", async () => {
      const other = await createTestClient(s.ctx);
      expect((await introspect(launched.body.access_token!, other)).body).toEqual({ active: false });
      expect((await introspect(launched.body.refresh_token!, other)).body).toEqual({ active: false });
    });

    it('requires client authentication', async () => {
      const c = await createTestClient(s.ctx, { token_endpoint_auth_method: 'client_secret_basic' });
      const r = await tokenRequest(
        s.url,
        { token: launched.body.access_token! },
        { clientId: c.clientId, clientSecret: 'wrong' },
        '/fhir/token/introspection',
      );
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_client');
      const anon = await fetch(`${s.url}/fhir/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: launched.body.access_token! }).toString(),
      });
      expect(anon.status).toBe(400);
      expect(((await anon.json()) as { error: string }).error).toBe('invalid_request');
    });
  });

  describe('revocation', () => {
    it('revoking a refresh token ends it and its grant (introspection inactive at once)', async () => {
      const r = await issueTokens(s, {
        client: launched.client,
        siteNum: launched.siteNum,
        patientId: 'pat-rev',
        scope: 'openid launch patient/*.read offline_access',
      });
      const rev = await tokenRequest(
        s.url,
        { token: r.body.refresh_token! },
        auth(launched.client),
        '/fhir/token/revocation',
      );
      expect(rev.status).toBe(200);
      expect((await introspect(r.body.refresh_token!)).body).toEqual({ active: false });
      expect((await introspect(r.body.access_token!)).body).toEqual({ active: false });
      const again = await tokenRequest(
        s.url,
        { grant_type: 'refresh_token', refresh_token: r.body.refresh_token! },
        auth(launched.client),
      );
      expect(again.body.error).toBe('invalid_grant');
      // Offline verification (the FHIR API) accepts the JWT until its exp, at most ACCESS_TOKEN_TTL.
      const { payload } = await jwtVerify(r.body.access_token!, s.ctx.keys.verificationKeys);
      expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(s.ctx.config.ttl.accessToken);
    });

    it('revoking an access token ends its grant, refresh token included', async () => {
      const r = await issueTokens(s, {
        client: launched.client,
        siteNum: launched.siteNum,
        patientId: 'pat-rev2',
        scope: 'openid launch patient/*.read offline_access',
      });
      const rev = await tokenRequest(
        s.url,
        { token: r.body.access_token! },
        auth(launched.client),
        '/fhir/token/revocation',
      );
      expect(rev.status).toBe(200);
      expect((await introspect(r.body.access_token!)).body).toEqual({ active: false });
      expect((await introspect(r.body.refresh_token!)).body).toEqual({ active: false });
    });

    it("another client cannot revoke someone else's token", async () => {
      const other = await createTestClient(s.ctx);
      const rev = await tokenRequest(
        s.url,
        { token: launched.body.access_token! },
        auth(other),
        '/fhir/token/revocation',
      );
      expect(rev.status).toBe(200);
      expect((await introspect(launched.body.access_token!)).body.active).toBe(true);
    });
  });

  it('audits token.issued and launch.consumed with ids only — never a token or the SEK', async () => {
    const { rows } = await t.db.query<Record<string, unknown>>(
      `SELECT action, user_id, client_id, patient_id, entity, detail FROM audit_events
        WHERE action IN ('token.issued', 'launch.consumed') AND patient_id = 'pat-42' ORDER BY id`,
    );
    expect(rows.map((r) => r.action)).toEqual(['launch.consumed', 'token.issued']);
    expect(rows[1]).toMatchObject({
      user_id: launched.user.id,
      client_id: launched.client.clientId,
      patient_id: 'pat-42',
    });
    await s.ctx.audit.flush();
    const all = JSON.stringify((await t.db.query('SELECT * FROM audit_events')).rows);
    for (const secret of [
      launched.body.access_token!,
      launched.body.id_token!,
      launched.body.refresh_token!,
      launched.body.oceanSharedEncryptionKey as string,
      sek,
      launched.launchId,
    ]) {
      expect(all).not.toContain(secret);
    }
  });

  it('keeps no token, code or SEK in the clear in the OIDC tables', async () => {
    const dump = JSON.stringify((await t.db.query('SELECT * FROM oidc_models')).rows);
    expect(dump).not.toContain(sek);
    expect(dump).not.toContain(launched.body.oceanSharedEncryptionKey as string);
    expect(dump).not.toContain(launched.body.access_token!);
  });
});
