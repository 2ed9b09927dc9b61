/*
 * `npm run import -- file.json [file2.json …]`: loads FHIR Bundles into the configured database
 * (DATABASE_URL, or the embedded one under DATA_DIR), each in one transaction, idempotently.
 * - migrations are applied first, as at server start
 * - prints counts per file; a refused bundle prints the entry and the reason and exits 1
 */
import { createReadStream, statSync } from 'node:fs';
import { loadConfig } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { openDatabase } from '../db/open-database.ts';
import { ImportError, importBundle } from './import.ts';

const files = process.argv.slice(2).filter((a) => a !== '--');
if (files.length === 0) {
  console.error('usage: npm run import -- bundle.json [more.json …]');
  process.exit(2);
}

const config = loadConfig(process.env);
const db = await openDatabase(config, (err) => console.error(`database error: ${err.message}`));
let failed = false;
try {
  await migrate(db);
  for (const file of files) {
    try {
      statSync(file);
    } catch {
      console.error(`${file}: cannot read the file`);
      failed = true;
      continue;
    }
    const started = process.hrtime.bigint();
    try {
      const s = await importBundle(db, { open: () => createReadStream(file) });
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      console.log(
        `${file}: ${s.bundleType}, ${s.entries} entries — ${s.created} created, ${s.updated} updated, ${s.unchanged} unchanged, ${s.deleted} deleted (${ms.toFixed(0)} ms)`,
      );
    } catch (err) {
      failed = true;
      if (err instanceof ImportError) console.error(`${file}: refused, nothing written — ${err.message}`);
      else console.error(`${file}: failed, nothing written — ${(err as Error).message}`);
    }
  }
} finally {
  await db.close();
}
process.exit(failed ? 1 : 0);
