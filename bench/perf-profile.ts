/*
 * Linux `perf` over chosen stretches of a bench child's life, and where its on-CPU time went.
 *
 * Rules:
 * - Only for a child started with `--perf-prof` (V8 writes jit-<pid>.dump into the child's
 *   working directory; `perf inject --jit` turns it into symbols for the JavaScript frames).
 * - One `perf record` per stretch (`during`), so phases of other servers and of other paths in
 *   the same process (the /healthz aid, the second port) never mix into the figures.
 * - On-CPU samples only: a V8 CPU profile counts a process's waits (descheduled, inside writev)
 *   as its time; perf does not.
 * - The report is for reading, not a target: shares of samples, the innermost JavaScript frame of
 *   each (its self time, with the native code it called) and the frames on the stack (inclusive).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PerfRecorder {
  /** Runs fn with perf sampling the process; returns fn's result. */
  during<T>(fn: () => Promise<T>): Promise<T>;
  /** Markdown: the top frames over every stretch recorded. Removes the recordings. */
  report(top?: number): string;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function perfRecorder(pid: number, label: string): PerfRecorder {
  const dir = mkdtempSync(join(tmpdir(), 'bench-perf-'));
  const files: string[] = [];
  return {
    async during(fn) {
      const file = join(dir, `${files.length}.data`);
      files.push(file);
      const perf: ChildProcess = spawn(
        'perf',
        ['record', '-q', '-k', 'mono', '-F', '999', '-g', '-p', String(pid), '-o', file],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      let failed: Error | undefined;
      const exited = new Promise((r) => {
        perf.once('exit', r);
        perf.once('error', (err) => {
          failed = new Error(`BENCH_PERF: could not run Linux perf (${err.message}); is it on the PATH?`);
          r(undefined);
        });
      });
      await settle(300); // perf attaches to every thread before it samples
      if (failed) throw failed;
      try {
        return await fn();
      } finally {
        perf.kill('SIGINT');
        await exited;
      }
    },
    report(top = 30) {
      try {
        const stacks = files.flatMap((file) => {
          execFileSync('perf', ['inject', '--jit', '-i', file, '-o', `${file}.jit`], { stdio: 'ignore' });
          const script = execFileSync('perf', ['script', '-F', 'ip,sym,dso', '-i', `${file}.jit`], {
            encoding: 'utf8',
            maxBuffer: 1 << 30,
            stdio: ['ignore', 'pipe', 'ignore'],
          });
          return parseStacks(script);
        });
        return foldReport(stacks, label, top);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** `perf script -F ip,sym,dso` → one array of frame names per sample, innermost first. */
function parseStacks(script: string): string[][] {
  return script
    .split(/\n\s*\n/)
    .map((block) =>
      block
        .split('\n')
        .map((line) => /^\s*[0-9a-f]+ (.*) \((.*)\)$/.exec(line))
        .filter((m) => m !== null)
        .map((m) => frameName(m[1]!, m[2]!)),
    )
    .filter((frames) => frames.length > 0);
}

/** JavaScript frames by function and file (node_modules shortened); others by library. */
function frameName(sym: string, dso: string): string {
  if (sym.startsWith('JS:'))
    return sym
      .replace(/^JS:[\^*~+]?/, '')
      .replace(/file:\/\/\/.*?\/(src|bench)\//, '$1/')
      .replace(/\/\S*\/node_modules\//, '');
  if (dso.includes('kernel')) return `[kernel] ${sym}`;
  return `[${dso.split('/').pop()}] ${sym}`;
}

/** `fn file:line:col` → the package (node_modules), node's own module, or the project's file. */
function moduleOf(frame: string): string {
  const file = frame.slice(frame.lastIndexOf(' ') + 1).replace(/:\d+:\d+$/, '');
  if (file.startsWith('node:') || file.startsWith('src/') || file.startsWith('bench/')) return file;
  const pkg = /^(@[^/]+\/[^/]+|[^/]+)/.exec(file);
  return pkg ? pkg[1]! : file;
}

function foldReport(stacks: string[][], label: string, top: number): string {
  const n = stacks.length;
  const inner = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const modules = new Map<string, number>();
  const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const frames of stacks) {
    const js = frames.filter((f) => !f.startsWith('['));
    add(inner, js[0] ?? `(no JavaScript frame) ${frames[0]}`);
    add(modules, js[0] ? moduleOf(js[0]) : '(no JavaScript frame)');
    for (const f of new Set(js)) add(inclusive, f);
  }
  const rows = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `| ${((100 * v) / n).toFixed(1)} % | \`${k.replaceAll('|', '\\|')}\` |`);
  return [
    `${label}: ${n} on-CPU samples (perf record -F 999 -g over those stretches only).`,
    '',
    '| samples | module of the innermost JavaScript frame |',
    '| ---: | --- |',
    ...rows(modules),
    '',
    '| samples | innermost JavaScript frame (its own time and the native code it called) |',
    '| ---: | --- |',
    ...rows(inner),
    '',
    '| samples | on the stack (inclusive) |',
    '| ---: | --- |',
    ...rows(inclusive),
  ].join('\n');
}
