import { defineConfig } from 'tsup';
import { binEntries, nodeBuild } from '../../scripts/package/tsup.js';

export default defineConfig({ ...nodeBuild, entry: ['src/index.ts', ...binEntries()], clean: true });
