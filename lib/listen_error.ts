/**
 * Listen failures (port taken, no permission, no such address) as one-line
 * usage errors naming the flag and the address, for every command that
 * listens.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "./address.ts";
import { missingPermission, UsageError } from "./errors.ts";
import { describeError } from "./log.ts";

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
 * import { explainListenError } from "./listen_error.ts";
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
