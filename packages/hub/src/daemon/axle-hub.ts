#!/usr/bin/env node
import { Command } from 'commander';
import { createLogger, exitWithError, printPublicKey, runUntilSignalled } from '@axle/shared';
import { Hub, fleetCa, keyFileOf, loadHubConfig } from '../index.js';

/**
 * `axle-hub --config FILE` runs the daemon; `axle-hub keygen --config FILE` prints its public key;
 * `axle-hub ca init|issue` keeps the fleet CA.
 */
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
  .action((o: { config: string }) => printPublicKey(() => keyFileOf(loadHubConfig(o.config)), 'axle-hub keygen'));

const ca = program.command('ca').description('the fleet CA: certificates for hub and spoke listeners');

ca.command('init')
  .description('create <data_dir>/ca/ca.pem and ca.key (0600) and print the CA fingerprint (sha256:HEX)')
  .requiredOption('-c, --config <file>', 'hub config (YAML)')
  .option('--days <n>', 'validity in days', String(3650))
  .action(async (o: { config: string; days: string }) => {
    try {
      const { initCa } = await fleetCa();
      const info = await initCa(loadHubConfig(o.config).data_dir, { days: positive(o.days, '--days') });
      process.stderr.write(
        info.created
          ? `created the fleet CA: ${info.certFile} and ${info.keyFile} (0600); back up ca.key, keep it off other hosts\n`
          : `the fleet CA already exists (${info.certFile}); left as it is\n`,
      );
      process.stdout.write(`${info.pin}\n`);
    } catch (e) {
      exitWithError(e, 'axle-hub ca init');
    }
  });

ca.command('issue')
  .description(
    'write DIR/NAME.pem and DIR/NAME.key (0600): a server certificate for a hub or spoke, signed by the fleet CA',
  )
  .requiredOption('-c, --config <file>', 'hub config (YAML) whose data_dir holds the CA')
  .requiredOption('--name <name>', 'certificate name: the file names and the subject CN')
  .requiredOption('--host <host>', 'DNS name or IP address clients connect to (repeat for more)', collect, [])
  .requiredOption('--out <dir>', 'directory to write NAME.pem and NAME.key into')
  .option('--days <n>', 'validity in days', String(365))
  .action(async (o: { config: string; name: string; host: string[]; out: string; days: string }) => {
    try {
      const { issueCert } = await fleetCa();
      const c = await issueCert(loadHubConfig(o.config).data_dir, {
        name: o.name,
        hosts: o.host,
        outDir: o.out,
        days: positive(o.days, '--days'),
      });
      process.stdout.write(
        `${c.certFile}\n${c.keyFile}\nvalid for ${c.names.join(', ')} until ${c.notAfter.toISOString()}; point tls.cert_file and tls.key_file at them and send the daemon SIGHUP\n`,
      );
    } catch (e) {
      exitWithError(e, 'axle-hub ca issue');
    }
  });

function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

function positive(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 36500) throw new Error(`${flag} must be a whole number of days (1-36500)`);
  return n;
}

program.enablePositionalOptions();
await program.parseAsync(process.argv);
