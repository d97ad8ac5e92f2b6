/**
 * socketproxy: keeps TCP sessions alive across short-lived connections.
 * This file only dispatches to the subcommands in `lib/`.
 *
 * @module
 */

import { printOut } from "./lib/commands/cli.ts";
import { CommandError, UsageError } from "./lib/errors.ts";
import { describeError } from "./lib/log.ts";
import { clientCommand } from "./lib/commands/client.ts";
import { closeCommand } from "./lib/commands/close.ts";
import { demoCommand } from "./lib/commands/demo.ts";
import { drainCommand } from "./lib/commands/drain.ts";
import { serverCommand } from "./lib/commands/server.ts";
import { statusCommand } from "./lib/commands/status.ts";
import { VERSION } from "./lib/version.ts";
import { webCommand } from "./lib/commands/web.ts";

const USAGE = `Usage: socketproxy COMMAND [options]

Keeps TCP sessions to a destination alive across many short-lived client
connections, so web gateways and polling clients can hold a telnet-style
session open.

Commands:
  server [DEST_HOST:DEST_PORT] run the proxy server
  status                       show a running server's sessions and totals
  close ID                     close one session of a running server
  drain                        drain a running server: no new sessions, then exit
  client                       a test client: a connection per line typed
  web                          the HTTP gateway and browser terminal
  demo                         a demo service, the proxy and the gateway in one process

Run "socketproxy COMMAND --help" for a command's options.
Options: -h, --help (this help), -V, --version (print the version; after any
command too)`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  server: serverCommand,
  status: statusCommand,
  close: closeCommand,
  drain: drainCommand,
  client: clientCommand,
  web: webCommand,
  demo: demoCommand,
};

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
    printOut(USAGE);
    return 0;
  }
  if (asksForVersion(args)) {
    printOut(`socketproxy ${VERSION}`);
    return 0;
  }
  const command = name === undefined ? undefined : COMMANDS[name];
  const prefix = command ? `socketproxy ${name}` : "socketproxy";
  try {
    if (name === undefined) throw new UsageError("missing command (try socketproxy --help)");
    if (!command) {
      throw new UsageError(
        `unknown command "${name}" (expected ${Object.keys(COMMANDS).join(", ")})`,
      );
    }
    return await command(rest);
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
