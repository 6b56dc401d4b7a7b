import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // Native addons inside worker threads have crashed test runners; each test
    // file gets its own process instead.
    pool: 'forks',
    // Namespace and TUN tests create system-wide objects; one file at a time
    // keeps them from racing (names are unique per run as well).
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
