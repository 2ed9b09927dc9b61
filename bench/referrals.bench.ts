/*
 * Ocean eReferral messages accepted per second on one instance, beside a bare baseline.
 * - product: the real server (dist/main.js, as npm start runs it) in its own process on a fresh PostgreSQL database;
 *   POST /fhir/$process-message with HTTP Basic and a realistic ≈50 kB message (the builder the
 *   tests use: Patient, PractitionerRoles, Practitioner, Location, letter and attachment
 *   DocumentReferences, a long QuestionnaireResponse, the ServiceRequest with an HTML note), a
 *   new MessageHeader id and a new referral each time: authenticate, check, inbox row, patient
 *   match, five resources filed with history and search rows, letter scheduled, audit — one
 *   transaction, answered after the commit
 * - baseline: node:http + pg in its own process, the same bodies: JSON.parse, then one
 *   transaction inserting the raw message — the floor of "durably stored before answering"
 * - load generator: autocannon in this process, CONCURRENCY connections
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import pg from 'pg';
import { referralMessage } from '../test/referrals/messages.ts';
import { benchDatabase, cpuSeconds, freePort, productEntry, startChild, stopChild } from './processes.ts';
import type { BenchArgs } from './run.ts';

const CONCURRENCY = Number(process.env.REFERRALS_BENCH_CONCURRENCY ?? 10);
const MESSAGE_BYTES = 50_000;

// ---- child role: the bare baseline -----------------------------------------------------------

if (process.env.REFERRALS_BENCH_ROLE === 'bare') {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 20 });
  await pool.query('CREATE TABLE IF NOT EXISTS bare_inbox (id text PRIMARY KEY, message jsonb NOT NULL)');
  createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (req.method !== 'POST') {
        res.writeHead(200).end('ok');
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      const body = JSON.parse(text) as { entry: { resource: { id: string } }[] };
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('INSERT INTO bare_inbox (id, message) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
          body.entry[0]!.resource.id,
          text,
        ]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      res
        .writeHead(200, { 'content-type': 'application/fhir+json' })
        .end('{"resourceType":"OperationOutcome"}');
    });
  }).listen(Number(process.env.PORT), '127.0.0.1');
}

// ---- parent ------------------------------------------------------------------------------------

interface Measured {
  rps: number;
  p50: number;
  p99: number;
  total: number;
  errors: number;
  cpuMs: number;
}

/** The ≈50 kB message as a template whose MessageHeader id and referral id change per request. */
function template(patientId: string): string {
  const m = referralMessage({
    referralId: 'REF-__N__',
    messageId: 'msg-__N__',
    patientRef: patientId,
    hcn: '1234567890',
    versionCode: 'AB',
    attachments: 3,
    note: '<p>Please see <b>left knee</b>: pain for 6 months, worse on stairs.</p><ul><li>X-ray 2026-10</li></ul>',
    padTo: MESSAGE_BYTES,
  });
  return JSON.stringify(m);
}

async function load(
  url: string,
  auth: string,
  body: string,
  seconds: number,
  pid: number | undefined,
  prefix: string,
) {
  let n = 0;
  const cpu0 = cpuSeconds(pid);
  const r = await autocannon({
    url,
    connections: CONCURRENCY,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/fhir/$process-message',
        headers: { authorization: auth, 'content-type': 'application/fhir+json' },
        setupRequest: (req) => ({ ...req, body: body.replaceAll('__N__', `${prefix}${++n}`) }),
      },
    ],
  });
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    total: r.requests.total,
    errors: r.non2xx + r.errors,
    cpuMs: ((cpuSeconds(pid) - cpu0) * 1000) / Math.max(1, r.requests.total),
  } satisfies Measured;
}

export default async function referralsBench(args: BenchArgs): Promise<string> {
  const seconds = Math.min(args.duration, 20);
  const database = await benchDatabase(args.databaseUrl, 'bench_referrals');
  const dbUrl = new URL(database.url);
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const adminToken = randomBytes(32).toString('hex');
  const children: Awaited<ReturnType<typeof startChild>>[] = [];
  try {
    const product = await startChild(
      productEntry(),
      {
        NODE_ENV: 'test',
        PORT: String(port),
        HOST: '127.0.0.1',
        PUBLIC_URL: publicUrl,
        DATABASE_URL: dbUrl.toString(),
        DATABASE_POOL_MAX: '20',
        SECRETS_KEY: randomBytes(32).toString('base64'),
        ADMIN_TOKEN: adminToken,
        LOG_LEVEL: 'silent',
        DEMO_DATA: 'false',
      },
      `${publicUrl}/readyz`,
    );
    children.push(product);
    const adminHeaders = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    const imported = await fetch(`${publicUrl}/admin/api/import`, {
      method: 'POST',
      headers: adminHeaders,
      body: JSON.stringify({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            resource: {
              resourceType: 'Patient',
              id: 'bench-patient',
              name: [{ family: 'Tremblay', given: ['Marie'] }],
              identifier: [
                {
                  system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn',
                  value: '1234567890',
                },
              ],
            },
          },
        ],
      }),
    });
    if (!imported.ok) throw new Error(`import: ${imported.status}`);
    const reg = await fetch(`${publicUrl}/admin/api/ocean-integrations`, {
      method: 'POST',
      headers: adminHeaders,
      body: JSON.stringify({ site_num: '1234' }),
    });
    const creds = (await reg.json()) as { username: string; password: string };
    const auth = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    const body = template('bench-patient');

    await load(publicUrl, auth, body, 2, product.pid, 'warm-'); // warm-up
    const ours = await load(publicUrl, auth, body, seconds, product.pid, 'run-');
    const filed = new pg.Client({ connectionString: dbUrl.toString() });
    await filed.connect();
    const counts = (
      await filed.query<{ filed: string; srs: string }>(
        `SELECT (SELECT count(*) FROM ocean_inbox WHERE outcome = 'filed') AS filed,
                (SELECT count(*) FROM fhir_resources WHERE resource_type = 'ServiceRequest') AS srs`,
      )
    ).rows[0]!;
    await filed.end();
    await stopChild(product);
    children.length = 0;

    const barePort = await freePort();
    const bare = await startChild(
      ['bench/referrals.bench.ts'],
      { REFERRALS_BENCH_ROLE: 'bare', PORT: String(barePort), DATABASE_URL: dbUrl.toString() },
      `http://127.0.0.1:${barePort}/`,
    );
    children.push(bare);
    await load(`http://127.0.0.1:${barePort}`, auth, body, 2, bare.pid, 'warm-');
    const base = await load(`http://127.0.0.1:${barePort}`, auth, body, seconds, bare.pid, 'run-');

    const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
    const rows = [
      [
        'messages accepted/s',
        `**${f(ours.rps)}** (target ≥ 200 ${ours.rps >= 200 ? '✓' : '✗'})`,
        f(base.rps),
        ratio(ours.rps, base.rps),
      ],
      ['p50 latency (ms)', f(ours.p50), f(base.p50), ratio(ours.p50, base.p50)],
      ['p99 latency (ms)', f(ours.p99), f(base.p99), ratio(ours.p99, base.p99)],
      [
        'server CPU per message (ms, Node process only)',
        f(ours.cpuMs),
        f(base.cpuMs),
        ratio(ours.cpuMs, base.cpuMs),
      ],
      ['non-2xx or errors', String(ours.errors), String(base.errors), ''],
    ];
    return [
      `## referrals — Ocean eReferral messages accepted (POST /fhir/$process-message, ${(body.length / 1000).toFixed(1)} kB each, ${CONCURRENCY} connections, ${seconds}s each)`,
      '',
      'Product: Basic auth, message checks, inbox row, patient match, referral row lock, ServiceRequest + 4 DocumentReferences + QuestionnaireResponse filed with history, letter scheduled, audit — one transaction, 200 after the commit; PostgreSQL over loopback TCP.',
      'Baseline: bare node:http + pg, JSON.parse and one transaction inserting the raw message.',
      '',
      '| measure | product (PostgreSQL) | bare store-and-answer | ratio |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      `Filed during the measured run and warm-up: ${counts.filed} messages, ${counts.srs} ServiceRequests (every message its own referral).`,
      `Machine load average while measuring: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' / ')} (1/5/15 min).`,
    ].join('\n');
  } finally {
    for (const c of children) await stopChild(c);
    await database.drop();
  }
}
