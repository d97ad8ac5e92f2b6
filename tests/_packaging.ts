/**
 * Helpers for the packaging tests: the permissions of `deno.json`'s tasks,
 * and the permission flags of any other command line, so that every way to
 * install socketproxy can be checked against the one list in `deno.json`.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** The checkout's root directory, with a trailing slash. */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** The permission flags (`--allow-*`, `-A`, `--deny-*`) among `args`, sorted. */
export function permissionFlags(args: readonly string[]): string[] {
  return args.filter((arg) => /^(--allow-|--deny-|-A$|--permission-set|-P)/.test(arg)).sort();
}

/**
 * Splits a shell command line into words as a POSIX shell does for the
 * quoting the docs and the workflow use: blanks separate, single and double
 * quotes group and are removed (`'--allow-env=SOCKETPROXY_*'`, quoted so
 * that no shell expands the `*`).
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const match of line.trim().matchAll(/(?:'[^']*'|"[^"]*"|[^\s'"]+)+/g)) {
    words.push(match[0].replace(/'([^']*)'|"([^"]*)"/g, "$1$2"));
  }
  return words;
}

/** The permission flags of a task of `deno.json` (`start`, `compile`), sorted. */
export function taskPermissions(task: "start" | "compile"): string[] {
  return permissionFlags(denoJson.tasks[task].split(" "));
}
