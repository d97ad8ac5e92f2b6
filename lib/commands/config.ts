/**
 * Configuration values: the parsers for addresses, sizes and durations that
 * the command line uses, and the server's settings with their defaults.
 *
 * Every parser throws a {@linkcode UsageError} whose message names the flag
 * and quotes the offending value, so the command line can print it as is.
 *
 * @module
 */

import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../log.ts";

/**
 * A failure a command reports as one line on stderr, without a stack trace,
 * exiting with {@linkcode CommandError.exitCode}.
 *
 * @example
 * ```ts
 * import { CommandError } from "./config.ts";
 *
 * const error = new CommandError("no socketproxy admin port answering on localhost:9010", 1);
 * console.assert(error.exitCode === 1);
 * ```
 */
export class CommandError extends Error {
  /** The process exit status for this error. */
  readonly exitCode: number;

  /**
   * Creates a command error.
   *
   * @param message What went wrong, in one line.
   * @param exitCode The exit status.
   */
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "CommandError";
    this.exitCode = exitCode;
  }
}

/**
 * A mistake in how a command was invoked: printed as one line, exit status 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./config.ts";
 *
 * const error = new UsageError('--buffer: cannot parse size "1x"');
 * console.assert(error.exitCode === 2);
 * ```
 */
export class UsageError extends CommandError {
  /**
   * Creates a usage error.
   *
   * @param message What is wrong, in one line.
   */
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

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
 * import { parseHostPort } from "./config.ts";
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

const SIZE_UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Parses a byte size: a whole number with an optional binary `k`, `m` or `g`
 * suffix (`64k` is 65 536 bytes).
 *
 * @param text The size as written.
 * @param what The flag, for error messages.
 * @returns The size in bytes.
 * @throws {UsageError} When the text is not a size.
 *
 * @example
 * ```ts
 * import { parseSize } from "./config.ts";
 *
 * console.assert(parseSize("64k", "--buffer") === 65536);
 * ```
 */
export function parseSize(text: string, what: string): number {
  const match = /^(\d+)([kmg]?)b?$/i.exec(text);
  if (!match) {
    throw new UsageError(
      `${what}: cannot parse size "${text}" (expected bytes, or k, m, g suffix)`,
    );
  }
  const bytes = Number(match[1]) * (SIZE_UNITS[(match[2] ?? "").toLowerCase()] ?? NaN);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${what}: size "${text}" is too large`);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration: a number with an `ms`, `s`, `m` or `h` suffix; a bare
 * number counts seconds.
 *
 * @param text The duration as written.
 * @param what The flag, for error messages.
 * @returns The duration in milliseconds.
 * @throws {UsageError} When the text is not a duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./config.ts";
 *
 * console.assert(parseDuration("1.5s", "--handshake-timeout") === 1500);
 * console.assert(parseDuration("90", "--idle-timeout") === 90_000);
 * ```
 */
export function parseDuration(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!match) {
    throw new UsageError(
      `${what}: cannot parse duration "${text}" (expected a number with ms, s, m or h)`,
    );
  }
  const ms = Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? "s"] ?? NaN));
  // setTimeout cannot wait longer than 2^31 - 1 ms (about 24.8 days).
  if (!(ms <= 2 ** 31 - 1)) throw new UsageError(`${what}: duration "${text}" is too long`);
  return ms;
}

/**
 * Parses a whole number of at least `min`.
 *
 * @param text The number as written.
 * @param what The flag, for error messages.
 * @param min The smallest value accepted.
 * @returns The number.
 * @throws {UsageError} When the text is not such a number.
 */
export function parseCount(text: string, what: string, min: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(Number.isSafeInteger(value) && value >= min)) {
    throw new UsageError(`${what}: expected a whole number of at least ${min}, got "${text}"`);
  }
  return value;
}

/**
 * Checks that a text is a log level.
 *
 * @param text The level as written.
 * @param what The flag, for error messages.
 * @returns The level.
 * @throws {UsageError} When the text is not a level.
 */
export function parseLogLevel(text: string, what: string): LogLevel {
  const level = LOG_LEVELS.find((candidate) => candidate === text);
  if (!level) {
    throw new UsageError(`${what}: unknown level "${text}" (expected ${LOG_LEVELS.join(", ")})`);
  }
  return level;
}

/**
 * Checks that a text is a log format.
 *
 * @param text The format as written.
 * @param what The flag, for error messages.
 * @returns The format.
 * @throws {UsageError} When the text is not a format.
 */
export function parseLogFormat(text: string, what: string): LogFormat {
  const format = LOG_FORMATS.find((candidate) => candidate === text);
  if (!format) {
    throw new UsageError(
      `${what}: unknown format "${text}" (expected ${LOG_FORMATS.join(" or ")})`,
    );
  }
  return format;
}

/** Everything the proxy server needs to run. */
export interface ServerConfig {
  /** Where the server reaches the destination on `NEW`. */
  destination: HostPort;
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
  tls: null,
};

/**
 * The ports `fetch` refuses to connect to, whatever answers there: the
 * Fetch standard's "bad ports" that browsers block, as Deno 2.9 blocks them
 * (`ext/fetch/26_fetch.js`, checked against every port from 1 to 65535).
 */
export const FETCH_BLOCKED_PORTS: ReadonlySet<number> = new Set([
  1,
  7,
  9,
  11,
  13,
  15,
  17,
  19,
  20,
  21,
  22,
  23,
  25,
  37,
  42,
  43,
  53,
  69,
  77,
  79,
  87,
  95,
  101,
  102,
  103,
  104,
  109,
  110,
  111,
  113,
  115,
  117,
  119,
  123,
  135,
  137,
  139,
  143,
  161,
  179,
  389,
  427,
  465,
  512,
  513,
  514,
  515,
  526,
  530,
  531,
  532,
  540,
  548,
  554,
  556,
  563,
  587,
  601,
  636,
  989,
  990,
  993,
  995,
  1719,
  1720,
  1723,
  2049,
  3659,
  4045,
  4190,
  5060,
  5061,
  6000,
  6566,
  6665,
  6666,
  6667,
  6668,
  6669,
  6679,
  6697,
  10080,
]);

/**
 * Says why an HTTP port cannot be reached with `fetch` (by `socketproxy
 * status` and `close`, or a browser), or `undefined` when it can.
 *
 * @param port The TCP port.
 * @returns The reason, to go after the flag in a message.
 *
 * @example
 * ```ts
 * import { fetchBlockedPort } from "./config.ts";
 *
 * console.assert(fetchBlockedPort(6000) === "port 6000 is one that fetch refuses (a browser-blocked port)");
 * console.assert(fetchBlockedPort(9010) === undefined);
 * ```
 */
export function fetchBlockedPort(port: number): string | undefined {
  return FETCH_BLOCKED_PORTS.has(port)
    ? `port ${port} is one that fetch refuses (a browser-blocked port)`
    : undefined;
}

/** The environment variable that holds the admin token. */
export const TOKEN_VARIABLE = "SOCKETPROXY_ADMIN_TOKEN";

/** What to do when {@linkcode TOKEN_VARIABLE} cannot be read (see {@linkcode canReadTokenVariable}). */
export const TOKEN_UNREADABLE_HINT =
  `run with --allow-env=${TOKEN_VARIABLE} (deno task start does), or pass --admin-token`;

/**
 * Whether this process may read {@linkcode TOKEN_VARIABLE} (Deno's
 * `--allow-env`); without it, a token set there cannot be seen.
 *
 * @returns `true` when the variable can be read.
 */
export function canReadTokenVariable(): boolean {
  return Deno.permissions.querySync({ name: "env", variable: TOKEN_VARIABLE }).state === "granted";
}

/**
 * Reads the admin token from the environment, when this process may.
 *
 * @returns The token, or `undefined` when unset or not readable.
 * @throws {UsageError} When the token is not printable ASCII without spaces.
 */
export function tokenFromEnvironment(): string | undefined {
  if (!canReadTokenVariable()) return undefined;
  const token = Deno.env.get(TOKEN_VARIABLE);
  return token ? parseAdminToken(token, TOKEN_VARIABLE) : undefined;
}

/**
 * Checks an admin token: printable ASCII without spaces, as an HTTP header allows.
 *
 * @param text The token.
 * @param what Where it came from, for error messages.
 * @returns The token.
 * @throws {UsageError} When it is not.
 */
export function parseAdminToken(text: string, what: string): string {
  if (!/^[\x21-\x7e]+$/.test(text)) {
    throw new UsageError(`${what}: the token must be printable ASCII without spaces`);
  }
  return text;
}

/**
 * Gives up reading files, once the command line's files (TLS certificates
 * and keys) have been read: a long-running server that a peer managed to
 * subvert still could not read the machine's files. Call it from commands
 * only, never from library code (a test runner calling it would lose its
 * own file access).
 *
 * @returns `"off"` when reading files is no longer allowed, `"on"` when it
 * could not be given up, for the startup log.
 */
export function dropFileReads(): "on" | "off" {
  Deno.permissions.revokeSync({ name: "read" });
  return Deno.permissions.querySync({ name: "read" }).state === "granted" ? "on" : "off";
}

/**
 * Reads a PEM file named on the command line.
 *
 * @param path The file.
 * @param what The flag, for error messages.
 * @returns Its text.
 * @throws {UsageError} When it cannot be read or holds no PEM block.
 */
export function readPemFile(path: string, what: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ? "permission denied"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new UsageError(`${what}: cannot read "${path}": ${reason}`);
  }
  if (!/-----BEGIN [A-Z ]+-----/.test(text)) {
    throw new UsageError(`${what}: "${path}" holds no PEM data`);
  }
  return text;
}

/**
 * Reads `--tls` and `--ca` (which implies `--tls`) into client TLS options.
 *
 * @param tls Whether `--tls` was given.
 * @param ca The `--ca` file, if any.
 * @returns The options, or `undefined` for plain TCP.
 * @throws {UsageError} When the CA file cannot be read.
 */
export function tlsOptions(
  tls: boolean,
  ca: string | undefined,
): { caCerts?: string[] } | undefined {
  if (ca !== undefined) return { caCerts: [readPemFile(ca, "--ca")] };
  return tls ? {} : undefined;
}
