import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['ring/**/*.test.ts', 'core/**/*.test.ts', 'runtime/**/*.test.ts', 'test/**/*.test.ts'],
    // Multi-worker tests spawn real threads; on a 2-core machine running test
    // files in parallel only adds contention and flakes timing-sensitive waits.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
