/**
 * The commands of socketproxy: each one's name, settings table and what
 * runs it, and the top-level help made from them. `main.ts` dispatches on
 * this list; `completions` reads every table from it.
 *
 * @module
 */

import { CLIENT_COMMAND, clientCommand } from "./client.ts";
import { CLOSE_COMMAND, closeCommand } from "./close.ts";
import { COMPLETIONS_COMMAND, completionsCommand } from "./completions.ts";
import { DEMO_COMMAND, demoCommand } from "./demo.ts";
import { DRAIN_COMMAND, drainCommand } from "./drain.ts";
import { SERVER_COMMAND, serverCommand } from "./server.ts";
import type { CommandSpec } from "./settings.ts";
import { STATUS_COMMAND, statusCommand } from "./status.ts";
import { usageLine } from "./usage.ts";
import { WEB_COMMAND, webCommand } from "./web.ts";

/** A command: what it is called, what it does, and what runs it. */
export interface Command {
  /** Its settings table, when it has one (the help line and the completions come from it). */
  spec: CommandSpec;
  /** Runs it with the arguments after its name. */
  run: (args: string[]) => Promise<number> | number;
}

/** Every command, in the order of the help. */
export const COMMANDS: readonly Command[] = [
  { spec: SERVER_COMMAND, run: serverCommand },
  { spec: STATUS_COMMAND, run: statusCommand },
  { spec: CLOSE_COMMAND, run: closeCommand },
  { spec: DRAIN_COMMAND, run: drainCommand },
  { spec: CLIENT_COMMAND, run: clientCommand },
  { spec: WEB_COMMAND, run: webCommand },
  { spec: DEMO_COMMAND, run: demoCommand },
  {
    spec: COMPLETIONS_COMMAND,
    run: (args) => completionsCommand(args, COMMANDS.map((command) => command.spec)),
  },
];

/**
 * The top-level help, its list of commands from their tables.
 *
 * @returns The text of `socketproxy --help`.
 */
export function topLevelUsage(): string {
  const names = COMMANDS.map(({ spec }) =>
    usageLine(spec).replace(/^socketproxy | \[options\]/g, "")
  );
  const width = Math.max(...names.map((name) => name.length)) + 3;
  return `Usage: socketproxy COMMAND [options]

Keeps TCP sessions to a destination alive across many short-lived client
connections, so web gateways and polling clients can hold a telnet-style
session open.

Commands:
${
    COMMANDS.map(({ spec }, index) => `  ${(names[index] ?? "").padEnd(width)}${spec.summary}`)
      .join("\n")
  }

Run "socketproxy COMMAND --help" for a command's options; every option can
also come from the environment or a --config file (see a command's --help).
Options: -h, --help (this help), -V, --version (print the version; after any
command too)`;
}
