import { defineConfig } from 'tsup';
import { readdirSync } from 'node:fs';

// Every file in src/bin becomes an executable entry beside the library entry.
const bins = (() => {
  try {
    return readdirSync('src/bin')
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/bin/${f}`);
  } catch {
    return [];
  }
})();

export default defineConfig({
  entry: ['src/index.ts', ...bins],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  splitting: true,
  dts: false,
});
