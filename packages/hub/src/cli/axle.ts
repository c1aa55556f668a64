#!/usr/bin/env node
import { processIo, runCli } from './index.js';

/** `axle`: the operator CLI. Exit codes: 0 ok, 1 failed or partial answer, 2 usage. */
const code = await runCli(process.argv.slice(2), processIo());
process.exitCode = code;
