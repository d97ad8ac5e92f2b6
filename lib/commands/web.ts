/**
 * `socketproxy web`: runs the HTTP gateway (the browser page and its JSON
 * and WebSocket API) in front of a socketproxy server.
 *
 * @module
 */

import { listFlag, parseFlags, printOut, stringFlag } from "./cli.ts";
import { HTTP_TIMEOUTS, type HttpTimeouts } from "../http/server.ts";
import {
  certificateOptions,
  dropFileReads,
  parseAllowHost,
  parseAllowOrigin,
  parseListenAddress,
  parseLogFormat,
  parseLogLevel,
  positiveDuration,
  tlsOptions,
} from "./config.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../address.ts";
import { SERVER_DEFAULTS } from "../proxy/config.ts";
import { UsageError } from "../errors.ts";
import { explainListenError } from "../listen_error.ts";
import { type LogFormat, Logger, type LogLevel } from "../log.ts";
import { SIGNAL_EXIT_STATUS, watchStopSignals } from "./signals.ts";
import { VERSION } from "../version.ts";
import { GatewayMetrics, MetricsServer, WEB_ASSETS, WebGateway } from "../gateway/mod.ts";

/** The help text of `socketproxy web`. */
export const WEB_USAGE = `Usage: socketproxy web [options]

Runs the HTTP gateway: a browser terminal at / and a JSON and WebSocket API
under /api/, each request one short connection to the socketproxy server.
The gateway keeps no state: run as many as you like, restart them freely.
It holds back its answers to browsers that present wrong secrets.

Options:
  --listen=[HOST][:PORT]   where browsers (or nginx) connect (default localhost:8080)
  --proxy=[HOST][:PORT]    the socketproxy server (default localhost:9009)
  --tls                    speak TLS to the proxy (a server run with --tls-cert)
  --allow-host=NAME        a host name browsers reach the gateway by, besides
                           loopback names, IP addresses and the --listen host
                           (repeatable; .example.com: every name under it)
  --allow-origin=URL       another site whose pages may use the gateway, such
                           as https://play.example.com (repeatable; * allows
                           any site, which is unsafe)
  --ca=FILE                also trust this PEM certificate; implies --tls
  --tls-cert=FILE, --tls-key=FILE  serve HTTPS and WSS with this PEM
                           certificate chain and key (both or neither)
  --header-timeout=DURATION  a request's headers must arrive within this
                           (default 10s)
  --body-timeout=DURATION  a request body, or a WebSocket message, must arrive
                           within this once begun (default 10s)
  --keepalive-timeout=DURATION  an idle connection is closed after this
                           (default 30s)
  --metrics=[HOST:]PORT    serve Prometheus metrics at /metrics on this address,
                           apart from --listen (a bare port: localhost; off
                           unless given)
  --log-level=LEVEL        debug, info, warn or error (default info)
  --log-format=FORMAT      text or json (default text)
  -h, --help               show this help`;

const FLAGS = {
  listen: { type: "string" },
  proxy: { type: "string" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  metrics: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "header-timeout": { type: "string" },
  "body-timeout": { type: "string" },
  "keepalive-timeout": { type: "string" },
  "allow-host": { type: "string", multiple: true },
  "allow-origin": { type: "string", multiple: true },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Where the gateway listens and where its proxy is. */
export interface WebConfig {
  /** Where browsers connect. */
  listen: HostPort;
  /** The socketproxy server. */
  proxy: HostPort;
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
  logLevel: "info",
  logFormat: "text",
  proxyTls: undefined,
  allowHosts: [],
  allowOrigins: [],
  metrics: null,
  tls: undefined,
  timeouts: HTTP_TIMEOUTS,
};

/**
 * Parses the arguments of `socketproxy web`.
 *
 * @param args The arguments after `web`.
 * @returns The configuration, or `"help"`.
 * @throws {UsageError} For any invalid flag or value.
 */
export function parseWebArgs(args: string[]): WebConfig | "help" {
  const flags = parseFlags(args, FLAGS);
  if (flags.values.help) return "help";
  if (flags.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
  }
  const config: WebConfig = { ...WEB_DEFAULTS };
  const listen = stringFlag(flags, "listen");
  if (listen !== undefined) {
    config.listen = parseHostPort(listen, "--listen", {
      defaults: WEB_DEFAULTS.listen,
      allowPortZero: true,
    });
  }
  const proxy = stringFlag(flags, "proxy");
  if (proxy !== undefined) {
    config.proxy = parseHostPort(proxy, "--proxy", { defaults: WEB_DEFAULTS.proxy });
  }
  const metrics = stringFlag(flags, "metrics");
  if (metrics !== undefined) config.metrics = parseListenAddress(metrics, "--metrics");
  const level = stringFlag(flags, "log-level");
  if (level !== undefined) config.logLevel = parseLogLevel(level, "--log-level");
  const format = stringFlag(flags, "log-format");
  if (format !== undefined) config.logFormat = parseLogFormat(format, "--log-format");
  config.allowHosts = listFlag(flags, "allow-host").map((name) =>
    parseAllowHost(name, "--allow-host")
  );
  config.allowOrigins = listFlag(flags, "allow-origin").map((origin) =>
    parseAllowOrigin(origin, "--allow-origin")
  );
  config.proxyTls = tlsOptions(flags.values.tls === true, stringFlag(flags, "ca"));
  config.tls = certificateOptions(stringFlag(flags, "tls-cert"), stringFlag(flags, "tls-key"));
  const timeout = (flag: string, fallback: number): number => {
    const text = stringFlag(flags, flag);
    return text === undefined ? fallback : positiveDuration(text, `--${flag}`);
  };
  config.timeouts = {
    headers: timeout("header-timeout", HTTP_TIMEOUTS.headers),
    body: timeout("body-timeout", HTTP_TIMEOUTS.body),
    keepAlive: timeout("keepalive-timeout", HTTP_TIMEOUTS.keepAlive),
  };
  return config;
}

/**
 * Runs `socketproxy web` until SIGINT or SIGTERM.
 *
 * @param args The arguments after `web`.
 * @returns The exit status.
 * @throws {UsageError} For invalid arguments or an unusable address.
 */
export async function webCommand(args: string[]): Promise<number> {
  const config = parseWebArgs(args);
  if (config === "help") {
    printOut(WEB_USAGE);
    return 0;
  }
  const logger = new Logger({ level: config.logLevel, format: config.logFormat });
  using signals = watchStopSignals((signal) => Deno.exit(SIGNAL_EXIT_STATUS[signal] ?? 1));
  const metrics = new GatewayMetrics();
  let gateway: WebGateway;
  try {
    gateway = await WebGateway.listen(config.listen, {
      proxy: config.proxy,
      logger,
      assets: WEB_ASSETS,
      metrics,
      allowHosts: config.allowHosts,
      allowOrigins: config.allowOrigins,
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
    proxy: formatHostPort(config.proxy),
    file_reads: dropFileReads(),
  });
  const signal = await signals.first;
  logger.info("web.stopping", { signal });
  await Promise.all([gateway.close(), metricsServer?.close()]);
  logger.info("web.stopped", {});
  return 0;
}
