#!/usr/bin/env node
/*
 * Bundles src/ into dist/ (what `npm start`, the image and CI run with plain node).
 * - `node scripts/build.mjs`: full build: the type check (tsc --noEmit), then esbuild bundles the
 *   entries (main, import-cli) and our dependencies into a few ES modules directly in dist/,
 *   copies the SQL migrations to dist/db/migrations/, and writes a stamp
 * - one bundle instead of ≈ 900 modules: a start loaded and compiled every file of oidc-provider,
 *   zod, jose and the rest one by one (≈ 0.5 s of a start on Node 20, which has no compile cache);
 *   the bundle loads in about half that (BENCHMARKS.md, "start")
 * - kept out of the bundle: PGlite (it finds its WebAssembly next to its own file), pg's optional
 *   native binding, sanitize-html (loaded on first use); they are read from node_modules, which
 *   a production install still has
 * - every emitted file sits directly in dist/, like src/paths.ts in src/: that module finds the
 *   views, public files and migrations from its own URL
 * - `--run <file>` (npm start, npm run import): then runs the built entry in this same process
 * - `--if-stale` (npm start, npm run import): does nothing when dist/ is at least as new as every
 *   file under src/ and the build settings; otherwise bundles without the type check (≈ 1 s
 *   instead of ≈ 20 s: `npm run typecheck` and CI are where types are checked)
 * - no esbuild (a production install, `npm prune --omit=dev`) and a dist/ present: runs what is
 *   there and says so; no esbuild and no dist/: an error that says what to run
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
const SETTINGS = ['package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs'].map((f) =>
  join(ROOT, f),
);
const ENTRIES = { main: 'src/main.ts', 'import-cli': 'src/fhir/import-cli.ts' };
// Read from node_modules at run time, not bundled (see the header).
const EXTERNAL = ['@electric-sql/pglite', 'pg-native', 'sanitize-html'];
// CommonJS dependencies inside an ES module bundle still call require() (for Node's built-ins).
const REQUIRE_BANNER =
  "import { createRequire as __bundleCreateRequire } from 'node:module'; const require = __bundleCreateRequire(import.meta.url);";

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

/** A dev dependency's resolved path, or undefined in a production install. */
function devDependency(specifier) {
  try {
    return createRequire(join(ROOT, 'package.json')).resolve(specifier);
  } catch {
    return undefined;
  }
}

const ifStale = process.argv.includes('--if-stale');
const runIndex = process.argv.indexOf('--run');
const entry = runIndex > 0 ? process.argv[runIndex + 1] : undefined;

/** Builds dist/ unless --if-stale finds it fresh; false when there is nothing runnable. */
async function build() {
  if (ifStale && !isStale()) return true;
  const esbuildPath = devDependency('esbuild');
  if (!esbuildPath) {
    if (existsSync(join(DIST, 'main.js'))) {
      process.stderr.write(
        'build: esbuild is not installed (production install); running the dist/ that is there\n',
      );
      return true;
    }
    process.stderr.write(
      'build: dist/ is missing and esbuild is not installed: run `npm install` (with dev dependencies) first\n',
    );
    return false;
  }
  const started = Date.now();
  if (!ifStale) {
    const tsc = devDependency('typescript/bin/tsc');
    const checked = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (checked.status !== 0) {
      process.stderr.write('build: type check failed\n');
      return false;
    }
  }
  rmSync(DIST, { recursive: true, force: true });
  const esbuild = await import(pathToFileURL(esbuildPath).href);
  try {
    await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ENTRIES,
      outdir: DIST,
      entryNames: '[name]',
      chunkNames: '[name]-[hash]',
      bundle: true,
      splitting: true, // main loads the server lazily, after the database starts opening
      format: 'esm',
      platform: 'node',
      target: 'node20.19',
      packages: 'bundle',
      external: EXTERNAL,
      banner: { js: REQUIRE_BANNER },
      keepNames: true, // error classes are told apart by name (oidc-provider's among them)
      sourcemap: 'linked', // for NODE_OPTIONS=--enable-source-maps; not read otherwise
      legalComments: 'linked',
      logLevel: 'warning',
    });
  } catch {
    // esbuild printed the errors. Leave no half-built dist/ behind that a later --if-stale
    // would take for a good one.
    rmSync(DIST, { recursive: true, force: true });
    process.stderr.write('build: esbuild failed\n');
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

if (!(await build())) process.exit(1);
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
