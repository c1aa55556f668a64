/**
 * The axle-envoy command line; loaded by bin/axle-envoy.ts once V8 is set up. It exports
 * main() rather than running at import, with no top-level await, so the same code runs as
 * an ES module and bundled to CommonJS inside the single executable.
 */
import { Command } from 'commander';
import { createLogger, exitWithError, runUntilSignalled, toBase64, fingerprint } from '@axle/shared';
import { Envoy, enroll, loadEnvoyConfig } from './index.js';
import { StateStore } from './state.js';
import { applyBundle, formatRun } from './apply.js';
import { AGENT_VERSION } from './version.js';

const program = new Command('axle-envoy')
  .description('Axle envoy agent: enrolls through the hub, keeps its spoke, runs policies, reports')
  .version(AGENT_VERSION, '-V, --version', 'print the agent version')
  .enablePositionalOptions()
  .option('-c, --config <file>', 'envoy config file', '/etc/axle/envoy.yaml')
  .action(async (o: { config: string }) => {
    let envoy: Envoy;
    const cfg = (() => {
      try {
        return loadEnvoyConfig(o.config);
      } catch (e) {
        return exitWithError(e, 'axle-envoy');
      }
    })();
    const log = createLogger({ daemon: 'envoy', id: cfg.hostname, ...(cfg.log_level ? { level: cfg.log_level } : {}) });
    try {
      envoy = new Envoy(cfg, { logger: log, configFile: o.config });
      await envoy.start();
    } catch (e) {
      log.flush?.();
      return exitWithError(e, 'axle-envoy');
    }
    runUntilSignalled(envoy, log, { stopTimeoutMs: cfg.stop_grace + 10_000 });
  });

program
  .command('enroll')
  .description('generate the key if needed, enroll through the hub with a join token, store the assignment')
  .requiredOption('-c, --config <file>', 'envoy config file')
  .requiredOption('-t, --token <token>', 'join token from the hub (axle tokens create)')
  .action(async (o: { config: string; token: string }) => {
    try {
      const cfg = loadEnvoyConfig(o.config);
      const log = createLogger({
        daemon: 'envoy',
        id: cfg.hostname,
        ...(cfg.log_level ? { level: cfg.log_level } : {}),
      });
      const a = await enroll(cfg, o.token, { logger: log });
      process.stdout.write(
        a.status === 'assigned'
          ? `enrolled ${cfg.hostname}: spoke ${a.target?.spokeId} at ${a.target?.addr} (epoch ${a.epoch})\n`
          : `enrollment of ${cfg.hostname} is pending approval on the hub; start the agent, it will pick up its spoke once approved\n`,
      );
      log.flush?.();
      process.exit(0);
    } catch (e) {
      exitWithError(e, 'axle-envoy enroll');
    }
  });

program
  .command('keygen')
  .description("print this envoy's public key (base64), creating the key in state_dir if missing")
  .requiredOption('-c, --config <file>', 'envoy config file')
  .action((o: { config: string }) => {
    try {
      const cfg = loadEnvoyConfig(o.config);
      const { keyPair, created } = new StateStore(cfg.state_dir).loadKey();
      process.stdout.write(`${toBase64(keyPair.publicKey)}\n`);
      if (created)
        process.stderr.write(`created ${cfg.state_dir}/key (fingerprint ${fingerprint(keyPair.publicKey)})\n`);
    } catch (e) {
      exitWithError(e, 'axle-envoy keygen');
    }
  });

program
  .command('apply')
  .description(
    'apply a policy bundle directory here and now, without hub or spoke; exits 0 (no changes), 2 (changes), 4 (failures), 6 (both), 1 (bad bundle)',
  )
  .argument('<dir>', 'bundle directory (policies/, files/, templates/)')
  .option('--audit', 'report drift, change nothing')
  .option('--json', 'print the run as JSON')
  .option('-v, --verbose', 'also list resources that were already right')
  .option('--hostname <name>', "host name for hosts: and templates (default: the config's, else the machine's)")
  .option('-c, --config <file>', 'envoy config for hostname, traits_dir and exec_timeout (optional)')
  .action(
    async (
      dir: string,
      o: { audit?: boolean; json?: boolean; verbose?: boolean; hostname?: string; config?: string },
    ) => {
      try {
        const { run, exitCode } = await applyBundle({
          dir,
          audit: o.audit ?? false,
          ...(o.hostname ? { hostname: o.hostname } : {}),
          ...(o.config ? { config: loadEnvoyConfig(o.config) } : {}),
        });
        process.stdout.write(o.json ? `${JSON.stringify(run, null, 2)}\n` : formatRun(run, o.verbose));
        process.exitCode = exitCode;
      } catch (e) {
        exitWithError(e, 'axle-envoy apply');
      }
    },
  );

export async function main(argv: string[]): Promise<void> {
  await program.parseAsync(argv);
}
