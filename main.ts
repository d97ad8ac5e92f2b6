/**
 * socketproxy: keeps TCP sessions alive across short-lived connections.
 * This file only dispatches to the subcommands in `lib/`.
 *
 * @module
 */

import { printOut } from "./lib/commands/cli.ts";
import { CommandError, UsageError } from "./lib/errors.ts";
import { describeError } from "./lib/log.ts";
import { COMMANDS, topLevelUsage } from "./lib/commands/commands.ts";
import { VERSION } from "./lib/version.ts";

/** Whether `-V` or `--version` comes anywhere before a `--`: every command takes it. */
function asksForVersion(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((arg) => arg === "-V" || arg === "--version");
}

/**
 * Runs one socketproxy command line.
 *
 * @param args The arguments, without the program name.
 * @returns The exit status.
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "-h" || name === "--help" || name === "help") {
    printOut(topLevelUsage());
    return 0;
  }
  if (asksForVersion(args)) {
    printOut(`socketproxy ${VERSION}`);
    return 0;
  }
  const command = COMMANDS.find(({ spec }) => spec.command === name);
  const prefix = command ? `socketproxy ${name}` : "socketproxy";
  try {
    if (name === undefined) throw new UsageError("missing command (try socketproxy --help)");
    if (!command) {
      throw new UsageError(
        `unknown command "${name}" (expected ${
          COMMANDS.map(({ spec }) => spec.command).join(", ")
        })`,
      );
    }
    return await command.run(rest);
  } catch (error) {
    if (error instanceof CommandError) {
      console.error(`${prefix}: ${error.message}`);
      return error.exitCode;
    }
    console.error(`${prefix}: unexpected error: ${describeError(error)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
