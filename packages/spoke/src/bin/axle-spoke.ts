#!/usr/bin/env node
import { Command } from 'commander';
import { createLogger, exitWithError, printPublicKey, runUntilSignalled } from '@axle/shared';
import { Spoke, keyFileOf, loadSpokeConfig } from '../index.js';

/** `axle-spoke --config FILE` runs the daemon; `axle-spoke keygen --config FILE` prints its public key. */
const program = new Command('axle-spoke')
  .description('Axle spoke: serves check-ins and run reports for the envoys it owns, and answers the hub')
  .option('-c, --config <file>', 'spoke config (YAML)')
  .action(async (o: { config?: string }) => {
    let spoke: Spoke;
    try {
      if (!o.config) throw new Error('--config FILE is required (the spoke YAML config)');
      const config = loadSpokeConfig(o.config);
      const log = createLogger({ daemon: 'spoke', id: config.spanner.spoke_id });
      // lmdb-js 3.5 rejects internal promises nobody can hold when a commit fails (a full
      // disk): every write of ours already got the error and answered it, so log and carry on.
      process.on('unhandledRejection', (e) => {
        const msg = e instanceof Error ? e.message : String(e);
        if (!/^Commit failed|No space left on device|Input\/output error/.test(msg)) throw e;
        log.error(
          { err: msg },
          'database commit failed (disk full?); the writes in it were refused and not acknowledged',
        );
      });
      spoke = new Spoke(config, { logger: log, configFile: o.config });
      await spoke.start();
      runUntilSignalled(spoke, log);
    } catch (e) {
      exitWithError(e, 'axle-spoke');
    }
  });

program
  .command('keygen')
  .description("print the base64 public key of the spoke's key_file, creating the key if missing")
  .requiredOption('-c, --config <file>', 'spoke config (YAML)')
  .action((o: { config: string }) => printPublicKey(() => keyFileOf(loadSpokeConfig(o.config)), 'axle-spoke keygen'));

program.enablePositionalOptions();
await program.parseAsync(process.argv);
