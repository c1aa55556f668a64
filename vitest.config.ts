import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@axle/shared': src('shared'),
      '@axle/spoke': src('spoke'),
      '@axle/hub': src('hub'),
      '@axle/envoy-agent': src('envoy-agent'),
      '@axle/testkit': src('testkit'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two cores: tests that start daemons compete for them, so run files two at a time.
    maxWorkers: 2,
  },
});
