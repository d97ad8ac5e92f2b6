/**
 * Addresses: a host and a TCP port, parsed from and formatted for people.
 * Every part of socketproxy speaks of its listeners and peers in these.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** A host and TCP port. */
export interface HostPort {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port, 0 to 65535. */
  port: number;
}

/** Options for {@linkcode parseHostPort}. */
export interface ParseHostPortOptions {
  /** Used for whichever of host and port the text leaves out; without it both are required. */
  defaults?: HostPort;
  /**
   * Whether port 0 (any free port) is accepted.
   * @default {false}
   */
  allowPortZero?: boolean;
}

const HOSTNAME = /^[A-Za-z0-9_.-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?$/;

/**
 * Parses `HOST:PORT`, `HOST`, `:PORT`, `[IPV6]:PORT` or `[IPV6]`; a missing
 * host or port is taken from `defaults`.
 *
 * @param text The address as written.
 * @param what The flag or argument, for error messages.
 * @param options Defaults and whether port 0 is allowed.
 * @returns The host and port.
 * @throws {UsageError} When the text is not an address.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./address.ts";
 *
 * const addr = parseHostPort(":7000", "--proxy", {
 *   defaults: { hostname: "localhost", port: 9009 },
 * });
 * console.assert(addr.hostname === "localhost" && addr.port === 7000);
 * ```
 */
export function parseHostPort(
  text: string,
  what: string,
  options: ParseHostPortOptions = {},
): HostPort {
  const { defaults } = options;
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? "";
    port = bracketed[2];
  } else if ((text.match(/:/g)?.length ?? 0) > 1) {
    host = text; // a bare IPv6 address: no port can follow without brackets
  } else {
    const colon = text.lastIndexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    port = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (text === "") throw new UsageError(`${what}: empty address`);
  if (host === "") {
    if (!defaults) throw new UsageError(`${what}: missing host in "${text}"`);
    host = defaults.hostname;
  } else if (!HOSTNAME.test(host) && !IPV6.test(host)) {
    throw new UsageError(`${what}: invalid host "${host}"`);
  }
  let portNumber: number;
  if (port === undefined || port === "") {
    if (!defaults) throw new UsageError(`${what}: missing port in "${text}" (expected HOST:PORT)`);
    portNumber = defaults.port;
  } else {
    portNumber = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
    const lowest = options.allowPortZero ? 0 : 1;
    if (!(portNumber >= lowest && portNumber <= 65535)) {
      throw new UsageError(`${what}: invalid port "${port}" (expected ${lowest} to 65535)`);
    }
  }
  return { hostname: host, port: portNumber };
}

/**
 * Formats an address for messages and logs, bracketing IPv6 hosts.
 *
 * @param addr The address.
 * @returns For example `localhost:9009` or `[::1]:9009`.
 */
export function formatHostPort(addr: HostPort): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Formats a connection's remote address for logs, as `host:port`.
 *
 * @param conn The connection.
 * @returns For example `127.0.0.1:52144` or `[::1]:52144`.
 */
export function peerAddress(conn: { readonly remoteAddr: Deno.Addr }): string {
  const addr = conn.remoteAddr;
  return addr.transport === "tcp" ? formatHostPort(addr) : addr.transport;
}

/**
 * Whether a host is this machine's loopback: `localhost` (and names under
 * it), 127.0.0.0/8 or ::1.
 *
 * @param hostname A host name or address (IPv6 without brackets).
 * @returns `true` for a loopback host.
 *
 * @example
 * ```ts
 * import { isLoopbackHost } from "./address.ts";
 *
 * console.assert(isLoopbackHost("127.0.0.2") && isLoopbackHost("::1") && !isLoopbackHost("0.0.0.0"));
 * ```
 */
export function isLoopbackHost(hostname: string): boolean {
  const name = hostname.toLowerCase();
  return name === "localhost" || name.endsWith(".localhost") || name === "::1" ||
    /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
