/**
 * The HTTP server the admin API and the web gateway both run on, and the
 * limits every HTTP port keeps while bytes arrive: a request's headers
 * must be complete within a time limit (and `node:http`'s 16 KiB), its
 * body within another, and a connection waiting for its next request is
 * closed after the keep-alive limit. WebSocket upgrades hand the
 * connection to {@linkcode ServerWebSocket}, whose limits hold per frame.
 *
 * It runs on `node:http` (or `node:https` with a certificate) because
 * `Deno.serve` has no header, body or keep-alive timeout and buffers a
 * WebSocket message whole before its size is checked; handlers still take
 * a web `Request` and give a `Response`. For `localhost` it listens on both
 * loopbacks (see {@linkcode listenLoopbacksAsync}).
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { HostPort } from "../address.ts";
import { describeError, type Logger } from "../log.ts";
import { listenLoopbacksAsync } from "../listen.ts";
import { acceptKey, ServerWebSocket, WEBSOCKET_LIMITS, type WebSocketLimits } from "./websocket.ts";

/** Time limits on every HTTP connection, in ms. */
export interface HttpTimeouts {
  /**
   * From a connection's opening (its TLS handshake included) to the end of
   * its first request's headers; and from the end of the keep-alive wait
   * (see `keepAlive`) to the end of the next request's headers.
   */
  headers: number;
  /** From the end of a request's headers to the end of its body. */
  body: number;
  /**
   * How long a connection may wait for its next request after a response;
   * once it has started one, `headers` applies.
   */
  keepAlive: number;
}

/** Defaults: see docs/security.md. */
export const HTTP_TIMEOUTS: HttpTimeouts = { headers: 10_000, body: 10_000, keepAlive: 30_000 };

/** What the handler learns about a request besides the request itself. */
export interface HttpRequestInfo {
  /** Who sent it: the peer of the connection. */
  remoteAddr: Deno.NetAddr;
  /**
   * On a WebSocket upgrade request only: accepts it. Return its `response`
   * from the handler; the socket's events start once the handler returns.
   * Throws {@linkcode WebSocketVersionError} for a `Sec-WebSocket-Version`
   * other than 13, and `TypeError` for another handshake it cannot accept.
   */
  upgradeWebSocket?: (limits?: Partial<WebSocketLimits>) => WebSocketUpgrade;
}

/** An accepted upgrade: the socket, and the response to return for it. */
export interface WebSocketUpgrade {
  socket: ServerWebSocket;
  /** The 101 already written, as a `Response` whose `status` is 101. */
  response: Response;
}

/** Answers one request; `info` says who asked. */
export type HttpHandler = (
  request: Request,
  info: HttpRequestInfo,
) => Response | Promise<Response>;

/** Options for {@linkcode HttpServer.listen}. */
export interface HttpServerOptions {
  /**
   * Builds the request handler. `signal` aborts when the server closes, so
   * that answers held back and open WebSockets end instead of holding the
   * close up. (Each request's own `signal` aborts then too.)
   */
  handler: (signal: AbortSignal) => HttpHandler;
  /** Where a loopback that cannot be listened on, and a handler that threw, are told. */
  logger: Logger;
  /** What serves, for those log lines, such as `admin` or `web`. */
  name: string;
  /** Time limits. @default {HTTP_TIMEOUTS} */
  timeouts?: Partial<HttpTimeouts>;
  /** Serve HTTPS (and WSS) with this certificate chain and key, both PEM. */
  tls?: { cert: string; key: string };
}

/** One connection's deadline: what it waits for, and the timer that ends it. */
interface Deadline {
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Requests on it whose responses are not finished. */
  active: number;
  /** A request's body is still arriving and nothing has been answered. */
  awaitingBody: boolean;
}

/**
 * The answer to a request whose client ended the connection short of the
 * body it announced: `node:http` drops such a connection, so it is written
 * first, the same for every port (all answer errors as this JSON).
 */
const CUT_SHORT_ANSWER = (() => {
  const body = JSON.stringify({ error: "bad_request", message: "The request body ended early" });
  return "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n" +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
})();

/**
 * What {@linkcode HttpRequestInfo.upgradeWebSocket} throws for a
 * `Sec-WebSocket-Version` other than 13: RFC 6455 section 4.4 has that
 * answered 426 with a `Sec-WebSocket-Version` header naming the version
 * served, where other refused upgrades are a 400.
 */
export class WebSocketVersionError extends TypeError {
  override name = "WebSocketVersionError";
  /** The one version served, for the answer's `Sec-WebSocket-Version` header. */
  readonly supported = "13";
}

/**
 * The response {@linkcode HttpRequestInfo.upgradeWebSocket} makes: its
 * status is the 101 already written (as `Deno.upgradeWebSocket`'s is), so
 * logs and metrics tell an upgrade from a 200; `new Response` refuses a
 * status under 200, hence the getter.
 */
class UpgradeResponse extends Response {
  override get status(): number {
    return 101;
  }
}

/**
 * An HTTP server on one address, or on both loopbacks for `localhost`.
 *
 * @example Serve on a free loopback port
 * ```ts
 * import { HttpServer } from "./server.ts";
 * import { Logger } from "../log.ts";
 *
 * await using server = await HttpServer.listen({ hostname: "127.0.0.1", port: 0 }, {
 *   handler: () => () => new Response("hello\n"),
 *   logger: new Logger(),
 *   name: "example",
 * });
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * console.assert(await response.text() === "hello\n");
 * ```
 */
export class HttpServer implements AsyncDisposable {
  readonly #listeners: readonly Listening[];
  readonly #stop: AbortController;
  readonly #open: OpenConnections;
  #closing: Promise<void> | null = null;

  private constructor(
    listeners: readonly Listening[],
    stop: AbortController,
    open: OpenConnections,
  ) {
    this.#listeners = listeners;
    this.#stop = stop;
    this.#open = open;
  }

  /**
   * Starts serving.
   *
   * @param addr Where to listen; `localhost` is 127.0.0.1 and ::1 on the same port.
   * @param options The handler, limits, TLS, and the logger and name for the log.
   * @returns The running server.
   * @throws {Deno.errors.AddrInUse} When the port is taken (on 127.0.0.1
   * for `localhost`); {@linkcode Deno.errors.PermissionDenied} and others
   * as `Deno.listen` throws them; {@linkcode Deno.errors.InvalidData} or
   * `TypeError` for a certificate or key that TLS cannot use.
   */
  static async listen(addr: HostPort, options: HttpServerOptions): Promise<HttpServer> {
    if (options.tls) checkCertificate(options.tls);
    const stop = new AbortController();
    const timeouts = { ...HTTP_TIMEOUTS, ...options.timeouts };
    const open = new OpenConnections(timeouts);
    const serve: Serve = {
      handler: options.handler(stop.signal),
      timeouts,
      tls: options.tls,
      logger: options.logger,
      name: options.name,
      open,
    };
    const listeners = await listenLoopbacksAsync(addr, {
      listen: (one) => listenOne(one, serve),
      logger: options.logger,
      name: options.name,
    });
    return new HttpServer(listeners, stop, open);
  }

  /** The address served first: for `localhost`, 127.0.0.1's. */
  get addr(): Deno.NetAddr {
    return (this.#listeners[0] as Listening).addr;
  }

  /** Every address served. */
  get addrs(): Deno.NetAddr[] {
    return this.#listeners.map((listener) => listener.addr);
  }

  /** Connections open now (idle, in a request, or upgraded). */
  get connections(): number {
    return this.#open.size;
  }

  /**
   * Stops serving on every address: the handler's signal and every
   * request's signal abort, idle connections close at once and the others
   * once their answers are written (a second at most). Resolves once all
   * are closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** See {@linkcode HttpServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    const closed = this.#listeners.map((listener) => listener.close());
    await Promise.all([...closed, this.#open.close()]);
  }
}

/** The open connections of a server, with their deadlines, and its requests in flight. */
class OpenConnections {
  /** By raw TCP socket (for TLS too). */
  readonly #connections = new Map<Socket, Deadline>();
  /** Aborts each request's `signal` when the server closes. */
  readonly #requests = new Set<AbortController>();
  readonly #timeouts: HttpTimeouts;
  #closing = false;

  constructor(timeouts: HttpTimeouts) {
    this.#timeouts = timeouts;
  }

  get size(): number {
    return this.#connections.size;
  }

  /** A connection opened: its headers deadline starts. */
  connected(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const deadline: Deadline = { timer: undefined, active: 0, awaitingBody: false };
    arm(deadline, socket, this.#timeouts.headers);
    this.#connections.set(socket, deadline);
    socket.prependListener("end", () => {
      if (deadline.awaitingBody && socket.writable) socket.write(CUT_SHORT_ANSWER);
    });
    socket.once("close", () => {
      clearTimeout(deadline.timer);
      this.#connections.delete(socket);
    });
  }

  deadlineOf(socket: Socket): Deadline | undefined {
    return this.#connections.get(socket);
  }

  /** A request began; the returned function says it ended. */
  track(controller: AbortController): () => void {
    if (this.#closing) controller.abort();
    this.#requests.add(controller);
    return () => this.#requests.delete(controller);
  }

  /** Aborts every request; idle connections close at once, the others within a second. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const controller of this.#requests) controller.abort();
    for (const [socket, deadline] of this.#connections) {
      if (deadline.active === 0) socket.destroy();
    }
    // Answers in flight are written (aborted waits answer at once); then the rest go.
    const waited = Promise.all([...this.#connections.keys()].map(closedEvent));
    const cut = setTimeout(() => {
      for (const socket of this.#connections.keys()) socket.destroy();
    }, 1000);
    await waited;
    clearTimeout(cut);
  }
}

/** What one listening socket needs from its server. */
interface Serve {
  handler: HttpHandler;
  timeouts: HttpTimeouts;
  tls: { cert: string; key: string } | undefined;
  logger: Logger;
  name: string;
  open: OpenConnections;
}

/** One listening `node:http` server. */
interface Listening {
  readonly addr: Deno.NetAddr;
  close(): Promise<void>;
}

/**
 * Throws as `Deno.listenTls` would for a certificate chain or key that
 * cannot serve TLS (not decodable, no certificate, a key of another
 * certificate): `node:https` in Deno reads them only at each handshake,
 * which would then fail, so a bad file would start a server nobody can reach.
 */
function checkCertificate(tls: { cert: string; key: string }): void {
  // The same rustls parsing as the handshakes', without a socket or a permission.
  Deno.createHttpClient({ cert: tls.cert, key: tls.key }).close();
}

/** Listens on one address, as `Deno.listen` would throw on failure. */
function listenOne(addr: HostPort, serve: Serve): Promise<Listening> {
  const server = serve.tls
    ? https.createServer({ cert: serve.tls.cert, key: serve.tls.key })
    : http.createServer();
  // Our own deadlines replace these (which `node:http` in Deno does not enforce).
  server.headersTimeout = serve.timeouts.headers;
  server.requestTimeout = 0;
  server.keepAliveTimeout = serve.timeouts.keepAlive;
  server.on("connection", (socket: Socket) => serve.open.connected(socket));
  server.on("request", (request, response) => {
    void answer(request, response, serve);
  });
  server.on("upgrade", (request, socket: Duplex, head: Uint8Array) => {
    void answerUpgrade(request, socket, head, serve);
  });
  server.on("clientError", (_error: Error, socket: Duplex) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once("error", (error: Error & { code?: string }) => reject(asDenoError(error)));
    server.listen({ port: addr.port, host: addr.hostname, exclusive: true }, () => {
      const bound = server.address();
      if (bound === null || typeof bound === "string") {
        reject(new Error("listening on an unknown address"));
        return;
      }
      server.removeAllListeners("error");
      server.on("error", (error: Error) => {
        serve.logger.error("http.error", { name: serve.name, error: describeError(error) });
      });
      resolve({
        addr: { transport: "tcp", hostname: bound.address, port: bound.port },
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

/** `node:net`'s listen errors as the `Deno.errors` the rest of the code knows. */
function asDenoError(error: Error & { code?: string }): Error {
  const message = error.message;
  switch (error.code) {
    case "EADDRINUSE":
      return new Deno.errors.AddrInUse(message);
    case "EADDRNOTAVAIL":
      return Object.assign(new Deno.errors.AddrNotAvailable(message), { code: error.code });
    case "EACCES":
    case "EPERM":
      return new Deno.errors.PermissionDenied(message);
    default:
      return error;
  }
}

/** The raw TCP socket under a connection (a TLS socket's is its parent). */
function rawSocket(socket: Duplex): Socket {
  return ((socket as { _parent?: Socket })._parent ?? socket) as Socket;
}

/** (Re)starts a connection's one deadline; when it passes, the connection is dropped. */
function arm(deadline: Deadline, socket: Socket, ms: number, then?: () => void): void {
  clearTimeout(deadline.timer);
  deadline.timer = setTimeout(() => {
    deadline.timer = undefined;
    if (then) then();
    else socket.destroy();
  }, ms);
}

/**
 * A response finished: the connection waits for its next request for the
 * keep-alive time; if a request has begun by then (bytes arrived), its
 * headers get the headers time, else the connection is closed.
 */
function awaitNextRequest(deadline: Deadline, socket: Socket, timeouts: HttpTimeouts): void {
  const readBefore = socket.bytesRead;
  arm(deadline, socket, timeouts.keepAlive, () => {
    if (socket.bytesRead === readBefore) socket.destroy();
    else arm(deadline, socket, timeouts.headers);
  });
}

/** The web `Request` for a `node:http` one, or null when its target or Host is unusable. */
function webRequest(
  incoming: http.IncomingMessage,
  scheme: string,
  local: string,
  body: ReadableStream<Uint8Array> | null,
  signal: AbortSignal,
): Request | null {
  const target = incoming.url ?? "";
  const host = incoming.headers.host ?? local;
  // Only origin-form targets; and a Host that is a host and port, nothing a URL would reinterpret.
  if (!target.startsWith("/") || !/^[A-Za-z0-9.\-_~%\[\]:]+$/.test(host)) return null;
  let url: URL;
  try {
    url = new URL(`${scheme}://${host}${target}`);
  } catch {
    return null;
  }
  const headers = new Headers();
  const raw = incoming.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    headers.append(raw[i] as string, raw[i + 1] as string);
  }
  const method = incoming.method ?? "GET";
  return new Request(url, {
    method,
    headers,
    signal,
    ...(body ? { body, duplex: "half" } : {}),
  });
}

/** The error a body stream fails with when the client stops short of it. */
export class BodyCutShortError extends Error {
  override name = "BodyCutShortError";
}

/**
 * A request's body as a stream that reads from the connection only as the
 * handler reads it; it fails with {@linkcode BodyCutShortError} when the
 * client stops short (or resets).
 */
function bodyStream(incoming: http.IncomingMessage): ReadableStream<Uint8Array> | null {
  const method = incoming.method ?? "GET";
  const length = incoming.headers["content-length"];
  const chunked = incoming.headers["transfer-encoding"] !== undefined;
  if (
    method === "GET" || method === "HEAD" || (!chunked && (length === undefined || length === "0"))
  ) {
    return null;
  }
  incoming.pause();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      incoming.on("data", (chunk: Uint8Array) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
        if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
      });
      incoming.once("end", () => controller.close());
      incoming.once("aborted", () => controller.error(new BodyCutShortError("cut short")));
      incoming.once("error", () => controller.error(new BodyCutShortError("cut short")));
    },
    pull() {
      incoming.resume();
    },
    cancel() {
      // Unread body bytes are thrown away, so the connection can take the next request.
      incoming.resume();
    },
  }, { highWaterMark: 1 });
}

function remoteOf(socket: Duplex): Deno.NetAddr {
  const peer = socket as Socket;
  return { transport: "tcp", hostname: peer.remoteAddress ?? "", port: peer.remotePort ?? 0 };
}

function localOf(socket: Duplex): string {
  const own = socket as Socket;
  const host = own.localAddress ?? "localhost";
  return `${host.includes(":") ? `[${host}]` : host}:${own.localPort ?? 0}`;
}

/** Serves one plain HTTP request. */
async function answer(
  incoming: http.IncomingMessage,
  outgoing: http.ServerResponse,
  serve: Serve,
): Promise<void> {
  const socket = rawSocket(incoming.socket);
  const deadline = serve.open.deadlineOf(socket);
  const controller = new AbortController();
  const untrack = serve.open.track(controller);
  if (deadline) {
    deadline.active++;
    clearTimeout(deadline.timer);
  }
  // A client that leaves before its answer aborts the request's signal.
  outgoing.once("close", () => {
    untrack();
    if (!outgoing.writableFinished) controller.abort();
    if (deadline) {
      deadline.active--;
      if (deadline.active === 0 && !socket.destroyed) {
        awaitNextRequest(deadline, socket, serve.timeouts);
      }
    }
  });
  const body = bodyStream(incoming);
  if (body && deadline) {
    deadline.awaitingBody = true;
    const bodyTimer = setTimeout(() => socket.destroy(), serve.timeouts.body);
    const done = (): void => {
      deadline.awaitingBody = false;
      clearTimeout(bodyTimer);
    };
    incoming.once("end", done);
    incoming.once("close", done);
  }
  const scheme = serve.tls ? "https" : "http";
  const request = webRequest(incoming, scheme, localOf(incoming.socket), body, controller.signal);
  if (request === null) {
    outgoing.writeHead(400, { "content-type": "text/plain", connection: "close" });
    outgoing.end("Bad request target or Host\n");
    return;
  }
  let response: Response;
  try {
    response = await serve.handler(request, { remoteAddr: remoteOf(incoming.socket) });
  } catch (error) {
    serve.logger.error("http.handler_failed", { name: serve.name, error: describeError(error) });
    response = new Response("Internal error\n", { status: 500 });
  }
  await writeResponse(outgoing, response, serve);
}

/** Writes a web `Response` to a `node:http` one; bodies are small, so they are sent whole. */
async function writeResponse(
  outgoing: http.ServerResponse,
  response: Response,
  serve: Serve,
): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = response.body ? new Uint8Array(await response.arrayBuffer()) : new Uint8Array(0);
  } catch (error) {
    serve.logger.error("http.handler_failed", { name: serve.name, error: describeError(error) });
    outgoing.destroy();
    return;
  }
  const socket = outgoing.socket ? rawSocket(outgoing.socket) : null;
  const deadline = socket ? serve.open.deadlineOf(socket) : undefined;
  if (outgoing.destroyed) return;
  if (deadline) deadline.awaitingBody = false;
  outgoing.statusCode = response.status;
  for (const [name, value] of response.headers) {
    if (name === "set-cookie") continue;
    outgoing.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) outgoing.setHeader("set-cookie", cookies);
  if (response.status !== 204 && response.status !== 304) {
    outgoing.setHeader("content-length", bytes.length);
  }
  outgoing.end(bytes);
  // A peer that does not read its answer does not keep the connection: the
  // next request's wait starts only once the answer is written.
  if (socket && deadline && !outgoing.writableFinished) {
    arm(deadline, socket, serve.timeouts.keepAlive);
  }
}

/** Serves a request that asks to upgrade the connection. */
async function answerUpgrade(
  incoming: http.IncomingMessage,
  socket: Duplex,
  head: Uint8Array,
  serve: Serve,
): Promise<void> {
  const raw = rawSocket(socket);
  const deadline = serve.open.deadlineOf(raw);
  if (deadline) {
    clearTimeout(deadline.timer);
    deadline.active++;
  }
  socket.on("error", () => socket.destroy());
  const controller = new AbortController();
  const untrack = serve.open.track(controller);
  socket.once("close", () => {
    untrack();
    controller.abort();
  });
  let upgraded: ServerWebSocket | null = null;
  const upgradeWebSocket = (limits?: Partial<WebSocketLimits>): WebSocketUpgrade => {
    if (upgraded) throw new TypeError("This request was upgraded already");
    const version = incoming.headers["sec-websocket-version"];
    // A version we do not speak comes first: its handshake may not be ours to judge.
    if (version !== undefined && version !== "13") {
      throw new WebSocketVersionError(
        `Cannot accept Sec-WebSocket-Version ${JSON.stringify(version.slice(0, 20))}: ` +
          "this server speaks 13 only",
      );
    }
    const key = incoming.headers["sec-websocket-key"];
    if (typeof key !== "string" || !/^[A-Za-z0-9+/]{22}==$/.test(key)) {
      throw new TypeError("Sec-WebSocket-Key is missing or malformed");
    }
    if (version === undefined) throw new TypeError("Sec-WebSocket-Version must be 13");
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    upgraded = new ServerWebSocket(socket, head, { ...WEBSOCKET_LIMITS, ...limits });
    return { socket: upgraded, response: new UpgradeResponse(null) };
  };
  const scheme = serve.tls ? "https" : "http";
  const request = webRequest(incoming, scheme, localOf(socket), null, controller.signal);
  if (request === null) {
    writeRaw(socket, new Response("Bad request target or Host\n", { status: 400 }), serve);
    return;
  }
  // RFC 6455 4.1: the opening handshake is a GET; any other method is not one.
  const wantsWebSocket = incoming.method === "GET" &&
    String(incoming.headers.upgrade).toLowerCase() === "websocket";
  let response: Response;
  try {
    response = await serve.handler(request, {
      remoteAddr: remoteOf(socket),
      ...(wantsWebSocket ? { upgradeWebSocket } : {}),
    });
  } catch (error) {
    serve.logger.error("http.handler_failed", { name: serve.name, error: describeError(error) });
    response = new Response("Internal error\n", { status: 500 });
  }
  if (upgraded) {
    if (!(response instanceof UpgradeResponse)) {
      serve.logger.error("http.handler_failed", {
        name: serve.name,
        error: "upgraded a WebSocket but answered with another response",
      });
    }
    return;
  }
  writeRaw(socket, response, serve);
}

/** Writes a whole HTTP/1.1 response to a connection that will not be used again. */
async function writeRaw(socket: Duplex, response: Response, serve: Serve): Promise<void> {
  let body: Uint8Array;
  try {
    body = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    serve.logger.error("http.handler_failed", { name: serve.name, error: describeError(error) });
    socket.destroy();
    return;
  }
  let head = `HTTP/1.1 ${response.status} ${http.STATUS_CODES[response.status] ?? ""}\r\n`;
  for (const [name, value] of response.headers) head += `${name}: ${value}\r\n`;
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  socket.write(head);
  socket.end(body);
  // A peer that does not read its answer does not keep the connection.
  const raw = rawSocket(socket);
  const cut = setTimeout(() => raw.destroy(), serve.timeouts.keepAlive);
  raw.once("close", () => clearTimeout(cut));
}

/** Resolves when a socket has closed. */
function closedEvent(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}
