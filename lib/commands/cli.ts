/**
 * Command-line plumbing shared by the subcommands: flag parsing that turns
 * every mistake into a one-line {@linkcode UsageError}.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { formatHostPort, type HostPort } from "../address.ts";
import { UsageError } from "../errors.ts";
import { describeError } from "../log.ts";

/** The flags a command accepts, in `node:util` `parseArgs` form. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** Parsed flags and positional arguments. */
export interface ParsedFlags {
  /** Flag values by long name; a list for a flag declared `multiple`. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** Arguments that are not flags. */
  positionals: string[];
}

/**
 * Parses command-line flags strictly.
 *
 * @param args The arguments after the subcommand.
 * @param options The flags accepted.
 * @returns The values and positionals.
 * @throws {UsageError} For an unknown flag or a missing or unexpected value.
 */
export function parseFlags(args: string[], options: FlagSpec): ParsedFlags {
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: true,
    });
    return { values: values as ParsedFlags["values"], positionals };
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    const flag = /'([^' ,]+)/.exec(error.message.replace(/^Option '-\w, /, "Option '"))?.[1] ??
      "";
    const code = (error as TypeError & { code?: string }).code;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`unknown option "${flag}"`);
    }
    if (/argument missing/.test(error.message)) {
      throw new UsageError(`${flag} needs a value (${flag}=VALUE)`);
    }
    if (/does not take an argument/.test(error.message)) {
      throw new UsageError(`${flag} does not take a value`);
    }
    throw new UsageError(error.message);
  }
}

/**
 * Reads a string flag, or `undefined` when absent.
 *
 * @param flags Parsed flags.
 * @param name The flag's long name.
 * @returns Its value.
 */
export function stringFlag(flags: ParsedFlags, name: string): string | undefined {
  const value = flags.values[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * Reads a repeatable string flag (declared with `multiple: true`).
 *
 * @param flags Parsed flags.
 * @param name The flag's long name.
 * @returns Every value given, in order; empty when absent.
 */
export function listFlag(flags: ParsedFlags, name: string): string[] {
  const value = flags.values[name];
  return Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
}

/**
 * Writes text to stdout in full.
 *
 * @param text What to print; a newline is added.
 */
export function printOut(text: string): void {
  const bytes = new TextEncoder().encode(text + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
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
 * import { missingPermission } from "./cli.ts";
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

/** What {@linkcode explainListenError} needs to know about the address. */
export interface ListenAttempt {
  /** The flag that gave the address, such as `--admin`. */
  flag: string;
  /** The address it was asked for. */
  addr: HostPort;
}

/**
 * Turns a listen failure into a one-line usage error naming the flag and
 * the address.
 *
 * @param error What `Deno.listen` or `Deno.serve` threw.
 * @param attempt The flag and the address.
 * @returns The usage error to throw.
 *
 * @example
 * ```ts
 * import { explainListenError } from "./cli.ts";
 *
 * const error = explainListenError(new Deno.errors.AddrInUse("in use"), {
 *   flag: "--admin",
 *   addr: { hostname: "127.0.0.1", port: 9010 },
 * });
 * console.assert(error.message === "--admin: cannot listen on 127.0.0.1:9010: address already in use");
 * ```
 */
export function explainListenError(error: unknown, attempt: ListenAttempt): UsageError {
  const prefix = `${attempt.flag}: cannot listen on ${formatHostPort(attempt.addr)}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return new UsageError(`${prefix}: address already in use`);
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new UsageError(`${prefix}: permission denied`);
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new UsageError(`${prefix}: address not available on this machine`);
  }
  return new UsageError(`${prefix}: ${missingPermission(error) ?? describeError(error)}`);
}
