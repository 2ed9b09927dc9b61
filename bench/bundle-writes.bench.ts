/*
 * How a large Bundle page leaves the server (src/fhir/fhir-http.ts sendBundle): the same
 * 1000-entry searchset page (≈ 0.5 MB, entries shaped as $everything sends them) written three
 * ways by one Express route in a child process, fetched in turn by this process over 127.0.0.1:
 * - "one write": the page joined into one string, one res.end (what $everything did before)
 * - "sendBundle": writes of about 64 KiB (what the FHIR API does)
 * - "a write per entry": one res.write per entry (what $everything did before that)
 * Reported: the server process's CPU per page (/proc, its own user + system time) and the wall
 * time per page, each way against sendBundle in the same run.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuSeconds } from './processes.ts';
import type { BenchArgs } from './run.ts';

const WAYS = ['one-write', 'send-bundle', 'write-per-entry'] as const;
type Way = (typeof WAYS)[number];

async function child(): Promise<void> {
  const express = (await import('express')).default;
  const { sendBundle, matchEntry } = await import('../src/fhir/fhir-http.ts');
  const base = 'http://127.0.0.1:8080/fhir';
  const bodies = Array.from({ length: 1000 }, (_, i) =>
    JSON.stringify({
      resourceType: 'Observation',
      id: `obs-${i}`,
      meta: { versionId: '1', lastUpdated: '2026-11-28T22:00:00.000Z' },
      status: 'final',
      category: [
        {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' },
          ],
        },
      ],
      code: { text: 'Body Weight' },
      subject: { reference: 'Patient/bench' },
      valueQuantity: { value: 70 + (i % 10), unit: 'kg' },
    }),
  );
  const members = '"resourceType":"Bundle","type":"searchset"';
  // the entries are built per request, as a handler builds them from its rows
  const entries = () => bodies.map((b, i) => matchEntry(base, 'Observation', `obs-${i}`, b));
  const app = express();
  app.get('/one-write', (_req, res) => {
    res.status(200).setHeader('Content-Type', 'application/fhir+json; charset=utf-8');
    res.end(`{${members},"entry":[${entries().join(',')}]}`);
  });
  app.get('/send-bundle', (_req, res) => sendBundle(res, members, entries()));
  app.get('/write-per-entry', (_req, res) => {
    res.status(200).setHeader('Content-Type', 'application/fhir+json; charset=utf-8');
    res.write(`{${members},"entry":[`);
    let first = true;
    for (const e of entries()) {
      res.write(first ? e : `,${e}`);
      first = false;
    }
    res.end(']}');
  });
  const server = app.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as { port: number }).port });
  });
  process.on('disconnect', () => process.exit(0));
}

export default async function bundleWritesBench(args: BenchArgs): Promise<string> {
  const proc = fork(fileURLToPath(import.meta.url), ['child'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      proc.once('message', (m: { port: number }) => resolve(m.port));
      proc.once('exit', (code) => reject(new Error(`bundle server exited (${code})`)));
    });
    const page = async (way: Way) => {
      const res = await fetch(`http://127.0.0.1:${port}/${way}`);
      const bundle = (await res.json()) as { entry: unknown[] };
      if (res.status !== 200 || bundle.entry.length !== 1000) throw new Error(`${way}: bad page`);
    };
    /** Pages for `seconds`: server CPU (ms) and wall time (ms) per page. */
    const measure = async (way: Way, seconds: number) => {
      const cpu0 = cpuSeconds(proc.pid);
      const t0 = performance.now();
      let pages = 0;
      while (performance.now() - t0 < seconds * 1000) {
        await page(way);
        pages++;
      }
      return {
        cpu: ((cpuSeconds(proc.pid) - cpu0) * 1000) / pages,
        wall: (performance.now() - t0) / pages,
        pages,
      };
    };
    for (const way of WAYS) await measure(way, 1); // warm-up
    // alternate the ways in rounds, to even out drift
    const rounds = 3;
    const totals = new Map(WAYS.map((w) => [w, { cpu: 0, wall: 0, pages: 0 }]));
    for (let r = 0; r < rounds; r++) {
      for (const way of WAYS) {
        const m = await measure(way, Math.max(1, args.duration / rounds / 2));
        const t = totals.get(way)!;
        t.cpu += m.cpu / rounds;
        t.wall += m.wall / rounds;
        t.pages += m.pages;
      }
    }
    const ref = totals.get('send-bundle')!;
    const label: Record<Way, string> = {
      'one-write': 'one write of the whole page (the earlier `$everything`)',
      'send-bundle': '**`sendBundle`: writes of ≈ 64 KiB** (the FHIR API)',
      'write-per-entry': 'a write per entry (before that)',
    };
    return [
      '## Sending a 1000-entry Bundle page (`bench/bundle-writes.bench.ts`)',
      '',
      'One Express route in its own process, the same ≈ 0.5 MB searchset page written three ways, fetched one at a time over 127.0.0.1 (server CPU from /proc: its own user + system time).',
      '',
      '| how the page is written | server CPU per page (ms) | ÷ sendBundle | wall time per page (ms) | pages |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...WAYS.map((w) => {
        const t = totals.get(w)!;
        return `| ${label[w]} | ${t.cpu.toFixed(2)} | ${(t.cpu / ref.cpu).toFixed(2)}× | ${t.wall.toFixed(2)} | ${t.pages} |`;
      }),
    ].join('\n');
  } finally {
    proc.kill('SIGTERM');
  }
}

if (process.argv[2] === 'child') await child();
