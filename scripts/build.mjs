#!/usr/bin/env node
/*
 * Compiles src/ into dist/ (what `npm start`, the image and CI run with plain node).
 * - `node scripts/build.mjs`: full build: type-checked tsc, a clean dist/, SQL migrations copied
 *   next to the compiled migrator (dist/db/migrations/), a stamp naming the sources' newest mtime
 * - `--run <file>` (npm start, npm run import): then runs the compiled entry in this same process
 * - `--if-stale` (npm start, npm run import): does nothing when dist/ is at least as new as every
 *   file under src/ and the build settings; otherwise emits without the type check (tsc
 *   --noCheck, ≈2 s instead of ≈20 s: `npm run typecheck` and CI are where types are checked)
 * - no TypeScript compiler (a production install, `npm prune --omit=dev`) and a dist/ present:
 *   runs what is there and says so; no compiler and no dist/: an error that says what to run
 * Views and public files are not copied: dist/http/app.js finds ../../views like src/http/app.ts.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const STAMP = join(DIST, '.build-stamp');
const SETTINGS = ['tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs'].map((f) => join(ROOT, f));

/** Newest modification time under a directory (or of a file), in ms. */
function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs; // a deleted or renamed file changes its directory's mtime
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function isStale() {
  if (!existsSync(STAMP)) return true;
  const built = statSync(STAMP).mtimeMs;
  return [SRC, ...SETTINGS].some((p) => existsSync(p) && newestMtime(p) > built);
}

function tscPath() {
  try {
    return createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

const ifStale = process.argv.includes('--if-stale');
const runIndex = process.argv.indexOf('--run');
const entry = runIndex > 0 ? process.argv[runIndex + 1] : undefined;

/** Builds dist/ unless --if-stale finds it fresh; false when there is nothing runnable. */
function build() {
  if (ifStale && !isStale()) return true;
  const tsc = tscPath();
  if (!tsc) {
    if (existsSync(join(DIST, 'main.js'))) {
      process.stderr.write(
        'build: TypeScript is not installed (production install); running the dist/ that is there\n',
      );
      return true;
    }
    process.stderr.write(
      'build: dist/ is missing and TypeScript is not installed: run `npm install` (with dev dependencies) first\n',
    );
    return false;
  }
  const started = Date.now();
  rmSync(DIST, { recursive: true, force: true });
  const args = [tsc, '-p', join(ROOT, 'tsconfig.build.json'), ...(ifStale ? ['--noCheck'] : [])];
  const result = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    // Leave no half-built dist/ behind that a later --if-stale would take for a good one.
    rmSync(DIST, { recursive: true, force: true });
    process.stderr.write('build: tsc failed\n');
    return false;
  }
  mkdirSync(join(DIST, 'db'), { recursive: true });
  cpSync(join(SRC, 'db', 'migrations'), join(DIST, 'db', 'migrations'), { recursive: true });
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  process.stderr.write(
    `build: dist/ ${ifStale ? 'rebuilt (sources changed)' : 'built'} in ${Date.now() - started} ms\n`,
  );
  return true;
}

if (!build()) process.exit(1);
// `--run dist/main.js` (npm start): the compiled entry runs in this same process — one Node
// start instead of two on every `npm start`.
// The entry sees the command line it would have had as `node <entry> …`.
if (entry) {
  // Node 22.1+ (the image's runtime) keeps compiled modules on disk between starts; Node 20 has
  // no such cache and goes on without it.
  module.enableCompileCache?.();
  process.argv = [process.argv[0], join(ROOT, entry), ...process.argv.slice(runIndex + 2)];
  await import(pathToFileURL(join(ROOT, entry)).href);
}
