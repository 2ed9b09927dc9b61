/*
 * Server processes for the benchmarks: each server under test runs in its own process (so its
 * CPU time and memory are its own), on 127.0.0.1, ready when a URL answers. The product runs as
 * `npm start` and the image run it — the compiled dist/main.js with plain node (productEntry());
 * bench-only scripts (the bare baselines) run with tsx.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { npmStartCommand } from '../scripts/start-command.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** CPU seconds (user + system) a process has used so far (Linux /proc; 100 ticks a second). */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * The product as production runs it: dist/main.js (built first when dist/ is stale) with the
 * node options `npm start` and the image give it (the heap budget).
 */
export function productEntry(): string[] {
  const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('bench: the build failed');
  return [...npmStartCommand().nodeOptions, 'dist/main.js'];
}

export function startChild(
  args: string[],
  env: Record<string, string>,
  readyUrl: string,
  profileDir?: string,
): Promise<ChildProcess> {
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  // Compiled JavaScript runs with plain node; TypeScript (the bench's own children) with tsx.
  const loader = args.some((a) => a.endsWith('.ts')) ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...profile, ...loader, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  child.stdout?.resume();
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 60_000;
    const poll = async () => {
      if (child.exitCode !== null) return reject(new Error(`server exited: ${stderr.slice(-500)}`));
      try {
        const r = await fetch(readyUrl);
        if (r.status < 500) return resolve(child);
      } catch {}
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        return reject(new Error('server did not start'));
      }
      setTimeout(poll, 200);
    };
    void poll();
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** A fresh database on the bench's PostgreSQL server: its URL, and drop() to remove it (forced). */
export async function benchDatabase(
  serverUrl: string,
  prefix: string,
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
