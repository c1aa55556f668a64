/** Exit codes of the axle CLI. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;

/** An error the CLI reports as one line (what went wrong and what to do) with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.FAILED,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Usage problems exit 2 like the parser's own. */
export function usage(message: string): CliError {
  return new CliError(message, EXIT.USAGE, 'E_USAGE');
}
