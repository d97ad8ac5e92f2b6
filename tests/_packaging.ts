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

/** The permission flags of a task of `deno.json` (`start`, `compile`), sorted. */
export function taskPermissions(task: "start" | "compile"): string[] {
  return permissionFlags(denoJson.tasks[task].split(" "));
}
