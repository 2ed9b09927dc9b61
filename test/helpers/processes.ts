/*
 * Real server PROCESSES for operations tests: `node --import tsx src/main.ts` from a working copy.
 * - workingCopy() makes a separate copy of the code (src, views, public, package.json,
 *   tsconfig.json) in a temp dir with node_modules symlinked: two instances share no files
 *   (OPS_WORKING_COPY=head copies the last commit instead of the working tree)
 * - startServerProcess() picks a free port (kept across restarts), starts the process with a
 *   clean environment plus what the test gives, and waits for /readyz; all stdout and stderr
 *   are captured, so a test can search everything the server ever printed
 * - stop() is SIGTERM (graceful), kill() is SIGKILL (a crash); start() brings it back
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './private-postgres.ts';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const ENTRIES = ['src', 'views', 'public', 'package.json', 'tsconfig.json'];

export interface WorkingCopy {
  dir: string;
  remove(): void;
}

/**
 * A copy of the runnable tree in a temp dir; node_modules is the only thing shared (read-only code).
 * `revision`: a git commit to copy instead of the working tree (an earlier release, for upgrade tests).
 */
export function workingCopy(label = 'instance', revision?: string): WorkingCopy {
  const dir = mkdtempSync(join(tmpdir(), `wc-${label}-`));
  const commit = revision ?? (process.env.OPS_WORKING_COPY === 'head' ? 'HEAD' : undefined);
  if (commit) {
    // A commit instead of the tree: an earlier release, or HEAD while others have half-done edits.
    execFileSync('sh', [
      '-c',
      `git -C "${REPO_ROOT}" archive "${commit}" ${ENTRIES.join(' ')} | tar -x -C "${dir}"`,
    ]);
  } else {
    for (const entry of ENTRIES) cpSync(join(REPO_ROOT, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ServerProcessOptions {
  /** Working copy to run from. */
  cwd: string;
  /** Environment on top of PATH/HOME (nothing else is inherited: no DATABASE_URL by accident). */
  env: Record<string, string>;
  /** Port to listen on; default a free one. PUBLIC_URL defaults to http://127.0.0.1:port. */
  port?: number;
  /** How long start() waits for /readyz (ms). */
  readyTimeoutMs?: number;
  /** Node arguments; default the sources through tsx (`--import tsx src/main.ts`). */
  args?: string[];
}

export interface ServerProcess {
  port: number;
  /** http://127.0.0.1:port — the instance itself, whatever PUBLIC_URL says. */
  url: string;
  /** Everything the process printed on stdout and stderr, across restarts. */
  output(): string;
  /** Parsed JSON log lines (non-JSON lines are skipped). */
  logLines(): Record<string, unknown>[];
  running(): boolean;
  start(): Promise<void>;
  /** SIGTERM and wait for exit (graceful shutdown). */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit (a crash). */
  kill(): Promise<number | null>;
  /** Waits until /readyz answers with the given status. */
  waitForReady(status?: number, timeoutMs?: number): Promise<void>;
  /** Changes settings for the next start() (undefined removes one): a restart with a new configuration. */
  setEnv(changes: Record<string, string | undefined>): void;
}

export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? tmpdir(),
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    LOG_LEVEL: 'info',
    ...options.env,
    PORT: String(port),
  };
  const chunks: string[] = [];
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);

  const waitForReady = async (status = 200, timeoutMs = options.readyTimeoutMs ?? 90_000) => {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (status === 200 && !child) throw new Error(`server exited before it was ready:\n${tail()}`);
      try {
        const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
        last = `HTTP ${r.status}`;
        await r.arrayBuffer();
        if (r.status === status) return;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`/readyz did not answer ${status} (last: ${last}):\n${tail()}`);
  };
  const tail = () => chunks.join('').split('\n').slice(-40).join('\n');

  const start = async () => {
    if (child) throw new Error('already running');
    const proc = spawn(process.execPath, options.args ?? ['--import', 'tsx', 'src/main.ts'], {
      cwd: options.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
    exited = new Promise((resolveExit) => {
      proc.once('exit', (code) => {
        if (child === proc) child = undefined;
        resolveExit(code);
      });
    });
    await waitForReady(200);
  };

  const signal = async (sig: NodeJS.Signals) => {
    const proc = child;
    if (!proc) return null;
    proc.kill(sig);
    const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(killer);
    return code;
  };

  const handle: ServerProcess = {
    port,
    url,
    output: () => chunks.join(''),
    logLines: () =>
      chunks
        .join('')
        .split('\n')
        .flatMap((line) => {
          if (!line.startsWith('{')) return [];
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    running: () => Boolean(child),
    start,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    waitForReady,
    setEnv(changes) {
      for (const [k, v] of Object.entries(changes)) {
        if (v === undefined) delete env[k];
        else env[k] = v;
      }
    },
  };
  try {
    await start();
  } catch (err) {
    await handle.kill();
    throw err;
  }
  return handle;
}
