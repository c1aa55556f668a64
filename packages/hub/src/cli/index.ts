/**
 * The `axle` operator CLI (src/cli): commands, settings, output and the HTTP client they share.
 * The executable is axle.ts, built to dist/bin/axle.js; this file is the CLI as a library.
 */
export { runCli } from './program.js';
export { processIo } from './output.js';
export type { Io } from './output.js';
export { EXIT, CliError } from './errors.js';
export { resolveSettings, hubUrl, configFile } from './settings.js';
