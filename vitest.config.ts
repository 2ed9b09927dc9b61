import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Two cores: two test files at a time, each with its own database.
    maxWorkers: 2,
    fileParallelism: true,
    // Generous: CI machines are shared; tests never assert on wall-clock time.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
