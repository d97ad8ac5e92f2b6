/**
 * The proxy server's settings and their defaults.
 *
 * @module
 */

import type { HostPort } from "../address.ts";
import type { LogFormat, LogLevel } from "../log.ts";
import type { ProxyHeaderVersion } from "./proxy_header.ts";

/** A destination `NEW to=<name>` picks (`server --destination=NAME=HOST:PORT`). */
export interface NamedDestination {
  /** Its name: 1 to 64 of `[A-Za-z0-9_.-]`. */
  name: string;
  /** Its address. */
  addr: HostPort;
  /** The PROXY header it is sent, or `null` for none. */
  sendProxy: ProxyHeaderVersion | null;
}

/** Everything the proxy server needs to run. */
export interface ServerConfig {
  /**
   * Where the server reaches the destination on `NEW` without `to=`;
   * `null` when there are only named ones (then `NEW` alone is refused).
   */
  destination: HostPort | null;
  /** The PROXY protocol header sent to the default destination, or `null` for none. */
  sendProxy: ProxyHeaderVersion | null;
  /** Named destinations, for `NEW to=<name>`. */
  destinations: readonly NamedDestination[];
  /** CIDR ranges of the peers whose `NEW from=` is believed; empty trusts nobody. */
  trustFrom: readonly string[];
  /** The node name session ids start with (`NODE_<random>`), for routing in a cluster; `null` for none. */
  node: string | null;
  /** How long a drain (`POST /drain`) waits for sessions to end before closing the rest, in ms. */
  drainTimeout: number;
  /** Where clients connect. */
  proxy: HostPort;
  /** The management port, or `null` when disabled. */
  admin: HostPort | null;
  /** Per-session retained-output limit, in bytes. */
  bufferSize: number;
  /** How long a detached session lives, in ms; 0 means forever. */
  idleTimeout: number;
  /** Time allowed for a complete hello, in ms. */
  handshakeTimeout: number;
  /** Time allowed to reach the destination, in ms. */
  connectTimeout: number;
  /** Most sessions open at once. */
  maxSessions: number;
  /** Lowest log level written. */
  logLevel: LogLevel;
  /** Shape of log lines. */
  logFormat: LogFormat;
  /** The bearer token the admin API requires, or `null` for none. */
  adminToken: string | null;
  /** Host names the admin API answers besides loopback names, IP addresses and its own (`--allow-host`). */
  adminAllowHosts: readonly string[];
  /** TLS on the proxy port: PEM certificate chain and private key, or `null` for plain TCP. */
  tls: { cert: string; key: string } | null;
}

/** Defaults of {@linkcode ServerConfig}, apart from the destination. */
export const SERVER_DEFAULTS: Readonly<Omit<ServerConfig, "destination">> = {
  proxy: { hostname: "localhost", port: 9009 },
  admin: { hostname: "localhost", port: 9010 },
  bufferSize: 1024 ** 2,
  idleTimeout: 3_600_000,
  handshakeTimeout: 10_000,
  connectTimeout: 10_000,
  maxSessions: 10_000,
  logLevel: "info",
  logFormat: "text",
  adminToken: null,
  adminAllowHosts: [],
  tls: null,
  sendProxy: null,
  destinations: [],
  trustFrom: ["127.0.0.0/8", "::1/128"],
  node: null,
  drainTimeout: 600_000,
};
