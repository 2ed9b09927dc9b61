import { createServer } from 'node:http';
import { DEMO_CLINICIANS, DEMO_SITE, startCluster } from '../test/ops/cluster.ts';
import { Clinician, type Discovery, discover, fhirGet, redeemCode, send, sent } from '../test/ops/flow.ts';
import { startProxy } from '../test/ops/proxy.ts';
import { benchDatabase } from './processes.ts';
import type { BenchArgs } from './run.ts';
import { percentileOfSorted } from './stats.ts';

const CLINICIANS = 50;
const STEPS = ['launch', 'authorize', 'token', 'read', 'everything', 'full launch'] as const;
type Step = (typeof STEPS)[number];

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');

/** The bare baseline: 50 loops of GET through the same balancer to a server that only says ok. */
async function baseline(seconds: number): Promise<{ rps: number; p50: number; p99: number }> {
  const bare = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const port = (bare.address() as { port: number }).port;
  const proxy = await startProxy(() => [port]);
  const latencies: number[] = [];
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CLINICIANS }, async () => {
      while (Date.now() < until) {
        const t0 = performance.now();
        const r = await send(`${proxy.url}/`);
        await r.arrayBuffer();
        latencies.push(performance.now() - t0);
      }
    }),
  );
  await proxy.close();
  await new Promise<void>((r) => bare.close(() => r()));
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / seconds,
    p50: percentileOfSorted(latencies, 50),
    p99: percentileOfSorted(latencies, 99),
  };
}

export default async function soak(args: BenchArgs): Promise<string> {
  const seconds = Number(process.env.SOAK_DURATION ?? 60);
  const database = await benchDatabase(args.databaseUrl, 'soak');
  const url = new URL(database.url);
  const cluster = await startCluster({
    databaseUrl: url.toString(),
    instances: 2,
    patients: CLINICIANS,
    env: { LOG_LEVEL: 'warn', DATABASE_POOL_MAX: '10' },
  });
  try {
    const discovery: Discovery = await discover(cluster.fhirBase);
    const clinicians = await Promise.all(
      Array.from({ length: CLINICIANS }, async (_, i) => {
        const c = new Clinician(cluster.publicUrl);
        const who = DEMO_CLINICIANS[i % DEMO_CLINICIANS.length]!;
        await c.signIn(who.username, who.password);
        return c;
      }),
    );

    const latencies = Object.fromEntries(STEPS.map((s) => [s, [] as number[]])) as Record<Step, number[]>;
    const errors: string[] = [];
    let launches = 0;
    const requestsBefore = sent.count;
    const balancedBefore = [...cluster.proxy.counts];
    const timed = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const v = await fn();
      latencies[step].push(performance.now() - t0);
      return v;
    };
    const started = Date.now();
    const until = started + seconds * 1000;
    await Promise.all(
      clinicians.map(async (clinician, i) => {
        let n = 0;
        while (Date.now() < until) {
          const patient = cluster.patients[(i + n++) % cluster.patients.length]!;
          try {
            const t0 = performance.now();
            const launch = await timed('launch', () => clinician.launch(patient, DEMO_SITE, 'viewMap'));
            const { code } = await timed('authorize', () =>
              clinician.authorize(discovery, {
                clientId: cluster.clientId,
                redirectUri: cluster.redirectUri,
                launch: launch.get('launch')!,
                pkce: false,
              }),
            );
            const token = await timed('token', () =>
              redeemCode(discovery, { code, clientId: cluster.clientId, redirectUri: cluster.redirectUri }),
            );
            if (token.status !== 200 || token.body.patient !== patient) {
              throw new Error(`token ${token.status} ${token.body.error ?? ''}`);
            }
            const read = await timed('read', () =>
              fhirGet(cluster.fhirBase, `Patient/${patient}`, token.body.access_token),
            );
            if (read.status !== 200 || read.body.id !== patient) throw new Error(`read ${read.status}`);
            const all = await timed('everything', () =>
              fhirGet(cluster.fhirBase, `Patient/${patient}/$everything`, token.body.access_token),
            );
            if (all.status !== 200) throw new Error(`$everything ${all.status}`);
            latencies['full launch'].push(performance.now() - t0);
            launches++;
          } catch (err) {
            errors.push((err as Error).message.slice(0, 160));
          }
        }
      }),
    );
    const elapsed = (Date.now() - started) / 1000;
    const requests = sent.count - requestsBefore;
    const perInstance = cluster.proxy.counts.map((n, i) => n - (balancedBefore[i] ?? 0));
    const serverErrors = cluster.instances.flatMap((i) =>
      i.logLines().filter((l) => Number(l.level) >= 50 && !String(l.msg).includes('shutting')),
    );
    const base = await baseline(Math.min(10, seconds));
    for (const s of STEPS) latencies[s].sort((a, b) => a - b);

    const rps = requests / elapsed;
    const lines = [
      `## Soak: ${CLINICIANS} concurrent clinicians, 2 instances, ${Math.round(elapsed)} s`,
      '',
      `Command: \`SOAK_DURATION=${seconds} npm run bench -- soak\` (PostgreSQL at BENCH_DATABASE_URL/DATABASE_URL; each instance a separate process and working copy, DATABASE_POOL_MAX=10, LOG_LEVEL=warn, rate limits off)`,
      '',
      '| measure | value |',
      '| --- | --- |',
      `| complete launches (launch → authorize → token → read → $everything) | ${launches} |`,
      `| launches per second | ${(launches / elapsed).toFixed(1)} |`,
      `| HTTP requests (${requests}) per second, all steps, through the balancer | ${rps.toFixed(0)} |`,
      `| requests per instance (counted by the balancer) | ${perInstance.join(' / ')} |`,
      `| client-side errors | ${errors.length} |`,
      `| server error log lines | ${serverErrors.length} |`,
      `| bare baseline: requests per second, same balancer, same ${CLINICIANS} loops | ${base.rps.toFixed(0)} |`,
      `| ratio: product requests/s ÷ bare requests/s | ${(rps / base.rps).toFixed(3)} |`,
      '',
      '| step | count | p50 ms | p99 ms | p50 ÷ bare p50 |',
      '| --- | --- | --- | --- | --- |',
      ...STEPS.map((s) => {
        const l = latencies[s];
        return `| ${s} | ${l.length} | ${ms(percentileOfSorted(l, 50))} | ${ms(percentileOfSorted(l, 99))} | ${(percentileOfSorted(l, 50) / base.p50).toFixed(1)} |`;
      }),
      `| bare GET (baseline) | — | ${ms(base.p50)} | ${ms(base.p99)} | 1.0 |`,
    ];
    if (errors.length > 0) {
      lines.push('', 'Errors (first 10):', ...errors.slice(0, 10).map((e) => `- ${e}`));
    }
    return lines.join('\n');
  } finally {
    await cluster.close();
    await database.drop().catch(() => {});
  }
}
