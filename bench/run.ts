/*
 * `npm run bench [-- name…]`: runs every bench/*.bench.ts (or the named ones) in turn and prints
 * their markdown results. Each bench measures the product beside a bare baseline in the same run
 * and reports ratios; copy the output into BENCHMARKS.md together with this command.
 *
 * A bench module's default export: (args: BenchArgs) => Promise<string> (markdown).
 */
import { readdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface BenchArgs {
  /** postgres:// URL of a server to use; benches that need PostgreSQL create their own databases on it. */
  databaseUrl: string;
  /** Seconds per measured phase. */
  duration: number;
}

const dir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();

const args: BenchArgs = {
  databaseUrl:
    process.env.BENCH_DATABASE_URL ??
    process.env.DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres',
  duration: Number(process.env.BENCH_DURATION ?? 10),
};

console.log(`# Benchmarks — ${new Date().toISOString()}`);
console.log(
  `node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB`,
);
console.log(
  `command: npm run bench${wanted.length ? ` -- ${wanted.join(' ')}` : ''}; BENCH_DURATION=${args.duration}s per phase\n`,
);
for (const file of files) {
  const mod = (await import(`./${file}`)) as { default: (a: BenchArgs) => Promise<string> };
  console.log(await mod.default(args));
  console.log('');
}
process.exit(0);
