/**
 * The errors a command reports to the person who typed it: one line on
 * stderr, no stack trace, and an exit status. The parsers of addresses,
 * sizes and durations throw {@linkcode UsageError}, naming the flag;
 * `listen_error.ts` turns an address that cannot be listened on into one.
 *
 * @module
 */

/**
 * A failure a command reports as one line on stderr, without a stack trace,
 * exiting with {@linkcode CommandError.exitCode}.
 *
 * @example
 * ```ts
 * import { CommandError } from "./errors.ts";
 *
 * const error = new CommandError("no socketproxy admin port answering on localhost:9010", 1);
 * console.assert(error.exitCode === 1);
 * ```
 */
export class CommandError extends Error {
  /** The process exit status for this error. */
  readonly exitCode: number;

  /**
   * Creates a command error.
   *
   * @param message What went wrong, in one line.
   * @param exitCode The exit status.
   */
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "CommandError";
    this.exitCode = exitCode;
  }
}

/**
 * A mistake in how a command was invoked: printed as one line, exit status 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 *
 * const error = new UsageError('--buffer: cannot parse size "1x"');
 * console.assert(error.exitCode === 2);
 * ```
 */
export class UsageError extends CommandError {
  /**
   * Creates a usage error.
   *
   * @param message What is wrong, in one line.
   */
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/**
 * Says which Deno permission an error is about, for a one-line message, or
 * `undefined` when the error is not a missing permission.
 *
 * @param error What an operation threw.
 * @returns For example `Deno's net permission is missing: run with --allow-net`.
 *
 * @example
 * ```ts
 * import { missingPermission } from "./errors.ts";
 *
 * const error = new Deno.errors.NotCapable('Requires net access to "localhost:9010"');
 * console.assert(missingPermission(error)?.includes("--allow-net"));
 * ```
 */
export function missingPermission(error: unknown): string | undefined {
  if (!(error instanceof Deno.errors.NotCapable)) return undefined;
  const kind = /^Requires (\w+) access/.exec(error.message)?.[1];
  if (kind === undefined) return `a Deno permission is missing: ${error.message}`;
  // The compiled binary has the permissions it needs: only `deno run` lacks them.
  return `Deno's ${kind} permission is missing: run with --allow-${kind} (deno task start does)`;
}
