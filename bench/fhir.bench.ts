/*
 * FHIR API benchmark, side by side in one run on one PostgreSQL, everything on 127.0.0.1:
 * - Patient read through the product (bearer token from the real launch flow, access check,
 *   audit) vs a bare node:http + pg server reading the same row: throughput and p99
 * - Patient/$everything of a 5,001-resource chart, every page (_count=1000), vs the bare server
 *   streaming the same rows; the server process's peak RSS growth while serving it
 * - import time of that 5,001-entry Synthea-shaped transaction bundle (and of re-importing it)
 * - both beside issue 13's *audited floor*: the bare server's read plus a durable, group-committed
 *   audit row per request (`/audited/…` on the bare child), `$everything` paged like the product
 * Each server runs in its own child process (bench/fhir-servers.ts) so memory is the server's.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { npmStartCommand } from '../scripts/start-command.mjs';
import { patientBundle } from '../test/fhir/synthea.ts';
import { type PerfRecorder, perfRecorder } from './perf-profile.ts';
import { benchDatabase } from './processes.ts';
import type { BenchArgs } from './run.ts';
import { median } from './stats.ts';

const CHILD = fileURLToPath(new URL('./fhir-servers.ts', import.meta.url));
const CONNECTIONS = 10;

interface Child {
  proc: ChildProcess;
  url: string;
  /** The product child's second port: its read obligations without the framework. */
  floorUrl?: string;
  ask<T>(cmd: Record<string, unknown>): Promise<T>;
}

function start(mode: 'product' | 'bare', env: Record<string, string>): Promise<Child> {
  return new Promise((resolve, reject) => {
    const proc = fork(CHILD, [mode], {
      execArgv: [
        '--import',
        'tsx',
        '--expose-gc',
        // both servers with the node options npm start and the image give the product (its heap
        // budget: how soon V8 collects the garbage a page leaves, README "Memory")
        ...npmStartCommand().nodeOptions,
        // BENCH_PROFILE=dir writes a V8 CPU profile of the product server there.
        ...(process.env.BENCH_PROFILE && mode === 'product'
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
          : []),
        // BENCH_PERF=1: a jitdump (jit-<pid>.dump) of each server for Linux perf, which records
        // the product's read slices and the audited floor's, and reports where their CPU went
        // (bench/perf-profile.ts)
        ...(process.env.BENCH_PERF ? ['--perf-prof'] : []),
      ],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => reject(new Error(`${mode} server did not start`)), 60_000);
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`${mode} server exited (${code})`)));
    proc.once('message', (m: { ready?: boolean; url?: string; floorUrl?: string }) => {
      clearTimeout(timer);
      const ask = <T>(cmd: Record<string, unknown>) =>
        new Promise<T>((res) => {
          proc.once('message', (reply) => res(reply as T));
          proc.send(cmd);
        });
      resolve({ proc, url: m.url!, ...(m.floorUrl ? { floorUrl: m.floorUrl } : {}), ask });
    });
  });
}

/** Load for `duration` s; also the server process's CPU time per request (independent of machine load). */
async function cannon(server: Child, path: string, headers: Record<string, string>, duration: number) {
  const { cpu: before } = await server.ask<{ cpu: number }>({ cmd: 'cpu' });
  const r = await autocannon({ url: `${server.url}${path}`, connections: CONNECTIONS, duration, headers });
  const { cpu: after } = await server.ask<{ cpu: number }>({ cmd: 'cpu' });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${path}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return {
    rps: r.requests.average,
    p99: r.latency.p99,
    p50: r.latency.p50,
    cpu: (after - before) / Math.max(1, r.requests.total),
    requests: r.requests.total,
    seconds: r.duration,
    cpuSeconds: after - before,
  };
}

type Load = Awaited<ReturnType<typeof cannon>>;

/** Slices of one server's load as one: requests over seconds, CPU over requests, the worst p99. */
function combined(slices: Load[]) {
  const sum = (f: (l: Load) => number) => slices.reduce((a, l) => a + f(l), 0);
  const requests = sum((l) => l.requests);
  return {
    rps: requests / sum((l) => l.seconds),
    p99: Math.max(...slices.map((l) => l.p99)),
    p50: sum((l) => l.p50) / slices.length,
    cpu: sum((l) => l.cpuSeconds) / Math.max(1, requests),
  };
}

async function fetchAllPages(first: string, headers: Record<string, string>) {
  let url: string | undefined = first;
  let resources = 0;
  let pages = 0;
  while (url) {
    const res = await fetch(url, { headers });
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    const bundle = (await res.json()) as { entry?: unknown[]; link?: { relation: string; url: string }[] };
    resources += bundle.entry?.length ?? 0;
    pages++;
    url = bundle.link?.find((l) => l.relation === 'next')?.url;
  }
  return { resources, pages };
}

/** Repeats fn for about `seconds` (at least 3 times, at most 50); median duration in ms. */
async function timed(seconds: number, fn: () => Promise<unknown>) {
  const times: number[] = [];
  const until = Date.now() + seconds * 1000;
  while (times.length < 3 || (Date.now() < until && times.length < 50)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return { median: median(times), runs: times.length };
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export default async function fhirBench(args: BenchArgs): Promise<string> {
  const database = await benchDatabase(args.databaseUrl, 'bench_fhir');
  const url = new URL(database.url);
  const adminToken = randomBytes(32).toString('hex');
  const env = {
    DATABASE_URL: url.toString(),
    ADMIN_TOKEN: adminToken,
    SECRETS_KEY: randomBytes(32).toString('base64'),
    KEYS_DIR: `/tmp/${database.name}-keys`,
    DATABASE_POOL_MAX: '10',
  };
  const children: Child[] = [];
  try {
    const product = await start('product', env);
    children.push(product);

    // ---- import ----
    const { patientId, bundle } = patientBundle({ others: 5000 });
    const body = JSON.stringify(bundle);
    const importOnce = async () => {
      const t0 = performance.now();
      const res = await fetch(`${product.url}/admin/api/import`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/fhir+json' },
        body,
      });
      if (res.status !== 200) throw new Error(`import: ${res.status} ${(await res.text()).slice(0, 300)}`);
      await res.arrayBuffer();
      return performance.now() - t0;
    };
    const importMs = await importOnce();
    const reimportMs = await importOnce();

    const { token, error } = await product.ask<{ token?: string; error?: string }>({
      cmd: 'token',
      patientId,
    });
    if (!token) throw new Error(`no token: ${error}`);
    const auth = { authorization: `Bearer ${token}` };
    const bare = await start('bare', env);
    children.push(bare);

    // ---- Patient read: warm up, then bare / audited floor / product in turn, in slices of
    // 2 s: a shared machine's speed drifts by a fifth within minutes, and short turns let the
    // drift fall on the three alike (halves of 5 s let it fall on one more than another) ----
    await cannon(bare, `/Patient/${patientId}`, {}, 2);
    await cannon(product, `/fhir/Patient/${patientId}`, auth, 2);
    await cannon(bare, `/audited/Patient/${patientId}`, {}, 1);
    const perf: { product: PerfRecorder; floor: PerfRecorder } | undefined = process.env.BENCH_PERF
      ? {
          product: perfRecorder(product.proc.pid!, 'The product during its `Patient` read slices'),
          floor: perfRecorder(bare.proc.pid!, 'The audited floor during its `Patient` read slices'),
        }
      : undefined;
    const sampled = <T>(who: 'product' | 'floor', fn: () => Promise<T>) =>
      perf ? perf[who].during(fn) : fn();
    const slices = Math.max(2, Math.round(args.duration / 2));
    const turns: { bare: Load[]; audited: Load[]; product: Load[] } = { bare: [], audited: [], product: [] };
    for (let i = 0; i < slices; i++) {
      turns.bare.push(await cannon(bare, `/Patient/${patientId}`, {}, 2));
      turns.audited.push(await sampled('floor', () => cannon(bare, `/audited/Patient/${patientId}`, {}, 2)));
      turns.product.push(
        await sampled('product', () => cannon(product, `/fhir/Patient/${patientId}`, auth, 2)),
      );
    }
    const half = Math.max(1, Math.round(args.duration / 2));
    // the same obligations without the framework (bench/fhir-servers.ts "floor"), same process
    const floor = { ...product, url: product.floorUrl! };
    await cannon(floor, `/fhir/Patient/${patientId}`, auth, 1);
    const floorRead = await cannon(floor, `/fhir/Patient/${patientId}`, auth, half);
    // the same product's /healthz: what the shared middleware stack (helmet, request logging,
    // routing) costs before any FHIR code runs, for reading the ratio above
    const health = await cannon(product, '/healthz', {}, half);
    const bareRead = combined(turns.bare);
    const auditedRead = combined(turns.audited);
    const prodRead = combined(turns.product);

    // ---- $everything, all pages ----
    const first = `${product.url}/fhir/Patient/${patientId}/$everything?_count=1000`;
    const check = await fetchAllPages(first, auth);
    if (check.resources !== 5001)
      throw new Error(`$everything returned ${check.resources} resources, expected 5001`);
    const bareCheck = await fetch(`${bare.url}/everything/${patientId}`).then(
      (r) => r.json() as Promise<{ entry: unknown[] }>,
    );
    if (bareCheck.entry.length !== 5001) throw new Error(`bare returned ${bareCheck.entry.length}`);
    const floorFirst = `${bare.url}/audited/everything/${patientId}?_count=1000`;
    const floorCheck = await fetchAllPages(floorFirst, {});
    if (floorCheck.resources !== 5001) throw new Error(`audited floor returned ${floorCheck.resources}`);

    await product.ask({ cmd: 'mem-reset' });
    const { rss: prodBase, js: prodJsBase } = await product.ask<{ rss: number; js: number }>({
      cmd: 'mem-reset',
    });
    const prodAll = await timed(args.duration, () => fetchAllPages(first, auth));
    const { peak: prodPeak, peakJs: prodJsPeak } = await product.ask<{ peak: number; peakJs: number }>({
      cmd: 'mem-peak',
    });
    const { rss: bareBase } = await bare.ask<{ rss: number }>({ cmd: 'mem-reset' });
    const bareAll = await timed(args.duration, () =>
      fetch(`${bare.url}/everything/${patientId}`).then((r) => r.json()),
    );
    const { peak: barePeak } = await bare.ask<{ peak: number }>({ cmd: 'mem-peak' });
    const floorAll = await timed(args.duration, () => fetchAllPages(floorFirst, {}));

    const readRatio = prodRead.rps / bareRead.rps;
    const readFloorRatio = prodRead.rps / auditedRead.rps;
    const everythingRatio = bareAll.median / prodAll.median;
    const everythingFloorRatio = floorAll.median / prodAll.median;
    const growth = (prodPeak - prodBase) / 2 ** 20;
    const met = (ok: boolean) => (ok ? '✓' : '✗');
    return [
      '## FHIR API (`bench/fhir.bench.ts`)',
      '',
      `One PostgreSQL (${args.databaseUrl.replace(/\/\/[^@]*@/, '//')}), product and bare server each in its own process with npm start's node options (\`${npmStartCommand().nodeOptions.join(' ')}\`), ${CONNECTIONS} connections, 127.0.0.1.`,
      '',
      '| measure | product | bare node:http + pg | audited floor (bare + group-committed audit row) | product ÷ bare | product ÷ audited floor (target) |',
      '| --- | --- | --- | --- | --- | --- |',
      `| \`GET /fhir/Patient/{id}\` throughput | ${prodRead.rps.toFixed(0)} req/s | ${bareRead.rps.toFixed(0)} req/s | ${auditedRead.rps.toFixed(0)} req/s | ${readRatio.toFixed(2)} | **${readFloorRatio.toFixed(2)}** (≥ 0.8 ${met(readFloorRatio >= 0.8)}) |`,
      `| server CPU time per \`Patient\` read (ms) | ${prodRead.cpu.toFixed(3)} | ${bareRead.cpu.toFixed(3)} | ${auditedRead.cpu.toFixed(3)} | ${(bareRead.cpu / prodRead.cpu).toFixed(2)} | ${(auditedRead.cpu / prodRead.cpu).toFixed(2)} |`,
      `| \`GET /fhir/Patient/{id}\` latency p50 / p99 (ms) | ${prodRead.p50.toFixed(1)} / ${prodRead.p99.toFixed(1)} | ${bareRead.p50.toFixed(1)} / ${bareRead.p99.toFixed(1)} | ${auditedRead.p50.toFixed(1)} / ${auditedRead.p99.toFixed(1)} | | |`,
      `| \`$everything\` of 5,001 resources, \`_count=1000\`, all pages (median of ${prodAll.runs} / ${bareAll.runs} / ${floorAll.runs} walks) | ${prodAll.median.toFixed(0)} ms (${check.pages} pages) | ${bareAll.median.toFixed(0)} ms (one streamed response) | ${floorAll.median.toFixed(0)} ms (${floorCheck.pages} pages, an audit row each) | ${everythingRatio.toFixed(2)} | **${everythingFloorRatio.toFixed(2)}** (≥ 0.8 ${met(everythingFloorRatio >= 0.8)}) |`,
      `| server peak RSS growth while serving \`$everything\` | **${mb(prodPeak - prodBase)} MB** (< 50 MB ${met(growth < 50)}) | ${mb(barePeak - bareBase)} MB (bare) | | | |`,
      `| server peak JavaScript memory growth (heap used + external, sampled every 20 ms after a GC) while serving \`$everything\` | **${mb(prodJsPeak - prodJsBase)} MB** (< 50 MB ${met(prodJsPeak - prodJsBase < 50 * 2 ** 20)}) | | | | |`,
      '',
      'Reading aids (the product process only):',
      '',
      '| measure | product | ratio to bare |',
      '| --- | --- | --- |',
      `| product modules without the framework (token check, read + grant-live check, group-committed audit row; the product process's second port) | ${floorRead.rps.toFixed(0)} req/s, ${floorRead.cpu.toFixed(3)} ms CPU | ${(floorRead.rps / bareRead.rps).toFixed(2)} (÷ audited floor: ${(floorRead.rps / auditedRead.rps).toFixed(2)}) |`,
      `| product \`GET /healthz\` (middleware stack only, no FHIR code, no database) | ${health.rps.toFixed(0)} req/s, ${health.cpu.toFixed(3)} ms CPU | ${(health.rps / bareRead.rps).toFixed(2)} |`,
      `| import of the 5,001-entry Synthea-shaped transaction bundle | ${(importMs / 1000).toFixed(2)} s | |`,
      `| re-import of the same bundle (idempotent: nothing written) | ${(reimportMs / 1000).toFixed(2)} s | |`,
      '',
      `Machine load average after measuring: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' / ')} (1/5/15 min).`,
      ...(perf ? ['', perf.product.report(), '', perf.floor.report()] : []),
    ].join('\n');
  } finally {
    // A clean exit first, so a CPU profile (BENCH_PROFILE) gets written; then make sure.
    for (const c of children) if (c.proc.connected) c.proc.send({ cmd: 'exit' });
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of children) c.proc.kill('SIGTERM');
    await database.drop().catch(() => {});
  }
}
