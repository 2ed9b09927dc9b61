/*
 * A throwaway PostgreSQL cluster of our own, for tests that stop and start the database server.
 * - initdb + pg_ctl from /usr/lib/postgresql/<newest>/bin, data in a fresh temp dir, on a free
 *   127.0.0.1 port, trust auth, fsync off; run as the `postgres` user when we are root
 * - stop() is `pg_ctl stop -m immediate` (a crash, as far as clients can tell); start() again
 *   recovers the same data
 * - never touches the machine's shared cluster on 5432: other tests use it
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** The bin directory of the newest PostgreSQL installed, or undefined when there is none. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

/** Why private clusters cannot run here, or undefined when they can. */
export function privatePostgresUnavailable(): string | undefined {
  if (!postgresBinDir()) return 'no PostgreSQL server binaries under /usr/lib/postgresql';
  // initdb refuses to run as root: as root we run it as the postgres account.
  if (
    process.getuid?.() === 0 &&
    !['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].some(existsSync)
  ) {
    return 'running as root without runuser';
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:port/postgres */
  adminUrl: string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Immediate shutdown: connections drop at once, as in a crash or a failover. */
  stop(): Promise<void>;
  /** Starts the same cluster again (crash recovery included) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (if running) and deletes its files. */
  destroy(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const asRoot = process.getuid?.() === 0;
  // /tmp rather than $TMPDIR: the postgres account must be able to reach the directory.
  const dir = mkdtempSync(join(existsSync('/tmp') ? '/tmp' : tmpdir(), 'private-pg-'));
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const exec = async (tool: string, args: string[]) => {
    const file = join(bin, tool);
    return asRoot ? run('runuser', ['-u', 'postgres', '--', file, ...args]) : run(file, args);
  };

  await exec('initdb', [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses='127.0.0.1'",
    '-c fsync=off',
    // On (the default): a commit is in the WAL before the client hears of it, so an immediate stop
    // loses nothing that was answered (fsync=off only spares the disk: the OS keeps the WAL).
    '-c synchronous_commit=on',
    '-c full_page_writes=off',
    '-c max_connections=100',
  ].join(' ');
  let running = false;

  const start = async () => {
    await exec('pg_ctl', [
      '-D',
      data,
      '-o',
      options,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      '60',
      'start',
    ]);
    running = true;
    for (let i = 0; i < 100; i++) {
      const c = new pg.Client({ connectionString: adminUrl });
      try {
        await c.connect();
        await c.query('SELECT 1');
        await c.end();
        return;
      } catch {
        await c.end().catch(() => {});
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('private PostgreSQL did not accept connections');
  };
  const stop = async () => {
    if (!running) return;
    await exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    running = false;
  };
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;

  await start();
  return {
    port,
    adminUrl,
    async createDatabase(name: string) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error('bad database name');
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
    start,
    async destroy() {
      await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
