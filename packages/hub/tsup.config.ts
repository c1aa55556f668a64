import { defineConfig } from 'tsup';
import { nodeBuild } from '../../scripts/package/tsup.js';

// The library entry and the two executables. The executables keep their dist/bin/ names
// (packaging, tests and the demo run dist/bin/axle-hub.js and dist/bin/axle.js) while their
// sources live with the subsystem they start: the daemon in src/daemon, the CLI in src/cli.
export default defineConfig({
  ...nodeBuild,
  entry: {
    index: 'src/index.ts',
    'bin/axle-hub': 'src/daemon/axle-hub.ts',
    'bin/axle': 'src/cli/axle.ts',
  },
  clean: true,
});
