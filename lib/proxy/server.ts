/**
 * The proxy server: listens on the proxy port and runs the handshake on
 * every connection, with the session store behind it. This is where the
 * listener, handshake and session store are put together.
 *
 * @module
 */

import { closeQuietly } from "../_io.ts";
import type { HostPort } from "../address.ts";
import type { NamedDestination, ServerConfig } from "./config.ts";
import { type Counters, newCounters } from "./counters.ts";
import { handshake, type HandshakeOptions } from "./handshake.ts";
import { acceptLoop } from "./listener.ts";
import { listenLoopbacks } from "../listen.ts";
import { describeError, type Logger } from "../log.ts";
import {
  type ConnectFunction,
  DEFAULT_DESTINATION,
  DEFAULT_TRUST_FROM,
  SessionStore,
} from "./session_store.ts";
import type { AuthThrottleOptions } from "../throttle.ts";
import type { MemoryReducerOptions } from "./memory_reducer.ts";
import { ClientConn, type Connection } from "./tcp.ts";

/** Options for {@linkcode ProxyServer.listen}. */
export interface ProxyServerOptions extends
  Omit<
    ServerConfig,
    | "admin"
    | "adminToken"
    | "logLevel"
    | "logFormat"
    | "tls"
    | "sendProxy"
    | "destinations"
    | "trustFrom"
    | "node"
    | "drainTimeout"
  >,
  Partial<Pick<ServerConfig, "sendProxy" | "destinations" | "trustFrom" | "node">> {
  /**
   * TLS on the proxy port.
   * @default {null: plain TCP}
   */
  tls?: ServerConfig["tls"];
  /** Where events are logged. */
  logger: Logger;
  /**
   * Opens destination connections.
   * @default {TCP with `node:net` (`./tcp.ts`)}
   */
  connect?: ConnectFunction;
  /**
   * How wrong secrets slow their sender down.
   * @default {100 ms a recent failure, at most 2 s}
   */
  throttle?: AuthThrottleOptions;
  /**
   * When a memory-reducing garbage collection follows a burst of sessions
   * created or ended; `null` for never.
   * @default {MEMORY_REDUCER_DEFAULTS}
   */
  memoryReducer?: Partial<MemoryReducerOptions> | null;
}

/** A listener of the proxy port, TCP or TLS. */
type ProxyListener = Deno.Listener<Deno.Conn, Deno.NetAddr>;

/**
 * A running proxy server.
 *
 * @example Serve on a free loopback port
 * ```ts ignore
 * await using server = ProxyServer.listen({
 *   ...SERVER_DEFAULTS,
 *   proxy: { hostname: "127.0.0.1", port: 0 },
 *   destination: { hostname: "127.0.0.1", port: 7000 },
 *   logger: new Logger(),
 * });
 * console.log(server.addr.port);
 * ```
 */
export class ProxyServer implements AsyncDisposable {
  /** The sessions of this server. */
  readonly store: SessionStore;
  /** Totals since the server started. */
  readonly counters: Counters = newCounters();
  /** Where sessions connect by default; `null` when there are only named ones. */
  readonly destination: HostPort | null;
  /** Every destination, the default (`default`) first. */
  readonly destinations: readonly NamedDestination[];
  /** The proxy port's listeners: two for `localhost`, 127.0.0.1's first. */
  readonly #listeners: readonly [ProxyListener, ...ProxyListener[]];
  readonly #logger: Logger;
  /** Whether the proxy port is TLS: its connections stay `Deno.TlsConn`s. */
  readonly #tls: boolean;
  readonly #stop = new AbortController();
  /** What every handshake is given: made once, not per accept. */
  readonly #handshakeOptions: HandshakeOptions;
  /** Connections still in their handshake, closed on shutdown. */
  readonly #handshaking = new Set<Connection>();
  readonly #tasks = new Set<Promise<void>>();
  #closing: Promise<void> | null = null;

  private constructor(
    listeners: readonly [ProxyListener, ...ProxyListener[]],
    options: ProxyServerOptions,
  ) {
    this.#listeners = listeners;
    this.#logger = options.logger;
    this.#tls = Boolean(options.tls);
    this.destination = options.destination;
    const fallback = options.destination;
    this.destinations = [
      ...fallback
        ? [{ name: DEFAULT_DESTINATION, addr: fallback, sendProxy: options.sendProxy ?? null }]
        : [],
      ...options.destinations ?? [],
    ];
    const storeOptions = {
      destination: options.destination,
      sendProxy: options.sendProxy ?? null,
      destinations: new Map(
        (options.destinations ?? []).map((named) => [named.name, named] as const),
      ),
      trustFrom: options.trustFrom ?? DEFAULT_TRUST_FROM,
      node: options.node ?? null,
      bufferSize: options.bufferSize,
      idleTimeout: options.idleTimeout,
      connectTimeout: options.connectTimeout,
      maxSessions: options.maxSessions,
      handshakeTimeout: options.handshakeTimeout,
      logger: options.logger,
      counters: this.counters,
      throttle: options.throttle ?? {},
      ...options.memoryReducer === undefined ? {} : { memoryReducer: options.memoryReducer },
    };
    this.store = new SessionStore(
      options.connect ? { ...storeOptions, connect: options.connect } : storeOptions,
    );
    this.#handshakeOptions = {
      store: this.store,
      timeout: options.handshakeTimeout,
      logger: this.#logger,
      signal: this.#stop.signal,
    };
    // A loop per listener, so that one backing off holds up no other.
    for (const listener of listeners) {
      this.#track(
        acceptLoop(listener, (conn) => this.#accept(conn), {
          logger: this.#logger,
          signal: this.#stop.signal,
        }),
      );
    }
  }

  /**
   * Starts listening on `options.proxy` and serving clients. For
   * `localhost`, that is 127.0.0.1 and ::1 on the same port.
   *
   * @param options Addresses, limits and logger.
   * @returns The running server.
   * @throws {Deno.errors.AddrInUse} When the proxy port is taken (on
   * 127.0.0.1 for `localhost`), and the other errors of `Deno.listen`.
   */
  static listen(options: ProxyServerOptions): ProxyServer {
    const { tls } = options;
    const listeners = listenLoopbacks(options.proxy, {
      listen: ({ hostname, port }) =>
        tls
          ? Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key })
          : Deno.listen({ hostname, port, transport: "tcp" }),
      logger: options.logger,
      name: "proxy",
    });
    return new ProxyServer(listeners, options);
  }

  /** The address the server listens on: for `localhost`, 127.0.0.1's. */
  get addr(): Deno.NetAddr {
    return this.#listeners[0].addr;
  }

  /** Every address the server listens on. */
  get addrs(): Deno.NetAddr[] {
    return this.#listeners.map((listener) => listener.addr);
  }

  /** Client connections open now: in their handshake or attached. */
  get connections(): number {
    let attached = 0;
    for (const session of this.store.list()) if (session.stats().attached) attached++;
    return this.#handshaking.size + attached;
  }

  /**
   * Stops accepting, ends every session and closes every connection.
   * Resolves when all of them are closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Closes the server; see {@linkcode ProxyServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    for (const listener of this.#listeners) closeQuietly(listener);
    for (const conn of this.#handshaking) closeQuietly(conn);
    const sessions = this.store.closeAll("server shutting down");
    while (this.#tasks.size > 0) await Promise.allSettled(this.#tasks);
    await sessions;
  }

  #accept(accepted: Deno.Conn): void {
    this.counters.connectionsAccepted++;
    if (this.#stop.signal.aborted) {
      closeQuietly(accepted);
      return;
    }
    // TCP_NODELAY: a plain connection's comes with its second write
    // (ClientConn.write), and keep-alive once attached a while
    // (Session.keepAlive), neither per accept.
    if (this.#tls) {
      try {
        (accepted as Deno.TcpConn).setNoDelay?.(true);
      } catch {
        // Reset before we got to it; the handshake's read will notice.
      }
    }
    const conn = this.#tls ? accepted : new ClientConn(accepted as Deno.TcpConn);
    this.#handshaking.add(conn);
    this.#track(handshake(conn, this.#handshakeOptions), conn);
  }

  /** Keeps `task` until it settles; `conn` leaves the handshaking set with it. */
  #track(task: Promise<void>, conn?: Connection): void {
    this.#tasks.add(task);
    // One reaction for both outcomes: every accept makes one.
    task.then(
      () => {
        this.#tasks.delete(task);
        if (conn) this.#handshaking.delete(conn);
      },
      (error) => {
        this.#tasks.delete(task);
        if (conn) this.#handshaking.delete(conn);
        this.#logger.error("internal.error", { error: describeError(error) });
      },
    );
  }
}
