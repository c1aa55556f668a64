#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';

/*
 * The agent idles on every fleet host and does little CPU work, so V8 runs in lite mode
 * (no optimising compiler, lazier feedback): about 6-9 MiB less resident memory, and a
 * policy run of 200 resources still takes well under a second. AXLE_ENVOY_FULL_JIT=1 turns
 * it off. The flag must be set before any other module is compiled, hence the dynamic import
 * (esbuild keeps it lazy in the single executable's bundle too).
 */
if (!process.env.AXLE_ENVOY_FULL_JIT) setFlagsFromString('--lite-mode');
// No top-level await: this file is also the entry of the single executable, a CommonJS bundle.
void import('../cli.js').then(({ main }) => main(process.argv));
