/**
 * The gateway's own figures: requests by route and status, how long
 * they take by route, open WebSockets, refused hosts and origins, and
 * proxy errors by kind. The gateway (gateway.ts) and the WebSocket relay
 * (relay.ts) add to them; the metrics port (metrics_server.ts, `web
 * --metrics`) serves them in the Prometheus text format of
 * lib/prometheus.ts, all named `socketproxy_web_*`.
 *
 * Labels come from small fixed sets, never from what a request says: a
 * route is one of {@linkcode ROUTE_LABELS}, a status an HTTP status the
 * gateway answered, an error kind one of the codes of `meaningOf`, a node
 * one of the gateway's list (`web --proxy=NAME=...`), never an id's guess.
 *
 * @module
 */

import { formatPrometheus, Histogram } from "../prometheus.ts";
import { VERSION } from "../version.ts";
import { type HttpError, routeOf } from "./requests.ts";
import type { CreateOutcome } from "./router.ts";

/**
 * The routes requests are counted by: the API's routes, `/health`,
 * `page` (the browser page and its files) and `other` (every unknown path).
 */
export const ROUTE_LABELS = [
  "/api/sessions",
  "/api/sessions/{id}",
  "/api/sessions/{id}/poll",
  "/api/sessions/{id}/ws",
  "/api/terminal",
  "/health",
  "page",
  "other",
] as const;

/** One of {@linkcode ROUTE_LABELS}. */
export type RouteLabel = typeof ROUTE_LABELS[number];

const ROUTES: ReadonlySet<string> = new Set(ROUTE_LABELS);

/**
 * The route a request path is counted under.
 *
 * @param path The request's path.
 * @param assets The page's files by path, which count as `page`.
 * @returns The label; `other` for any path the gateway does not serve.
 *
 * @example
 * ```ts
 * import { routeLabel } from "./metrics.ts";
 *
 * console.assert(routeLabel("/api/sessions/y628R3CsuneQiYrH/poll", {}) === "/api/sessions/{id}/poll");
 * console.assert(routeLabel("/wp-login.php", {}) === "other");
 * ```
 */
export function routeLabel(path: string, assets: Readonly<Record<string, unknown>>): RouteLabel {
  if (Object.hasOwn(assets, path)) return "page";
  const route = routeOf(path);
  return ROUTES.has(route) ? route as RouteLabel : "other";
}

/**
 * Running totals of one gateway process, formatted for Prometheus.
 *
 * @example
 * ```ts
 * import { GatewayMetrics } from "./metrics.ts";
 *
 * const metrics = new GatewayMetrics();
 * metrics.requested("/api/sessions", 201);
 * console.assert(
 *   metrics.format().includes('socketproxy_web_requests_total{route="/api/sessions",status="201"} 1'),
 * );
 * ```
 */
export class GatewayMetrics {
  readonly #startedAt = Date.now();
  /** Requests answered, by route, then by status and node (`status` or `status node`). */
  readonly #requests = new Map<RouteLabel, Map<string, number>>();
  /** What became of `NEW`s, by node (`""`: the one unnamed proxy), then by outcome. */
  readonly #creates = new Map<string, Map<CreateOutcome, number>>();
  readonly #proxyErrors = new Map<string, number>();
  /** How long requests took to answer, by route. */
  readonly #durations = new Map<RouteLabel, Histogram>();
  #webSockets = 0;
  #refusedHosts = 0;
  #refusedOrigins = 0;

  /**
   * Counts a request the gateway answered.
   *
   * @param route Its route.
   * @param status The status answered (101 for a WebSocket).
   * @param node The node it went to, when the gateway routes to named nodes and knows it.
   */
  requested(route: RouteLabel, status: number, node?: string): void {
    let statuses = this.#requests.get(route);
    if (statuses === undefined) this.#requests.set(route, statuses = new Map());
    const key = node === undefined ? String(status) : `${status} ${node}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  }

  /**
   * Counts one node's answer to a `NEW`: created, busy (full or
   * draining), unavailable (not answering), or failed otherwise. A `NEW`
   * a node refuses goes on to the next, so one request may count several.
   *
   * @param node The node's name; `null` for the one unnamed proxy.
   * @param outcome What became of it.
   */
  created(node: string | null, outcome: CreateOutcome): void {
    const key = node ?? "";
    let outcomes = this.#creates.get(key);
    if (outcomes === undefined) this.#creates.set(key, outcomes = new Map());
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }

  /**
   * Counts how long the gateway took to answer a request: from its arrival
   * to its response (for a WebSocket, to the upgrade; for a long poll, the
   * wait included).
   *
   * @param route Its route.
   * @param seconds The time taken, in seconds.
   */
  answeredIn(route: RouteLabel, seconds: number): void {
    let histogram = this.#durations.get(route);
    if (histogram === undefined) this.#durations.set(route, histogram = new Histogram());
    histogram.observe(seconds);
  }

  /**
   * Counts an error answered to a request or a WebSocket, when it is the
   * proxy's (a 5xx, also logged as `web.proxy_error`): by its code.
   *
   * @param error The error answered.
   */
  failed(error: HttpError): void {
    if (error.status < 500) return;
    this.#proxyErrors.set(error.code, (this.#proxyErrors.get(error.code) ?? 0) + 1);
  }

  /** Counts a request refused for its `Host` (DNS rebinding). */
  refusedHost(): void {
    this.#refusedHosts++;
  }

  /** Counts a browser request refused for its `Origin` (another site's page). */
  refusedOrigin(): void {
    this.#refusedOrigins++;
  }

  /** A WebSocket opened. */
  webSocketOpened(): void {
    this.#webSockets++;
  }

  /** A WebSocket that opened has closed. */
  webSocketClosed(): void {
    this.#webSockets--;
  }

  /** WebSockets open now. */
  get webSockets(): number {
    return this.#webSockets;
  }

  /**
   * The figures in the Prometheus text format.
   *
   * @returns The exposition text.
   */
  format(): string {
    const requests = [...this.#requests].flatMap(([route, statuses]) =>
      [...statuses].map(([key, count]) => {
        const [status = key, node] = key.split(" ");
        return [node === undefined ? { route, status } : { route, status, node }, count] as const;
      })
    );
    const creates = [...this.#creates].flatMap(([node, outcomes]) =>
      [...outcomes].map(([outcome, count]) =>
        [node === "" ? { outcome } : { node, outcome }, count] as const
      )
    );
    return formatPrometheus([
      {
        name: "web_info",
        type: "gauge",
        help: "Version of the running gateway.",
        samples: [[{ version: VERSION }, 1]],
      },
      {
        name: "web_uptime_seconds",
        type: "gauge",
        help: "Seconds since the gateway started.",
        samples: (Date.now() - this.#startedAt) / 1000,
      },
      {
        name: "web_requests_total",
        type: "counter",
        help: "Requests answered, by route and status (101: a WebSocket), and node when routed.",
        samples: requests,
      },
      {
        name: "web_new_sessions_total",
        type: "counter",
        help:
          "Answers to NEW, by node (when named) and outcome: created, busy, unavailable, failed.",
        samples: creates,
      },
      {
        name: "web_request_duration_seconds",
        type: "histogram",
        help: "Requests answered, by route: arrival to response (a WebSocket: to the upgrade), " +
          "in seconds.",
        samples: ROUTE_LABELS.flatMap((route) => {
          const histogram = this.#durations.get(route);
          return histogram === undefined ? [] : [[{ route }, histogram] as const];
        }),
      },
      {
        name: "web_websockets",
        type: "gauge",
        help: "WebSockets open now.",
        samples: this.#webSockets,
      },
      {
        name: "web_refused_hosts_total",
        type: "counter",
        help: "Requests refused for a Host the gateway does not answer for (403 host_not_allowed).",
        samples: this.#refusedHosts,
      },
      {
        name: "web_refused_origins_total",
        type: "counter",
        help: "Browser requests refused for another site's Origin (403 origin_not_allowed).",
        samples: this.#refusedOrigins,
      },
      {
        name: "web_proxy_errors_total",
        type: "counter",
        help: "Requests and WebSockets that failed at the proxy, by kind (the error answered).",
        samples: [...this.#proxyErrors].map(([kind, count]) => [{ kind }, count] as const),
      },
    ]);
  }
}
