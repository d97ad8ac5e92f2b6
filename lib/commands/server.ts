/**
 * `socketproxy server`: parses the command line into a
 * {@linkcode ServerConfig}, runs the service (proxy server and admin API)
 * until SIGINT or SIGTERM, then shuts it down cleanly.
 *
 * @module
 */

import { listFlag, parseFlags, printOut, stringFlag } from "./cli.ts";
import {
  canReadTokenVariable,
  certificateOptions,
  dropFileReads,
  fetchBlockedPort,
  parseAdminToken,
  parseAllowHost,
  parseCount,
  parseDuration,
  parseLogFormat,
  parseLogLevel,
  parseSize,
  positiveDuration,
  TOKEN_UNREADABLE_HINT,
  TOKEN_VARIABLE,
  tokenFromEnvironment,
} from "./config.ts";
import { formatHostPort, type HostPort, isLoopbackHost, parseHostPort } from "../address.ts";
import { type NamedDestination, SERVER_DEFAULTS, type ServerConfig } from "../proxy/config.ts";
import type { ProxyHeaderVersion } from "../proxy/proxy_header.ts";
import { DEFAULT_DESTINATION } from "../proxy/session_store.ts";
import { DESTINATION_NAME_PATTERN } from "../protocol.ts";
import { parseRange } from "../ip.ts";
import { NODE_PATTERN } from "../proxy/credentials.ts";
import { UsageError } from "../errors.ts";
import { type LogFields, Logger } from "../log.ts";
import { Service } from "../admin/service.ts";
import {
  SIGNAL_EXIT_STATUS,
  STOP_DEADLINE_MS,
  stopByDeadline,
  watchStopSignals,
} from "./signals.ts";
import { VERSION } from "../version.ts";

/** The help text of `socketproxy server`. */
export const SERVER_USAGE = `Usage: socketproxy server [options] [DEST_HOST:DEST_PORT]

Runs the proxy: clients connect to the proxy port, and each session keeps
one connection to DEST_HOST:DEST_PORT (the default destination) or to a
named one (NEW to=NAME) open across client connections. Give DEST, or
--destination at least once, or both.

Options:
  --destination=NAME=HOST:PORT[,send-proxy=v1|v2]
                                  a named destination, for NEW to=NAME
                                  (repeatable); its own PROXY header choice
  --send-proxy=v1|v2              write a PROXY protocol header (HAProxy's,
                                  text v1 or binary v2) with the client's
                                  address to DEST before any byte (default: none)
  --node=NAME                     start every session id with NAME_ (1 to 24 of
                                  A-Z a-z 0-9 -), so that routers in a cluster
                                  can find this server from the id
  --drain-timeout=DURATION        how long a drain (socketproxy drain) waits for
                                  sessions to end before closing the rest and
                                  exiting (default 10m)
  --trust-from=CIDR,...|none      peers whose NEW from=ADDRESS (the end user's
                                  address, from a gateway) is believed; others
                                  get ERR untrusted (default
                                  127.0.0.0/8,::1/128: this machine)
  --proxy=[HOST][:PORT]           where clients connect (default localhost:9009)
  --admin=[HOST][:PORT]|off       the management port (default localhost:9010)
  --buffer=SIZE                   retained output per session; bytes, or with
                                  a k, m or g suffix (default 1m)
  --idle-timeout=DURATION         close sessions detached this long; 0 = never
                                  (default 1h)
  --handshake-timeout=DURATION    time allowed for a complete hello (default 10s)
  --connect-timeout=DURATION      time allowed to reach DEST (default 10s)
  --max-sessions=N                NEW beyond this answers ERR busy (default 10000)
  --admin-token=TOKEN             require "Authorization: Bearer TOKEN" on the
                                  admin port (default: $SOCKETPROXY_ADMIN_TOKEN;
                                  prefer the variable: flags show in ps)
  --allow-host=NAME               a host name the admin port answers for, besides
                                  loopback names and IP addresses (repeatable;
                                  .example.com: every name under it)
  --tls-cert=FILE, --tls-key=FILE TLS on the proxy port: PEM certificate chain
                                  and private key (both or neither)
  --log-level=LEVEL               debug, info, warn or error (default info)
  --log-format=FORMAT             text or json (default text)
  -h, --help                      show this help

DURATION is a number with ms, s, m or h; a bare number counts seconds.`;

const FLAGS = {
  destination: { type: "string", multiple: true },
  "send-proxy": { type: "string" },
  "trust-from": { type: "string", multiple: true },
  node: { type: "string" },
  "drain-timeout": { type: "string" },
  proxy: { type: "string" },
  admin: { type: "string" },
  buffer: { type: "string" },
  "idle-timeout": { type: "string" },
  "handshake-timeout": { type: "string" },
  "connect-timeout": { type: "string" },
  "max-sessions": { type: "string" },
  "admin-token": { type: "string" },
  "allow-host": { type: "string", multiple: true },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses the arguments of `socketproxy server`.
 *
 * @param args The arguments after `server`.
 * @returns The configuration, or `"help"` when help was asked for.
 * @throws {UsageError} For any invalid flag, value or argument.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./server.ts";
 *
 * const config = parseServerArgs(["--buffer=64k", "example.com:23"]);
 * console.assert(config !== "help" && config.bufferSize === 65536);
 * ```
 */
export function parseServerArgs(args: string[]): ServerConfig | "help" {
  const flags = parseFlags(args, FLAGS);
  if (flags.values.help) return "help";
  // The flags first: "--buffer h:1" (a size forgotten) then says what is
  // wrong with "h:1" as a size, rather than that DEST is missing.
  const config: Omit<ServerConfig, "destination"> = { ...SERVER_DEFAULTS };
  const value = (name: keyof typeof FLAGS): string | undefined => stringFlag(flags, name);
  const listenAt = (text: string, what: string, defaults: HostPort): HostPort =>
    parseHostPort(text, what, { defaults, allowPortZero: true });
  const proxy = value("proxy");
  if (proxy !== undefined) config.proxy = listenAt(proxy, "--proxy", SERVER_DEFAULTS.proxy);
  const admin = value("admin");
  if (admin === "off") config.admin = null;
  else if (admin !== undefined) {
    config.admin = listenAt(admin, "--admin", SERVER_DEFAULTS.admin ?? SERVER_DEFAULTS.proxy);
    const blocked = fetchBlockedPort(config.admin.port);
    if (blocked !== undefined) {
      throw new UsageError(
        `--admin: ${blocked}, so status and close could not reach it; choose another`,
      );
    }
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
  const format = value("log-format");
  if (format !== undefined) config.logFormat = parseLogFormat(format, "--log-format");
  const flag = value("admin-token");
  const token = flag === undefined
    ? tokenFromEnvironment()
    : parseAdminToken(flag, "--admin-token");
  if (token !== undefined) config.adminToken = token;
  config.adminAllowHosts = listFlag(flags, "allow-host").map((name) =>
    parseAllowHost(name, "--allow-host")
  );
  const tls = certificateOptions(value("tls-cert"), value("tls-key"));
  if (tls) config.tls = tls;
  const sendProxy = value("send-proxy");
  if (sendProxy !== undefined) config.sendProxy = parseProxyVersion(sendProxy, "--send-proxy");
  config.destinations = parseDestinations(listFlag(flags, "destination"), config.sendProxy);
  const node = value("node");
  if (node !== undefined) {
    if (!NODE_PATTERN.test(node)) {
      throw new UsageError(`--node: 1 to 24 characters of A-Z a-z 0-9 -, not "${node}"`);
    }
    config.node = node;
  }
  const drainTimeout = value("drain-timeout");
  if (drainTimeout !== undefined) {
    config.drainTimeout = positiveDuration(drainTimeout, "--drain-timeout");
  }
  const trust = listFlag(flags, "trust-from");
  if (trust.length > 0) config.trustFrom = parseTrustFrom(trust);
  const [dest, ...extra] = flags.positionals;
  if (dest === undefined && config.destinations.length === 0) {
    throw new UsageError("missing DEST_HOST:DEST_PORT (or --destination=NAME=HOST:PORT)");
  }
  if (extra.length > 0) {
    throw new UsageError(`expected one DEST_HOST:DEST_PORT, got also "${extra.join(" ")}"`);
  }
  return {
    ...config,
    destination: dest === undefined ? null : parseHostPort(dest, "DEST_HOST:DEST_PORT"),
  };
}

function parseProxyVersion(text: string, what: string): ProxyHeaderVersion {
  if (text === "v1" || text === "v2") return text;
  throw new UsageError(`${what}: expected v1 or v2, not "${text}"`);
}

/** `--destination=NAME=HOST:PORT[,send-proxy=v1|v2]`, each name once. */
function parseDestinations(
  texts: string[],
  sendProxy: ProxyHeaderVersion | null,
): NamedDestination[] {
  const named: NamedDestination[] = [];
  for (const text of texts) {
    const [spec = "", ...options] = text.split(",");
    const equals = spec.indexOf("=");
    const name = spec.slice(0, Math.max(0, equals));
    if (equals < 0 || !DESTINATION_NAME_PATTERN.test(name)) {
      throw new UsageError(
        `--destination: expected NAME=HOST:PORT (NAME: 1 to 64 of A-Z a-z 0-9 _ . -), not "${text}"`,
      );
    }
    if (name === DEFAULT_DESTINATION) {
      throw new UsageError(
        `--destination: "${name}" is the positional DEST's name; choose another`,
      );
    }
    if (named.some((other) => other.name === name)) {
      throw new UsageError(`--destination: ${name} is given twice`);
    }
    let own = sendProxy;
    for (const option of options) {
      const [key, choice = ""] = option.split("=");
      if (key !== "send-proxy") {
        throw new UsageError(
          `--destination ${name}: unknown option "${option}" (send-proxy=v1|v2)`,
        );
      }
      own = parseProxyVersion(choice, `--destination ${name}: send-proxy`);
    }
    const addr = parseHostPort(spec.slice(equals + 1), `--destination ${name}`);
    named.push({ name, addr, sendProxy: own });
  }
  return named;
}

/** `--trust-from`: CIDR ranges, comma-separated or repeated; `none` trusts nobody. */
function parseTrustFrom(texts: string[]): string[] {
  const ranges = texts.flatMap((text) => text.split(","));
  if (ranges.includes("none")) {
    if (ranges.length > 1) throw new UsageError("--trust-from: none cannot go with ranges");
    return [];
  }
  for (const range of ranges) {
    if (!parseRange(range)) {
      throw new UsageError(
        `--trust-from: "${range}" is not an address or CIDR range (10.0.0.0/8, 2001:db8::/32)`,
      );
    }
  }
  return ranges;
}

/**
 * What a server about to start with `config` warns of: an admin token in
 * the environment that Deno may not read, and an admin port off loopback
 * with no token.
 *
 * @param config The configuration.
 * @returns The warnings, as log events.
 */
export function startupWarnings(config: ServerConfig): { event: string; fields: LogFields }[] {
  const warnings: { event: string; fields: LogFields }[] = [];
  if (config.admin === null || config.adminToken !== null) return warnings;
  if (!canReadTokenVariable()) {
    // A token set in the environment would be silently ignored: say so.
    warnings.push({
      event: "admin.token_unreadable",
      fields: { variable: TOKEN_VARIABLE, hint: TOKEN_UNREADABLE_HINT },
    });
  }
  if (!isLoopbackHost(config.admin.hostname)) {
    // Anyone who can reach that address can list and close every session.
    warnings.push({
      event: "admin.no_token",
      fields: {
        admin: formatHostPort(config.admin),
        hint: `set ${TOKEN_VARIABLE}, or keep --admin on a loopback address`,
      },
    });
  }
  return warnings;
}

/**
 * Runs `socketproxy server` until SIGINT or SIGTERM, then stops cleanly: no
 * new connections, health answers 503, every connection is closed, a
 * summary is logged and the exit status is 0, within two seconds. A second
 * signal exits at once.
 *
 * @param args The arguments after `server`.
 * @returns The exit status.
 * @throws {UsageError} For invalid arguments or an unusable address.
 */
export async function serverCommand(args: string[]): Promise<number> {
  const config = parseServerArgs(args);
  if (config === "help") {
    printOut(SERVER_USAGE);
    return 0;
  }
  const logger = new Logger({ level: config.logLevel, format: config.logFormat });
  using signals = watchStopSignals((signal) => {
    logger.warn("server.killed", { signal });
    Deno.exit(SIGNAL_EXIT_STATUS[signal] ?? 1);
  });
  for (const warning of startupWarnings(config)) logger.warn(warning.event, warning.fields);
  const service = await Service.start(config, { logger });
  const fileReads = dropFileReads();
  logger.info("server.listening", {
    version: VERSION,
    proxy: formatHostPort(service.proxy.addr),
    admin: service.admin ? formatHostPort(service.admin.addr) : "off",
    destination: config.destination ? formatHostPort(config.destination) : "none",
    destinations: config.destinations.length === 0
      ? undefined
      : config.destinations.map((named) => `${named.name}=${formatHostPort(named.addr)}`).join(","),
    send_proxy: config.sendProxy ?? undefined,
    node: config.node ?? undefined,
    buffer: config.bufferSize,
    max_sessions: config.maxSessions,
    admin_token: config.adminToken === null ? "none" : "required",
    tls: config.tls ? "on" : "off",
    file_reads: fileReads,
  });

  // A signal, or the end of a drain (socketproxy drain), which stops the service itself.
  const signal = await Promise.race([signals.first, service.stopped.then(() => null)]);
  if (signal !== null) {
    logger.info("server.stopping", { signal, sessions: service.proxy.store.size });
    await stopByDeadline(() => service.stop(), () => {
      logger.warn("server.stop_deadline", { after_ms: STOP_DEADLINE_MS });
    });
  }
  const totals = service.proxy.counters;
  logger.info("server.stopped", {
    sessions_created: totals.sessionsCreated,
    sessions_ended: totals.sessionsEnded,
    sessions_expired: totals.sessionsExpired,
    connections_accepted: totals.connectionsAccepted,
    bytes_in: totals.bytesIn,
    bytes_out: totals.bytesOut,
    gaps: totals.gaps,
    auth_failures: totals.authFailures,
  });
  return 0;
}
