/**
 * `socketproxy demo`: the demo destination service, the proxy server (with
 * its admin API) in front of it and the web gateway in front of that, all
 * in one process, so a first try needs nothing else. Runs until SIGINT or
 * SIGTERM, then stops the three, the gateway first.
 *
 * @module
 */

import { printOut } from "./cli.ts";
import { defineCommand, type ResolveOptions, resolveSettings } from "./settings.ts";
import { formatUsage } from "./usage.ts";
import { LOG_SETTINGS, readLogSettings } from "./log_settings.ts";
import { dropFileReads, fetchBlockedPort, tokenFromEnvironment } from "./config.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../address.ts";
import { SERVER_DEFAULTS } from "../proxy/config.ts";
import { UsageError } from "../errors.ts";
import { explainListenError } from "../listen_error.ts";
import { type LogFormat, Logger, type LogLevel } from "../log.ts";
import { Service } from "../admin/mod.ts";
import { DemoService } from "../demo/mod.ts";
import { WEB_ASSETS, WebGateway } from "../gateway/mod.ts";
import {
  SIGNAL_EXIT_STATUS,
  STOP_DEADLINE_MS,
  stopByDeadline,
  watchStopSignals,
} from "./signals.ts";
import { VERSION } from "../version.ts";

/** The settings of `socketproxy demo`: its flags, variables and file keys. */
export const DEMO_COMMAND = defineCommand({
  command: "demo",
  summary: "a demo service, the proxy and the gateway in one process",
  intro: `Runs a small built-in telnet service (on 127.0.0.1, any free port), the
proxy in front of it, and the web gateway in front of the proxy, in one
process: open the gateway's page in a browser, or connect to the proxy with
nc or "socketproxy client". Ctrl-C stops all three.`,
  settings: [
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
      value: "[HOST][:PORT]",
      help: "the proxy's admin API",
      default: "localhost:9010",
    },
    {
      name: "web",
      kind: "string",
      value: "[HOST][:PORT]",
      help: "where browsers connect",
      default: "localhost:8080",
    },
    ...LOG_SETTINGS,
  ],
  notes: "Port 0 picks a free port; the lines printed at the start show the ports.",
});

/** The help text of `socketproxy demo`. */
export const DEMO_USAGE: string = formatUsage(DEMO_COMMAND);

/** Where the demo's parts listen, and its logging. */
export interface DemoConfig {
  /** Where clients connect to the proxy. */
  proxy: HostPort;
  /** The proxy's admin API. */
  admin: HostPort;
  /** Where browsers connect to the gateway. */
  web: HostPort;
  /** Lowest log level written. */
  logLevel: LogLevel;
  /** Shape of log lines. */
  logFormat: LogFormat;
}

/** Defaults of {@linkcode DemoConfig}: the ports `server` and `web` use. */
export const DEMO_DEFAULTS: Readonly<DemoConfig> = {
  proxy: SERVER_DEFAULTS.proxy,
  admin: SERVER_DEFAULTS.admin ?? { hostname: "localhost", port: 9010 },
  web: { hostname: "localhost", port: 8080 },
  logLevel: SERVER_DEFAULTS.logLevel,
  logFormat: SERVER_DEFAULTS.logFormat,
};

/** Where the demo service listens: loopback only, any free port. */
const DEMO_SERVICE_ADDR: HostPort = { hostname: "127.0.0.1", port: 0 };

/**
 * Parses the arguments of `socketproxy demo`, with the environment and
 * `--config` file behind them.
 *
 * @param args The arguments after `demo`.
 * @param options Where variables are read (the process's environment by default).
 * @returns The configuration, or `"help"` when help was asked for.
 * @throws {UsageError} For any invalid flag, variable, file, value or argument.
 *
 * @example
 * ```ts
 * import { parseDemoArgs } from "./demo.ts";
 *
 * const config = parseDemoArgs(["--web=:0"]);
 * console.assert(config !== "help" && config.web.port === 0 && config.proxy.port === 9009);
 * ```
 */
export function parseDemoArgs(args: string[], options: ResolveOptions = {}): DemoConfig | "help" {
  const settings = resolveSettings(DEMO_COMMAND, args, options);
  if (settings.help) return "help";
  const config: DemoConfig = { ...DEMO_DEFAULTS };
  for (const name of ["proxy", "admin", "web"] as const) {
    const text = settings.string(name);
    if (text === undefined) continue;
    config[name] = parseHostPort(text, settings.label(name), {
      defaults: DEMO_DEFAULTS[name],
      allowPortZero: true,
    });
  }
  // The admin port is for status and close, the web port for browsers:
  // both must be ports that fetch and browsers will open.
  for (const name of ["admin", "web"] as const) {
    const blocked = fetchBlockedPort(config[name].port);
    if (blocked !== undefined) {
      throw new UsageError(`${settings.label(name)}: ${blocked}; choose another`);
    }
  }
  Object.assign(config, readLogSettings(settings));
  return config;
}

/** The three running parts of a demo; disposing stops them. */
interface RunningDemo extends AsyncDisposable {
  destination: DemoService;
  service: Service;
  gateway: WebGateway;
}

/** Where to reach a listener from this machine: a wildcard address is reached on loopback. */
function reachable(addr: Deno.NetAddr): HostPort {
  const hostname = addr.hostname === "0.0.0.0"
    ? "127.0.0.1"
    : addr.hostname === "::"
    ? "::1"
    : addr.hostname;
  return { hostname, port: addr.port };
}

/**
 * Starts the demo service, the proxy and the gateway. When one cannot
 * listen, the ones already started are stopped before the error is thrown.
 */
async function startDemo(config: DemoConfig, logger: Logger): Promise<RunningDemo> {
  await using started = new AsyncDisposableStack();
  let destination: DemoService;
  try {
    destination = started.use(DemoService.listen(DEMO_SERVICE_ADDR, { logger }));
  } catch (error) {
    throw explainListenError(error, { flag: "the demo service", addr: DEMO_SERVICE_ADDR });
  }
  const service = started.use(
    await Service.start({
      ...SERVER_DEFAULTS,
      destination: reachable(destination.addr),
      proxy: config.proxy,
      admin: config.admin,
      adminToken: tokenFromEnvironment() ?? null,
      logLevel: config.logLevel,
      logFormat: config.logFormat,
    }, { logger }),
  );
  let gateway: WebGateway;
  try {
    gateway = started.use(
      await WebGateway.listen(config.web, {
        // Where the proxy really listens, whatever name --proxy gave: a name
        // such as localhost may resolve to another address first.
        proxy: reachable(service.proxy.addr),
        logger,
        assets: WEB_ASSETS,
      }),
    );
  } catch (error) {
    throw explainListenError(error, { flag: "--web", addr: config.web });
  }
  started.move(); // all three are running: the caller stops them
  return {
    destination,
    service,
    gateway,
    async [Symbol.asyncDispose]() {
      // A gateway's long poll ends when the proxy closes its connection, so
      // the two stop together; the demo service, their destination, last.
      const stopped = await Promise.allSettled([gateway.close(), service.stop()]);
      await destination.close();
      for (const result of stopped) if (result.status === "rejected") throw result.reason;
    },
  };
}

/**
 * The host to show in a line to copy: the one asked for, unless it is a
 * wildcard (every interface), which no client can connect to.
 */
function shownHost(asked: HostPort): string {
  return ["0.0.0.0", "::"].includes(asked.hostname) ? "localhost" : asked.hostname;
}

/** The lines printed once everything listens: where to point a browser, nc and the client. */
function startLines(config: DemoConfig, demo: RunningDemo): string {
  const proxy = { hostname: shownHost(config.proxy), port: demo.service.proxy.addr.port };
  const admin = { hostname: shownHost(config.admin), port: demo.service.admin?.addr.port ?? 0 };
  const web = { hostname: shownHost(config.web), port: demo.gateway.addr.port };
  const same = (a: HostPort, b: HostPort): boolean =>
    a.hostname === b.hostname && a.port === b.port;
  const proxyFlag = same(proxy, DEMO_DEFAULTS.proxy) ? "" : ` --proxy=${formatHostPort(proxy)}`;
  const adminFlag = same(admin, DEMO_DEFAULTS.admin) ? "" : ` --admin=${formatHostPort(admin)}`;
  return [
    `socketproxy demo: a demo service on ${formatHostPort(demo.destination.addr)}, ` +
    `the proxy on ${formatHostPort(proxy)}, the gateway on ${formatHostPort(web)}`,
    `  open http://${formatHostPort(web)}/ in a browser`,
    `  or:  nc ${proxy.hostname} ${proxy.port}   then type NEW and press Enter`,
    `  or:  deno task start client${proxyFlag}`,
    `  and: deno task start status${adminFlag}   (the admin API on ${formatHostPort(admin)})`,
    "Ctrl-C stops all three.",
  ].join("\n");
}

/**
 * Runs `socketproxy demo` until SIGINT or SIGTERM, then stops the gateway,
 * the proxy and the demo service and exits 0, within two seconds. A second
 * signal exits at once.
 *
 * @param args The arguments after `demo`.
 * @returns The exit status.
 * @throws {UsageError} For invalid arguments or an address that cannot be listened on.
 */
export async function demoCommand(args: string[]): Promise<number> {
  const config = parseDemoArgs(args);
  if (config === "help") {
    printOut(DEMO_USAGE);
    return 0;
  }
  const logger = new Logger({ level: config.logLevel, format: config.logFormat });
  using signals = watchStopSignals((signal) => {
    logger.warn("demo.killed", { signal });
    Deno.exit(SIGNAL_EXIT_STATUS[signal] ?? 1);
  });
  const demo = await startDemo(config, logger);
  logger.info("demo.listening", {
    version: VERSION,
    demo_service: formatHostPort(demo.destination.addr),
    proxy: formatHostPort(demo.service.proxy.addr),
    admin: demo.service.admin ? formatHostPort(demo.service.admin.addr) : "off",
    web: formatHostPort(demo.gateway.addr),
    file_reads: dropFileReads(),
  });
  printOut(startLines(config, demo));

  const signal = await signals.first;
  logger.info("demo.stopping", { signal, sessions: demo.service.proxy.store.size });
  await stopByDeadline(() => demo[Symbol.asyncDispose](), () => {
    logger.warn("demo.stop_deadline", { after_ms: STOP_DEADLINE_MS });
  });
  logger.info("demo.stopped", {});
  return 0;
}
