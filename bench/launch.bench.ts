/*
 * Complete SMART EHR launches on PostgreSQL, beside a bare oidc-provider, in two scenarios:
 * - public: a public client (PKCE), pre-authorized, RS256 id_token, LAUNCH_BENCH_CONCURRENCY
 *   browsers (default 24) — a browser with a provider session gets its grant at /fhir/auth
 * - confidential: `client_secret_basic`, ES256 id_token, scope with `offline_access` (a refresh
 *   token), pre-authorized as Ocean is registered, 8 clinicians each with their own EHR session;
 *   like a SMART client it sends no `prompt` (the bare providers get `prompt=consent`: plain
 *   oidc-provider keeps offline_access only with it)
 * - consent page: the confidential scenario with a client that is NOT pre-authorized — the
 *   browser reads the consent page and posts its form with the CSRF token
 * - launch API: the public client's launch asked for by an EHR system's back end (CONTRACT §3.5):
 *   one Backend Services token reused, POST /ehr-api/launches per launch (user and patient),
 *   then a browser with NO EHR session of ours authorizes; its server CPU per launch is set
 *   against the screen path's (the public scenario) measured in the same run
 * - product: the real server (dist/main.js, as npm start runs it) in its own process on a fresh PostgreSQL database; a
 *   launch is GET /launch → /fhir/auth → (/interaction → consent → /fhir/auth/:uid) → code →
 *   POST /fhir/token → the id_token verified like a relying party (JWKS signature with the
 *   client's alg, iss, aud, exp, nonce)
 * - baseline: oidc-provider alone in its own process, in-memory adapter, the matching static
 *   clients (public / confidential ES256 with refresh tokens), an interaction that finishes at
 *   once (login and consent in one step), one grant per authorization — the same hops minus /launch
 * - durable floor: the same bare provider with its models in PostgreSQL (./oidc-pg-adapter.ts, its
 *   own database, its backends' CPU measured too), and a consent page with its answer for the
 *   client that is not pre-authorized: the least a provider that survives restarts, runs on
 *   several instances and asks what it must pays; the product is reported against it and bare
 * - load generator: this process, beside the servers; both servers run through the whole bench
 *   and each phase alternates bare → floor → product, so drift in machine load hits all three alike
 * Reports per scenario: launches/s, p50/p99, server CPU per launch (the Node process), PostgreSQL
 * CPU per launch (./pg-cpu.ts) and one clinician alone (concurrency 1), with ratios to the durable
 * floor and to bare.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWK, jwtVerify } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import { type PgCpuMeter, pgCpuMeter } from './pg-cpu.ts';
import { benchDatabase, cpuSeconds, freePort, productEntry, startChild, stopChild } from './processes.ts';
import type { BenchArgs } from './run.ts';
import { percentile } from './stats.ts';

const PROFILE = process.env.LAUNCH_BENCH_PROFILE;
/** LAUNCH_BENCH_SCENARIOS=confidential (comma-separated: public, confidential, consent, api) runs only those. */
const SCENARIOS = new Set(
  (process.env.LAUNCH_BENCH_SCENARIOS ?? 'public,confidential,consent,api').split(','),
);
const skipped = { text: '', cpuPerLaunch: Number.NaN };
const REDIRECT_URI = 'https://ocean.bench.invalid/cb';
const CONCURRENCY = Number(process.env.LAUNCH_BENCH_CONCURRENCY ?? 24);
/** The confidential scenario: 8 clinicians, each with their own EHR session. */
const CLINICIANS = 8;
const BARE_SECRET = 'bench-confidential-secret';
/** The bare providers' client that is not pre-authorized: the durable floor shows it a consent page. */
const BARE_ASKING_CLIENT = 'bench-confidential-consent';

// ---------------------------------------------------------------------------------------------
// Child role: the bare oidc-provider baseline (started by the parent with LAUNCH_BENCH_ROLE=bare).

if (process.env.LAUNCH_BENCH_ROLE === 'bare') {
  const { default: Provider } = await import('oidc-provider');
  const port = Number(process.env.PORT);
  // The durable floor: the same provider with its models in PostgreSQL (./oidc-pg-adapter.ts).
  const floorDb = process.env.LAUNCH_BENCH_FLOOR_DB;
  const adapter = floorDb ? (await import('./oidc-pg-adapter.ts')).pgAdapter(floorDb) : undefined;
  const issuer = `http://127.0.0.1:${port}/fhir`;
  // Both algorithms the product signs with, so each client gets its own alg as in the product.
  const keys = await Promise.all(
    (['RS256', 'ES256'] as const).map(async (alg) => ({
      ...(await exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey)),
      alg,
      use: 'sig',
      kid: `bench-${alg}`,
    })),
  );
  const provider = new Provider(issuer, {
    ...(adapter ? { adapter: await adapter } : {}),
    jwks: { keys } as never,
    clients: [
      {
        client_id: 'bench',
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
      ...['bench-confidential', BARE_ASKING_CLIENT].map(
        (client_id): ClientMetadata => ({
          client_id,
          client_secret: BARE_SECRET,
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'ES256',
          redirect_uris: [REDIRECT_URI],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        }),
      ),
    ],
    scopes: ['openid', 'offline_access'],
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
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
        // The durable floor asks the client that is not pre-authorized for consent: a page with a
        // form, then its answer — one more round trip, as any real server. Otherwise, and always
        // on the bare provider (memory), the interaction finishes login and consent at once.
        const asks = floorDb !== undefined && details.params.client_id === BARE_ASKING_CLIENT;
        if (asks && req.method === 'GET') {
          res.setHeader('content-type', 'text/html; charset=utf-8');
          res.end(
            `<form method="post" action="/interaction/${details.uid}/confirm"><input type="hidden" name="uid" value="${details.uid}"><button name="decision" value="allow">Allow</button></form>`,
          );
          return;
        }
        if (asks) {
          let body = '';
          for await (const chunk of req) body += chunk;
          if (new URLSearchParams(body).get('decision') !== 'allow') throw new Error('not allowed');
        }
        const clientId = String(details.params.client_id);
        const grant = new provider.Grant({ accountId: 'bench-user', clientId });
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
  /** Confidential clients authenticate at the token endpoint with client_secret_basic. */
  clientSecret?: string;
  /** The id_token's signing alg this client registered (the only one its relying party accepts). */
  idTokenAlg: 'RS256' | 'ES256';
  /** Returns the launch parameter for one launch, or none for the baseline. */
  startLaunch(jar: Jar): Promise<{ launch?: string }>;
  jwks: ReturnType<typeof createLocalJWKSet>;
  scope: string;
  /** offline_access: the token response must carry a refresh token. */
  offline: boolean;
  /** The prompt the relying party sends (SMART clients send none; plain oidc-provider needs consent). */
  prompt?: 'consent';
}

const unescapeHtml = (s: string) =>
  s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_m, e: string) =>
    e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : "'",
  );

/**
 * A page with a POST form (the consent page): its action and hidden fields, with the "allow"
 * button's value — what a person clicking Allow submits.
 */
function consentForm(html: string): { action: string; fields: URLSearchParams } | undefined {
  const form = /<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const fields = new URLSearchParams();
  for (const m of form[2]!.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi))
    fields.append(unescapeHtml(m[1]!), unescapeHtml(m[2]!));
  const allow = /<button[^>]*name="([^"]+)"[^>]*value="allow"/i.exec(form[2]!);
  if (!allow) return undefined;
  fields.append(allow[1]!, 'allow');
  return { action: unescapeHtml(form[1]!), fields };
}

/** Follows redirects on the server's origin; answers a consent page by allowing. */
async function follow(url: URL, jar: Jar, origin: string): Promise<URL> {
  let post: URLSearchParams | undefined;
  for (let i = 0; i < 10; i++) {
    const res = await fetch(url, {
      redirect: 'manual',
      ...(post
        ? {
            method: 'POST',
            body: post.toString(),
            headers: {
              cookie: jar.header(url.pathname),
              'content-type': 'application/x-www-form-urlencoded',
              origin,
            },
          }
        : { headers: { cookie: jar.header(url.pathname) } }),
    });
    post = undefined;
    jar.set(res.headers.getSetCookie(), url.pathname);
    const loc = res.headers.get('location');
    if (!loc && res.status === 200) {
      const form = consentForm(await res.text());
      if (!form) throw new Error(`flow stopped with a page without a form at ${url.pathname}`);
      url = new URL(form.action, url);
      post = form.fields;
      continue;
    }
    await res.arrayBuffer();
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
    ...(flow.prompt ? { prompt: flow.prompt } : {}),
    ...(launch ? { launch } : {}),
  }).toString();
  const back = await follow(auth, jar, new URL(flow.issuer).origin);
  const code = back.searchParams.get('code');
  if (!code || back.searchParams.get('state') !== state)
    throw new Error(
      `no code: ${back.searchParams.get('error')} ${back.searchParams.get('error_description')}`,
    );
  const t0 = performance.now();
  const form: Record<string, string> = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  };
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (flow.clientSecret) {
    // RFC 6749 §2.3.1: form-urlencoded id and secret, joined by ":", base64
    const basic = `${encodeURIComponent(flow.clientId)}:${encodeURIComponent(flow.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
  } else form.client_id = flow.clientId;
  const res = await fetch(`${flow.issuer}/token`, {
    method: 'POST',
    headers,
    body: new URLSearchParams(form).toString(),
  });
  const body = (await res.json()) as { id_token?: string; refresh_token?: string; error?: string };
  tokenTimes.push(performance.now() - t0);
  if (res.status !== 200 || !body.id_token) throw new Error(`token ${res.status} ${body.error ?? ''}`);
  if (flow.offline && !body.refresh_token) throw new Error('offline_access granted no refresh token');
  // as a relying party: signature (the client's alg, key from the JWKS), iss, aud, exp, nonce
  const { payload } = await jwtVerify(body.id_token, flow.jwks, {
    issuer: flow.issuer,
    audience: flow.clientId,
    algorithms: [flow.idTokenAlg],
    requiredClaims: ['exp', 'iat', 'sub', 'nonce'],
  });
  if (payload.nonce !== nonce) throw new Error('nonce mismatch');
}

interface Measured {
  launches: number;
  errors: number;
  seconds: number;
  launchMs: number[];
  tokenMs: number[];
  /** CPU seconds of the server's Node process during the phase. */
  serverCpu: number;
  /** CPU seconds of the PostgreSQL backends of the bench database during the phase (NaN: none). */
  pgCpu: number;
  firstError?: string;
}

async function drive(
  flow: Flow,
  jars: Jar[],
  seconds: number,
  server: ChildProcess,
  pgMeter?: PgCpuMeter,
): Promise<Measured> {
  const launchMs: number[] = [];
  const tokenMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const stopPg = await pgMeter?.start();
  const cpu0 = cpuSeconds(server.pid);
  const start = performance.now();
  const end = start + seconds * 1000;
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
  const elapsed = (performance.now() - start) / 1000;
  const serverCpu = cpuSeconds(server.pid) - cpu0;
  const pgCpu = stopPg ? await stopPg() : Number.NaN;
  return {
    launches: launchMs.length,
    errors,
    seconds: elapsed,
    launchMs,
    tokenMs,
    serverCpu,
    pgCpu,
    ...(firstError ? { firstError } : {}),
  };
}

// ---------------------------------------------------------------------------------------------

interface Side {
  flow: Flow;
  jars: Jar[];
  server: ChildProcess;
  pg?: PgCpuMeter;
}

/**
 * One scenario: warm-up, N browsers, then one clinician alone — bare, durable floor, then product
 * each time, so drift in machine load hits all three alike.
 */
async function scenario(
  title: string,
  what: string,
  ours: Side,
  bare: Side,
  floor: Side,
  seconds: number,
): Promise<{ text: string; cpuPerLaunch: number }> {
  const run = (s: Side, jars: Jar[], secs: number) => drive(s.flow, jars, secs, s.server, s.pg);
  for (const side of [bare, floor, ours]) await run(side, side.jars, 2);
  const base = await run(bare, bare.jars, seconds);
  const durable = await run(floor, floor.jars, seconds);
  const mine = await run(ours, ours.jars, seconds);
  const alone = Math.max(3, Math.round(seconds / 2));
  const base1 = await run(bare, bare.jars.slice(0, 1), alone);
  const durable1 = await run(floor, floor.jars.slice(0, 1), alone);
  const mine1 = await run(ours, ours.jars.slice(0, 1), alone);

  const rate = (m: Measured) => m.launches / m.seconds;
  const perLaunch = (cpu: number, m: Measured) => (cpu * 1000) / Math.max(1, m.launches);
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');
  const ratio = (a: number, b: number) => (Number.isFinite(a / b) && b > 0 ? `${(a / b).toFixed(2)}×` : '');
  /** product, durable floor, bare, product ÷ floor, product ÷ bare */
  const row = (label: string, a: number, d: number, b: number) => [
    label,
    f(a),
    f(d),
    f(b),
    ratio(a, d),
    ratio(a, b),
  ];
  /** A percentile of one timing, product / durable floor / bare. */
  const pRow = (label: string, p: number, sides: Measured[], ms: (m: Measured) => number[]) => {
    const [a, d, b] = sides.map((m) => percentile(ms(m), p)) as [number, number, number];
    return row(label, a, d, b);
  };
  /** The bare provider has no database: its PostgreSQL column says so. */
  const pgRow = (label: string, a: number, d: number) => [label, f(a), f(d), '— (memory)', ratio(a, d), ''];
  const cpuMine = perLaunch(mine.serverCpu, mine);
  const cpuFloor = perLaunch(durable.serverCpu, durable);
  const cpuBase = perLaunch(base.serverCpu, base);
  const pgMine = perLaunch(mine.pgCpu, mine);
  const pgFloor = perLaunch(durable.pgCpu, durable);
  const aloneP50 = percentile(mine1.launchMs, 50);
  const aloneFloor = percentile(durable1.launchMs, 50);
  const n = ours.jars.length;
  const loaded = [mine, durable, base];
  const rows = [
    row(`complete launches/s (${n} browsers)`, rate(mine), rate(durable), rate(base)),
    pRow('launch p50 (ms)', 50, loaded, (m) => m.launchMs),
    pRow('launch p99 (ms)', 99, loaded, (m) => m.launchMs),
    pRow('token request p50 (ms)', 50, loaded, (m) => m.tokenMs),
    row('**server CPU per launch** (ms, Node process)', cpuMine, cpuFloor, cpuBase),
    pgRow('**PostgreSQL CPU per launch** (ms, backends of the bench database)', pgMine, pgFloor),
    row('server + PostgreSQL CPU per launch (ms)', cpuMine + pgMine, cpuFloor + pgFloor, cpuBase),
    row('**one clinician alone**: launch p50 (ms)', aloneP50, aloneFloor, percentile(base1.launchMs, 50)),
    pRow('one clinician alone: launch p99 (ms)', 99, [mine1, durable1, base1], (m) => m.launchMs),
    row(
      'one clinician alone: server CPU per launch (ms)',
      perLaunch(mine1.serverCpu, mine1),
      perLaunch(durable1.serverCpu, durable1),
      perLaunch(base1.serverCpu, base1),
    ),
    pgRow(
      'one clinician alone: PostgreSQL CPU per launch (ms)',
      perLaunch(mine1.pgCpu, mine1),
      perLaunch(durable1.pgCpu, durable1),
    ),
    [
      'launches measured / errors',
      ...[
        [mine, mine1],
        [durable, durable1],
        [base, base1],
      ].map(([a, b]) => `${a!.launches + b!.launches} / ${a!.errors + b!.errors}`),
      '',
      '',
    ],
  ];
  const met = (ok: boolean) => (ok ? 'met ✓' : 'NOT met ✗');
  const named = { product: [mine, mine1], 'durable floor': [durable, durable1], baseline: [base, base1] };
  const errors = Object.entries(named).flatMap(([name, ms]) =>
    ms.flatMap((m) => (m.firstError ? [`first ${name} error: ${m.firstError}`] : [])),
  );
  const text = [
    `### ${title}`,
    '',
    what,
    '',
    '| measure | product (PostgreSQL) | durable floor: bare oidc-provider, PostgreSQL adapter | bare oidc-provider (memory) | product ÷ floor | product ÷ bare |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Targets: server CPU per launch ≤ 2× bare — ${(cpuMine / cpuBase).toFixed(2)}×, ${met(cpuMine <= 2 * cpuBase)} (÷ durable floor: ${(cpuMine / cpuFloor).toFixed(2)}×, ${met(cpuMine <= 2 * cpuFloor)}); one clinician alone ≤ 15 ms (p50) — ${f(aloneP50)} ms, ${met(aloneP50 <= 15)} (durable floor ${f(aloneFloor)} ms).`,
    ...(errors.length ? ['', ...errors] : []),
  ].join('\n');
  return { text, cpuPerLaunch: cpuMine };
}

export default async function launchBench(args: BenchArgs): Promise<string> {
  const seconds = Math.min(args.duration, 20);
  const database = await benchDatabase(args.databaseUrl, 'bench_launch');
  const floorDatabase = await benchDatabase(args.databaseUrl, 'bench_launch_floor');
  const dbName = database.name;
  const dbUrl = new URL(database.url);

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
    // the product logs as production does (its stdout read by the bench, as a log collector
    // would); BENCH_LOG_LEVEL to vary it
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    DEMO_DATA: 'false',
    // One client address drives every launch: the per-address limits would throttle the bench.
    RATE_LIMIT_TOKEN: '0',
    RATE_LIMIT_LOGIN: '0',
    RATE_LIMIT_INTROSPECTION: '0',
    // The EHR back end reuses one token for the whole bench.
    EHR_SYSTEM_TOKEN_TTL: '3600',
  };
  const children: ChildProcess[] = [];
  let meter: PgCpuMeter | undefined;
  let floorMeter: PgCpuMeter | undefined;
  try {
    const product = await startChild(productEntry(), env, `${publicUrl}/readyz`, PROFILE);
    children.push(product);
    const barePort = await freePort();
    const bare = await startChild(
      ['bench/launch.bench.ts'],
      { LAUNCH_BENCH_ROLE: 'bare', PORT: String(barePort) },
      `http://127.0.0.1:${barePort}/fhir/.well-known/openid-configuration`,
      PROFILE,
    );
    children.push(bare);
    const floorPort = await freePort();
    const floor = await startChild(
      ['bench/launch.bench.ts'],
      { LAUNCH_BENCH_ROLE: 'bare', PORT: String(floorPort), LAUNCH_BENCH_FLOOR_DB: floorDatabase.url },
      `http://127.0.0.1:${floorPort}/fhir/.well-known/openid-configuration`,
      PROFILE,
    );
    children.push(floor);

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
      name: 'Ocean (bench, public)',
      redirect_uris: [REDIRECT_URI],
      launch_url: 'https://ocean.bench.invalid/sso/smart/auth',
      token_endpoint_auth_method: 'none',
    });
    await addSite(ctx, client.client_id, { siteNum: '1234', sharedEncryptionKey: 'bench SEK' });
    // Pre-authorized, as Ocean is registered (the default); the consent scenario's twin is not,
    // and the clinician is shown the consent page and allows.
    const confidentialClient = async (preAuthorized: boolean, siteNum: string) => {
      const made = await createClient(ctx, {
        name: `Ocean (bench, confidential${preAuthorized ? '' : ', asks consent'})`,
        redirect_uris: [REDIRECT_URI],
        launch_url: 'https://ocean.bench.invalid/sso/smart/auth',
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
        pre_authorized: preAuthorized,
      });
      await addSite(ctx, made.client.client_id, { siteNum, sharedEncryptionKey: `bench SEK ${siteNum}` });
      return made;
    };
    const confidential = await confidentialClient(true, '5678');
    const asking = await confidentialClient(false, '5679');
    await putResource(db, { resourceType: 'Patient', id: 'bench-patient', name: [{ family: 'Bench' }] });
    const clinicians = async (count: number) => {
      const jars: Jar[] = [];
      for (let i = 0; i < count; i++) {
        const user = await createTestUser(ctx);
        const jar = new Jar();
        jar.set([`${(await signIn(ctx, user.id)).cookie}; Path=/`], '/');
        jars.push(jar);
      }
      return jars;
    };
    // The EHR system of the launch-API scenario, registered with the product's own store.
    const { EhrSystems } = await import('../src/ehr-api/ehr-systems.ts');
    const { ehrKey, ehrToken } = await import('../test/helpers/ehr-backend.ts');
    const ehrKeys = await ehrKey('ES384');
    const ehrSystem = (
      await new EhrSystems(db, (ctx as { box: never }).box, 3600).create(db, {
        name: 'Bench EMR',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [ehrKeys.publicJwk] },
      })
    ).system;
    const publicJars = await clinicians(CONCURRENCY);
    const confidentialJars = await clinicians(CLINICIANS);
    const askingJars = await clinicians(CLINICIANS);
    await db.close();
    meter = await pgCpuMeter(args.databaseUrl, dbName);
    floorMeter = await pgCpuMeter(args.databaseUrl, floorDatabase.name);

    const issuer = `${publicUrl}/fhir`;
    const jwks = createLocalJWKSet((await (await fetch(`${issuer}/jwks`)).json()) as { keys: JWK[] });
    const startLaunch =
      (site: string) =>
      async (jar: Jar): Promise<{ launch?: string }> => {
        const res = await fetch(`${publicUrl}/launch?patient=bench-patient&site=${site}&action=viewMap`, {
          redirect: 'manual',
          headers: { cookie: jar.header('/launch') },
        });
        await res.arrayBuffer();
        const to = new URL(res.headers.get('location') ?? 'x:');
        const launch = to.searchParams.get('launch');
        if (res.status !== 302 || !launch || to.searchParams.get('iss') !== issuer)
          throw new Error(`/launch ${res.status}`);
        return { launch };
      };
    // One Backend Services token, reused for every launch (as an EHR back end does).
    const ehrAccessToken = await ehrToken(publicUrl, ehrSystem.client_id, ehrKeys);
    const apiUsers = new WeakMap<Jar, string>();
    const apiLaunch = async (jar: Jar): Promise<{ launch?: string }> => {
      const res = await fetch(`${publicUrl}/ehr-api/launches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ehrAccessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          site: '1234',
          action: 'viewMap',
          user: { id: apiUsers.get(jar), given_name: 'Bench', family_name: 'Clinician' },
          patient: { id: 'bench-patient' },
        }),
      });
      const body = (await res.json()) as { launch?: string; error_description?: string };
      if (res.status !== 201 || !body.launch)
        throw new Error(`launch API ${res.status} ${body.error_description ?? ''}`);
      return { launch: body.launch };
    };
    const noLaunch = async () => ({});
    /** A bare provider (memory, or the durable floor on PostgreSQL) as the bench's other side. */
    const bareOf = async (server: ChildProcess, port: number, pg?: PgCpuMeter) => {
      const bareIssuer = `http://127.0.0.1:${port}/fhir`;
      const bareJwks = createLocalJWKSet(
        (await (await fetch(`${bareIssuer}/jwks`)).json()) as { keys: JWK[] },
      );
      const side = (flow: Omit<Flow, 'issuer' | 'jwks' | 'startLaunch'>, browsers: number): Side => ({
        flow: { ...flow, issuer: bareIssuer, jwks: bareJwks, startLaunch: noLaunch },
        jars: Array.from({ length: browsers }, () => new Jar()),
        server,
        ...(pg ? { pg } : {}),
      });
      return {
        /** The public scenario's (and the launch API's) side. */
        public: () =>
          side({ clientId: 'bench', idTokenAlg: 'RS256', scope: 'openid', offline: false }, CONCURRENCY),
        /** The confidential scenario's side; `asking`: the client that is not pre-authorized. */
        confidential: (asking = false) =>
          side(
            {
              clientId: asking ? BARE_ASKING_CLIENT : 'bench-confidential',
              clientSecret: BARE_SECRET,
              idTokenAlg: 'ES256',
              scope: 'openid offline_access',
              offline: true,
              prompt: 'consent',
            },
            CLINICIANS,
          ),
      };
    };
    const memory = await bareOf(bare, barePort);
    const durable = await bareOf(floor, floorPort, floorMeter);

    /** The product's side of the public scenario (and of the launch API's, which starts launches its own way). */
    const productPublic = (start: Flow['startLaunch'], jars: Jar[]): Side => ({
      flow: {
        issuer,
        clientId: client.client_id,
        idTokenAlg: 'RS256',
        jwks,
        scope: 'openid fhirUser profile launch patient/*.read',
        offline: false,
        startLaunch: start,
      },
      jars,
      server: product,
      pg: meter,
    });

    const publicPart = !SCENARIOS.has('public')
      ? skipped
      : await scenario(
          `public client, ${CONCURRENCY} browsers`,
          'Public client (PKCE S256), pre-authorized, RS256 id_token; scope `openid fhirUser profile launch patient/*.read` (bare: `openid`). A browser with a provider session gets its per-launch grant at /fhir/auth (no interaction page).',
          productPublic(startLaunch('1234'), publicJars),
          memory.public(),
          durable.public(),
          seconds,
        );
    /** The product's side of a confidential scenario: no prompt sent, as a SMART client. */
    const productConfidential = (made: typeof confidential, site: string, jars: Jar[]): Side => ({
      flow: {
        issuer,
        clientId: made.client.client_id,
        clientSecret: made.client_secret!,
        idTokenAlg: 'ES256',
        jwks,
        scope: 'openid fhirUser profile launch patient/*.read offline_access',
        offline: true,
        startLaunch: startLaunch(site),
      },
      jars,
      server: product,
      pg: meter,
    });
    const confidentialPart = !SCENARIOS.has('confidential')
      ? skipped
      : await scenario(
          `confidential client, ${CLINICIANS} clinicians`,
          "`client_secret_basic`, ES256 id_token, pre-authorized (as Ocean is registered), scope `openid fhirUser profile launch patient/*.read offline_access` and, like a SMART client, no `prompt` (bare: `openid offline_access` with `prompt=consent`, which plain oidc-provider needs to keep offline_access, so its interaction runs and finishes at once); each clinician has their own EHR session; the product, after a browser's first launch, gives the code at /fhir/auth; every token response carries a refresh token.",
          productConfidential(confidential, '5678', confidentialJars),
          memory.confidential(),
          durable.confidential(),
          seconds,
        );
    const consentPart = !SCENARIOS.has('consent')
      ? skipped
      : await scenario(
          `confidential client that is not pre-authorized (consent page), ${CLINICIANS} clinicians`,
          'The confidential scenario with a client that is not pre-authorized: the product shows its consent page on every launch, the browser reads it and posts the form (CSRF token, decision=allow); the durable floor shows its own minimal consent page and takes the answer; the bare provider (memory) finishes login and consent in one step at once.',
          productConfidential(asking, '5679', askingJars),
          memory.confidential(true),
          durable.confidential(true),
          seconds,
        );

    const apiJars = Array.from({ length: CONCURRENCY }, (_, i) => {
      const jar = new Jar(); // a browser that never signed in to us
      apiUsers.set(jar, `bench-emr-user-${i}`);
      return jar;
    });
    const apiPart = !SCENARIOS.has('api')
      ? skipped
      : await scenario(
          `launch API, ${CONCURRENCY} browsers`,
          "The public scenario's launch, asked for by an EHR system: one Backend Services token (ES384 assertion) reused; per launch `POST /ehr-api/launches` (the EHR user, `patient: { id }`), then the browser — with no EHR session of ours; after its first launch it holds a provider session of that user — authorizes and redeems the code. Bare: as in the public scenario.",
          productPublic(apiLaunch, apiJars),
          memory.public(),
          durable.public(),
          seconds,
        );
    const apiVsScreen = apiPart.cpuPerLaunch / publicPart.cpuPerLaunch;

    return [
      `## launch — complete SMART EHR launches (${seconds}s per phase, load generator on the same machine)`,
      '',
      'Product: dist/main.js (the compiled server, as npm start runs it) on PostgreSQL (its own database). Baseline: bare oidc-provider, in-memory adapter, static clients, opaque access tokens; same hops minus /launch. Durable floor: the same bare provider with every model in PostgreSQL (bench/oidc-pg-adapter.ts: one statement per save or lookup, its own database), which also shows a consent page and takes its answer for the client that is not pre-authorized — what any provider that survives a restart, serves several instances and asks for consent pays at least. Each phase runs bare, floor, then product; "one clinician alone" is one browser launching back to back (concurrency 1). PostgreSQL CPU: utime+stime of the backends serving the bench database (pg_stat_activity), sampled every 250 ms.',
      '',
      publicPart.text,
      '',
      confidentialPart.text,
      '',
      consentPart.text,
      '',
      apiPart.text,
      '',
      Number.isNaN(apiVsScreen)
        ? ''
        : `Launch API against the screen path (issue 11: no more server CPU per launch): ${apiPart.cpuPerLaunch.toFixed(1)} ms against ${publicPart.cpuPerLaunch.toFixed(1)} ms — ${apiVsScreen.toFixed(2)}×, ${apiVsScreen <= 1 ? 'met ✓' : 'NOT met ✗'}.`,
      '',
      `Machine load average after measuring: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(
          ' / ',
        )} (1/5/15 min). Wall-clock rates fall with other work on the box; CPU per launch much less so.`,
    ].join('\n');
  } finally {
    await meter?.close();
    await floorMeter?.close();
    for (const c of children) await stopChild(c);
    await database.drop();
    await floorDatabase.drop();
  }
}
