/**
 * Listening where people expect: `localhost` means both loopbacks, one
 * socket on 127.0.0.1 and one on ::1 with the same port, as a client may
 * reach `localhost` by either. The proxy port (`proxy/server.ts`) and the
 * HTTP ports (`http/server.ts`) open theirs with {@linkcode listenLoopbacks}.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "./address.ts";
import { describeError, type Logger } from "./log.ts";

/** Options for {@linkcode listenLoopbacks}. */
export interface ListenLoopbacksOptions<T> {
  /** Opens one listener, throwing as `Deno.listen` does. */
  listen: (addr: HostPort) => T;
  /** Where a loopback that cannot be listened on is told. */
  logger: Logger;
  /** What listens, for that log line, such as `proxy` or `admin`. */
  name: string;
}

/**
 * Listens on `addr`; for `localhost`, on 127.0.0.1 and then on ::1 with
 * the port 127.0.0.1 got (the one asked for, or the free one port 0 found).
 * When ::1 cannot be listened on (no IPv6 here, or its port is another
 * program's), 127.0.0.1 alone serves, and one line says why.
 *
 * @param addr Where to listen.
 * @param options How to open a listener, and the logger and name for the log.
 * @returns The listeners, 127.0.0.1's first.
 * @throws {Deno.errors.AddrInUse} When the port is taken (on 127.0.0.1
 * for `localhost`), and whatever else `listen` throws there.
 *
 * @example Both loopbacks on one free port
 * ```ts
 * import { listenLoopbacks } from "./listen.ts";
 * import { Logger } from "./log.ts";
 *
 * const listeners = listenLoopbacks({ hostname: "localhost", port: 0 }, {
 *   listen: (addr) => Deno.listen(addr),
 *   logger: new Logger(),
 *   name: "example",
 * });
 * console.assert(listeners[0]?.addr.hostname === "127.0.0.1");
 * for (const listener of listeners) listener.close();
 * ```
 */
export function listenLoopbacks<T extends { readonly addr: Deno.NetAddr }>(
  addr: HostPort,
  options: ListenLoopbacksOptions<T>,
): [T, ...T[]] {
  if (addr.hostname !== "localhost") return [options.listen(addr)];
  const ipv4 = options.listen({ hostname: "127.0.0.1", port: addr.port });
  const ipv6 = { hostname: "::1", port: ipv4.addr.port };
  try {
    return [ipv4, options.listen(ipv6)];
  } catch (error) {
    reportIpv4Only(ipv6, error, options);
    return [ipv4];
  }
}

/**
 * {@linkcode listenLoopbacks} for a `listen` that completes later, such as
 * `node:http`'s.
 *
 * @param addr Where to listen.
 * @param options How to open a listener, and the logger and name for the log.
 * @returns The listeners, 127.0.0.1's first.
 * @throws {Deno.errors.AddrInUse} As {@linkcode listenLoopbacks}.
 */
export async function listenLoopbacksAsync<T extends { readonly addr: Deno.NetAddr }>(
  addr: HostPort,
  options: ListenLoopbacksOptions<Promise<T>>,
): Promise<[T, ...T[]]> {
  if (addr.hostname !== "localhost") return [await options.listen(addr)];
  const ipv4 = await options.listen({ hostname: "127.0.0.1", port: addr.port });
  const ipv6 = { hostname: "::1", port: ipv4.addr.port };
  try {
    return [ipv4, await options.listen(ipv6)];
  } catch (error) {
    reportIpv4Only(ipv6, error, options);
    return [ipv4];
  }
}

/** Logs that ::1 was left out, and why: a port taken there is worth a warning. */
function reportIpv4Only(
  ipv6: HostPort,
  error: unknown,
  options: { logger: Logger; name: string },
): void {
  const reason = ipv6Failure(error);
  // A port taken on ::1 answers localhost's IPv6 clients with another program.
  options.logger.log(reason === "ipv6_unavailable" ? "info" : "warn", "listen.ipv4_only", {
    name: options.name,
    skipped: formatHostPort(ipv6),
    reason,
    error: describeError(error),
  });
}

/** Errors of a listen on ::1 that say this machine has no IPv6 loopback. */
const NO_IPV6_CODES = new Set(["EADDRNOTAVAIL", "EAFNOSUPPORT", "EPROTONOSUPPORT"]);

/** Why ::1 could not be listened on, in a word for the log. */
function ipv6Failure(error: unknown): string {
  if (error instanceof Deno.errors.AddrInUse) return "port_taken";
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return "not_permitted";
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof Deno.errors.AddrNotAvailable || NO_IPV6_CODES.has(String(code))) {
    return "ipv6_unavailable";
  }
  return "failed";
}
