/**
 * The session store: creates sessions (connecting to the destination),
 * finds them by id and secret, expires detached ones after the idle
 * timeout, and enforces the session limit.
 *
 * @module
 */

import { startSessionTrace } from "../telemetry.ts";
import { formatHostPort, type HostPort } from "../address.ts";
import type { Counters } from "./counters.ts";
import { newSecret, newSessionId, secretsEqual } from "./credentials.ts";
import { MemoryReducer, type MemoryReducerOptions } from "./memory_reducer.ts";
import { describeError, type Logger } from "../log.ts";
import { parseFromAddress, ProtocolError } from "../protocol.ts";
import { inRange, type IpRange, parseIp, parseRange } from "../ip.ts";
import { proxyHeader, type ProxyHeaderVersion } from "./proxy_header.ts";
import { Session, type SessionEvents } from "./session.ts";
import { sleep, Wakeup, writeAll } from "../_io.ts";
import { AuthThrottle, type AuthThrottleOptions } from "../throttle.ts";
import { connectFair, type Connection } from "./tcp.ts";

/** Opens a connection to the destination; the signal aborts the attempt. */
export type ConnectFunction = (destination: HostPort, signal: AbortSignal) => Promise<Connection>;

/** A destination sessions connect to, and how. */
export interface DestinationTarget {
  /** Its address. */
  addr: HostPort;
  /**
   * The PROXY protocol header written to it before any byte, or `null` for none.
   * @default {null}
   */
  sendProxy?: ProxyHeaderVersion | null;
}

/** The name of the destination a `NEW` without `to=` connects to, in logs, status and metrics. */
export const DEFAULT_DESTINATION = "default";

/** The peers trusted with `from=` when not told: the machine's own loopback addresses. */
export const DEFAULT_TRUST_FROM: readonly string[] = ["127.0.0.0/8", "::1/128"];

/** Who asks for a session, and for which destination. */
export interface CreateRequest {
  /** The client connection's address, for logs (`host:port`). */
  peer: string;
  /** The client connection's remote address: whom `--trust-from` judges. */
  remote?: Deno.NetAddr;
  /** The address the client connected to: the PROXY header's destination. */
  local?: Deno.NetAddr;
  /** `to=<name>`: a named destination. */
  to?: string;
  /** `from=<address>`: the end user's address, believed only from a trusted peer. */
  from?: string;
}

/** Options for {@linkcode SessionStore}. */
export interface SessionStoreOptions {
  /** Where sessions connect by default (`NEW` without `to=`); `null` for no default. */
  destination: HostPort | null;
  /**
   * The PROXY protocol header for the default destination.
   * @default {null: none}
   */
  sendProxy?: ProxyHeaderVersion | null;
  /**
   * Named destinations, for `NEW to=<name>`.
   * @default {none}
   */
  destinations?: ReadonlyMap<string, DestinationTarget>;
  /**
   * The node name session ids start with (`NODE_<random>`), or none.
   * @default {null}
   */
  node?: string | null;
  /**
   * CIDR ranges of the peers whose `from=` is believed; empty trusts nobody.
   * @default {DEFAULT_TRUST_FROM}
   */
  trustFrom?: readonly string[];
  /** Per-session retained-output limit, in bytes. */
  bufferSize: number;
  /** How long a session may stay detached, in ms; 0 means forever. */
  idleTimeout: number;
  /** Time allowed to reach the destination, in ms. */
  connectTimeout: number;
  /** Most sessions open (or connecting) at once. */
  maxSessions: number;
  /**
   * The handshake timeout, in ms: how long a framed connection is read
   * after `E destination-closed`, for the client's last acknowledgement.
   * @default {10 s}
   */
  handshakeTimeout?: number;
  /** Where events are logged. */
  logger: Logger;
  /** Server-wide counters this store and its sessions add to. */
  counters: Counters;
  /**
   * How wrong secrets slow their sender down.
   * @default {100 ms a recent failure, at most 2 s}
   */
  throttle?: AuthThrottleOptions;
  /**
   * Opens destination connections.
   * @default {TCP with `node:net` (`./tcp.ts`), no delay, keep-alive on}
   */
  connect?: ConnectFunction;
  /**
   * When a memory-reducing garbage collection follows a burst of sessions
   * created or ended; `null` for never.
   * @default {MEMORY_REDUCER_DEFAULTS}
   */
  memoryReducer?: Partial<MemoryReducerOptions> | null;
}

/** Client connections attached this long (in ms) get TCP keep-alive, within as long again. */
const KEEPALIVE_AFTER = 1000;

/** Compared against when the id is unknown, so both failures take equal time. */
const DECOY_SECRET = newSecret();

async function connectTcp(destination: HostPort, signal: AbortSignal): Promise<Connection> {
  const conn = await connectFair({
    hostname: destination.hostname,
    port: destination.port,
    signal,
  });
  try {
    conn.setNoDelay?.(true);
    conn.setKeepAlive?.(true);
  } catch {
    // The connection failed already; its first read will say so.
  }
  return conn;
}

/**
 * Holds the open sessions of one server.
 *
 * @example
 * ```ts ignore
 * const store = new SessionStore({ destination, bufferSize, idleTimeout, connectTimeout, maxSessions, logger });
 * const session = await store.create("127.0.0.1:5000");
 * const same = await store.authenticate(
 *   { id: session.id, secret },
 *   { peer: "127.0.0.1:5001", host: "127.0.0.1", signal },
 * );
 * ```
 */
export class SessionStore {
  readonly #options: SessionStoreOptions;
  readonly #connect: ConnectFunction;
  readonly #sessions = new Map<string, Session>();
  /** Detached sessions, for the idle sweep. */
  readonly #idle = new Set<Session>();
  /** Attached sessions, for the keep-alive sweep. */
  readonly #attached = new Set<Session>();
  #keepAliveSweeper: ReturnType<typeof setInterval> | undefined;
  /** Ended sessions whose connections are still closing (a framed client's last frames). */
  readonly #settling = new Set<Session>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  readonly #sweepEvery: number;
  readonly #shutdown = new AbortController();
  readonly #trustFrom: readonly IpRange[];
  #draining = false;
  /** Woken whenever a session ends. */
  readonly #ended = new Wakeup();
  readonly #throttle: AuthThrottle;
  readonly #events: SessionEvents;
  readonly #memoryReducer: MemoryReducer | null;
  #connecting = 0;

  /**
   * Creates an empty store.
   *
   * @param options Destination and limits.
   */
  constructor(options: SessionStoreOptions) {
    this.#options = options;
    this.#connect = options.connect ?? connectTcp;
    this.#throttle = new AuthThrottle(options.throttle);
    this.#trustFrom = (options.trustFrom ?? DEFAULT_TRUST_FROM).map((text) => {
      const range = parseRange(text);
      if (!range) throw new TypeError(`Not a CIDR range: ${text}`);
      return range;
    });
    this.#memoryReducer = options.memoryReducer === null
      ? null
      : new MemoryReducer(options.memoryReducer);
    // Sessions expire within a tenth of the idle timeout (at most a second) of it.
    this.#sweepEvery = Math.min(1000, Math.max(10, options.idleTimeout / 10));
    this.#events = {
      attached: (session) => {
        this.#attachedOrEnded(session);
        this.#attached.add(session);
        // Keep-alive is set on connections attached a while, by one timer
        // for all, not by a system call per accept.
        this.#keepAliveSweeper ??= setInterval(() => this.#keepAlive(), KEEPALIVE_AFTER);
      },
      detached: (session) => {
        this.#notAttached(session);
        this.#detached(session);
      },
      ended: (session) => {
        this.#notAttached(session);
        this.#attachedOrEnded(session);
        this.#sessions.delete(session.id);
        this.#options.counters.sessionsEnded++;
        this.#memoryReducer?.sessionChanged();
        this.#ended.wake();
        this.#settling.add(session);
        session.settled().finally(() => this.#settling.delete(session));
      },
    };
  }

  /** Sessions open now. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Lists the open sessions.
   *
   * @returns The sessions, oldest first.
   */
  list(): Session[] {
    return [...this.#sessions.values()];
  }

  /**
   * Finds a session by id, without a secret: for the admin port only.
   *
   * @param id The session id.
   * @returns The session, if open.
   */
  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  /**
   * Connects to the destination and creates a session.
   *
   * @param request Who asks (the peer, for logs; its addresses, for
   * `--trust-from` and the PROXY header), and the hello's `to=` and `from=`.
   * @returns The session and its secret, for the reply.
   * @throws {ProtocolError} `untrusted` for a `from=` from a peer not
   * trusted, `unknown-destination` for a `to=` the server does not have,
   * `busy` at the session limit, `unreachable` when the destination cannot
   * be reached in time.
   */
  async create(request: CreateRequest | string): Promise<Session> {
    const { peer, to, from, remote, local } = typeof request === "string"
      ? { peer: request } as CreateRequest
      : request;
    const { connectTimeout, maxSessions, logger } = this.#options;
    if (this.#draining) {
      throw new ProtocolError("busy", "draining: this server takes no new sessions, try another");
    }
    if (from !== undefined && !this.#trusted(remote)) {
      logger.warn("session.untrusted", { peer, from });
      throw new ProtocolError(
        "untrusted",
        "from= is believed only from the peers of the server's --trust-from",
      );
    }
    const name = to ?? DEFAULT_DESTINATION;
    const fallback = this.#options.destination;
    const target: DestinationTarget | undefined = to !== undefined
      ? this.#options.destinations?.get(to)
      : fallback
      ? { addr: fallback, sendProxy: this.#options.sendProxy ?? null }
      : undefined;
    if (!target) {
      logger.warn("session.unknown_destination", { peer, to: name });
      throw new ProtocolError(
        "unknown-destination",
        to === undefined
          ? "this server has only named destinations: NEW to=<name>"
          : `no destination named ${name}`,
        name,
      );
    }
    const destination = target.addr;
    /** Whom the session is for: the end user a trusted gateway named, or the peer. */
    const client = from ?? peer;
    if (this.#sessions.size + this.#connecting >= maxSessions) {
      logger.warn("session.busy", { peer, limit: maxSessions });
      throw new ProtocolError("busy", `session limit of ${maxSessions} reached`);
    }
    this.#connecting++;
    // One signal for the timeout and the shutdown, let go of afterwards
    // (AbortSignal.any would stay tied to the shutdown signal per session).
    const attempt = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, connectTimeout);
    const shutdown = (): void => attempt.abort();
    this.#shutdown.signal.addEventListener("abort", shutdown, { once: true });
    let conn: Connection;
    try {
      const started = performance.now();
      conn = await this.#connect(destination, attempt.signal);
      this.#options.counters.timings.connect.observeSince(started);
    } catch (error) {
      const reason = timedOut
        ? `timed out after ${connectTimeout} ms`
        : this.#shutdown.signal.aborted
        ? "server shutting down"
        : describeError(error);
      logger.warn("destination.unreachable", {
        peer: client,
        destination: name,
        address: formatHostPort(destination),
        error: reason,
      });
      throw new ProtocolError("unreachable", `cannot reach the destination: ${reason}`);
    } finally {
      clearTimeout(timer);
      this.#shutdown.signal.removeEventListener("abort", shutdown);
      this.#connecting--;
      this.#ended.wake();
    }
    if (this.#shutdown.signal.aborted) {
      conn.close();
      throw new ProtocolError("unreachable", "server shutting down");
    }
    if (target.sendProxy) {
      try {
        await writeAll(
          conn,
          proxyHeader(target.sendProxy, endpoint(from ?? remote ?? peer), endpoint(local)),
        );
      } catch (error) {
        conn.close();
        logger.warn("destination.unreachable", {
          peer: client,
          destination: name,
          error: `the PROXY header could not be written: ${describeError(error)}`,
        });
        throw new ProtocolError("unreachable", "cannot reach the destination: it closed");
      }
    }
    const node = this.#options.node ?? null;
    let id = newSessionId(node);
    while (this.#sessions.has(id)) id = newSessionId(node);
    const session = new Session({
      id,
      secret: newSecret(),
      destination: conn,
      bufferSize: this.#options.bufferSize,
      logger,
      counters: this.#options.counters,
      events: this.#events,
      destinationName: name,
      client,
      trace: startSessionTrace({
        "socketproxy.session.id": id,
        "socketproxy.destination": name,
        "server.address": formatHostPort(destination),
        "client.address": client,
      }),
      ...(this.#options.handshakeTimeout === undefined
        ? {}
        : { closedLinger: this.#options.handshakeTimeout }),
    });
    this.#sessions.set(id, session);
    this.#memoryReducer?.sessionChanged();
    const counters = this.#options.counters;
    counters.sessionsCreated++;
    counters.sessionsByDestination.set(name, (counters.sessionsByDestination.get(name) ?? 0) + 1);
    logger.info("session.created", {
      id,
      peer: client,
      via: from === undefined ? undefined : peer,
      destination: name,
      address: formatHostPort(destination),
    });
    return session;
  }

  /** Whether {@linkcode SessionStore.drain} was called: `NEW` is refused. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Stops taking new sessions: `NEW` answers `ERR busy draining`, resumes
   * are served as before.
   */
  drain(): void {
    this.#draining = true;
  }

  /**
   * Resolves once no session is open (or connecting), or `signal` aborts.
   *
   * @param signal Stops the wait.
   */
  async emptied(signal?: AbortSignal): Promise<void> {
    const stop = (): void => this.#ended.wake();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      while (!signal?.aborted && (this.#sessions.size > 0 || this.#connecting > 0)) {
        await this.#ended.wait();
      }
    } finally {
      signal?.removeEventListener("abort", stop);
    }
  }

  /** Whether a peer's `from=` is believed. */
  #trusted(remote: Deno.NetAddr | undefined): boolean {
    const address = remote ? parseIp(remote.hostname) : null;
    return address !== null && this.#trustFrom.some((range) => inRange(address, range));
  }

  /**
   * Finds a session by id and secret at once, when that takes no wait: the
   * common case of {@linkcode SessionStore.authenticate}, without its
   * promise. An unknown id and a wrong secret are compared alike here too.
   *
   * @param credentials The id and secret the client presented.
   * @param host The client's IP address, for the guessing throttle.
   * @returns The session; `undefined` when the throttle makes the attempt
   * wait or the credentials fail: then `authenticate` answers it.
   */
  authenticateNow(credentials: { id: string; secret: string }, host: string): Session | undefined {
    const { id, secret } = credentials;
    if (this.#throttle.delay(host, id) > 0) return undefined;
    const session = this.#sessions.get(id);
    const matches = session ? session.matches(secret) : secretsEqual(DECOY_SECRET, secret);
    return matches ? session : undefined;
  }

  /**
   * Finds a session by id and secret, in time that does not tell an unknown
   * id from a wrong secret, slowing guessers down (see
   * {@linkcode AuthThrottle}): an attempt on a session its address has
   * recently failed on waits before it is checked, and the answer to a
   * failure is held back.
   *
   * @param credentials The id and secret the client presented.
   * @param client The client's address (`peer`, for logs), IP (`host`, for
   * the throttle), and a signal that ends the waits (the server is stopping).
   * @returns The session.
   * @throws {ProtocolError} `auth` when the id is unknown or the secret wrong.
   * @throws {DOMException} `AbortError` when `client.signal` aborts first.
   */
  async authenticate(
    credentials: { id: string; secret: string },
    client: { peer: string; host: string; signal: AbortSignal },
  ): Promise<Session> {
    const { id, secret } = credentials;
    const { host, signal } = client;
    // Both read now: a failure's answer goes out `answer` ms from here
    // whether the id exists or not, whatever else the address is doing.
    const waiting = this.#throttle.delay(host, id);
    const answer = this.#throttle.answerDelay(host);
    if (waiting > 0) {
      // Only ids of real sessions have a wait, so this logs no made-up id.
      this.#options.logger.info("auth.waiting", { id, peer: client.peer, wait_ms: waiting });
      await sleep(waiting, signal);
      signal.throwIfAborted();
    }
    const session = this.#sessions.get(id);
    const matches = session ? session.matches(secret) : secretsEqual(DECOY_SECRET, secret);
    if (session && matches) return session;
    this.#options.counters.authFailures++;
    // Only a real session's id is remembered with the address: made-up ids
    // cannot crowd those out, and the wait above stays 0 for them.
    const failures = this.#throttle.failed(host, session ? id : undefined);
    this.#options.logger.warn("auth.failed", {
      // An unknown id may be anything, even a secret sent in the wrong place.
      id: session ? id : undefined,
      peer: client.peer,
      reason: session ? "wrong secret" : "unknown session",
      recent_failures: failures,
      answer_delay_ms: answer,
    });
    await sleep(answer - waiting, signal);
    signal.throwIfAborted();
    throw new ProtocolError("auth", "unknown session or wrong secret");
  }

  /**
   * Ends every session and waits until all their connections are closed,
   * those of sessions that ended earlier included. A framed client is told
   * `E server-stopping`.
   *
   * @param reason Why, for the log.
   */
  async closeAll(reason: string): Promise<void> {
    this.#shutdown.abort();
    const sessions = this.list();
    for (const session of sessions) session.close(reason, "server-stopping");
    await Promise.all([...sessions, ...this.#settling].map((session) => session.settled()));
    this.#memoryReducer?.[Symbol.dispose]();
  }

  /** A session was detached: the idle timeout counts from now. */
  #detached(session: Session): void {
    if (this.#options.idleTimeout === 0 || session.ended) return;
    this.#idle.add(session);
    // One sweep for all idle sessions, running only while there are some:
    // cheaper than a timer per session, set and cleared on every poll.
    this.#sweeper ??= setInterval(() => this.#sweep(), this.#sweepEvery);
  }

  #notAttached(session: Session): void {
    this.#attached.delete(session);
    if (this.#attached.size === 0 && this.#keepAliveSweeper !== undefined) {
      clearInterval(this.#keepAliveSweeper);
      this.#keepAliveSweeper = undefined;
    }
  }

  #keepAlive(): void {
    const now = performance.now();
    for (const session of this.#attached) session.keepAlive(now, KEEPALIVE_AFTER);
  }

  #attachedOrEnded(session: Session): void {
    this.#idle.delete(session);
    if (this.#idle.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #sweep(): void {
    const { idleTimeout, logger } = this.#options;
    const now = Date.now();
    for (const session of [...this.#idle]) {
      const since = session.detachedAt;
      if (since === null || now - since < idleTimeout) continue;
      this.#options.counters.sessionsExpired++;
      logger.info("session.expired", {
        id: session.id,
        peer: session.lastPeer ?? undefined,
        idle_ms: now - since,
      });
      session.close("idle timeout");
    }
  }
}

/** An address as the PROXY header takes it: a `from=` (port 0 when it has none), a peer, or a local address. */
function endpoint(address: string | Deno.NetAddr | undefined): { ip: string; port: number } {
  if (address === undefined) return { ip: "0.0.0.0", port: 0 };
  if (typeof address !== "string") return { ip: address.hostname, port: address.port };
  const parsed = parseFromAddress(address);
  if (parsed) return { ip: parsed.ip, port: parsed.port ?? 0 };
  // A peer, host:port as peerAddress writes it.
  const colon = address.lastIndexOf(":");
  return {
    ip: address.slice(0, colon).replace(/^\[|\]$/g, ""),
    port: Number(address.slice(colon + 1)),
  };
}
