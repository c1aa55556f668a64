#!/usr/bin/env node
import { Command } from 'commander';
import { createLogger, exitWithError, loadOrCreateKeyPair, runUntilSignalled, toBase64 } from '@axle/shared';
import { Hub, keyFileOf, loadHubConfig } from '../index.js';

/** `axle-hub --config FILE` runs the daemon; `axle-hub keygen --config FILE` prints its public key. */
const program = new Command('axle-hub')
  .description('Axle hub: enrollment routing, envoy directory, fan-out queries, spoke health and failover, HTTP API')
  .option('-c, --config <file>', 'hub config (YAML)')
  .action(async (o: { config?: string }) => {
    try {
      if (!o.config) throw new Error('--config FILE is required (the hub YAML config)');
      const config = loadHubConfig(o.config);
      const log = createLogger({ daemon: 'hub', id: config.server_id });
      const hub = new Hub(config, { logger: log, configFile: o.config });
      // Signals are wired before start so a SIGHUP right after "listening" cannot kill the process.
      runUntilSignalled(hub, log);
      await hub.start();
    } catch (e) {
      exitWithError(e, 'axle-hub');
    }
  });

program
  .command('keygen')
  .description("print the base64 public key of the hub's key_file, creating the key if missing")
  .requiredOption('-c, --config <file>', 'hub config (YAML)')
  .action((o: { config: string }) => {
    try {
      const file = keyFileOf(loadHubConfig(o.config));
      const { keyPair, created } = loadOrCreateKeyPair(file);
      if (created) process.stderr.write(`created ${file}\n`);
      process.stdout.write(`${toBase64(keyPair.publicKey)}\n`);
    } catch (e) {
      exitWithError(e, 'axle-hub keygen');
    }
  });

program.enablePositionalOptions();
await program.parseAsync(process.argv);
