/**
 * The HTTP gateway: turns browser requests into short socketproxy client
 * connections, so a web page can hold a telnet-style session that survives
 * page reloads, flaky networks and gateway restarts.
 *
 *     browser <--JSON/WebSocket--> gateway <--> socketproxy server <--> destination
 *
 * The gateway keeps no session state: every request is one client
 * connection to the proxy, made with the client library. Any number of
 * gateways can serve the same sessions, and a restart loses nothing. With
 * several servers, router.ts says which one each request goes to.
 *
 * | route                              | what                                            |
 * | ---------------------------------- | ----------------------------------------------- |
 * | `POST /api/sessions` `{"to"?}`      | new session: `201 {"id","secret"}`              |
 * | `GET /api/terminal?to=NAME`         | how the page speaks to that destination          |
 * | `POST /api/sessions/{id}/poll`     | attach at `ack`, send `input`, return output    |
 * | `DELETE /api/sessions/{id}`        | end the session (secret in the body)            |
 * | `GET /api/sessions/{id}/ws`        | WebSocket: output and input both ways           |
 * | `GET /`, `GET /assets/...`         | the browser page                                |
 * | `GET /health`                      | `200 {"status":"ok"}`, for any `Host`           |
 *
 * Output and input travel base64-encoded in JSON, raw in WebSocket binary
 * frames. The secret travels in request bodies and WebSocket messages,
 * never in a URL, and is never logged.
 *
 * A poll is answered `{"data","ack","in","state","dropped"}`: the output
 * (base64) from the request's `ack`, the new `ack`, the input the proxy has
 * (`in`), the destination's `state` (`open` or `closed`), and `dropped`,
 * true when the proxy ended the poll early with nothing sent: the
 * destination closed, or another window took the session over. Only the
 * next poll can tell which, and it takes the session over in turn (see
 * web/session_client.ts for how the page uses it).
 *
 * @module
 */

import { ClientSession, type CreateOptions, UntrustedError } from "../client/mod.ts";
import { formatHostPort, type HostPort } from "../address.ts";
import { describeError, type Logger, RateLimitedLog } from "../log.ts";
import { DESTINATION_NAME_PATTERN, ID_PATTERN } from "../protocol.ts";
import { sleep } from "../_io.ts";
import { HostCheck, originAllowed } from "../http/browser_guard.ts";
import {
  browserAddress,
  type ClientAddress,
  clientAddress,
  destinationOf,
  endUserAddress,
  GATEWAY_LIMITS,
  type GatewayLimits,
  HttpError,
  httpErrorFor,
  inputOf,
  json,
  offsetOf,
  readJson,
  readOptionalJson,
  routeOf,
  secretOf,
} from "./requests.ts";
import { relay } from "./relay.ts";
import { type Asset, assetTags } from "./static.ts";
import { TELNET_TERMINAL, type TerminalSettings } from "./terminal_settings.ts";
import { AuthThrottle } from "../throttle.ts";
import { GatewayMetrics, routeLabel } from "./metrics.ts";
import { NodeRouter } from "./router.ts";
import {
  HTTP_TIMEOUTS,
  type HttpRequestInfo,
  HttpServer,
  type HttpTimeouts,
  WebSocketVersionError,
} from "../http/server.ts";

/** After the server refuses a `from=` (`ERR untrusted`), the gateway stops sending one for this long. */
const UNTRUSTED_PAUSE_MS = 5 * 60_000;
/** Options for {@linkcode gatewayHandler}. */
export interface GatewayOptions {
  /**
   * The one socketproxy server, when there is no `router`: the same as
   * `router: NodeRouter.single(proxy)`.
   */
  proxy?: HostPort;
  /**
   * The socketproxy servers (nodes): `NEW` goes to one that accepts it,
   * every other request to the node in the session id (see router.ts).
   * @default {NodeRouter.single(proxy)}
   */
  router?: NodeRouter;
  /** Where requests and failures are logged. */
  logger: Logger;
  /** Static files by path (`/`, `/assets/app.js`, ...). */
  assets?: Record<string, Asset>;
  /** Request limits. @default {GATEWAY_LIMITS} */
  limits?: Partial<GatewayLimits>;
  /** Time allowed to reach the proxy and get its reply, in ms. @default {10000} */
  proxyTimeout?: number;
  /** Ends every WebSocket when aborted (the gateway is stopping). */
  signal?: AbortSignal;
  /**
   * How long a WebSocket may take to send its first message (the attach),
   * in ms; one that has not by then is closed (4000, `timeout`), as the
   * proxy does with a hello that does not come.
   * @default {10000}
   */
  firstMessageTimeout?: number;
  /** Speak TLS to the proxy, trusting these extra certificates. */
  proxyTls?: { caCerts?: string[] };
  /**
   * Wrong secrets per browser address, and how long the answer to that
   * browser's next wrong secret is held back. (The server, which sees the
   * gateway's address, also makes attempts on a session that was guessed
   * at through this gateway wait before they are checked.)
   * @default {a new AuthThrottle with its defaults}
   */
  throttle?: AuthThrottle;
  /**
   * Where the gateway listens, which decides whether the `Host` check is on
   * (see {@linkcode HostCheck.create}); the listening server passes it.
   * @default {undefined: no Host check}
   */
  listen?: HostPort;
  /**
   * Host names answered besides loopback names, IP addresses and the
   * `listen` name (`--allow-host`): against DNS rebinding.
   * @default {[]}
   */
  allowHosts?: readonly string[];
  /** Time limits on browsers' connections (see `HttpServer`). @default {HTTP_TIMEOUTS} */
  timeouts?: Partial<HttpTimeouts>;
  /** Serve HTTPS and WSS with this PEM certificate chain and key. */
  tls?: { cert: string; key: string };
  /**
   * Origins besides the gateway's own whose pages may open sessions,
   * WebSockets and polls (`--allow-origin`); `*` allows any (unsafe).
   * @default {[]}
   */
  allowOrigins?: readonly string[];
  /**
   * Where requests, WebSockets, refusals and proxy errors are counted
   * (served by `web --metrics`, never on this port).
   * @default {a new GatewayMetrics}
   */
  metrics?: GatewayMetrics;
  /**
   * The server's named destinations pages may choose (`?to=NAME`: `web
   * --allow-destination`), each with how the page speaks to it (`web
   * --terminal`). A page naming any other is answered 404
   * `unknown_destination`, as is one naming a destination the server lacks.
   * @default {none: a page may name no destination}
   */
  destinations?: ReadonlyMap<string, TerminalSettings>;
  /**
   * The destination of a page that names none (`web --to`), sent to the
   * server as `NEW to=`, with the `defaultTerminal` settings.
   * @default {none: the server's default destination, without `to=`}
   */
  defaultDestination?: string;
  /**
   * How the page speaks to the destination of a page that names none
   * (`web --terminal=KEY=VALUE,...`).
   * @default {TELNET_TERMINAL}
   */
  defaultTerminal?: TerminalSettings;
}

/** The router of a gateway given one `proxy`. */
function singleRouter(proxy: HostPort | undefined): NodeRouter {
  if (proxy === undefined) {
    throw new TypeError("Cannot serve without a proxy: give proxy or router");
  }
  return NodeRouter.single(proxy);
}

const SESSION_PATH = /^\/api\/sessions\/([^/]+)(\/poll|\/ws)?$/;

/**
 * An {@linkcode HttpError}'s extras that are answered as headers, not in
 * the body: a 405's `allow`, and a 426's `sec-websocket-version` (RFC 6455 4.4).
 */
const HEADER_EXTRAS = ["allow", "sec-websocket-version"] as const;

/**
 * Builds the gateway's request handler.
 *
 * @param options The proxy, logger, assets and limits.
 * @returns A handler for `Deno.serve`; it never throws.
 */
export function gatewayHandler(
  options: GatewayOptions,
): (request: Request, info?: HttpRequestInfo) => Promise<Response> {
  const limits: GatewayLimits = { ...GATEWAY_LIMITS, ...options.limits };
  const { logger } = options;
  const router = options.router ?? singleRouter(options.proxy);
  const clientOptions = {
    timeout: options.proxyTimeout ?? 10_000,
    ...(options.proxyTls ? { tls: options.proxyTls } : {}),
  };
  const assets = options.assets ?? {};
  const etags = assetTags(assets);
  const throttle = options.throttle ?? new AuthThrottle();
  const stopping = options.signal ?? new AbortController().signal;
  // The check belongs to a listening server: a bare handler does not know where it listens.
  const hostCheck = options.listen
    ? HostCheck.create({ listen: options.listen, allowHosts: options.allowHosts ?? [] })
    : null;
  const allowOrigins = options.allowOrigins ?? [];
  const refusals = new RateLimitedLog(logger);
  const metrics = options.metrics ?? new GatewayMetrics();
  /** When the server last answered a from= with ERR untrusted (performance.now()). */
  let fromRefusedAt = -Infinity;
  const destinations = options.destinations ?? new Map<string, TerminalSettings>();
  const defaultDestination = options.defaultDestination;
  const defaultTerminal = options.defaultTerminal ?? TELNET_TERMINAL;
  for (
    const name of [...destinations.keys(), ...(defaultDestination ? [defaultDestination] : [])]
  ) {
    if (!DESTINATION_NAME_PATTERN.test(name)) {
      throw new TypeError(
        `Cannot serve destination ${JSON.stringify(name)}: ` +
          "a name is 1 to 64 of A-Z a-z 0-9 _ . -",
      );
    }
  }

  /**
   * The destination a page asks for (or the default), and its settings;
   * a name this gateway does not serve is a 404.
   */
  function destinationFor(
    asked: string | undefined,
  ): { to: string | undefined; settings: TerminalSettings } {
    const to = asked ?? defaultDestination;
    if (to === undefined) return { to, settings: defaultTerminal };
    const settings = to === defaultDestination ? defaultTerminal : destinations.get(to);
    if (!settings) {
      throw new HttpError(
        404,
        "unknown_destination",
        `This gateway serves no destination named ${JSON.stringify(to.slice(0, 64))}`,
      );
    }
    return { to, settings };
  }

  /**
   * The checks against hostile pages, before any route: a `Host` this
   * gateway does not answer (DNS rebinding), a browser request from another
   * site, and a browser's body that is not JSON (the "simple request" path).
   */
  function guard(request: Request, path: string, address: ClientAddress): void {
    const url = new URL(request.url);
    if (path !== "/health" && !(hostCheck?.allows(url.host) ?? true)) {
      refusals.warn("web.host_not_allowed", { host: url.host.slice(0, 100), ...address });
      metrics.refusedHost();
      throw new HttpError(
        403,
        "host_not_allowed",
        "This gateway does not answer for that host name",
      );
    }
    const origin = request.headers.get("origin");
    const method = request.method;
    const changes = method === "POST" || method === "DELETE" ||
      request.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (origin === null || !changes) return;
    if (!originAllowed(origin, url.host, allowOrigins)) {
      refusals.warn("web.origin_not_allowed", {
        origin: origin.slice(0, 100),
        path: routeOf(path),
        ...address,
      });
      metrics.refusedOrigin();
      throw new HttpError(
        403,
        "origin_not_allowed",
        "Pages from that origin may not use this gateway",
      );
    }
    const type = request.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
    const length = request.headers.get("content-length");
    const hasBody = request.headers.has("transfer-encoding") || (length !== null && length !== "0");
    if (method !== "GET" && hasBody && type !== "application/json") {
      throw new HttpError(415, "unsupported_media_type", "Request bodies must be application/json");
    }
  }

  /**
   * Counts a wrong secret against the browser, logs it, and holds the
   * answer back for the browser's delay. Only failures wait: the right
   * secret is answered at once, so a guesser never slows the owner down.
   */
  async function guessed(browser: string | undefined, path: string, address: object) {
    const failures = browser === undefined ? undefined : throttle.failed(browser);
    logger.warn("web.auth_failed", {
      path,
      failures,
      next_delay_ms: browser === undefined ? undefined : throttle.delay(browser),
      ...address,
    });
    if (browser !== undefined) await sleep(throttle.delay(browser), stopping);
  }

  /**
   * Creates a session for a browser, naming it to the server (`NEW from=`),
   * unless the server has refused that lately: then without, after one
   * warning that says what to set.
   */
  async function create(request: Request, info: HttpRequestInfo | undefined): Promise<Response> {
    const { to } = destinationFor(destinationOf(await readOptionalJson(request, limits.maxBody)));
    // The server answers a name it lacks with ERR unknown-destination: a 404 too (httpErrorFor).
    const from = endUserAddress(request, info);
    const session = await router.create(
      (node) =>
        createOn(
          { ...clientOptions, proxy: node.address, ...(to === undefined ? {} : { to }) },
          from,
        ),
      (node, outcome) => metrics.created(node.name, outcome),
    );
    return json(201, { id: session.id, secret: session.secret }, {
      location: `sessions/${session.id}`,
    });
  }

  /** Creates the session on one node, with `from=` unless the server refused it lately. */
  async function createOn(
    sessionOptions: CreateOptions & { proxy: HostPort },
    from: string | undefined,
  ): Promise<ClientSession> {
    let session: ClientSession | null = null;
    if (from !== undefined && performance.now() - fromRefusedAt > UNTRUSTED_PAUSE_MS) {
      try {
        session = await ClientSession.create({ ...sessionOptions, from });
      } catch (error) {
        if (!(error instanceof UntrustedError)) throw error;
        if (fromRefusedAt === -Infinity) {
          logger.warn("web.untrusted", {
            proxy: formatHostPort(sessionOptions.proxy),
            hint:
              "the server does not trust this gateway with browsers' addresses: add this gateway's address to its --trust-from, or it sees every player as the gateway",
          });
        }
        fromRefusedAt = performance.now();
      }
    }
    return session ?? await ClientSession.create(sessionOptions);
  }

  /**
   * How the page speaks to the destination it names in `?to=` (or the
   * default): `{"to","mode","charset","lineEnding","localEcho"}`, asked
   * before it creates a session.
   */
  function terminal(request: Request, method: string): Response {
    if (method !== "GET" && method !== "HEAD") {
      throw new HttpError(405, "method_not_allowed", "Use GET", { allow: "GET, HEAD" });
    }
    const asked = new URL(request.url).searchParams.get("to") || undefined;
    const { to, settings } = destinationFor(asked);
    return json(200, { to: to ?? null, ...settings });
  }

  async function poll(id: string, request: Request): Promise<Response> {
    const body = await readJson(request, limits.maxBody);
    const secret = secretOf(body);
    const ack = offsetOf(body, "ack", true) ?? 0;
    const inputAt = offsetOf(body, "inputAt", false);
    const input = inputOf(body, limits);
    const wait = body.wait === undefined ? 0 : body.wait;
    if (typeof wait !== "number" || !(wait >= 0)) {
      throw new HttpError(400, "bad_request", '"wait" must be a number of milliseconds');
    }
    const { session, data } = await router.onNode(id, async (node) => {
      const session = ClientSession.resume(
        { id, secret },
        {
          ...clientOptions,
          proxy: node.address,
          ack,
          ...(inputAt === undefined ? {} : { inputAt }),
        },
      );
      session.send(input);
      const data = await session.poll({
        wait: Math.min(wait, limits.maxWait),
        signal: request.signal,
      });
      return { session, data };
    });
    return json(200, {
      data: data.toBase64(),
      ack: session.received,
      in: session.inputConfirmed,
      state: session.state,
      dropped: session.droppedByServer,
    }, wait > 0 ? { "x-accel-buffering": "no" } : {});
  }

  async function end(id: string, request: Request): Promise<Response> {
    const body = await readJson(request, limits.maxBody);
    const secret = secretOf(body);
    await router.onNode(
      id,
      (node) =>
        ClientSession.resume({ id, secret }, { ...clientOptions, proxy: node.address }).close(),
    );
    return json(200, { closed: id });
  }

  /**
   * For load balancers and probes, which send a `Host` of their own: so it
   * is answered for any (see `guard`), which is safe, as it changes nothing
   * and says nothing a page could use.
   */
  function health(method: string): Response {
    if (method !== "GET" && method !== "HEAD") {
      throw new HttpError(405, "method_not_allowed", "Use GET", { allow: "GET, HEAD" });
    }
    return stopping.aborted ? json(503, { status: "stopping" }) : json(200, { status: "ok" });
  }

  function route(request: Request, path: string, info?: HttpRequestInfo) {
    const method = request.method;
    if (path === "/health") return Promise.resolve(health(method));
    if (path === "/api/terminal") return Promise.resolve(terminal(request, method));
    if (path === "/api/sessions") {
      if (method !== "POST") {
        throw new HttpError(405, "method_not_allowed", "Use POST", { allow: "POST" });
      }
      return create(request, info);
    }
    const match = SESSION_PATH.exec(path);
    if (match) {
      const id = match[1] ?? "";
      if (!ID_PATTERN.test(id)) throw new HttpError(400, "bad_request", "Malformed session id");
      switch (match[2]) {
        case "/poll":
          if (method !== "POST") {
            throw new HttpError(405, "method_not_allowed", "Use POST", { allow: "POST" });
          }
          return poll(id, request);
        case "/ws":
          if (method !== "GET") {
            throw new HttpError(405, "method_not_allowed", "Use GET", { allow: "GET" });
          }
          if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
            throw new HttpError(400, "bad_request", "This path takes a WebSocket");
          }
          return Promise.resolve(webSocket(id, request, info));
        default:
          if (method !== "DELETE") {
            throw new HttpError(405, "method_not_allowed", "Use DELETE", { allow: "DELETE" });
          }
          return end(id, request);
      }
    }
    const asset = assets[path];
    if (asset && (method === "GET" || method === "HEAD")) {
      return Promise.resolve(serveAsset(path, asset, request));
    }
    if (asset) throw new HttpError(405, "method_not_allowed", "Use GET", { allow: "GET, HEAD" });
    throw new HttpError(404, "not_found", `No such path: ${path.slice(0, 100)}`);
  }

  /**
   * An asset, revalidated on every use (`no-cache`) against an ETag of its
   * content: a new version is never mixed with an old one, and an unchanged
   * one costs a 304.
   */
  function serveAsset(path: string, asset: Asset, request: Request): Response {
    const etag = etags.get(path) ?? "";
    const headers = {
      "cache-control": "no-cache",
      etag,
      "x-content-type-options": "nosniff",
    };
    const wanted = request.headers.get("if-none-match")?.split(",").map((tag) =>
      tag.trim().replace(/^W\//, "")
    );
    if (wanted?.includes(etag) || wanted?.includes("*")) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(asset.body, { headers: { "content-type": asset.type, ...headers } });
  }

  function webSocket(id: string, request: Request, info: HttpRequestInfo | undefined): Response {
    if (!info?.upgradeWebSocket) {
      throw new HttpError(400, "bad_request", "This path takes a WebSocket");
    }
    // An unknown node is answered before the upgrade, as plain JSON.
    const node = router.nodeFor(id);
    const address = clientAddress(request, info);
    const browser = browserAddress(request, info);
    let upgrade;
    try {
      // The first message is a JSON body; the relay answers input over maxInput itself.
      upgrade = info.upgradeWebSocket({
        maxMessage: Math.max(limits.maxBody, limits.maxInput),
        messageTimeout: options.timeouts?.body ?? HTTP_TIMEOUTS.body,
      });
    } catch (error) {
      if (error instanceof WebSocketVersionError) {
        throw new HttpError(426, "upgrade_required", error.message, {
          "sec-websocket-version": error.supported,
        });
      }
      throw new HttpError(400, "bad_request", describeError(error));
    }
    const { socket, response } = upgrade;
    relay(socket, {
      id,
      clientOptions: { ...clientOptions, proxy: node.address },
      limits,
      logger,
      metrics,
      address,
      firstMessageTimeout: options.firstMessageTimeout ?? 10_000,
      onAuthFailed: () => guessed(browser, "/api/sessions/{id}/ws", address),
      explain: (error) => router.explain(error, node),
    });
    const stop = (): void => socket.close(1001, "gateway stopping");
    stopping.addEventListener("abort", stop, { once: true });
    void socket.closed.then(() => stopping.removeEventListener("abort", stop));
    socket.onerror = (error) => {
      logger.error("web.error", { path: "ws", error: describeError(error), ...address });
    };
    return response;
  }

  /** The answer to a request that failed: JSON with the status that fits. */
  async function failure(
    error: unknown,
    request: Request,
    info: HttpRequestInfo | undefined,
    path: string,
    address: object,
  ): Promise<Response> {
    const http = httpErrorFor(error);
    if (!http) {
      logger.error("web.error", { path: routeOf(path), error: describeError(error), ...address });
      return json(500, { error: "internal", message: "The gateway failed; see its log" });
    }
    metrics.failed(http);
    if (http.status >= 500) {
      logger.warn("web.proxy_error", {
        path: routeOf(path),
        error: http.code,
        detail: describeError(error),
        ...address,
      });
    }
    if (http.status === 401) await guessed(browserAddress(request, info), routeOf(path), address);
    const headers: Record<string, string> = {};
    const extra = { ...http.extra };
    for (const name of HEADER_EXTRAS) {
      const value = extra[name];
      if (typeof value === "string") headers[name] = value;
      delete extra[name];
    }
    return json(http.status, { error: http.code, message: http.message, ...extra }, headers);
  }

  /** The node a request went to, for its metrics: only a node of a named router's list. */
  function nodeLabel(path: string, response: Response): string | undefined {
    if (!router.named) return undefined;
    const id = SESSION_PATH.exec(path)?.[1] ??
      response.headers.get("location")?.slice("sessions/".length);
    return id === undefined ? undefined : router.knownNode(id);
  }

  return async (request, info) => {
    const started = performance.now();
    // Read before routing: an upgraded WebSocket request can no longer be read.
    const address = clientAddress(request, info);
    const method = request.method;
    let path = "/";
    let response: Response;
    try {
      path = new URL(request.url).pathname;
      guard(request, path, address);
      response = await route(request, path, info);
    } catch (error) {
      response = await failure(error, request, info, path, address);
    }
    // Every answer is logged, errors too; an oversized request is worth a warning.
    const fields = {
      method,
      path: routeOf(path),
      status: response.status,
      ms: Math.round(performance.now() - started),
      ...address,
    };
    if (response.status === 413) logger.warn("web.request", fields);
    else logger.debug("web.request", fields);
    metrics.requested(routeLabel(path, assets), response.status, nodeLabel(path, response));
    metrics.answeredIn(routeLabel(path, assets), (performance.now() - started) / 1000);
    return response;
  };
}

/**
 * The gateway's HTTP server.
 *
 * @example
 * ```ts ignore
 * const gateway = await WebGateway.listen({ hostname: "localhost", port: 8080 }, { proxy, logger });
 * await gateway.close();
 * ```
 */
export class WebGateway implements AsyncDisposable {
  readonly #server: HttpServer;

  private constructor(server: HttpServer) {
    this.#server = server;
  }

  /**
   * Starts serving. For `localhost`, that is 127.0.0.1 and ::1 on the same port.
   *
   * @param addr Where to listen.
   * @param options The proxy, logger, assets and limits.
   * @returns The running gateway.
   * @throws {Deno.errors.AddrInUse} When the port is taken, and the other errors of `Deno.listen`.
   */
  static async listen(addr: HostPort, options: GatewayOptions): Promise<WebGateway> {
    return new WebGateway(
      await HttpServer.listen(addr, {
        handler: (signal) => gatewayHandler({ listen: addr, ...options, signal }),
        logger: options.logger,
        name: "web",
        ...(options.timeouts ? { timeouts: options.timeouts } : {}),
        ...(options.tls ? { tls: options.tls } : {}),
      }),
    );
  }

  /** The address the gateway listens on: for `localhost`, 127.0.0.1's. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** Stops the gateway: open requests and WebSockets are ended. */
  close(): Promise<void> {
    return this.#server.close();
  }

  /** See {@linkcode WebGateway.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
