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
import { describeError, type Logger } from "../log.ts";
import { ProtocolError } from "../protocol.ts";
import { Session, type SessionEvents } from "./session.ts";
import { sleep } from "../_io.ts";
import { AuthThrottle, type AuthThrottleOptions } from "../throttle.ts";

/** Opens a connection to the destination; the signal aborts the attempt. */
export type ConnectFunction = (destination: HostPort, signal: AbortSignal) => Promise<Deno.Conn>;

/** Options for {@linkcode SessionStore}. */
export interface SessionStoreOptions {
  /** Where sessions connect. */
  destination: HostPort;
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
   * @default {TCP with `Deno.connect`, no delay, keep-alive on}
   */
  connect?: ConnectFunction;
}

/** Compared against when the id is unknown, so both failures take equal time. */
const DECOY_SECRET = newSecret();

async function connectTcp(destination: HostPort, signal: AbortSignal): Promise<Deno.Conn> {
  const conn = await Deno.connect({
    hostname: destination.hostname,
    port: destination.port,
    signal,
  });
  try {
    conn.setNoDelay(true);
    conn.setKeepAlive(true);
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
  /** Ended sessions whose connections are still closing (a framed client's last frames). */
  readonly #settling = new Set<Session>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  readonly #sweepEvery: number;
  readonly #shutdown = new AbortController();
  readonly #throttle: AuthThrottle;
  readonly #events: SessionEvents;
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
    // Sessions expire within a tenth of the idle timeout (at most a second) of it.
    this.#sweepEvery = Math.min(1000, Math.max(10, options.idleTimeout / 10));
    this.#events = {
      attached: (session) => this.#attachedOrEnded(session),
      detached: (session) => this.#detached(session),
      ended: (session) => {
        this.#attachedOrEnded(session);
        this.#sessions.delete(session.id);
        this.#options.counters.sessionsEnded++;
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
   * @param peer The address of the client asking, for logs.
   * @returns The session and its secret, for the reply.
   * @throws {ProtocolError} `busy` at the session limit, `unreachable` when
   * the destination cannot be reached in time.
   */
  async create(peer: string): Promise<Session> {
    const { destination, connectTimeout, maxSessions, logger } = this.#options;
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
    let conn: Deno.Conn;
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
        peer,
        destination: formatHostPort(destination),
        error: reason,
      });
      throw new ProtocolError("unreachable", `cannot reach the destination: ${reason}`);
    } finally {
      clearTimeout(timer);
      this.#shutdown.signal.removeEventListener("abort", shutdown);
      this.#connecting--;
    }
    if (this.#shutdown.signal.aborted) {
      conn.close();
      throw new ProtocolError("unreachable", "server shutting down");
    }
    let id = newSessionId();
    while (this.#sessions.has(id)) id = newSessionId();
    const session = new Session({
      id,
      secret: newSecret(),
      destination: conn,
      bufferSize: this.#options.bufferSize,
      logger,
      counters: this.#options.counters,
      events: this.#events,
      trace: startSessionTrace({
        "socketproxy.session.id": id,
        "socketproxy.destination": formatHostPort(destination),
        "client.address": peer,
      }),
      ...(this.#options.handshakeTimeout === undefined
        ? {}
        : { closedLinger: this.#options.handshakeTimeout }),
    });
    this.#sessions.set(id, session);
    this.#options.counters.sessionsCreated++;
    logger.info("session.created", { id, peer, destination: formatHostPort(destination) });
    return session;
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
  }

  /** A session was detached: the idle timeout counts from now. */
  #detached(session: Session): void {
    if (this.#options.idleTimeout === 0 || session.ended) return;
    this.#idle.add(session);
    // One sweep for all idle sessions, running only while there are some:
    // cheaper than a timer per session, set and cleared on every poll.
    this.#sweeper ??= setInterval(() => this.#sweep(), this.#sweepEvery);
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
