/**
 * `socketproxy server`: parses the command line into a
 * {@linkcode ServerConfig}, runs the proxy server until SIGINT or SIGTERM,
 * then shuts it down cleanly.
 *
 * @module
 */

import { parseFlags, printOut, stringFlag } from "./cli.ts";
import {
  formatHostPort,
  type HostPort,
  parseCount,
  parseDuration,
  parseHostPort,
  parseLogLevel,
  parseSize,
  SERVER_DEFAULTS,
  type ServerConfig,
  UsageError,
} from "./config.ts";
import { describeError, Logger } from "./log.ts";
import { ProxyServer } from "./server.ts";
import { VERSION } from "./version.ts";

/** The help text of `socketproxy server`. */
export const SERVER_USAGE = `Usage: socketproxy server [options] DEST_HOST:DEST_PORT

Runs the proxy: clients connect to the proxy port, and each session keeps
one connection to DEST_HOST:DEST_PORT open across client connections.

Options:
  --proxy=[HOST][:PORT]           where clients connect (default localhost:9009)
  --admin=[HOST][:PORT]|off       the management port (default localhost:9010)
  --buffer=SIZE                   retained output per session; bytes, or with
                                  a k, m or g suffix (default 1m)
  --idle-timeout=DURATION         close sessions detached this long; 0 = never
                                  (default 1h)
  --handshake-timeout=DURATION    time allowed for a complete hello (default 10s)
  --connect-timeout=DURATION      time allowed to reach DEST (default 10s)
  --max-sessions=N                NEW beyond this answers ERR busy (default 10000)
  --log-level=LEVEL               debug, info, warn or error (default info)
  -h, --help                      show this help

DURATION is a number with ms, s, m or h; a bare number counts seconds.`;

const FLAGS = {
  proxy: { type: "string" },
  admin: { type: "string" },
  buffer: { type: "string" },
  "idle-timeout": { type: "string" },
  "handshake-timeout": { type: "string" },
  "connect-timeout": { type: "string" },
  "max-sessions": { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function positiveDuration(text: string, what: string): number {
  const ms = parseDuration(text, what);
  if (ms === 0) throw new UsageError(`${what}: must be more than 0`);
  return ms;
}

/**
 * Parses the arguments of `socketproxy server`.
 *
 * @param args The arguments after `server`.
 * @returns The configuration, or `"help"` when help was asked for.
 * @throws {UsageError} For any invalid flag, value or argument.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./server_command.ts";
 *
 * const config = parseServerArgs(["--buffer=64k", "example.com:23"]);
 * console.assert(config !== "help" && config.bufferSize === 65536);
 * ```
 */
export function parseServerArgs(args: string[]): ServerConfig | "help" {
  const flags = parseFlags(args, FLAGS);
  if (flags.values.help) return "help";
  const [dest, ...extra] = flags.positionals;
  if (dest === undefined) throw new UsageError("missing DEST_HOST:DEST_PORT");
  if (extra.length > 0) {
    throw new UsageError(`expected one DEST_HOST:DEST_PORT, got also "${extra.join(" ")}"`);
  }
  const config: ServerConfig = {
    ...SERVER_DEFAULTS,
    destination: parseHostPort(dest, "DEST_HOST:DEST_PORT"),
  };
  const value = (name: keyof typeof FLAGS): string | undefined => stringFlag(flags, name);
  const listenAt = (text: string, what: string, defaults: HostPort): HostPort =>
    parseHostPort(text, what, { defaults, allowPortZero: true });
  const proxy = value("proxy");
  if (proxy !== undefined) config.proxy = listenAt(proxy, "--proxy", SERVER_DEFAULTS.proxy);
  const admin = value("admin");
  if (admin === "off") config.admin = null;
  else if (admin !== undefined) {
    config.admin = listenAt(admin, "--admin", SERVER_DEFAULTS.admin ?? SERVER_DEFAULTS.proxy);
  }
  const buffer = value("buffer");
  if (buffer !== undefined) {
    config.bufferSize = parseSize(buffer, "--buffer");
    if (config.bufferSize === 0) throw new UsageError("--buffer: must be at least 1 byte");
  }
  const idle = value("idle-timeout");
  if (idle !== undefined) config.idleTimeout = parseDuration(idle, "--idle-timeout");
  const handshake = value("handshake-timeout");
  if (handshake !== undefined) {
    config.handshakeTimeout = positiveDuration(handshake, "--handshake-timeout");
  }
  const connect = value("connect-timeout");
  if (connect !== undefined) {
    config.connectTimeout = positiveDuration(connect, "--connect-timeout");
  }
  const max = value("max-sessions");
  if (max !== undefined) config.maxSessions = parseCount(max, "--max-sessions", 1);
  const level = value("log-level");
  if (level !== undefined) config.logLevel = parseLogLevel(level, "--log-level");
  return config;
}

/**
 * Starts listening, turning the errors a user can fix into usage errors.
 *
 * @param config The configuration.
 * @param logger Where the server logs.
 * @returns The running server.
 * @throws {UsageError} When the proxy address cannot be listened on.
 */
export function listenOrExplain(config: ServerConfig, logger: Logger): ProxyServer {
  try {
    return ProxyServer.listen({ ...config, logger });
  } catch (error) {
    const where = formatHostPort(config.proxy);
    if (error instanceof Deno.errors.AddrInUse) {
      throw new UsageError(`cannot listen on ${where}: address already in use`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`cannot listen on ${where}: permission denied`);
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(`cannot listen on ${where}: address not available on this machine`);
    }
    throw new UsageError(`cannot listen on ${where}: ${describeError(error)}`);
  }
}

/**
 * Runs `socketproxy server` until SIGINT or SIGTERM.
 *
 * @param args The arguments after `server`.
 * @returns The exit status.
 * @throws {UsageError} For invalid arguments or an unusable proxy address.
 */
export async function serverCommand(args: string[]): Promise<number> {
  const config = parseServerArgs(args);
  if (config === "help") {
    printOut(SERVER_USAGE);
    return 0;
  }
  const logger = new Logger({ level: config.logLevel });
  const server = listenOrExplain(config, logger);
  logger.info("server.listening", {
    version: VERSION,
    proxy: formatHostPort({ hostname: server.addr.hostname, port: server.addr.port }),
    destination: formatHostPort(config.destination),
    buffer: config.bufferSize,
    max_sessions: config.maxSessions,
  });
  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, () => stop(signal));
  const signal = await stopped;
  logger.info("server.stopping", { signal, sessions: server.store.size });
  await server.close();
  logger.info("server.stopped", { ...server.counters });
  return 0;
}
