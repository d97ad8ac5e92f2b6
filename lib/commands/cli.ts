/**
 * Command-line plumbing shared by the subcommands: flag parsing that turns
 * every mistake into a one-line {@linkcode UsageError}.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

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
 * @param parsing `allowNegative: true` also takes `--no-NAME` for a
 * boolean flag, as `false`.
 * @returns The values and positionals.
 * @throws {UsageError} For an unknown flag or a missing or unexpected value.
 */
export function parseFlags(
  args: string[],
  options: FlagSpec,
  parsing: { allowNegative?: boolean } = {},
): ParsedFlags {
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: true,
      allowNegative: parsing.allowNegative ?? false,
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
