/*
 * The built server (scripts/build.mjs → dist/) runs what package.json's scripts name:
 * - every `--run <file>` of an npm script exists after a build (`npm run import` once pointed at
 *   a path the bundle no longer emits, found only by running it)
 * - the bundled entries load and reach their own code: the importer prints its usage, the server
 *   refuses a production start without its required settings (the message comes from config.ts)
 * Tests otherwise run on the sources; this one builds dist/ (without the type check, as
 * `npm start` does) when it is stale.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const ROOT = resolve(import.meta.dirname, '../..');
const scripts: Record<string, string> = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts;

/** Runs a built file with plain node and a clean environment; its exit status and output. */
function runBuilt(file: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [file], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('the build', () => {
  beforeAll(() => {
    execFileSync(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: ROOT, stdio: 'pipe' });
  });

  it('emits every file an npm script runs', () => {
    const runs = Object.values(scripts).flatMap((s) => [...s.matchAll(/--run (\S+)/g)].map((m) => m[1]!));
    expect(runs).toEqual(expect.arrayContaining(['dist/main.js', 'dist/import-cli.js']));
    for (const file of runs) expect(existsSync(join(ROOT, file)), file).toBe(true);
  });

  it('bundles entries that load and run their own code', () => {
    const importer = runBuilt('dist/import-cli.js');
    expect(importer.status).toBe(2);
    expect(importer.output).toContain('usage: npm run import');

    const server = runBuilt('dist/main.js', { NODE_ENV: 'production' });
    expect(server.status).toBe(1);
    expect(server.output).toMatch(/PUBLIC_URL/);
  });
});
