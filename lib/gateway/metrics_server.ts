/**
 * The gateway's metrics port (`web --metrics`): `GET /metrics`, the
 * figures of metrics.ts for Prometheus, on an address of its own, so that
 * the public port never shows them. It refuses hostile pages as the admin
 * port does: a `Host` it does not answer for (DNS rebinding) and a
 * browser's request from another site.
 *
 * @module
 */

import type { HostPort } from "../address.ts";
import { HostCheck, originAllowed } from "../http/browser_guard.ts";
import { HttpServer } from "../http/server.ts";
import { type Logger, RateLimitedLog } from "../log.ts";
import { METRICS_CONTENT_TYPE } from "../prometheus.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { json } from "./requests.ts";

/** Options for {@linkcode metricsHandler} and {@linkcode MetricsServer.listen}. */
export interface MetricsServerOptions {
  /** The figures served. */
  metrics: GatewayMetrics;
  /** Where refusals are logged. */
  logger: Logger;
  /**
   * Where the port listens, which decides whether the `Host` check is on
   * (see {@linkcode HostCheck.create}); the listening server passes it.
   * @default {undefined: no Host check}
   */
  listen?: HostPort;
  /**
   * Host names answered besides loopback names, IP addresses and the
   * `listen` name (`web --allow-host`, as for the gateway's own port).
   * @default {[]}
   */
  allowHosts?: readonly string[];
}

/**
 * Builds the metrics port's request handler: `GET /metrics`, 404 for any
 * other path.
 *
 * @param options The figures, the logger, and the Host check's settings.
 * @returns A handler for `Deno.serve`; it never throws.
 *
 * @example
 * ```ts
 * import { GatewayMetrics } from "./metrics.ts";
 * import { metricsHandler } from "./metrics_server.ts";
 * import { Logger } from "../log.ts";
 *
 * const handler = metricsHandler({ metrics: new GatewayMetrics(), logger: new Logger() });
 * const response = handler(new Request("http://localhost/metrics"));
 * console.assert((await response.text()).includes("socketproxy_web_websockets 0"));
 * ```
 */
export function metricsHandler(options: MetricsServerOptions): (request: Request) => Response {
  const { metrics } = options;
  // The check belongs to a listening server: a bare handler does not know where it listens.
  const hostCheck = options.listen
    ? HostCheck.create({ listen: options.listen, allowHosts: options.allowHosts ?? [] })
    : null;
  const refusals = new RateLimitedLog(options.logger);
  return (request) => {
    const url = new URL(request.url);
    if (!(hostCheck?.allows(url.host) ?? true)) {
      refusals.warn("web.metrics_host_not_allowed", { host: url.host.slice(0, 100) });
      return json(403, {
        error: "host_not_allowed",
        message: "This metrics port does not answer for that host name",
      });
    }
    const origin = request.headers.get("origin");
    if (origin !== null && !originAllowed(origin, url.host, [])) {
      refusals.warn("web.metrics_origin_not_allowed", { origin: origin.slice(0, 100) });
      return json(403, { error: "origin_not_allowed", message: "Web pages may not read metrics" });
    }
    if (url.pathname !== "/metrics") {
      return json(404, { error: "not_found", message: "This port serves only GET /metrics" });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(405, { error: "method_not_allowed", message: "Use GET" }, {
        allow: "GET, HEAD",
      });
    }
    return new Response(metrics.format(), {
      headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" },
    });
  };
}

/**
 * The gateway's metrics port.
 *
 * @example
 * ```ts ignore
 * const server = await MetricsServer.listen({ hostname: "localhost", port: 9100 }, { metrics, logger });
 * await server.close();
 * ```
 */
export class MetricsServer implements AsyncDisposable {
  readonly #server: HttpServer;

  private constructor(server: HttpServer) {
    this.#server = server;
  }

  /**
   * Starts serving. For `localhost`, that is 127.0.0.1 and ::1 on the same port.
   *
   * @param addr Where to listen.
   * @param options The figures, the logger and the names allowed.
   * @returns The running server.
   * @throws {Deno.errors.AddrInUse} When the port is taken, and the other errors of `Deno.serve`.
   */
  static async listen(addr: HostPort, options: MetricsServerOptions): Promise<MetricsServer> {
    const server = await HttpServer.listen(addr, {
      handler: () => metricsHandler({ listen: addr, ...options }),
      logger: options.logger,
      name: "web_metrics",
    });
    return new MetricsServer(server);
  }

  /** The address the port listens on: for `localhost`, 127.0.0.1's. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** Stops serving and waits until it has. */
  close(): Promise<void> {
    return this.#server.close();
  }

  /** See {@linkcode MetricsServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
