/*
 * Complete SMART EHR launches per second on PostgreSQL, beside a bare oidc-provider.
 * - product: the real server (src/main.ts) in its own process on 127.0.0.1, on a fresh PostgreSQL
 *   database; each launch is GET /launch → /fhir/auth → /interaction → /fhir/auth/:uid → code at
 *   redirect_uri → POST /fhir/token (PKCE) → the id_token validated like a relying party does
 *   (signature against the JWKS, iss, aud, exp, nonce)
 * - baseline: oidc-provider alone in its own process, in-memory adapter, one static public client,
 *   an interaction that finishes at once, one grant per authorization — the same hops minus /launch
 * - load generator: this process, N concurrent browsers with keep-alive, beside the servers
 * Reports launches/s, p50/p99 of a whole launch and of the token request alone, and ratios.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import pg from 'pg';
import { cpuSeconds, freePort, startChild, stopChild } from './processes.ts';
import type { BenchArgs } from './run.ts';

const _ROOT = fileURLToPath(new URL('..', import.meta.url));
const REDIRECT_URI = 'https://ocean.bench.invalid/cb';
const CONCURRENCY = Number(process.env.LAUNCH_BENCH_CONCURRENCY ?? 24);
const PROFILE = process.env.LAUNCH_BENCH_PROFILE;

// ---------------------------------------------------------------------------------------------
// Child role: the bare oidc-provider baseline (started by the parent with LAUNCH_BENCH_ROLE=bare).

if (process.env.LAUNCH_BENCH_ROLE === 'bare') {
  const { default: Provider } = await import('oidc-provider');
  const port = Number(process.env.PORT);
  const issuer = `http://127.0.0.1:${port}/fhir`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'bench',
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, i) => `/interaction/${i.uid}` },
    loadExistingGrant: async (ctx) => {
      const id = ctx.oidc.result?.consent?.grantId;
      return id ? ctx.oidc.provider.Grant.find(id) : undefined;
    },
    cookies: { keys: ['bench-cookie-key-bench-cookie-key'] },
  });
  const callback = provider.callback();
  const server = createServer(async (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      try {
        const details = await provider.interactionDetails(req, res);
        const grant = new provider.Grant({ accountId: 'bench-user', clientId: 'bench' });
        grant.addOIDCScope(String(details.params.scope ?? 'openid'));
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, {
          login: { accountId: 'bench-user' },
          consent: { grantId },
        });
      } catch {
        res.statusCode = 400;
        res.end();
      }
      return;
    }
    if (req.url?.startsWith('/fhir/')) {
      (req as { originalUrl?: string }).originalUrl = req.url;
      req.url = req.url.slice('/fhir'.length);
      callback(req, res);
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

// ---------------------------------------------------------------------------------------------
// Load generation

class Jar {
  #c = new Map<string, { name: string; value: string; path: string }>();
  set(lines: string[], reqPath: string) {
    for (const line of lines) {
      const [pair = '', ...attrs] = line.split(/;\s*/);
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      let path = reqPath.replace(/\/[^/]*$/, '') || '/';
      let gone = false;
      for (const a of attrs) {
        const [k = '', v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) gone = true;
      }
      if (gone) this.#c.delete(`${name};${path}`);
      else this.#c.set(`${name};${path}`, { name, value: pair.slice(eq + 1), path });
    }
  }
  header(p: string) {
    return [...this.#c.values()]
      .filter((c) => c.path === '/' || p === c.path || p.startsWith(`${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

interface Flow {
  issuer: string;
  clientId: string;
  /** Returns the launch parameter (and the iss) for one launch, or none for the baseline. */
  startLaunch(jar: Jar): Promise<{ launch?: string }>;
  jwks: ReturnType<typeof createLocalJWKSet>;
  scope: string;
}

async function follow(url: URL, jar: Jar, origin: string): Promise<URL> {
  for (let i = 0; i < 8; i++) {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(url.pathname) } });
    jar.set(res.headers.getSetCookie(), url.pathname);
    await res.arrayBuffer();
    const loc = res.headers.get('location');
    if (!loc) throw new Error(`flow stopped with ${res.status} at ${url.pathname}`);
    url = new URL(loc, url);
    if (url.origin !== origin) return url;
  }
  throw new Error('too many redirects');
}

async function oneLaunch(flow: Flow, jar: Jar, tokenTimes: number[]): Promise<void> {
  const { launch } = await flow.startLaunch(jar);
  const verifier = randomBytes(32).toString('base64url');
  const nonce = randomBytes(12).toString('base64url');
  const state = randomBytes(12).toString('base64url');
  const auth = new URL(`${flow.issuer}/auth`);
  auth.search = new URLSearchParams({
    response_type: 'code',
    client_id: flow.clientId,
    redirect_uri: REDIRECT_URI,
    scope: flow.scope,
    state,
    nonce,
    aud: flow.issuer,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ...(launch ? { launch } : {}),
  }).toString();
  const back = await follow(auth, jar, new URL(flow.issuer).origin);
  const code = back.searchParams.get('code');
  if (!code || back.searchParams.get('state') !== state)
    throw new Error(`no code: ${back.searchParams.get('error')}`);
  const t0 = performance.now();
  const res = await fetch(`${flow.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
      client_id: flow.clientId,
    }).toString(),
  });
  const body = (await res.json()) as { id_token?: string };
  tokenTimes.push(performance.now() - t0);
  if (res.status !== 200 || !body.id_token) throw new Error(`token ${res.status}`);
  const { payload } = await jwtVerify(body.id_token, flow.jwks, {
    issuer: flow.issuer,
    audience: flow.clientId,
  });
  if (payload.nonce !== nonce) throw new Error('nonce mismatch');
}

interface Measured {
  launches: number;
  errors: number;
  seconds: number;
  launchMs: number[];
  tokenMs: number[];
  firstError?: string;
}

async function drive(flow: Flow, jars: Jar[], seconds: number): Promise<Measured> {
  const launchMs: number[] = [];
  const tokenMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    jars.map(async (jar) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await oneLaunch(flow, jar, tokenMs);
          launchMs.push(performance.now() - t0);
        } catch (err) {
          errors++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }),
  );
  return {
    launches: launchMs.length,
    errors,
    seconds: (performance.now() - start) / 1000,
    launchMs,
    tokenMs,
    ...(firstError ? { firstError } : {}),
  };
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

// ---------------------------------------------------------------------------------------------

export default async function launchBench(args: BenchArgs): Promise<string> {
  const seconds = Math.min(args.duration, 20);
  const dbName = `bench_launch_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: args.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const dbUrl = new URL(args.databaseUrl);
  dbUrl.pathname = `/${dbName}`;

  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const secretsKey = randomBytes(32).toString('base64');
  const env = {
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: publicUrl,
    DATABASE_URL: dbUrl.toString(),
    DATABASE_POOL_MAX: '20',
    SECRETS_KEY: secretsKey,
    ADMIN_TOKEN: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    // One client address drives every launch: the per-address limits would throttle the bench.
    RATE_LIMIT_TOKEN: '0',
    RATE_LIMIT_LOGIN: '0',
    RATE_LIMIT_INTROSPECTION: '0',
  };
  const children: ChildProcess[] = [];
  try {
    const product = await startChild(['src/main.ts'], env, `${publicUrl}/readyz`, PROFILE);
    children.push(product);

    // Data, written with the product's own stores through a context of its config and keys.
    const { loadConfig } = await import('../src/config.ts');
    const { createPostgresDatabase } = await import('../src/db/postgres.ts');
    const { SecretBox } = await import('../src/keys/secret-box.ts');
    const { createClient } = await import('../src/clients/clients.ts');
    const { addSite } = await import('../src/sites/sites.ts');
    const { putResource } = await import('../src/fhir/repository.ts');
    const { signIn, createTestUser } = await import('../test/helpers/oidc.ts');
    const config = loadConfig({ ...env, KEYS_DIR: '/tmp' });
    const db = createPostgresDatabase(dbUrl.toString(), { max: 4 });
    const ctx = { config, db, box: new SecretBox(Buffer.from(secretsKey, 'base64')) } as never;
    const { client } = await createClient(ctx, {
      name: 'Ocean (bench)',
      redirect_uris: [REDIRECT_URI],
      launch_url: 'https://ocean.bench.invalid/sso/smart/auth',
      token_endpoint_auth_method: 'none',
    });
    await addSite(ctx, client.client_id, { siteNum: '1234', sharedEncryptionKey: 'bench SEK' });
    await putResource(db, { resourceType: 'Patient', id: 'bench-patient', name: [{ family: 'Bench' }] });
    const jars: Jar[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const user = await createTestUser(ctx);
      const jar = new Jar();
      jar.set([`${(await signIn(ctx, user.id)).cookie}; Path=/`], '/');
      jars.push(jar);
    }
    await db.close();

    const issuer = `${publicUrl}/fhir`;
    const jwks = createLocalJWKSet((await (await fetch(`${issuer}/jwks`)).json()) as { keys: JWK[] });
    const productFlow: Flow = {
      issuer,
      clientId: client.client_id,
      jwks,
      scope: 'openid fhirUser profile launch patient/*.read',
      async startLaunch(jar) {
        const res = await fetch(`${publicUrl}/launch?patient=bench-patient&site=1234&action=viewMap`, {
          redirect: 'manual',
          headers: { cookie: jar.header('/launch') },
        });
        await res.arrayBuffer();
        const to = new URL(res.headers.get('location') ?? 'x:');
        const launch = to.searchParams.get('launch');
        if (res.status !== 302 || !launch || to.searchParams.get('iss') !== issuer)
          throw new Error(`/launch ${res.status}`);
        return { launch };
      },
    };
    await drive(productFlow, jars, 2); // warm-up
    const cpu0 = cpuSeconds(product.pid);
    const ours = await drive(productFlow, jars, seconds);
    const oursCpuMs = ((cpuSeconds(product.pid) - cpu0) * 1000) / Math.max(1, ours.launches);
    await stopChild(product);
    children.length = 0;

    const barePort = await freePort();
    const bare = await startChild(
      ['bench/launch.bench.ts'],
      { LAUNCH_BENCH_ROLE: 'bare', PORT: String(barePort) },
      `http://127.0.0.1:${barePort}/fhir/.well-known/openid-configuration`,
      PROFILE,
    );
    children.push(bare);
    const bareIssuer = `http://127.0.0.1:${barePort}/fhir`;
    const bareJwks = createLocalJWKSet((await (await fetch(`${bareIssuer}/jwks`)).json()) as { keys: JWK[] });
    const bareFlow: Flow = {
      issuer: bareIssuer,
      clientId: 'bench',
      jwks: bareJwks,
      scope: 'openid',
      startLaunch: async () => ({}),
    };
    const bareJars = Array.from({ length: CONCURRENCY }, () => new Jar());
    await drive(bareFlow, bareJars, 2);
    const bcpu0 = cpuSeconds(bare.pid);
    const base = await drive(bareFlow, bareJars, seconds);
    const baseCpuMs = ((cpuSeconds(bare.pid) - bcpu0) * 1000) / Math.max(1, base.launches);

    const rate = (m: Measured) => m.launches / m.seconds;
    const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');
    const rows = [
      ['complete launches/s', f(rate(ours)), f(rate(base)), `${(rate(ours) / rate(base)).toFixed(2)}×`],
      [
        'launch p50 (ms)',
        f(pct(ours.launchMs, 50)),
        f(pct(base.launchMs, 50)),
        `${(pct(ours.launchMs, 50) / pct(base.launchMs, 50)).toFixed(2)}×`,
      ],
      [
        'launch p99 (ms)',
        f(pct(ours.launchMs, 99)),
        f(pct(base.launchMs, 99)),
        `${(pct(ours.launchMs, 99) / pct(base.launchMs, 99)).toFixed(2)}×`,
      ],
      [
        'token request p50 (ms)',
        f(pct(ours.tokenMs, 50)),
        f(pct(base.tokenMs, 50)),
        `${(pct(ours.tokenMs, 50) / pct(base.tokenMs, 50)).toFixed(2)}×`,
      ],
      [
        'token request p99 (ms)',
        f(pct(ours.tokenMs, 99)),
        f(pct(base.tokenMs, 99)),
        `${(pct(ours.tokenMs, 99) / pct(base.tokenMs, 99)).toFixed(2)}×`,
      ],
      [
        'server CPU per launch (ms, Node process only)',
        f(oursCpuMs),
        f(baseCpuMs),
        `${(oursCpuMs / baseCpuMs).toFixed(2)}×`,
      ],
      [
        'launches/s per server core (1000 / CPU ms)',
        f(1000 / oursCpuMs),
        f(1000 / baseCpuMs),
        `${(baseCpuMs / oursCpuMs).toFixed(2)}×`,
      ],
      ['errors', String(ours.errors), String(base.errors), ''],
    ];
    return [
      `## launch — complete SMART EHR launches (${CONCURRENCY} concurrent browsers, ${seconds}s each, load generator on the same machine)`,
      '',
      'Product: /launch → /fhir/auth → /interaction → /fhir/auth/:uid → code → POST /fhir/token (PKCE, JWT access token, launch context, audit) → id_token verified (JWKS, iss, aud, nonce); PostgreSQL.',
      'Baseline: bare oidc-provider, in-memory adapter, one static public client, an interaction that finishes at once, opaque access token; same hops minus /launch.',
      '',
      '| measure | product (PostgreSQL) | bare oidc-provider (memory) | ratio |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      `Machine load average while measuring: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(
          ' / ',
        )} (1/5/15 min). Wall-clock rates fall with other work on the box; CPU per launch much less so.`,
      ...(ours.firstError ? ['', `first product error: ${ours.firstError}`] : []),
      ...(base.firstError ? ['', `first baseline error: ${base.firstError}`] : []),
    ].join('\n');
  } finally {
    for (const c of children) await stopChild(c);
    const cleanup = new pg.Client({ connectionString: args.databaseUrl });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await cleanup.end();
  }
}
