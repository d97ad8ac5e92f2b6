/**
 * `socketproxy server`: parses the command line into a
 * {@linkcode ServerConfig}, runs the service (proxy server and admin API)
 * until SIGINT or SIGTERM, then shuts it down cleanly.
 *
 * @module
 */

import { printOut } from "./cli.ts";
import { defineCommand, type ResolveOptions, resolveSettings, type Settings } from "./settings.ts";
import { formatUsage } from "./usage.ts";
import { LOG_SETTINGS, readLogSettings } from "./log_settings.ts";
import {
  canReadTokenVariable,
  certificateOptions,
  dropFileReads,
  fetchBlockedPort,
  parseAdminToken,
  parseAllowHost,
  parseCount,
  parseDuration,
  parseSize,
  positiveDuration,
  TOKEN_UNREADABLE_HINT,
  TOKEN_VARIABLE,
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

/** The settings of `socketproxy server`: its flags, variables and file keys. */
export const SERVER_COMMAND = defineCommand({
  command: "server",
  summary: "run the proxy server",
  intro: `Runs the proxy: clients connect to the proxy port, and each session keeps
one connection to DEST_HOST:DEST_PORT (the default destination) or to a
named one (NEW to=NAME) open across client connections. Give DEST, or
--destination at least once, or both.`,
  positional: {
    name: "dest",
    value: "DEST_HOST:DEST_PORT",
    help: "the default destination",
    optional: true,
    configurable: true,
  },
  check: true,
  settings: [
    {
      name: "destination",
      kind: "list",
      value: "NAME=HOST:PORT[,send-proxy=v1|v2]",
      help: "a named destination, for NEW to=NAME (repeatable); its own PROXY header choice",
      continues: /^send-proxy=/,
    },
    {
      name: "send-proxy",
      kind: "string",
      value: "v1|v2",
      help: "write a PROXY protocol header (HAProxy's, text v1 or binary v2) with the " +
        "client's address to DEST before any byte",
      default: "none",
      complete: ["v1", "v2"],
    },
    {
      name: "node",
      kind: "string",
      value: "NAME",
      help: "start every session id with NAME_ (1 to 24 of A-Z a-z 0-9 -), so that " +
        "routers in a cluster can find this server from the id",
    },
    {
      name: "drain-timeout",
      kind: "string",
      value: "DURATION",
      help: "how long a drain (socketproxy drain) waits for sessions to end before " +
        "closing the rest and exiting",
      default: "10m",
    },
    {
      name: "trust-from",
      kind: "list",
      value: "CIDR,...|none",
      help: "peers whose NEW from=ADDRESS (the end user's address, from a gateway) is " +
        "believed; others get ERR untrusted",
      default: "127.0.0.0/8,::1/128",
    },
    {
      name: "proxy",
      kind: "string",
      value: "[HOST][:PORT]",
      help: "where clients connect",
      default: "localhost:9009",
    },
    {
      name: "admin",
      kind: "string",
      value: "[HOST][:PORT]|off",
      help: "the management port",
      default: "localhost:9010",
    },
    {
      name: "buffer",
      kind: "string",
      value: "SIZE",
      help: "retained output per session; bytes, or with a k, m or g suffix",
      default: "1m",
    },
    {
      name: "idle-timeout",
      kind: "string",
      value: "DURATION",
      help: "close sessions detached this long; 0 = never",
      default: "1h",
    },
    {
      name: "handshake-timeout",
      kind: "string",
      value: "DURATION",
      help: "time allowed for a complete hello",
      default: "10s",
    },
    {
      name: "connect-timeout",
      kind: "string",
      value: "DURATION",
      help: "time allowed to reach DEST",
      default: "10s",
    },
    {
      name: "max-sessions",
      kind: "string",
      value: "N",
      help: "NEW beyond this answers ERR busy",
      default: "10000",
    },
    {
      name: "admin-token",
      kind: "string",
      value: "TOKEN",
      help: `require "Authorization: Bearer TOKEN" on the admin port; also ${TOKEN_VARIABLE} ` +
        "(prefer it, or --admin-token-file: flags show in ps)",
      secret: true,
      aliases: [TOKEN_VARIABLE],
    },
    {
      name: "allow-host",
      kind: "list",
      value: "NAME",
      help: "a host name the admin port answers for, besides loopback names and IP " +
        "addresses (repeatable; .example.com: every name under it)",
    },
    {
      name: "tls-cert",
      kind: "string",
      value: "FILE",
      help: "TLS on the proxy port: its PEM certificate chain (with --tls-key)",
      complete: "file",
    },
    {
      name: "tls-key",
      kind: "string",
      value: "FILE",
      help: "the private key of --tls-cert (both or neither)",
      complete: "file",
    },
    ...LOG_SETTINGS,
  ],
  notes: "DURATION is a number with ms, s, m or h; a bare number counts seconds.",
});

/** The help text of `socketproxy server`. */
export const SERVER_USAGE: string = formatUsage(SERVER_COMMAND);

/** The name of a setting of `socketproxy server`. */
export type ServerSetting = (typeof SERVER_COMMAND.settings)[number]["name"];

/**
 * Parses the arguments of `socketproxy server`, with the environment and
 * `--config` file behind them.
 *
 * @param args The arguments after `server`.
 * @param options Where variables are read (the process's environment by default).
 * @returns The configuration, or `"help"` when help was asked for.
 * @throws {UsageError} For any invalid flag, variable, file, value or argument.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./server.ts";
 * import { environmentOf } from "./settings.ts";
 *
 * const config = parseServerArgs(["--buffer=64k", "example.com:23"], {
 *   env: environmentOf({ SOCKETPROXY_SERVER_BUFFER: "4m", SOCKETPROXY_SERVER_MAX_SESSIONS: "50" }),
 * });
 * console.assert(config !== "help" && config.bufferSize === 65536 && config.maxSessions === 50);
 * ```
 */
export function parseServerArgs(
  args: string[],
  options: ResolveOptions = {},
): ServerConfig | "help" {
  const settings = resolveSettings(SERVER_COMMAND, args, options);
  return settings.help ? "help" : serverConfig(settings);
}

/**
 * Turns resolved settings into the server's configuration.
 *
 * @param settings The settings of `socketproxy server`.
 * @returns The configuration.
 * @throws {UsageError} For any invalid value, naming where it came from.
 */
export function serverConfig(settings: Settings<ServerSetting>): ServerConfig {
  // The flags first: "--buffer h:1" (a size forgotten) then says what is
  // wrong with "h:1" as a size, rather than that DEST is missing.
  const config: Omit<ServerConfig, "destination"> = { ...SERVER_DEFAULTS };
  const value = (name: ServerSetting): string | undefined => settings.string(name);
  const label = (name: ServerSetting): string => settings.label(name);
  const listenAt = (text: string, what: string, defaults: HostPort): HostPort =>
    parseHostPort(text, what, { defaults, allowPortZero: true });
  const proxy = value("proxy");
  if (proxy !== undefined) config.proxy = listenAt(proxy, label("proxy"), SERVER_DEFAULTS.proxy);
  const admin = value("admin");
  if (admin === "off") config.admin = null;
  else if (admin !== undefined) {
    config.admin = listenAt(
      admin,
      label("admin"),
      SERVER_DEFAULTS.admin ?? SERVER_DEFAULTS.proxy,
    );
    const blocked = fetchBlockedPort(config.admin.port);
    if (blocked !== undefined) {
      throw new UsageError(
        `${label("admin")}: ${blocked}, so status and close could not reach it; choose another`,
      );
    }
  }
  const buffer = value("buffer");
  if (buffer !== undefined) {
    config.bufferSize = parseSize(buffer, label("buffer"));
    if (config.bufferSize === 0) {
      throw new UsageError(`${label("buffer")}: must be at least 1 byte`);
    }
  }
  const idle = value("idle-timeout");
  if (idle !== undefined) config.idleTimeout = parseDuration(idle, label("idle-timeout"));
  const handshake = value("handshake-timeout");
  if (handshake !== undefined) {
    config.handshakeTimeout = positiveDuration(handshake, label("handshake-timeout"));
  }
  const connect = value("connect-timeout");
  if (connect !== undefined) {
    config.connectTimeout = positiveDuration(connect, label("connect-timeout"));
  }
  const max = value("max-sessions");
  if (max !== undefined) config.maxSessions = parseCount(max, label("max-sessions"), 1);
  Object.assign(config, readLogSettings(settings));
  const token = value("admin-token");
  if (token !== undefined) config.adminToken = parseAdminToken(token, label("admin-token"));
  config.adminAllowHosts = settings.list("allow-host").map((name) =>
    parseAllowHost(name, label("allow-host"))
  );
  const tls = certificateOptions(value("tls-cert"), value("tls-key"), {
    cert: label("tls-cert"),
    key: label("tls-key"),
  });
  if (tls) config.tls = tls;
  const sendProxy = value("send-proxy");
  if (sendProxy !== undefined) {
    config.sendProxy = parseProxyVersion(sendProxy, label("send-proxy"));
  }
  config.destinations = parseDestinations(
    settings.list("destination"),
    config.sendProxy,
    label("destination"),
  );
  const node = value("node");
  if (node !== undefined) {
    if (!NODE_PATTERN.test(node)) {
      throw new UsageError(
        `${label("node")}: 1 to 24 characters of A-Z a-z 0-9 -, not "${node}"`,
      );
    }
    config.node = node;
  }
  const drainTimeout = value("drain-timeout");
  if (drainTimeout !== undefined) {
    config.drainTimeout = positiveDuration(drainTimeout, label("drain-timeout"));
  }
  const trust = settings.list("trust-from");
  if (trust.length > 0) config.trustFrom = parseTrustFrom(trust, label("trust-from"));
  const [dest] = settings.positionals;
  if (dest === undefined && config.destinations.length === 0) {
    throw new UsageError("missing DEST_HOST:DEST_PORT (or --destination=NAME=HOST:PORT)");
  }
  return {
    ...config,
    destination: dest === undefined ? null : parseHostPort(dest, settings.positionalLabel()),
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
  what: string,
): NamedDestination[] {
  const named: NamedDestination[] = [];
  for (const text of texts) {
    const [spec = "", ...options] = text.split(",");
    const equals = spec.indexOf("=");
    const name = spec.slice(0, Math.max(0, equals));
    if (equals < 0 || !DESTINATION_NAME_PATTERN.test(name)) {
      throw new UsageError(
        `${what}: expected NAME=HOST:PORT (NAME: 1 to 64 of A-Z a-z 0-9 _ . -), not "${text}"`,
      );
    }
    if (name === DEFAULT_DESTINATION) {
      throw new UsageError(
        `${what}: "${name}" is the positional DEST's name; choose another`,
      );
    }
    if (named.some((other) => other.name === name)) {
      throw new UsageError(`${what}: ${name} is given twice`);
    }
    let own = sendProxy;
    for (const option of options) {
      const [key, choice = ""] = option.split("=");
      if (key !== "send-proxy") {
        throw new UsageError(
          `${what} ${name}: unknown option "${option}" (send-proxy=v1|v2)`,
        );
      }
      own = parseProxyVersion(choice, `${what} ${name}: send-proxy`);
    }
    const addr = parseHostPort(spec.slice(equals + 1), `${what} ${name}`);
    named.push({ name, addr, sendProxy: own });
  }
  return named;
}

/** `--trust-from`: CIDR ranges, comma-separated or repeated; `none` trusts nobody. */
function parseTrustFrom(texts: string[], what: string): string[] {
  const ranges = texts.flatMap((text) => text.split(","));
  if (ranges.includes("none")) {
    if (ranges.length > 1) throw new UsageError(`${what}: none cannot go with ranges`);
    return [];
  }
  for (const range of ranges) {
    if (!parseRange(range)) {
      throw new UsageError(
        `${what}: "${range}" is not an address or CIDR range (10.0.0.0/8, 2001:db8::/32)`,
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
  const settings = resolveSettings(SERVER_COMMAND, args);
  if (settings.help) {
    printOut(SERVER_USAGE);
    return 0;
  }
  const config = serverConfig(settings);
  if (settings.check) {
    const warnings = startupWarnings(config).map(({ event, fields }) =>
      `warning: ${event} ${Object.entries(fields).map(([key, text]) => `${key}=${text}`).join(" ")}`
    );
    printOut(
      ["socketproxy server: the configuration is valid", settings.report(), ...warnings].join(
        "\n",
      ),
    );
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
