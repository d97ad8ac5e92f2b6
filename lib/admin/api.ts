/**
 * The admin API: an HTTP server on the admin port, separate from the proxy
 * port, for `socketproxy status`, `socketproxy close`, `curl` and
 * monitoring systems.
 *
 * | route                    | answer                                          |
 * | ------------------------ | ----------------------------------------------- |
 * | `GET /status`            | the status report as JSON                       |
 * | `GET /metrics`           | the same figures for Prometheus                 |
 * | `GET /health`            | 200 while serving, 503 while shutting down      |
 * | `DELETE /sessions/{id}`  | closes a session                                |
 *
 * With a token set, every request but the probes (`GET /health`, `GET
 * /ready`, which say only whether the server serves) needs
 * `Authorization: Bearer <token>`, so that load balancers and Kubernetes
 * probe without holding the token;
 * after wrong tokens from an address, its requests wait a little before
 * they are answered ({@linkcode AuthThrottle}), right token or not.
 * Errors are JSON: `{"error": code, "message": text}`.
 *
 * @module
 */

import { secretsEqual } from "../proxy/credentials.ts";
import { type HostPort } from "../address.ts";
import { HostCheck, originAllowed } from "../http/browser_guard.ts";
import { describeError, type Logger, RateLimitedLog } from "../log.ts";
import { formatMetrics, METRICS_CONTENT_TYPE } from "./metrics.ts";
import type { StatusReport } from "../proxy/status_report.ts";
import type { Timings } from "../proxy/counters.ts";
import { sleep } from "../_io.ts";
import { AuthThrottle } from "../throttle.ts";
import { type HttpRequestInfo, HttpServer } from "../http/server.ts";

/** What the admin API needs from the server it manages. */
export interface AdminBackend {
  /** Takes a status report. */
  report(): StatusReport;
  /** The server's duration histograms, for `/metrics`. */
  timings?(): Timings;
  /** Closes a session; `false` when there is none with this id. */
  closeSession(id: string): boolean;
  /** Whether the server is shutting down. */
  stopping(): boolean;
  /** Whether the server is draining: it takes no new sessions. */
  draining?(): boolean;
  /** Starts a drain; says how many sessions it waits for, and how long at most. */
  drain?(): { sessions: number; timeoutMs: number };
}

/** Options for {@linkcode adminHandler} and {@linkcode AdminServer.listen}. */
export interface AdminOptions {
  /** The server behind the API. */
  backend: AdminBackend;
  /** The bearer token every request needs, or `null` for none. */
  token: string | null;
  /** Where requests and refusals are logged. */
  logger: Logger;
  /**
   * Wrong tokens per address, and how long their 401 is held back.
   * @default {a new AuthThrottle with its defaults}
   */
  throttle?: AuthThrottle;
  /** Ends held-back 401s, when the server stops. */
  signal?: AbortSignal;
  /**
   * Where the admin port listens, which decides whether the `Host` check
   * is on (see {@linkcode HostCheck.create}); the listening server passes it.
   * @default {undefined: no Host check}
   */
  listen?: HostPort;
  /**
   * Host names answered besides loopback names, IP addresses and the
   * `listen` name (`server --allow-host`): against DNS rebinding.
   * @default {[]}
   */
  allowHosts?: readonly string[];
}

/**
 * Paths answered whatever the `Host` and without the token: load balancers
 * and Kubernetes probe by IP or any name, and cannot keep a secret.
 */
const PROBES: ReadonlySet<string> = new Set(["/health", "/ready"]);

const SESSION_PATH = /^\/sessions\/([^/]*)$/;
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const ROUTES: Record<string, string[]> = {
  "/status": ["GET", "HEAD"],
  "/metrics": ["GET", "HEAD"],
  "/health": ["GET", "HEAD"],
  "/ready": ["GET", "HEAD"],
  "/drain": ["POST"],
};

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function failure(
  status: number,
  error: string,
  message: string,
  headers?: Record<string, string>,
): Response {
  return json(status, { error, message }, headers);
}

function authorized(request: Request, token: string): boolean {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer (.+)$/i.exec(header);
  return match !== null && secretsEqual(token, match[1] ?? "");
}

/**
 * Builds the admin API's request handler.
 *
 * @param options The backend, token, logger and throttle.
 * @returns A handler for `Deno.serve`; it never throws. Its answer is a
 * promise only for an address with recent wrong tokens, which waits first.
 */
export function adminHandler(
  options: AdminOptions,
): (request: Request, info?: HttpRequestInfo) => Response | Promise<Response> {
  const { backend, token, logger } = options;
  const throttle = options.throttle ?? new AuthThrottle();
  const signal = options.signal ?? new AbortController().signal;
  // The check belongs to a listening server: a bare handler does not know where it listens.
  const hostCheck = options.listen
    ? HostCheck.create({ listen: options.listen, allowHosts: options.allowHosts ?? [] })
    : null;
  const refusals = new RateLimitedLog(logger);

  /**
   * A request a web page made a browser send: to a name the attacker
   * re-pointed at this port (DNS rebinding), or from another site. No
   * browser page is ever a client of the admin API.
   */
  function hostile(request: Request, path: string, peer: string | undefined): Response | null {
    const host = new URL(request.url).host;
    if (!PROBES.has(path) && !(hostCheck?.allows(host) ?? true)) {
      refusals.warn("admin.host_not_allowed", {
        peer,
        host: host.slice(0, 100),
      });
      return failure(403, "host_not_allowed", "This admin port does not answer for that host name");
    }
    const origin = request.headers.get("origin");
    if (origin !== null && !originAllowed(origin, host, [])) {
      refusals.warn("admin.origin_not_allowed", {
        peer,
        origin: origin.slice(0, 100),
      });
      return failure(403, "origin_not_allowed", "Web pages may not use the admin API");
    }
    return null;
  }

  function answer(
    request: Request,
    peer: string | undefined,
    host: string | undefined,
  ): Response | Promise<Response> {
    let path: string;
    try {
      path = new URL(request.url).pathname;
    } catch {
      return failure(400, "bad_request", "Cannot parse the request URL");
    }
    const refusal = hostile(request, path, peer);
    if (refusal) return refusal;
    const probe = PROBES.has(path) && (request.method === "GET" || request.method === "HEAD");
    if (token !== null && !probe && !authorized(request, token)) {
      const failures = host === undefined ? undefined : throttle.failed(host);
      logger.warn("admin.unauthorized", { peer, method: request.method, path, failures });
      return failure(
        401,
        "unauthorized",
        "This admin port needs Authorization: Bearer <token>",
        { "www-authenticate": 'Bearer realm="socketproxy"' },
      );
    }
    try {
      const response = route(request.method, path, backend);
      logger.debug("admin.request", {
        peer,
        method: request.method,
        path,
        status: response.status,
      });
      return response;
    } catch (error) {
      logger.error("admin.error", { peer, path, error: describeError(error) });
      return failure(500, "internal", "The admin API failed to answer; see the server log");
    }
  }

  return (request, info) => {
    const host = info?.remoteAddr.hostname;
    const peer = info ? `${host}:${info.remoteAddr.port}` : undefined;
    // A token may be weak. While an address guesses, each of its requests
    // waits before the token is checked, so giving up early teaches nothing;
    // the operator on that address is slowed, never refused.
    if (token === null || host === undefined || throttle.delay(host) === 0) {
      return answer(request, peer, host);
    }
    return sleep(throttle.delay(host), signal).then(() => answer(request, peer, host));
  };
}

function route(method: string, path: string, backend: AdminBackend): Response {
  const session = SESSION_PATH.exec(path);
  if (session) {
    if (method !== "DELETE") {
      return failure(405, "method_not_allowed", `Use DELETE on ${path}`, { allow: "DELETE" });
    }
    const id = decodeURIComponentSafe(session[1] ?? "");
    if (id === null || !SESSION_ID.test(id)) {
      return failure(400, "bad_request", "Session ids are 1 to 64 characters of A-Z a-z 0-9 _ -");
    }
    if (!backend.closeSession(id)) return failure(404, "not_found", `No session "${id}"`);
    return json(200, { closed: id });
  }
  const methods = ROUTES[path];
  if (!methods) {
    return failure(404, "not_found", `No such path: try /status, /metrics, /health, /ready`);
  }
  if (!methods.includes(method)) {
    return failure(405, "method_not_allowed", `Use ${methods[0]} on ${path}`, {
      allow: methods.join(", "),
    });
  }
  switch (path) {
    case "/status":
      return json(200, backend.report());
    case "/metrics":
      return new Response(formatMetrics(backend.report(), backend.timings?.()), {
        headers: { "content-type": METRICS_CONTENT_TYPE },
      });
    case "/drain": {
      if (!backend.drain) return failure(404, "not_found", "This server cannot drain");
      if (backend.stopping()) return failure(503, "stopping", "The server is stopping");
      const { sessions, timeoutMs } = backend.drain();
      return json(202, { status: "draining", sessions, timeoutMs });
    }
    case "/ready": {
      // Whether to send new sessions here: not while draining or stopping.
      const state = backend.stopping() ? "stopping" : backend.draining?.() ? "draining" : "serving";
      return json(state === "serving" ? 200 : 503, { status: state });
    }
    default: {
      // Alive: 200 while draining too, so that nothing restarts a draining server.
      const stopping = backend.stopping();
      const state = stopping ? "stopping" : backend.draining?.() ? "draining" : "serving";
      return json(stopping ? 503 : 200, { status: state });
    }
  }
}

function decodeURIComponentSafe(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

/**
 * The admin API's HTTP server.
 *
 * @example
 * ```ts ignore
 * const admin = await AdminServer.listen({ hostname: "localhost", port: 9010 }, { backend, token: null, logger });
 * await admin.close();
 * ```
 */
export class AdminServer implements AsyncDisposable {
  readonly #server: HttpServer;

  private constructor(server: HttpServer) {
    this.#server = server;
  }

  /**
   * Starts serving the admin API. For `localhost`, that is 127.0.0.1 and
   * ::1 on the same port.
   *
   * @param addr Where to listen.
   * @param options The backend, token and logger.
   * @returns The running server.
   * @throws {Deno.errors.AddrInUse} When the port is taken, and the other errors of `Deno.listen`.
   */
  static async listen(addr: HostPort, options: AdminOptions): Promise<AdminServer> {
    return new AdminServer(
      await HttpServer.listen(addr, {
        // 401s held back for wrong tokens are sent when the server stops, not held open.
        handler: (signal) => adminHandler({ listen: addr, ...options, signal }),
        logger: options.logger,
        name: "admin",
      }),
    );
  }

  /** The address the admin API listens on: for `localhost`, 127.0.0.1's. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** Stops the server and waits until it has. */
  close(): Promise<void> {
    return this.#server.close();
  }

  /** See {@linkcode AdminServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
