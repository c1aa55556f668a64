import { Command, CommanderError } from 'commander';
import { configCommand, enrollmentsCommand, eventsCommand, hubCommand, tokensCommand } from './admin.js';
import { Ctx } from './context.js';
import { envoysCommand } from './envoys.js';
import { jobsCommand, runCommand } from './jobs.js';
import { CliError, EXIT } from './errors.js';
import type { Io } from './output.js';
import { secretsCommand } from './secrets.js';
import { spannerCommand } from './spanner.js';

/**
 * The axle CLI: builds the command tree and runs argv, returning the exit code
 * (0 ok, 1 failed or a partial fan-out answer, 2 usage). Output goes through `io` only.
 */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const state = { code: EXIT.OK as number };
  const run =
    <A extends unknown[]>(fn: (ctx: Ctx, ...a: A) => Promise<void>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const ctx = new Ctx(io, cmd);
      await ctx.connect();
      await fn(ctx, ...(args.slice(0, -1) as A));
      state.code = Math.max(state.code, ctx.exitCode);
    };

  const program = new Command('axle')
    .description('Operate an Axle fleet through its hub: envoys, spokes, moves, config, tokens, enrollments, events')
    .option('--hub <url>', 'hub address, https://host:port or host:port (env AXLE_HUB)')
    .option('--ca-file <file>', "the fleet CA (PEM) the hub's certificate must chain to (env AXLE_CA_FILE)")
    .option('--token <token>', 'API token (env AXLE_TOKEN)')
    .option(
      '--config <file>',
      'CLI config file with hub: and token: (default ~/.config/axle/cli.yaml, env AXLE_CLI_CONFIG)',
    )
    .option('--json', 'machine-readable JSON on stdout')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });

  for (const make of [
    envoysCommand,
    spannerCommand,
    configCommand,
    tokensCommand,
    secretsCommand,
    enrollmentsCommand,
    eventsCommand,
    hubCommand,
    runCommand,
    jobsCommand,
  ]) {
    const sub = make(run);
    // Settings made on the root are not inherited by commands built on their own; copy them down the tree.
    const inherit = (c: Command) => {
      c.exitOverride()
        .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
        .showHelpAfterError('(run with --help for usage)');
      for (const x of c.commands) inherit(x);
    };
    inherit(sub);
    program.addCommand(sub);
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return state.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are not errors; everything else the parser refuses is a usage error.
      if (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.OK;
      if (e.code === 'commander.invalidArgument' && !/^error:/.test(e.message)) io.err(`error: ${e.message}\n`);
      return EXIT.USAGE;
    }
    if (e instanceof CliError) {
      io.err(`error: ${e.message}\n`);
      return e.exitCode;
    }
    io.err(`error: ${(e as Error).message ?? String(e)}\n`);
    return EXIT.FAILED;
  }
}
