/**
 * The HTTP gateway: turns browser requests into short socketproxy client
 * connections, so a web page can hold a telnet-style session that survives
 * page reloads, flaky networks and gateway restarts.
 *
 *     browser <--JSON/WebSocket--> gateway <--> socketproxy server <--> destination
 *
 * The gateway keeps no session state: every request is one client
 * connection to the proxy, made with the client library. Any number of
 * gateways can serve the same sessions, and a restart loses nothing.
 *
 * | route                              | what                                            |
 * | ---------------------------------- | ----------------------------------------------- |
 * | `POST /api/sessions`               | new session: `201 {"id","secret"}`              |
 * | `POST /api/sessions/{id}/poll`     | attach at `ack`, send `input`, return output    |
 * | `DELETE /api/sessions/{id}`        | end the session (secret in the body)            |
 * | `GET /api/sessions/{id}/ws`        | WebSocket: output and input both ways           |
 * | `GET /`, `GET /assets/...`         | the browser page                                |
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

import { type ClientConnection, ClientSession, meaningOf } from "../client/mod.ts";
import { createHash } from "node:crypto";
import type { HostPort } from "../address.ts";
import { describeError, type Logger } from "../log.ts";
import { ID_PATTERN, SECRET_PATTERN } from "../protocol.ts";
import { sleep } from "../_io.ts";
import { AuthThrottle } from "../throttle.ts";

/** Limits on what a request may ask for. */
export interface GatewayLimits {
  /** Largest request body, in bytes. */
  maxBody: number;
  /** Largest input per poll or WebSocket message, in bytes (decoded). */
  maxInput: number;
  /** Longest `wait` of a long-poll, in ms; longer waits are cut to this. */
  maxWait: number;
}

/** Defaults of {@linkcode GatewayLimits}. */
export const GATEWAY_LIMITS: Readonly<GatewayLimits> = {
  maxBody: 256 * 1024,
  maxInput: 64 * 1024,
  maxWait: 30_000,
};

/** A static file the gateway serves. */
export interface Asset {
  /** Its media type. */
  type: string;
  /** Its content. */
  body: string | Uint8Array<ArrayBuffer>;
}

/** Options for {@linkcode gatewayHandler}. */
export interface GatewayOptions {
  /** The socketproxy server. */
  proxy: HostPort;
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
}

/**
 * Once this much WebSocket output waits to go out, the proxy is not read
 * until it is down to the low water mark: a slow browser slows the proxy,
 * and a fast one gets output in large runs, not a chunk per wait.
 */
const WS_HIGH_WATER = 1024 * 1024;
const WS_LOW_WATER = 256 * 1024;

const SESSION_PATH = /^\/api\/sessions\/([^/]+)(\/poll|\/ws)?$/;

/** An error answered as JSON with an HTTP status. */
class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly extra: Record<string, unknown>;

  constructor(status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/** Maps a client library error to the HTTP error the browser gets. */
function httpErrorFor(error: unknown): HttpError | null {
  if (error instanceof HttpError) return error;
  const meaning = meaningOf(error);
  if (!meaning) return null;
  return new HttpError(meaning.status, meaning.code, `The proxy ${meaning.phrase}`, meaning.fields);
}

/** Reads a JSON object body of at most `max` bytes. */
async function readJson(request: Request, max: number): Promise<Record<string, unknown>> {
  const length = Number(request.headers.get("content-length") ?? NaN);
  if (length > max) {
    throw new HttpError(413, "too_large", `Request bodies are limited to ${max} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      total += chunk.length;
      if (total > max) {
        throw new HttpError(413, "too_large", `Request bodies are limited to ${max} bytes`);
      }
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new HttpError(400, "bad_request", "The body must be a JSON object");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "bad_request", "The body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

function secretOf(body: Record<string, unknown>): string {
  const secret = body.secret;
  if (typeof secret !== "string" || !SECRET_PATTERN.test(secret)) {
    throw new HttpError(400, "bad_request", '"secret" must be the session secret');
  }
  return secret;
}

function offsetOf(
  body: Record<string, unknown>,
  name: string,
  required: boolean,
): number | undefined {
  const value = body[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new HttpError(400, "bad_request", `"${name}" must be a whole number of bytes`);
  }
  return value;
}

function inputOf(body: Record<string, unknown>, limits: GatewayLimits): Uint8Array {
  const input = body.input;
  if (input === undefined || input === "") return new Uint8Array(0);
  if (typeof input !== "string") {
    throw new HttpError(400, "bad_request", '"input" must be base64 text');
  }
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(input);
  } catch {
    throw new HttpError(400, "bad_request", '"input" must be base64 text');
  }
  if (bytes.length > limits.maxInput) {
    throw new HttpError(
      413,
      "too_large",
      `Input is limited to ${limits.maxInput} bytes per request`,
      { maxInput: limits.maxInput },
    );
  }
  return bytes;
}

/**
 * The address a reverse proxy in front appended to `X-Forwarded-For`: the
 * last one. Those before it came from the browser and may be made up.
 */
function forwardedFor(request: Request): string | undefined {
  return request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim() || undefined;
}

/** The client's address as the gateway's own peer and any proxy in front say it, for the log. */
function clientAddress(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined) {
  const peer = info ? `${info.remoteAddr.hostname}:${info.remoteAddr.port}` : undefined;
  return { peer, forwarded_for: forwardedFor(request) };
}

/** A path as logged for its route: `/api/sessions/{id}/poll`. */
function routeOf(path: string): string {
  return path.replace(/\/api\/sessions\/[^/]+/, "/api/sessions/{id}");
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * The browser's address, as far as it can be trusted: the peer's, unless
 * the peer is a reverse proxy on this host (nginx, say), in which case the
 * address that proxy appended to `X-Forwarded-For`.
 */
function browserAddress(
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined,
): string | undefined {
  const peer = info?.remoteAddr.hostname;
  if (peer === undefined || !LOOPBACK.test(peer)) return peer;
  return forwardedFor(request) ?? peer;
}

/**
 * Builds the gateway's request handler.
 *
 * @param options The proxy, logger, assets and limits.
 * @returns A handler for `Deno.serve`; it never throws.
 */
export function gatewayHandler(
  options: GatewayOptions,
): (request: Request, info?: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response> {
  const limits: GatewayLimits = { ...GATEWAY_LIMITS, ...options.limits };
  const { logger } = options;
  const clientOptions = {
    proxy: options.proxy,
    timeout: options.proxyTimeout ?? 10_000,
    ...(options.proxyTls ? { tls: options.proxyTls } : {}),
  };
  const assets = options.assets ?? {};
  const etags = assetTags(assets);
  const throttle = options.throttle ?? new AuthThrottle();
  const stopping = options.signal ?? new AbortController().signal;

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

  async function create(): Promise<Response> {
    const session = await ClientSession.create(clientOptions);
    return json(201, { id: session.id, secret: session.secret }, {
      location: `sessions/${session.id}`,
    });
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
    const session = ClientSession.resume(
      { id, secret },
      { ...clientOptions, ack, ...(inputAt === undefined ? {} : { inputAt }) },
    );
    session.send(input);
    const data = await session.poll({
      wait: Math.min(wait, limits.maxWait),
      signal: request.signal,
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
    const session = ClientSession.resume({ id, secret: secretOf(body) }, clientOptions);
    await session.close();
    return json(200, { closed: id });
  }

  function route(request: Request, path: string, info?: Deno.ServeHandlerInfo<Deno.NetAddr>) {
    const method = request.method;
    if (path === "/api/sessions") {
      if (method !== "POST") {
        throw new HttpError(405, "method_not_allowed", "Use POST", { allow: "POST" });
      }
      return create();
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

  function webSocket(
    id: string,
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined,
  ): Response {
    const address = clientAddress(request, info);
    const browser = browserAddress(request, info);
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    relay(socket, {
      id,
      clientOptions: { ...clientOptions },
      limits,
      logger,
      address,
      firstMessageTimeout: options.firstMessageTimeout ?? 10_000,
      onAuthFailed: () => guessed(browser, "/api/sessions/{id}/ws", address),
    });
    const stop = (): void => socket.close(1001, "gateway stopping");
    options.signal?.addEventListener("abort", stop, { once: true });
    socket.addEventListener("close", () => options.signal?.removeEventListener("abort", stop));
    return response;
  }

  /** The answer to a request that failed: JSON with the status that fits. */
  async function failure(
    error: unknown,
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined,
    path: string,
    address: object,
  ): Promise<Response> {
    const http = httpErrorFor(error);
    if (!http) {
      logger.error("web.error", { path: routeOf(path), error: describeError(error), ...address });
      return json(500, { error: "internal", message: "The gateway failed; see its log" });
    }
    if (http.status >= 500) {
      logger.warn("web.proxy_error", {
        path: routeOf(path),
        error: http.code,
        detail: describeError(error),
        ...address,
      });
    }
    if (http.status === 401) await guessed(browserAddress(request, info), routeOf(path), address);
    const headers: Record<string, string> = typeof http.extra.allow === "string"
      ? { allow: http.extra.allow }
      : {};
    const extra = { ...http.extra };
    delete extra.allow;
    return json(http.status, { error: http.code, message: http.message, ...extra }, headers);
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
    return response;
  };
}

/** Strong ETags of the assets, from a hash of their content, computed once. */
function assetTags(assets: Record<string, Asset>): Map<string, string> {
  const tags = new Map<string, string>();
  for (const [path, asset] of Object.entries(assets)) {
    const digest = createHash("sha256").update(asset.body).digest("base64url");
    tags.set(path, `"${digest.slice(0, 16)}"`);
  }
  return tags;
}

/** What {@linkcode relay} needs besides the socket. */
interface RelayContext {
  id: string;
  clientOptions: { proxy: HostPort; timeout: number; tls?: { caCerts?: string[] } };
  limits: GatewayLimits;
  logger: Logger;
  address: { peer: string | undefined; forwarded_for: string | undefined };
  /** How long the first message may take, in ms. */
  firstMessageTimeout: number;
  onAuthFailed: () => Promise<void>;
}

/**
 * Runs one WebSocket: the first message (JSON `{"secret","ack","inputAt"?,"input"?}`)
 * attaches, then output goes to the browser as binary frames and binary
 * frames from it are input. Text messages from the gateway are JSON:
 * `{"type":"attached","from","in","state","maxInput","window"}`,
 * `{"type":"in","in"}` (the proxy has the session's input up to `in`),
 * `{"type":"closed","ack","ended"}` (the destination closed and all its
 * output was sent; `ended` when attaching at `ack` acknowledged it all and
 * so ended the session, otherwise the page's own final poll at `ack` does),
 * `{"type":"dropped","ack"}` (the proxy ended the connection while
 * the session was open: the destination closed, or another window took
 * the session over; `ack` is the output sent so far),
 * `{"type":"error","error","message",...}`.
 *
 * On `dropped` the gateway does not ask the proxy which it was: any hello
 * would take the session over, and two windows (or a stale relay) asking
 * would end each other. The page decides whether to attach again.
 *
 * Input is kept (for resending) until the proxy confirms it, which only a
 * reply does: once `maxInput` bytes are unconfirmed the gateway ends its
 * connection gracefully, attaches again and passes the confirmation on. The
 * browser keeps at most `window` bytes unconfirmed; more ends the socket,
 * so no browser makes the gateway hold more than that.
 */
function relay(socket: WebSocket, context: RelayContext): void {
  const { id, clientOptions, limits, logger, address } = context;
  const window = 2 * limits.maxInput;
  let session: ClientSession | null = null;
  /** The attached connection, once there is one. */
  let connection: ClientConnection | null = null;
  /** The proxy is confirming the input (see `confirm`). */
  let confirming = false;
  /** The connection this side ended (half-closed) to have its input confirmed. */
  let halfClosed: ClientConnection | null = null;
  /** Input that arrived while confirming, and its size. */
  const held: Uint8Array[] = [];
  let heldBytes = 0;
  let closed = false;
  // A socket that never says what it wants is not held open.
  const firstMessage = setTimeout(() => {
    fail(
      "timeout",
      `No first message within ${context.firstMessageTimeout} ms: send {"secret","ack"} at once`,
    );
  }, context.firstMessageTimeout);
  socket.onclose = socket.onerror = () => {
    closed = true;
    clearTimeout(firstMessage);
    connection?.close();
  };
  /** Sends a control message, unless the socket is going. */
  function tell(message: Record<string, unknown>): boolean {
    if (socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }
  function fail(code: string, message: string, extra: Record<string, unknown> = {}): void {
    if (tell({ type: "error", error: code, message, ...extra })) socket.close(4000, code);
  }
  /** The proxy ended the connection of an open session; only a takeover could tell why. */
  function dropped(session: ClientSession): void {
    connection?.close();
    if (tell({ type: "dropped", ack: session.received })) {
      socket.close(4001, "dropped by the proxy");
    }
  }
  socket.onmessage = (event) => {
    if (session === null) {
      clearTimeout(firstMessage);
      void start(event.data);
      return;
    }
    const bytes = typeof event.data === "string"
      ? decodeInputMessage(event.data)
      : new Uint8Array(event.data);
    if (bytes === null) {
      return fail("bad_request", 'Messages after the first are binary input or {"input"}');
    }
    if (bytes.length > limits.maxInput) {
      return fail("too_large", `Input is limited to ${limits.maxInput} bytes per message`, {
        maxInput: limits.maxInput,
      });
    }
    if (session.unconfirmed + heldBytes + bytes.length > window) {
      return fail(
        "too_much_input",
        `At most ${window} bytes of input may wait for confirmation ({"type":"in"})`,
        { window },
      );
    }
    if (confirming) {
      held.push(bytes);
      heldBytes += bytes.length;
      return;
    }
    session.send(bytes);
    if (session.unconfirmed >= limits.maxInput) void confirm();
  };

  /**
   * Has the proxy confirm the input: once all of it is written, this side
   * of the connection is closed, so the proxy takes it all in, hands on the
   * output it has and ends the connection; the pump then attaches again,
   * and the reply says where the input stands. Input arriving meanwhile is
   * held back until then. A connection the proxy ended before this side
   * did was not ended for this: the pump treats it as dropped.
   */
  async function confirm(): Promise<void> {
    const current = connection;
    if (confirming || current === null || closed) return;
    confirming = true;
    await session?.flush();
    if (current.closed || connection !== current) return;
    halfClosed = current;
    await current.closeWrite();
  }

  function decodeInputMessage(text: string): Uint8Array | null {
    try {
      const message = JSON.parse(text);
      return typeof message?.input === "string" ? Uint8Array.fromBase64(message.input) : null;
    } catch {
      return null;
    }
  }

  async function start(first: unknown): Promise<void> {
    let body: Record<string, unknown>;
    try {
      if (typeof first !== "string" || first.length > limits.maxBody) throw new Error();
      body = JSON.parse(first);
      if (typeof body !== "object" || body === null) throw new Error();
    } catch {
      return fail("bad_request", 'The first message must be JSON: {"secret","ack"}');
    }
    try {
      const ack = offsetOf(body, "ack", false);
      const inputAt = offsetOf(body, "inputAt", false);
      session = ClientSession.resume({ id, secret: secretOf(body) }, {
        ...clientOptions,
        ...(ack === undefined ? {} : { ack }),
        ...(inputAt === undefined ? {} : { inputAt }),
      });
      session.send(inputOf(body, limits));
      await pump(session);
    } catch (error) {
      const http = httpErrorFor(error);
      if (!http) logger.error("web.error", { path: "ws", error: describeError(error), ...address });
      if (http?.status === 401) await context.onAuthFailed();
      fail(
        http?.code ?? "internal",
        http?.message ?? "The gateway failed; see its log",
        http?.extra,
      );
    } finally {
      connection?.close();
    }
  }

  /** Attaches in streaming mode; false when the browser left meanwhile. */
  async function attach(session: ClientSession): Promise<boolean> {
    connection = await session.connect("streaming");
    if (closed) connection.close();
    return !closed;
  }

  /** Waits while the browser is slow to take output, reading nothing from the proxy. */
  async function drain(): Promise<void> {
    if (socket.bufferedAmount <= WS_HIGH_WATER) return;
    while (socket.bufferedAmount > WS_LOW_WATER && socket.readyState === WebSocket.OPEN) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async function pump(session: ClientSession): Promise<void> {
    if (!await attach(session)) return;
    tell({
      type: "attached",
      from: session.received,
      in: session.inputConfirmed,
      state: connection?.reply.state,
      maxInput: limits.maxInput,
      window,
    });
    while (connection !== null) {
      for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read()) {
        if (socket.readyState !== WebSocket.OPEN) return;
        socket.send(chunk);
        await drain();
      }
      if (closed) return;
      const ended = connection;
      if (confirming && halfClosed === ended) {
        if (!await attach(session)) return;
        // All input written before the half-close was taken in before a
        // detach for it; some missing means the proxy ended the connection
        // for another reason (a takeover), and this attach took it back.
        if (session.unconfirmed > 0 && connection.reply.state === "open") {
          return dropped(session);
        }
        confirming = false;
        halfClosed = null;
        tell({ type: "in", in: session.inputConfirmed });
        for (const bytes of held.splice(0)) session.send(bytes);
        heldBytes = 0;
        if (session.unconfirmed >= limits.maxInput) void confirm();
        continue;
      }
      // The proxy ended a connection of a session that was open: the
      // destination closed since, or a newer client took over.
      if (ended.reply.state === "open") return dropped(session);
      // The destination closed and all its output was sent. Unless the
      // attach itself acknowledged it all (at the browser's own ack),
      // nothing here did: the browser's final poll ends the session, once it
      // has the bytes (or the idle timeout does).
      if (tell({ type: "closed", ack: session.received, ended: session.ended })) {
        socket.close(1000, "destination closed");
      }
      return;
    }
  }
}

/**
 * The gateway's HTTP server.
 *
 * @example
 * ```ts ignore
 * const gateway = WebGateway.listen({ hostname: "localhost", port: 8080 }, { proxy, logger });
 * await gateway.close();
 * ```
 */
export class WebGateway implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #stop: AbortController;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, stop: AbortController) {
    this.#server = server;
    this.#stop = stop;
  }

  /**
   * Starts serving.
   *
   * @param addr Where to listen.
   * @param options The proxy, logger, assets and limits.
   * @returns The running gateway.
   * @throws {Deno.errors.AddrInUse} When the port is taken, and the other errors of `Deno.serve`.
   */
  static listen(addr: HostPort, options: GatewayOptions): WebGateway {
    const stop = new AbortController();
    const handler = gatewayHandler({ ...options, signal: stop.signal });
    return new WebGateway(
      Deno.serve({ hostname: addr.hostname, port: addr.port, onListen: () => {} }, handler),
      stop,
    );
  }

  /** The address the gateway listens on. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** Stops the gateway: open requests and WebSockets are ended. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#server.shutdown();
  }

  /** See {@linkcode WebGateway.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
