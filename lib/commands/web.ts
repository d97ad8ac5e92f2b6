/**
 * `socketproxy web`: runs the HTTP gateway (the browser page and its JSON
 * and WebSocket API) in front of a socketproxy server.
 *
 * @module
 */

import { printOut } from "./cli.ts";
import { defineCommand, type ResolveOptions, resolveSettings, type Settings } from "./settings.ts";
import { formatUsage } from "./usage.ts";
import { LOG_SETTINGS, readLogSettings } from "./log_settings.ts";
import { HTTP_TIMEOUTS, type HttpTimeouts } from "../http/server.ts";
import {
  certificateOptions,
  dropFileReads,
  parseAllowHost,
  parseAllowOrigin,
  parseListenAddress,
  positiveDuration,
  tlsOptions,
} from "./config.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../address.ts";
import { SERVER_DEFAULTS } from "../proxy/config.ts";
import { explainListenError } from "../listen_error.ts";
import { type LogFormat, Logger, type LogLevel } from "../log.ts";
import { SIGNAL_EXIT_STATUS, watchStopSignals } from "./signals.ts";
import { VERSION } from "../version.ts";
import { GatewayMetrics, MetricsServer, WEB_ASSETS, WebGateway } from "../gateway/mod.ts";
import { type GatewayNode, NodeRouter } from "../gateway/router.ts";
import {
  formatNodes,
  parseNode,
  readProxiesFile,
  reloadOnHangup,
} from "../gateway/proxies_file.ts";
import { UsageError } from "../errors.ts";
import { DESTINATION_NAME_PATTERN } from "../protocol.ts";
import {
  parseTerminalKeys,
  parseTerminalSettings,
  TELNET_TERMINAL,
  type TerminalSettings,
} from "../gateway/terminal_settings.ts";

/** The settings of `socketproxy web`: its flags, variables and file keys. */
export const WEB_COMMAND = defineCommand({
  command: "web",
  summary: "the HTTP gateway and browser terminal",
  intro: `Runs the HTTP gateway: a browser terminal at / and a JSON and WebSocket API
under /api/, each request one short connection to the socketproxy server.
The gateway keeps no state: run as many as you like, restart them freely.
It holds back its answers to browsers that present wrong secrets.`,
  check: true,
  settings: [
    {
      name: "listen",
      kind: "string",
      value: "[HOST][:PORT]",
      help: "where browsers (or nginx) connect",
      default: "localhost:8080",
    },
    {
      name: "proxy",
      kind: "list",
      value: "[NAME=][HOST][:PORT]",
      help: "the socketproxy server; or, repeated, each node NAME=HOST:PORT of several run " +
        "with --node=NAME: NEW goes to one that accepts it, the rest to the node in the id",
      default: "localhost:9009",
    },
    {
      name: "proxies",
      kind: "string",
      value: "FILE",
      help: "the nodes from this file, NAME=HOST:PORT a line (# comments), " +
        "re-read on SIGHUP; instead of --proxy",
      complete: "file",
    },
    {
      name: "tls",
      kind: "boolean",
      help: "speak TLS to the proxy (a server run with --tls-cert)",
    },
    {
      name: "allow-host",
      kind: "list",
      value: "NAME",
      help: "a host name browsers reach the gateway by, besides loopback names, IP " +
        "addresses and the --listen host (repeatable; .example.com: every name under it)",
    },
    {
      name: "to",
      kind: "string",
      value: "NAME",
      help: "the server's destination NAME (server --destination=NAME=HOST:PORT) for a page " +
        "that names none (default: the server's own default destination)",
    },
    {
      name: "allow-destination",
      kind: "list",
      value: "NAME",
      help: "a destination a page may also choose with ?to=NAME (repeatable; by default only --to)",
    },
    {
      name: "terminal",
      kind: "list",
      value: "[NAME:]KEY=VALUE,...",
      help: "how the page speaks to destination NAME (without NAME: to the default): " +
        "mode=telnet|raw, charset=utf-8|latin1|cp437, line-ending=crlf|lf|cr, " +
        "local-echo=on|off (repeatable; default telnet, UTF-8)",
      continues: /^[A-Za-z-]+=/,
    },
    {
      name: "allow-origin",
      kind: "list",
      value: "URL",
      help: "another site whose pages may use the gateway, such as " +
        "https://play.example.com (repeatable; * allows any site, which is unsafe)",
    },
    {
      name: "ca",
      kind: "string",
      value: "FILE",
      help: "also trust this PEM certificate; implies --tls",
      complete: "file",
    },
    {
      name: "tls-cert",
      kind: "string",
      value: "FILE",
      help: "serve HTTPS and WSS with this PEM certificate chain (with --tls-key)",
      complete: "file",
    },
    {
      name: "tls-key",
      kind: "string",
      value: "FILE",
      help: "the private key of --tls-cert (both or neither)",
      complete: "file",
    },
    {
      name: "header-timeout",
      kind: "string",
      value: "DURATION",
      help: "a request's headers must arrive within this",
      default: "10s",
    },
    {
      name: "body-timeout",
      kind: "string",
      value: "DURATION",
      help: "a request body, or a WebSocket message, must arrive within this once begun",
      default: "10s",
    },
    {
      name: "keepalive-timeout",
      kind: "string",
      value: "DURATION",
      help: "an idle connection is closed after this",
      default: "30s",
    },
    {
      name: "metrics",
      kind: "string",
      value: "[HOST:]PORT",
      help: "serve Prometheus metrics at /metrics on this address, apart from --listen " +
        "(a bare port: localhost; off unless given)",
    },
    ...LOG_SETTINGS,
  ],
  notes: "DURATION is a number with ms, s, m or h; a bare number counts seconds.",
});

/** The help text of `socketproxy web`. */
export const WEB_USAGE: string = formatUsage(WEB_COMMAND);

/** The name of a setting of `socketproxy web`. */
export type WebSetting = (typeof WEB_COMMAND.settings)[number]["name"];

/** Where the gateway listens and where its proxy is. */
export interface WebConfig {
  /** Where browsers connect. */
  listen: HostPort;
  /** The socketproxy server: the one unnamed proxy, or the first of the nodes. */
  proxy: HostPort;
  /** Every server requests go to: the one unnamed proxy, or the named nodes. */
  nodes: readonly GatewayNode[];
  /** The `--proxies` file the nodes came from (re-read on SIGHUP), or `null`. */
  proxiesFile: string | null;
  /** Lowest log level written. */
  logLevel: LogLevel;
  /** Shape of log lines. */
  logFormat: LogFormat;
  /** TLS to the proxy, or `undefined` for plain TCP. */
  proxyTls: { caCerts?: string[] } | undefined;
  /** Host names answered besides loopback names, IP addresses and the listen host. */
  allowHosts: readonly string[];
  /** Other sites whose pages may use the gateway; `*` for any. */
  allowOrigins: readonly string[];
  /** The destination of a page that names none (`--to`), or `undefined` for the server's default. */
  defaultDestination: string | undefined;
  /** The destinations a page may choose, with their terminal settings (`--allow-destination`). */
  destinations: ReadonlyMap<string, TerminalSettings>;
  /** The terminal settings of the default destination (`--terminal` without a name). */
  defaultTerminal: TerminalSettings;
  /** Where `/metrics` is served, or `null` for nowhere. */
  metrics: HostPort | null;
  /** HTTPS and WSS with this certificate and key, or `undefined` for plain HTTP. */
  tls: { cert: string; key: string } | undefined;
  /** Time limits on browsers' connections. */
  timeouts: HttpTimeouts;
}

/** Defaults of {@linkcode WebConfig}. */
export const WEB_DEFAULTS: Readonly<WebConfig> = {
  listen: { hostname: "localhost", port: 8080 },
  proxy: SERVER_DEFAULTS.proxy,
  nodes: [{ name: null, address: SERVER_DEFAULTS.proxy }],
  proxiesFile: null,
  logLevel: "info",
  logFormat: "text",
  proxyTls: undefined,
  allowHosts: [],
  allowOrigins: [],
  defaultDestination: undefined,
  destinations: new Map(),
  defaultTerminal: TELNET_TERMINAL,
  metrics: null,
  tls: undefined,
  timeouts: HTTP_TIMEOUTS,
};

/**
 * Parses the arguments of `socketproxy web`, with the environment and
 * `--config` file behind them.
 *
 * @param args The arguments after `web`.
 * @param options Where variables are read (the process's environment by default).
 * @returns The configuration, or `"help"`.
 * @throws {UsageError} For any invalid flag, variable, file or value.
 *
 * @example
 * ```ts
 * import { parseWebArgs } from "./web.ts";
 * import { environmentOf } from "./settings.ts";
 *
 * const config = parseWebArgs(["--listen=:8081"], {
 *   env: environmentOf({ SOCKETPROXY_WEB_PROXY: "127.0.0.1:7000" }),
 * });
 * console.assert(config !== "help" && config.listen.port === 8081 && config.proxy.port === 7000);
 * ```
 */
export function parseWebArgs(args: string[], options: ResolveOptions = {}): WebConfig | "help" {
  const settings = resolveSettings(WEB_COMMAND, args, options);
  return settings.help ? "help" : webConfig(settings);
}

/**
 * Turns resolved settings into the gateway's configuration.
 *
 * @param settings The settings of `socketproxy web`.
 * @returns The configuration.
 * @throws {UsageError} For any invalid value, naming where it came from.
 */
export function webConfig(settings: Settings<WebSetting>): WebConfig {
  const config: WebConfig = { ...WEB_DEFAULTS };
  const value = (name: WebSetting): string | undefined => settings.string(name);
  const label = (name: WebSetting): string => settings.label(name);
  const listen = value("listen");
  if (listen !== undefined) {
    config.listen = parseHostPort(listen, label("listen"), {
      defaults: WEB_DEFAULTS.listen,
      allowPortZero: true,
    });
  }
  Object.assign(config, readNodes(settings));
  const metrics = value("metrics");
  if (metrics !== undefined) config.metrics = parseListenAddress(metrics, label("metrics"));
  Object.assign(config, readLogSettings(settings));
  config.allowHosts = settings.list("allow-host").map((name) =>
    parseAllowHost(name, label("allow-host"))
  );
  config.allowOrigins = settings.list("allow-origin").map((origin) =>
    parseAllowOrigin(origin, label("allow-origin"))
  );
  Object.assign(config, readDestinations(settings));
  config.proxyTls = tlsOptions(settings.boolean("tls"), value("ca"), label("ca"));
  config.tls = certificateOptions(value("tls-cert"), value("tls-key"), {
    cert: label("tls-cert"),
    key: label("tls-key"),
  });
  const timeout = (name: WebSetting, fallback: number): number => {
    const text = value(name);
    return text === undefined ? fallback : positiveDuration(text, label(name));
  };
  config.timeouts = {
    headers: timeout("header-timeout", HTTP_TIMEOUTS.headers),
    body: timeout("body-timeout", HTTP_TIMEOUTS.body),
    keepAlive: timeout("keepalive-timeout", HTTP_TIMEOUTS.keepAlive),
  };
  return config;
}

/**
 * The destinations pages may use (`--to`, `--allow-destination`) and how
 * the page speaks to each (`--terminal`).
 */
function readDestinations(
  settings: Settings<WebSetting>,
): Pick<WebConfig, "defaultDestination" | "destinations" | "defaultTerminal"> {
  const name = (text: string, what: string): string => {
    if (!DESTINATION_NAME_PATTERN.test(text)) {
      throw new UsageError(
        `${what}: "${text.slice(0, 80)}" is not a destination name (1 to 64 of A-Z a-z 0-9 _ . -)`,
      );
    }
    return text;
  };
  const to = settings.string("to");
  const defaultDestination = to === undefined ? undefined : name(to, settings.label("to"));
  const terminals = new Map<string | null, TerminalSettings>();
  for (const text of settings.list("terminal")) {
    // Without NAME: the default destination's ("mode=raw" has no ":" before its "=").
    const unnamed = /^[A-Za-z-]+=/.test(text);
    let parsed;
    try {
      parsed = unnamed
        ? { name: null, settings: parseTerminalKeys(text) }
        : parseTerminalSettings(text);
    } catch (error) {
      if (!(error instanceof TypeError || error instanceof RangeError)) throw error;
      throw new UsageError(`${settings.label("terminal")}: ${error.message}`);
    }
    const key = parsed.name === defaultDestination ? null : parsed.name;
    if (terminals.has(key)) {
      throw new UsageError(
        `${settings.label("terminal")}: ${key ?? "the default destination"} is given twice`,
      );
    }
    terminals.set(key, parsed.settings);
  }
  const allowed = settings.list("allow-destination").map((text) =>
    name(text, settings.label("allow-destination"))
  );
  const destinations = new Map<string, TerminalSettings>();
  for (const allowedName of allowed) {
    destinations.set(allowedName, terminals.get(allowedName) ?? TELNET_TERMINAL);
  }
  for (const named of terminals.keys()) {
    if (named !== null && !destinations.has(named)) {
      throw new UsageError(
        `${settings.label("terminal")}: "${named}" is neither --to nor an --allow-destination`,
      );
    }
  }
  return {
    defaultDestination,
    destinations,
    defaultTerminal: terminals.get(null) ?? TELNET_TERMINAL,
  };
}

/**
 * The servers of `--proxy` (one unnamed, or every one `NAME=HOST:PORT`)
 * or `--proxies` (a file of named nodes).
 */
function readNodes(
  settings: Settings<WebSetting>,
): Pick<WebConfig, "proxy" | "nodes" | "proxiesFile"> {
  const defaults = WEB_DEFAULTS.proxy;
  const label = settings.label("proxy");
  const file = settings.string("proxies");
  const given = settings.list("proxy");
  let nodes: GatewayNode[];
  if (file !== undefined) {
    if (given.length > 0) {
      throw new UsageError(`${label} and ${settings.label("proxies")}: give one, not both`);
    }
    nodes = readProxiesFile(file, defaults);
  } else if (given.length === 0) {
    return { proxy: defaults, nodes: WEB_DEFAULTS.nodes, proxiesFile: null };
  } else if (given.length === 1 && !given[0]?.includes("=")) {
    const proxy = parseHostPort(given[0] ?? "", label, { defaults });
    return { proxy, nodes: [{ name: null, address: proxy }], proxiesFile: null };
  } else {
    nodes = given.map((text) => parseNode(text, label, defaults));
    const names = nodes.map((node) => node.name);
    const twice = names.find((name, index) => names.indexOf(name) !== index);
    if (twice !== undefined) throw new UsageError(`${label}: node "${twice}" is given twice`);
  }
  return { proxy: nodes[0]?.address ?? defaults, nodes, proxiesFile: file ?? null };
}

/**
 * Runs `socketproxy web` until SIGINT or SIGTERM.
 *
 * @param args The arguments after `web`.
 * @returns The exit status.
 * @throws {UsageError} For invalid arguments or an unusable address.
 */
export async function webCommand(args: string[]): Promise<number> {
  const settings = resolveSettings(WEB_COMMAND, args);
  if (settings.help) {
    printOut(WEB_USAGE);
    return 0;
  }
  const config = webConfig(settings);
  if (settings.check) {
    printOut(`socketproxy web: the configuration is valid\n${settings.report()}`);
    return 0;
  }
  const logger = new Logger({ level: config.logLevel, format: config.logFormat });
  using signals = watchStopSignals((signal) => Deno.exit(SIGNAL_EXIT_STATUS[signal] ?? 1));
  const metrics = new GatewayMetrics();
  const router = new NodeRouter(config.nodes);
  using _reload = config.proxiesFile === null
    ? undefined
    : reloadOnHangup(router, { path: config.proxiesFile, defaults: WEB_DEFAULTS.proxy, logger });
  let gateway: WebGateway;
  try {
    gateway = await WebGateway.listen(config.listen, {
      router,
      logger,
      assets: WEB_ASSETS,
      metrics,
      allowHosts: config.allowHosts,
      allowOrigins: config.allowOrigins,
      destinations: config.destinations,
      defaultTerminal: config.defaultTerminal,
      ...(config.defaultDestination === undefined
        ? {}
        : { defaultDestination: config.defaultDestination }),
      timeouts: config.timeouts,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(config.proxyTls ? { proxyTls: config.proxyTls } : {}),
    });
  } catch (error) {
    throw explainListenError(error, { flag: "--listen", addr: config.listen });
  }
  let metricsServer: MetricsServer | null = null;
  if (config.metrics !== null) {
    try {
      metricsServer = await MetricsServer.listen(config.metrics, {
        metrics,
        logger,
        allowHosts: config.allowHosts,
      });
    } catch (error) {
      await gateway.close();
      throw explainListenError(error, { flag: "--metrics", addr: config.metrics });
    }
  }
  if (config.allowOrigins.includes("*")) {
    logger.warn("web.any_origin", {
      hint: "--allow-origin=* lets every web page open sessions through its visitors' browsers",
    });
  }
  logger.info("web.listening", {
    version: VERSION,
    listen: formatHostPort(gateway.addr),
    scheme: config.tls ? "https" : "http",
    metrics: metricsServer ? formatHostPort(metricsServer.addr) : "off",
    proxy: formatNodes(config.nodes),
    ...(config.proxiesFile === null ? {} : { proxies: config.proxiesFile }),
    // The --proxies file is read again on SIGHUP: reading files stays allowed then.
    file_reads: config.proxiesFile === null ? dropFileReads() : "on",
  });
  const signal = await signals.first;
  logger.info("web.stopping", { signal });
  await Promise.all([gateway.close(), metricsServer?.close()]);
  logger.info("web.stopped", {});
  return 0;
}
