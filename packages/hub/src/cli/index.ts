/** The axle CLI as a library (the bin is src/bin/axle.ts). */
export { runCli } from './program.js';
export { processIo } from './output.js';
export type { Io } from './output.js';
export { EXIT, CliError } from './errors.js';
export { resolveSettings, hubUrl, configFile } from './settings.js';
