/*
 * `npm run bench -- start`: how long until a new process answers /readyz 200.
 * - `npm start` on an existing embedded database (PGlite under a DATA_DIR made by a first,
 *   unmeasured start), dist/ already built: the developer's restart
 * - `node dist/main.js` with NODE_ENV=production on an existing PostgreSQL database: the image's
 *   start (a replica restarting in a rolling upgrade)
 * - baseline: a bare `node -e` HTTP server answering /readyz — process start and listen, nothing else
 * - embedded floor (./pglite-floor.mjs): node, PGlite opening the same data folder, one query,
 *   /readyz — and `npm start`'s command without npm — so the table says how much of `npm start`
 *   is npm, how much PGlite, and how much the server's own start
 * Each is started RUNS times in turn; the table shows the median and the fastest, and the ratio
 * of medians to the baseline. Wall-clock: run it on a quiet machine.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { npmStartCommand } from '../scripts/start-command.mjs';
import { settings } from '../src/config-settings.ts';
import { benchDatabase } from './processes.ts';
import type { BenchArgs } from './run.ts';
import { median } from './stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUNS = Number(process.env.START_BENCH_RUNS ?? 7);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * CPU time (user + system, ms) spent so far by every process of a process group (npm and the
 * node it starts): on a loaded machine wall-clock time stretches, CPU time much less, so it
 * says what a quiet machine would see.
 */
function groupCpuMs(pgid: number): number {
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15
      if (Number(fields[2]) === pgid) total += (Number(fields[11]) + Number(fields[12])) * tick;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

interface Start {
  wallMs: number;
  cpuMs: number;
}

/** From spawn to the first 200 from /readyz: wall-clock and CPU time; then SIGTERM to the process group. */
async function timeToReady(command: string, args: string[], env: Record<string, string>): Promise<Start> {
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(command, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // npm start → node: stop the whole group
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  let exited = false;
  const done = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      r();
    }),
  );
  try {
    for (;;) {
      if (exited) throw new Error(`exited before ready: ${stderr.slice(-2000)}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        if (r.status === 200) return { wallMs: performance.now() - started, cpuMs: groupCpuMs(child.pid!) };
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    if (!exited) process.kill(-child.pid!, 'SIGTERM');
    await done;
  }
}

export default async function startBench(args: BenchArgs): Promise<string> {
  const build = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (build.status !== 0) throw new Error('build failed');
  const dataDir = mkdtempSync(join(tmpdir(), 'start-bench-'));
  const database = await benchDatabase(args.databaseUrl, 'start_bench');
  const dbUrl = new URL(database.url);
  const embedded = {
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    DATA_DIR: join(dataDir, 'data'),
    // said, not defaulted, so the embedded floor opens PGlite exactly as the server does
    EMBEDDED_SHARED_BUFFERS: settings.EMBEDDED_SHARED_BUFFERS.default,
    KEYS_DIR: join(dataDir, 'keys'),
    LOG_LEVEL: 'warn',
  };
  const production = {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PUBLIC_URL: 'https://ehr.bench.example',
    DATABASE_URL: dbUrl.toString(),
    SECRETS_KEY: randomBytes(32).toString('base64'),
    ADMIN_TOKEN: randomBytes(32).toString('hex'),
    METRICS_TOKEN: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
  };
  const bare = [
    '-e',
    "require('http').createServer((q,s)=>s.end('{\"status\":\"ready\"}')).listen(process.env.PORT,'127.0.0.1')",
  ];
  // npm start's own command, read from package.json, run with this node and without npm
  const { nodeOptions, script, text: startScript } = npmStartCommand();
  const npmStart = [...nodeOptions, ...script];
  const rows: [string, Start[]][] = [
    ['bare node HTTP server (baseline)', []],
    [
      'embedded floor: node, PGlite opening the same data folder, `SELECT 1`, /readyz (bench/pglite-floor.mjs)',
      [],
    ],
    [`\`npm start\` without npm: \`${startScript}\`, same database`, []],
    ['npm start, existing embedded database', []],
    [
      `node ${[...nodeOptions, 'dist/main.js'].join(' ')}, NODE_ENV=production, existing PostgreSQL database`,
      [],
    ],
  ];
  try {
    // First starts (migrations, signing keys, demo data): unmeasured, they make the "existing" databases.
    const firstEmbedded = await timeToReady('npm', ['start', '--silent'], embedded);
    const firstProduction = await timeToReady(process.execPath, [...nodeOptions, 'dist/main.js'], production);
    for (let i = 0; i < RUNS; i++) {
      rows[0]![1].push(await timeToReady(process.execPath, bare, {}));
      rows[1]![1].push(await timeToReady(process.execPath, ['bench/pglite-floor.mjs'], embedded));
      rows[2]![1].push(await timeToReady(process.execPath, npmStart, embedded));
      rows[3]![1].push(await timeToReady('npm', ['start', '--silent'], embedded));
      rows[4]![1].push(await timeToReady(process.execPath, [...nodeOptions, 'dist/main.js'], production));
    }
    const base = median(rows[0]![1].map((x) => x.wallMs));
    const wallOf = (i: number) => median(rows[i]![1].map((x) => x.wallMs));
    const npmItself = wallOf(3) - wallOf(2);
    const table = rows.map(([name, xs]) => {
      const wall = xs.map((x) => x.wallMs);
      return `| ${name} | ${median(wall).toFixed(0)} | ${Math.min(...wall).toFixed(0)} | ${median(xs.map((x) => x.cpuMs)).toFixed(0)} | ${(median(wall) / base).toFixed(1)}× |`;
    });
    return [
      `## Start to ready (${RUNS} starts each, ms from spawn to the first /readyz 200)`,
      '',
      '| process | median ms | fastest ms | CPU ms (median) | vs baseline |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...table,
      '',
      `npm's own share of \`npm start\`: ${npmItself.toFixed(0)} ms (the two rows above it). The least an \`npm start\` on the embedded database can take on this machine — npm, then the embedded floor: ${(npmItself + wallOf(1)).toFixed(0)} ms; the server's own start on top of that floor: ${(wallOf(2) - wallOf(1)).toFixed(0)} ms.`,
      '',
      `Load average when done: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(
          ' ',
        )} on ${cpus().length} cores. First starts (not in the table): embedded ${firstEmbedded.wallMs.toFixed(0)} ms ` +
        `(new database: migrations, keys, demo data), production ${firstProduction.wallMs.toFixed(0)} ms (new database: migrations, keys).`,
    ].join('\n');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    await database.drop();
  }
}
