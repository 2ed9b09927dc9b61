/*
 * A hospital's OpenID Connect identity provider for tests: a real oidc-provider (panva) on its own
 * ephemeral port, with its own keys, sessions and code flow — not a mock of one.
 * - accounts are what the test puts in `accounts` (findAccount reads them at every request, so a
 *   changed name is what the next id_token says); `signInAs(sub)` is the person at the keyboard:
 *   the provider's login interaction completes as that account (devInteractions are off), or
 *   stops on a login page when nobody is set
 * - clients are registered after start (`addClient`), once the relying party's redirect URI is
 *   known; they live in the helper's in-memory adapter with everything else of the provider
 * - `publishForeignKeys`: the JWKS served is another key with the same kid, so every signature the
 *   provider makes is foreign to what it publishes
 * - `/other-tenant`: a second issuer name served by the same provider (its discovery document with
 *   another `issuer`); a relying party configured with it receives tokens of the first issuer
 * - `browse()` follows a browser's redirects across both servers, with one cookie jar
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';
import type { CookieJar } from './oidc.ts';

export type AccountClaims = Record<string, unknown>;

export interface IdentityProvider {
  issuer: string;
  /** The issuer name of `/other-tenant` (same provider, tokens say `issuer`). */
  otherTenantIssuer: string;
  provider: Provider;
  accounts: Map<string, AccountClaims>;
  /** The account the next login interaction signs in as (undefined: the login page stays). */
  signInAs(sub: string | undefined): void;
  addClient(
    metadata: { client_id: string; client_secret: string; redirect_uris: string[] } & Record<string, unknown>,
  ): Promise<void>;
  stop(): Promise<void>;
}

export interface IdentityProviderOptions {
  /** Serve another key (same kid) at the JWKS endpoint than the one tokens are signed with. */
  publishForeignKeys?: boolean;
  /** Claims in the id_token even when an access token is issued (Entra ID, Keycloak); false: userinfo only (Okta's default). */
  claimsInIdToken?: boolean;
}

function memoryAdapter(): new (model: string) => Adapter {
  const store = new Map<string, AdapterPayload>();
  return class MemoryAdapter implements Adapter {
    constructor(readonly model: string) {}
    key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: AdapterPayload) {
      store.set(this.key(id), payload);
    }
    async find(id: string) {
      return store.get(this.key(id));
    }
    async findByUid(uid: string) {
      for (const [k, v] of store) if (k.startsWith(`${this.model}:`) && v.uid === uid) return v;
      return undefined;
    }
    async findByUserCode(userCode: string) {
      for (const [k, v] of store) if (k.startsWith(`${this.model}:`) && v.userCode === userCode) return v;
      return undefined;
    }
    async consume(id: string) {
      const v = store.get(this.key(id));
      if (v) v.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const [k, v] of store) if (v.grantId === grantId) store.delete(k);
    }
  };
}

async function signingKey(kid: string) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

export async function startIdentityProvider(
  options: IdentityProviderOptions = {},
): Promise<IdentityProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  const issuer = `http://127.0.0.1:${address.port}`;
  const otherTenantIssuer = `${issuer}/other-tenant`;

  const accounts = new Map<string, AccountClaims>();
  let signedIn: string | undefined;
  const kid = `hospital-${address.port}`;
  const key = await signingKey(kid);
  const Adapter = memoryAdapter();

  const provider = new Provider(issuer, {
    adapter: Adapter,
    jwks: { keys: [key] },
    cookies: { keys: ['identity-provider-test-cookie-key'] },
    findAccount: (_ctx, sub) => {
      if (!accounts.has(sub)) return undefined;
      return { accountId: sub, claims: () => ({ ...accounts.get(sub), sub }) };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'roles', 'realm_access'],
      email: ['email', 'email_verified'],
    },
    conformIdTokenClaims: options.claimsInIdToken === false,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => true,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
    },
  });

  const foreignJwks = { keys: [await signingKey(kid)].map(({ d, p, q, dp, dq, qi, ...pub }) => pub) };
  const callback = provider.callback();

  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res);
    if (!signedIn) {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Hospital sign-in</h1><form>…</form>');
      return;
    }
    const grant = new provider.Grant({ accountId: signedIn, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: signedIn }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (path.startsWith('/interaction/')) {
      interaction(req, res).catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
      return;
    }
    if (path === '/jwks' && options.publishForeignKeys) {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(foreignJwks));
      return;
    }
    if (path === '/other-tenant/.well-known/openid-configuration') {
      fetch(`${issuer}/.well-known/openid-configuration`)
        .then((r) => r.json() as Promise<Record<string, unknown>>)
        .then(
          (doc: Record<string, unknown>) => {
            const { authorization_response_iss_parameter_supported: _, ...rest } = doc;
            res
              .writeHead(200, { 'content-type': 'application/json' })
              .end(JSON.stringify({ ...rest, issuer: otherTenantIssuer }));
          },
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
      return;
    }
    callback(req, res);
  });

  return {
    issuer,
    otherTenantIssuer,
    provider,
    accounts,
    signInAs(sub) {
      signedIn = sub;
    },
    async addClient(metadata) {
      await new Adapter('Client').upsert(
        metadata.client_id,
        {
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
          ...metadata,
        } as AdapterPayload,
        0,
      );
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface BrowseResult {
  /** The URL of the last response (the page the browser stopped on). */
  url: URL;
  status: number;
  body: string;
  /** Every URL visited, in order. */
  visited: URL[];
}

/**
 * A browser's navigation from `start`, following redirects on any server, until a page (a
 * non-redirect) or a URL for which `stopAt` says so. `rewrite` may change a URL before it is
 * visited (what an attacker in the middle, or a tampered link, would do).
 */
export async function browse(
  start: string | URL,
  jar: CookieJar,
  options: { stopAt?: (url: URL) => boolean; rewrite?: (url: URL) => URL; maxHops?: number } = {},
): Promise<BrowseResult> {
  let url = new URL(start);
  const visited: URL[] = [];
  for (let hop = 0; hop < (options.maxHops ?? 12); hop++) {
    if (options.rewrite) url = options.rewrite(url);
    visited.push(url);
    if (options.stopAt?.(url)) return { url, status: 0, body: '', visited };
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(url.pathname) } });
    jar.store(res.headers.getSetCookie(), url.pathname);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) {
      return { url, status: res.status, body: await res.text(), visited };
    }
    await res.arrayBuffer();
    url = new URL(location, url);
  }
  throw new Error('too many redirects');
}
