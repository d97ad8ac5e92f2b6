/**
 * Command-line values: the parsers for sizes, durations, counts, log
 * settings and listen addresses, the admin token and the TLS files the
 * commands read.
 *
 * Every parser throws a {@linkcode UsageError} whose message names the flag
 * and quotes the offending value, so the command line can print it as is.
 *
 * @module
 */

import { type HostPort, parseHostPort } from "../address.ts";
import { UsageError } from "../errors.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../log.ts";

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
 * Parses a duration that must be more than zero.
 *
 * @param text The duration as written (see {@linkcode parseDuration}).
 * @param what The flag, for error messages.
 * @returns Milliseconds.
 * @throws {UsageError} When it cannot be parsed, or is zero.
 */
export function positiveDuration(text: string, what: string): number {
  const ms = parseDuration(text, what);
  if (ms === 0) throw new UsageError(`${what}: must be more than 0`);
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
 * Reads a text file named by a setting (a TLS file, a token file, the
 * `--config` file).
 *
 * @param path The file.
 * @param what Where its name came from, for error messages.
 * @returns Its text.
 * @throws {UsageError} When it cannot be read, naming the file and why.
 */
export function readTextFile(path: string, what: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ? "permission denied"
      : error instanceof Deno.errors.IsADirectory
      ? "a directory"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new UsageError(`${what}: cannot read "${path}": ${reason}`);
  }
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
  const text = readTextFile(path, what);
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
 * @param what Where the `--ca` file's name came from, for error messages.
 * @returns The options, or `undefined` for plain TCP.
 * @throws {UsageError} When the CA file cannot be read.
 */
export function tlsOptions(
  tls: boolean,
  ca: string | undefined,
  what = "--ca",
): { caCerts?: string[] } | undefined {
  if (ca !== undefined) return { caCerts: [readPemFile(ca, what)] };
  return tls ? {} : undefined;
}

/**
 * The certificate and key of a TLS listener, from `--tls-cert` and
 * `--tls-key`, which go together.
 *
 * @param cert The `--tls-cert` file, if given.
 * @param key The `--tls-key` file, if given.
 * @param labels Where the two names came from, for error messages.
 * @returns Both PEM texts, or `undefined` when neither flag was given.
 * @throws {UsageError} When only one is given, or a file cannot be read.
 */
export function certificateOptions(
  cert: string | undefined,
  key: string | undefined,
  labels: { cert: string; key: string } = { cert: "--tls-cert", key: "--tls-key" },
): { cert: string; key: string } | undefined {
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together: give both, or neither");
  }
  if (cert === undefined || key === undefined) return undefined;
  return { cert: readPemFile(cert, labels.cert), key: readPemFile(key, labels.key) };
}

/**
 * Parses where an optional port listens, `[HOST:]PORT`: a bare port (`9100`
 * or `:9100`) is on `localhost`, this machine's loopbacks, and port 0 is
 * any free port.
 *
 * @param text The address as written.
 * @param what The flag, for error messages.
 * @returns The host and port.
 * @throws {UsageError} When the text is not an address with a port.
 *
 * @example
 * ```ts
 * import { parseListenAddress } from "./config.ts";
 *
 * console.assert(parseListenAddress("9100", "--metrics").hostname === "localhost");
 * console.assert(parseListenAddress("0.0.0.0:9100", "--metrics").hostname === "0.0.0.0");
 * ```
 */
export function parseListenAddress(text: string, what: string): HostPort {
  // The host defaults to localhost; the port has no default (-1 marks it missing).
  const addr = parseHostPort(/^\d+$/.test(text) ? `:${text}` : text, what, {
    defaults: { hostname: "localhost", port: -1 },
    allowPortZero: true,
  });
  if (addr.port < 0) {
    throw new UsageError(`${what}: missing port in "${text}" (expected [HOST:]PORT)`);
  }
  return addr;
}

/**
 * Checks a host name given to `--allow-host`: a name, or `.example.com` for
 * every name under example.com.
 *
 * @param text The name as written.
 * @param what The flag, for error messages.
 * @returns The name, lower case.
 * @throws {UsageError} When it is not a host name.
 *
 * @example
 * ```ts
 * import { parseAllowHost } from "./config.ts";
 *
 * console.assert(parseAllowHost("Play.Example.com", "--allow-host") === "play.example.com");
 * ```
 */
export function parseAllowHost(text: string, what: string): string {
  if (!/^\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(text)) {
    throw new UsageError(
      `${what}: "${text}" is not a host name (expected a name such as play.example.com, or .example.com for every name under it)`,
    );
  }
  return text.toLowerCase();
}

/**
 * Checks an origin given to `--allow-origin`: `http://` or `https://` with
 * a host and an optional port, and nothing after; or `*` for any.
 *
 * @param text The origin as written.
 * @param what The flag, for error messages.
 * @returns The origin, normalized (`https://play.example.com`).
 * @throws {UsageError} When it is not an origin.
 *
 * @example
 * ```ts
 * import { parseAllowOrigin } from "./config.ts";
 *
 * console.assert(parseAllowOrigin("https://Play.example.com:443", "--allow-origin") === "https://play.example.com");
 * ```
 */
export function parseAllowOrigin(text: string, what: string): string {
  if (text === "*") return text;
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // reported below
  }
  if (
    !url || (url.protocol !== "http:" && url.protocol !== "https:") ||
    text.replace(/\/$/, "") !== text.replace(/\/$/, "").split("/").slice(0, 3).join("/")
  ) {
    throw new UsageError(
      `${what}: "${text}" is not an origin (expected http:// or https:// with a host, such as https://play.example.com)`,
    );
  }
  return url.origin;
}
