/*
 * `npm start`'s command, read from package.json and split: node's own options (the heap budget,
 * README "Memory") and the script with its arguments. One reading for everything that must run
 * the server as `npm start` does or agree with it: the benches (bench/processes.ts), the
 * Dockerfile check (scripts/lint-deploy.mjs) and CI's production artefact (.ci/production-artefact).
 * - `node scripts/start-command.mjs` prints the node options, space-separated, for shell scripts
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** @returns {{ nodeOptions: string[], script: string[], text: string }} */
export function npmStartCommand() {
  const text = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start;
  const [runner, ...rest] = text.trim().split(/\s+/);
  if (runner !== 'node') throw new Error(`npm start is not a node command: ${text}`);
  const firstArg = rest.findIndex((a) => !a.startsWith('-'));
  if (firstArg < 0) throw new Error(`npm start names no script: ${text}`);
  return { nodeOptions: rest.slice(0, firstArg), script: rest.slice(firstArg), text };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${npmStartCommand().nodeOptions.join(' ')}\n`);
}
