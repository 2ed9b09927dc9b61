/*
 * Where the server's files that are not code live: views, public files, SQL migrations.
 * - found from this module's own URL: it is src/paths.ts under tsx and vitest, and a file
 *   directly in dist/ after the build (scripts/build.mjs emits every file flat into dist/ and
 *   copies the migrations to dist/db/migrations), so "one folder below the project root" holds
 *   for both
 * - views/ and public/ are read from the project root in both cases (the image copies them there)
 */
import { fileURLToPath } from 'node:url';

export const VIEWS_DIR = fileURLToPath(new URL('../views/', import.meta.url));
export const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));
export const MIGRATIONS_DIR = fileURLToPath(new URL('./db/migrations/', import.meta.url));
