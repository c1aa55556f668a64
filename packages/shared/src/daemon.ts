import { isAxleError, errorText } from './errors.js';
import { loadOrCreateKeyPair, toBase64 } from './keys.js';
import type { Logger } from './log.js';

/** What a daemon class offers its bin: stop on SIGTERM/SIGINT, reload on SIGHUP. */
export interface Daemon {
  stop(): Promise<void>;
  reload?(): Promise<void>;
}

/**
 * Wires signals to a started daemon. Lives here so that the three bins behave alike, but
 * only bins call it: daemon classes never touch `process`.
 */
export function runUntilSignalled(d: Daemon, log: Logger, o: { stopTimeoutMs?: number } = {}): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      log.error({ signal }, 'did not stop in time; exiting');
      log.flush?.();
      process.exit(1);
    }, o.stopTimeoutMs ?? 10_000);
    deadline.unref();
    d.stop().then(
      () => {
        log.info('stopped');
        log.flush?.();
        process.exit(0);
      },
      (e: unknown) => {
        log.error({ err: errorText(e) }, 'error while stopping');
        log.flush?.();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!d.reload) return log.info('SIGHUP ignored: nothing to reload');
    d.reload().then(
      () => log.info('reloaded'),
      (e: unknown) => log.error({ err: errorText(e) }, 'reload failed; keeping the running config'),
    );
  });
}

/** Prints a start-up failure the way an operator needs it (config errors list file and key) and exits 1. */
export function exitWithError(e: unknown, name: string): never {
  const msg = isAxleError(e) ? `${name}: ${e.code}: ${e.message}` : `${name}: ${errorText(e)}`;
  process.stderr.write(`${msg}\n`);
  process.exit(1);
}

/**
 * A daemon bin's `keygen`: prints the base64 public key of its key file (`keyFile` reads the
 * config), creating the key if missing and saying so on stderr, so the operator can paste it
 * into the peers' configs.
 */
export function printPublicKey(keyFile: () => string, name: string): void {
  try {
    const file = keyFile();
    const { keyPair, created } = loadOrCreateKeyPair(file);
    if (created) process.stderr.write(`created ${file}\n`);
    process.stdout.write(`${toBase64(keyPair.publicKey)}\n`);
  } catch (e) {
    exitWithError(e, name);
  }
}
