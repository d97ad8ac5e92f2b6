/**
 * The client library: the protocol as the rest of the project speaks it
 * (the command-line client, the web gateway, the benchmarks and the tests).
 *
 * A {@linkcode ClientSession} stands for one session on a proxy. It tracks
 * the output offset it has received, so every reconnect resumes exactly,
 * and keeps the input it was given until the server's `<in>` confirms it,
 * resending the rest after a reconnect. Every `ERR` reply becomes a typed
 * error ({@linkcode AuthError}, {@linkcode GapError}, ...). Connections are
 * always closed, whatever fails.
 *
 * @example Poll a session
 * ```ts ignore
 * import { ClientSession } from "./client.ts";
 *
 * const session = await ClientSession.create({ proxy: { hostname: "localhost", port: 9009 } });
 * session.send("look\n");
 * const output = await session.poll({ wait: 1000 }); // what the destination said
 * console.log(new TextDecoder().decode(output), session.received);
 * await session.close();
 * ```
 *
 * @module
 */

import { closeQuietly, writeAll } from "./_io.ts";
import { formatHostPort, type HostPort } from "./config.ts";
import {
  formatHello,
  type GapError,
  type Hello,
  MAX_HELLO_BYTES,
  parseReply,
  type Reply,
  type SessionState,
} from "./protocol.ts";

export {
  AckError,
  AuthError,
  BadRequestError,
  BusyError,
  GapError,
  HandshakeTimeoutError,
  ProtocolError,
  UnreachableError,
} from "./protocol.ts";

/** Where the proxy is and how long to wait for it. */
export interface ClientOptions {
  /**
   * The proxy's address.
   * @default {{ hostname: "localhost", port: 9009 }}
   */
  proxy?: HostPort;
  /**
   * Time allowed to connect and to get the reply, in ms. The server
   * answers `NEW` only once the destination is connected.
   * @default {30000}
   */
  timeout?: number;
  /**
   * Speak TLS to the proxy (a server run with `--tls-cert`); `caCerts`
   * adds PEM certificates to trust beside the system's.
   * @default {undefined: plain TCP}
   */
  tls?: { caCerts?: string[] };
}

/** The proxy could not be reached at all. */
export class ProxyUnavailableError extends Error {
  /** @param message What happened, naming the address. */
  constructor(message: string) {
    super(message);
    this.name = "ProxyUnavailableError";
  }
}

/** The connection ended or stalled before the server's reply. */
export class ConnectionLostError extends Error {
  /** @param message What happened. */
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLostError";
  }
}

const DEFAULT_PROXY: HostPort = { hostname: "localhost", port: 9009 };
const DEFAULT_TIMEOUT_MS = 30_000;
const READ_CHUNK = 64 * 1024;
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] ?? EMPTY;
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Describes a failed connect in a few words. */
function describeConnectError(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof DOMException && error.name === "TimeoutError") return "timed out";
  const message = error instanceof Error ? error.message : String(error);
  if (/lookup address|dns/i.test(message)) return "host not found";
  return message;
}

/**
 * One attached connection of a {@linkcode ClientSession}: the reply, then
 * the session's output as it arrives. Closing it detaches; the session
 * stays alive on the server.
 */
export class ClientConnection implements AsyncDisposable {
  /** The server's reply to the hello. */
  readonly reply: Reply;
  readonly #conn: Deno.Conn;
  readonly #session: ClientSession;
  /** Read buffer, allocated on the first read: polls that only read their pending bytes never need it. */
  #buffer: Uint8Array | null = null;
  /** Bytes after the reply line that came with it, not yet returned. */
  #early: Uint8Array;
  #closed = false;
  #onClose: (() => void) | null = null;

  /** @internal Made by {@linkcode ClientSession.connect}. */
  constructor(conn: Deno.Conn, reply: Reply, early: Uint8Array, session: ClientSession) {
    this.#conn = conn;
    this.reply = reply;
    this.#early = early;
    this.#session = session;
  }

  /** Whether this connection was closed (by {@linkcode ClientConnection.close}). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads the next output: what the library already holds first, then what
   * arrives. The session's received offset counts it.
   *
   * @returns Output bytes, or `null` once the server closed the connection
   * (destination closed and all output sent, takeover, shutdown) or this
   * side did.
   */
  async read(): Promise<Uint8Array | null> {
    const held = this.#session.takeBacklog();
    if (held) return held;
    if (this.#early.length > 0) {
      const early = this.#early;
      this.#early = EMPTY;
      this.#session.countReceived(early.length);
      return early;
    }
    if (this.#closed) return null;
    this.#buffer ??= new Uint8Array(READ_CHUNK);
    let count: number | null;
    try {
      count = await this.#conn.read(this.#buffer);
    } catch (error) {
      if (this.#closed) return null;
      if (error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe) {
        this.close();
        return null;
      }
      throw error;
    }
    if (count === null) {
      this.close();
      return null;
    }
    this.#session.countReceived(count);
    // Hand out a copy: the buffer is reused for the next read.
    return this.#buffer.slice(0, count);
  }

  /**
   * Reads exactly `count` bytes of output.
   *
   * @param count How many.
   * @returns The bytes.
   * @throws {ConnectionLostError} When the connection ends first.
   */
  async readExactly(count: number): Promise<Uint8Array> {
    // Read straight into the result: one allocation, no copies.
    const out = new Uint8Array(count);
    let have = 0;
    for (
      let held = this.#session.takeBacklog(count);
      held;
      held = this.#session.takeBacklog(count - have)
    ) {
      out.set(held, have);
      have += held.length;
    }
    have = await this.readInto(out, have);
    if (have < count) {
      // Nothing read is lost: it goes back to the session for the next reader.
      this.#session.holdBack(out.slice(0, have));
      throw new ConnectionLostError(`connection ended after ${have} of ${count} bytes`);
    }
    return out;
  }

  /**
   * @internal Fills `out` from `have` on with bytes from this connection,
   * not from what the session holds back; stops early when the connection
   * ends.
   *
   * @returns How far `out` is filled.
   */
  async readInto(out: Uint8Array, have: number): Promise<number> {
    while (have < out.length) {
      if (this.#early.length > 0) {
        const early = this.#early.subarray(0, out.length - have);
        this.#early = this.#early.subarray(early.length);
        out.set(early, have);
        have += early.length;
        this.#session.countReceived(early.length);
        continue;
      }
      const read = this.#closed
        ? null
        : await this.#conn.read(out.subarray(have)).catch(() => null);
      if (read === null) {
        this.close();
        break;
      }
      have += read;
      this.#session.countReceived(read);
    }
    return have;
  }

  /** @internal Reads whatever more this connection is sent, until the server closes it. */
  async readToEnd(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (let chunk = await this.#readSocket(); chunk !== null; chunk = await this.#readSocket()) {
      parts.push(chunk);
    }
    return concat(parts);
  }

  async #readSocket(): Promise<Uint8Array | null> {
    if (this.#early.length > 0) {
      const early = this.#early;
      this.#early = EMPTY;
      this.#session.countReceived(early.length);
      return early;
    }
    if (this.#closed) return null;
    const buffer = new Uint8Array(READ_CHUNK);
    const count = await this.#conn.read(buffer).catch(() => null);
    if (count === null) {
      this.close();
      return null;
    }
    this.#session.countReceived(count);
    return buffer.subarray(0, count);
  }

  /** @internal Resolves after `ms`, closing this connection, unless it closes before. */
  closedPromise(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      this.close();
      resolve();
    }, ms);
    this.#onClose = () => {
      clearTimeout(timer);
      resolve();
    };
    return promise;
  }

  /** @internal Ends this side's sending, so the server detaches once it has sent what it has. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite().catch(() => {});
  }

  /**
   * Reads what arrives within `ms`, returning as soon as anything does.
   *
   * @param ms The longest wait.
   * @returns Output bytes, or `null` when nothing came in time (the
   * connection is then closed) or the connection ended.
   */
  async readWithin(ms: number): Promise<Uint8Array | null> {
    const timer = setTimeout(() => this.close(), ms);
    try {
      return await this.read();
    } finally {
      clearTimeout(timer);
    }
  }

  /** @internal Writes input on this connection. */
  write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#conn, bytes);
  }

  /** Detaches: closes this connection, leaving the session alive. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
    this.#session.connectionClosed(this);
    this.#onClose?.();
  }

  /** See {@linkcode ClientConnection.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * A session on a socketproxy server, as seen by one client.
 *
 * Create one with {@linkcode ClientSession.create} (a new session) or
 * {@linkcode ClientSession.resume} (an existing one, from its id and
 * secret). Then {@linkcode ClientSession.poll} for output in short
 * connections, or {@linkcode ClientSession.stream} to stay attached;
 * {@linkcode ClientSession.send} queues input for the destination.
 */
export class ClientSession {
  /** The session id. */
  readonly id: string;
  /** The session secret: keep it like a password. */
  readonly secret: string;
  readonly #proxy: HostPort;
  readonly #timeout: number;
  readonly #tls: ClientOptions["tls"];
  /**
   * Output taken from the server: the `<ack>` of the next resume. `null`
   * until known: a session resumed without an offset takes the server's.
   */
  #taken: number | null;
  #state: SessionState | "unknown" = "unknown";
  /** Input not yet confirmed by a reply's `<in>`; it starts at input offset `#inputBase`. */
  #unconfirmed: Uint8Array[] = [];
  /** `null` until a reply says where the session's input stands. */
  #inputBase: number | null;
  /** Output taken from the server but not yet handed out. */
  #backlog: Uint8Array[] = [];
  #live: ClientConnection | null = null;
  #writing: Promise<void> = Promise.resolve();

  private constructor(
    credentials: { id: string; secret: string },
    options: ClientOptions,
    received: number | null,
    inputBase: number | null,
  ) {
    this.id = credentials.id;
    this.secret = credentials.secret;
    this.#proxy = options.proxy ?? DEFAULT_PROXY;
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.#tls = options.tls;
    this.#taken = received;
    this.#inputBase = inputBase;
  }

  /**
   * Creates a session (`NEW`). The connection `NEW` opens is closed at once
   * and output is fetched from offset 0 by the next poll or stream, so
   * nothing the destination says first is missed.
   *
   * @param options The proxy and timeout.
   * @returns The new session.
   * @throws {ProxyUnavailableError} When no proxy answers.
   * @throws {UnreachableError} When the proxy cannot reach the destination.
   * @throws {BusyError} At the proxy's session limit.
   */
  static async create(options: ClientOptions = {}): Promise<ClientSession> {
    const { conn, reply } = await handshake(options, { verb: "NEW" });
    closeQuietly(conn);
    if ("bye" in reply) throw new ConnectionLostError("the server answered NEW with BYE");
    const session = new ClientSession(reply, options, 0, 0);
    session.#state = reply.state;
    return session;
  }

  /**
   * Resumes an existing session, without connecting yet.
   *
   * @param credentials The session's id and secret.
   * @param options The proxy and timeout; `ack`, the output offset this
   * client has received (without it, the first connection asks for the
   * output no client has been sent yet, and counts from there); and
   * `inputAt`, the session input offset at which input given to
   * {@linkcode ClientSession.send} starts (without it, the input is taken
   * as new): input the server already has is then not sent again.
   * @returns The session.
   */
  static resume(
    credentials: { id: string; secret: string },
    options: ClientOptions & { ack?: number; inputAt?: number } = {},
  ): ClientSession {
    return new ClientSession(credentials, options, options.ack ?? null, options.inputAt ?? null);
  }

  /**
   * Output bytes received so far over the whole session: the offset of the
   * next byte handed out. Pass it as `ack` to resume this session exactly
   * from another client or process.
   */
  get received(): number {
    return (this.#taken ?? 0) - this.#backlog.reduce((sum, bytes) => sum + bytes.length, 0);
  }

  /** The destination's state at the last reply, `unknown` before any. */
  get state(): SessionState | "unknown" {
    return this.#state;
  }

  /** The session's input count at the last reply: input the server confirms having received. */
  get inputConfirmed(): number {
    return this.#inputBase ?? 0;
  }

  /** Input bytes given to {@linkcode ClientSession.send} that the server has not confirmed. */
  get unconfirmed(): number {
    return this.#unconfirmed.reduce((sum, bytes) => sum + bytes.length, 0);
  }

  /**
   * Queues input for the destination. It is written at once when a
   * connection is attached, and kept until a later reply confirms it, so
   * nothing is lost if the connection drops.
   *
   * @param data Bytes, or text sent as UTF-8.
   */
  send(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data.slice();
    if (bytes.length === 0) return;
    this.#unconfirmed.push(bytes);
    const live = this.#live;
    if (live) this.#write(live, bytes);
  }

  /**
   * Attaches a connection. `exact` resumes at the received offset
   * (acknowledged delivery: at most the server's `--buffer` beyond it on
   * this connection); `streaming` asks for output without limit, first
   * fetching exactly whatever an earlier connection lost.
   *
   * @param mode How to attach.
   * @returns The attached connection; close it to detach.
   * @throws {GapError} When output this client has not received was released.
   * @throws {AuthError} When the session is unknown or ended.
   */
  async connect(mode: "exact" | "streaming" = "exact"): Promise<ClientConnection> {
    if (this.#taken === null) {
      const first = await this.#attach(undefined);
      this.#taken = first.reply.from;
      return first;
    }
    if (mode === "exact") return await this.#attach(this.#taken);
    for (let attempt = 0; attempt < 10; attempt++) {
      const connection = await this.#attach(undefined);
      if (connection.reply.from === this.#taken) return connection;
      // An earlier connection was sent output it never delivered: fetch
      // exactly that, and all the server sends this connection until it
      // has caught up (so no output is left "sent" beyond what we have),
      // held back for the caller; then stream from there.
      connection.close();
      await using exact = await this.#attach(this.#taken);
      await this.#writing; // input resent on it goes out before this side closes
      await exact.closeWrite();
      this.#backlog.push(await exact.readToEnd());
    }
    throw new ConnectionLostError("could not attach in streaming mode: the output keeps moving on");
  }

  /**
   * One poll: attach exactly, send queued input, read the pending output
   * and leave.
   *
   * @param options `wait`: how long to wait for output, in ms (default 0:
   * return the pending output at once). `until`: with `"first"` (the
   * default) return as soon as there is any output; with `"deadline"`
   * collect all output that arrives within `wait`. `signal` ends the poll
   * early, with what it has read. `onOutput` receives the output as it
   * arrives (the poll then returns nothing).
   * @returns The output, possibly empty.
   */
  async poll(
    options: {
      wait?: number;
      until?: "first" | "deadline";
      signal?: AbortSignal;
      onOutput?: (bytes: Uint8Array) => void | Promise<void>;
    } = {},
  ): Promise<Uint8Array> {
    const { signal } = options;
    const wait = options.wait ?? 0;
    const deadline = performance.now() + wait;
    if (signal?.aborted) return EMPTY;
    await using connection = await this.connect("exact");
    // An abort (the caller went away) ends the poll with what it has read.
    const abort = (): void => connection.close();
    signal?.addEventListener("abort", abort, { once: true });
    using _ = { [Symbol.dispose]: () => signal?.removeEventListener("abort", abort) };
    if (signal?.aborted) connection.close();
    const parts: Uint8Array[] = [];
    // With onOutput, output is handed over as it arrives instead of at the end.
    const take = async (bytes: Uint8Array): Promise<void> => {
      if (bytes.length === 0) return;
      if (options.onOutput) await options.onOutput(bytes);
      else parts.push(bytes);
    };
    for (let held = this.takeBacklog(); held; held = this.takeBacklog()) await take(held);
    const pending = new Uint8Array(connection.reply.pending);
    const got = await connection.readInto(pending, 0);
    await take(pending.subarray(0, got));
    let total = got;
    while (connection.reply.state === "open" && (options.until === "deadline" || total === 0)) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const arrived = await connection.readWithin(left);
      if (arrived === null) break;
      await take(arrived);
      total += arrived.length;
    }
    // Input goes out on this connection; a destination that does not take
    // it keeps it queued for the next one instead of holding the poll.
    await Promise.race([
      this.#writing,
      connection.closedPromise(Math.max(1000, deadline - performance.now())),
    ]);
    return concat(parts);
  }

  /** Resolves once all input given so far has been written to a connection. */
  async flush(): Promise<void> {
    await this.#writing;
  }

  /**
   * Moves past output lost to a gap: the next resume starts from the lowest
   * offset the server still has.
   *
   * @param error The gap the server reported.
   */
  skipGap(error: GapError): void {
    if (error.lowest > (this.#taken ?? 0)) {
      this.#taken = error.lowest;
      this.#backlog = [];
    }
  }

  /**
   * Stays attached, yielding output as it arrives, until the server closes
   * the connection or `signal` aborts. Input given to
   * {@linkcode ClientSession.send} meanwhile is written at once.
   *
   * @param options `signal` ends the stream (detaching, not ending the session).
   * @returns The output, chunk by chunk.
   */
  async *stream(options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
    const connection = await this.connect("streaming");
    const abort = (): void => connection.close();
    options.signal?.addEventListener("abort", abort);
    try {
      if (options.signal?.aborted) return;
      while (true) {
        const chunk = await connection.read();
        if (chunk === null) return;
        yield chunk;
      }
    } finally {
      options.signal?.removeEventListener("abort", abort);
      connection.close();
      await this.#writing;
    }
  }

  /**
   * Ends the session on the server (`CLOSE`): the destination connection is
   * closed and its output discarded.
   *
   * @throws {AuthError} When the session is unknown or already ended.
   */
  async close(): Promise<void> {
    this.#live?.close();
    const { conn, reply } = await handshake(this.#options(), {
      verb: "CLOSE",
      id: this.id,
      secret: this.secret,
    });
    closeQuietly(conn);
    if (!("bye" in reply)) throw new ConnectionLostError("the server answered CLOSE without BYE");
    this.#state = "closed";
  }

  /** @internal Takes output held back for the caller, at most `max` bytes. */
  takeBacklog(max = Infinity): Uint8Array | null {
    while (this.#backlog[0]?.length === 0) this.#backlog.shift();
    const first = this.#backlog[0];
    if (!first || max <= 0) return null;
    if (first.length <= max) {
      this.#backlog.shift();
      return first;
    }
    this.#backlog[0] = first.subarray(max);
    return first.subarray(0, max);
  }

  /** @internal Gives back output a reader took but could not hand out, to be handed out first. */
  holdBack(bytes: Uint8Array): void {
    if (bytes.length > 0) this.#backlog.unshift(bytes);
  }

  /** Whether {@linkcode ClientSession.received} is known (false for a session resumed without `ack`, before it connects). */
  get offsetKnown(): boolean {
    return this.#taken !== null;
  }

  /** @internal Counts output read from the server. */
  countReceived(count: number): void {
    this.#taken = (this.#taken ?? 0) + count;
  }

  /** @internal Forgets a closed connection. */
  connectionClosed(connection: ClientConnection): void {
    if (this.#live === connection) this.#live = null;
  }

  #options(): ClientOptions {
    return { proxy: this.#proxy, timeout: this.#timeout, ...(this.#tls ? { tls: this.#tls } : {}) };
  }

  async #attach(ack: number | undefined): Promise<ClientConnection> {
    this.#live?.close();
    const hello: Hello = ack === undefined
      ? { verb: "RESUME", id: this.id, secret: this.secret }
      : { verb: "RESUME", id: this.id, secret: this.secret, ack };
    const { conn, reply, early } = await handshake(this.#options(), hello);
    if ("bye" in reply) {
      closeQuietly(conn);
      throw new ConnectionLostError("the server answered RESUME with BYE");
    }
    this.#state = reply.state;
    const connection = new ClientConnection(conn, reply, early, this);
    this.#live = connection;
    this.#confirm(reply.in);
    // Resend what the server has not received, before any new input.
    for (const bytes of this.#unconfirmed) this.#write(connection, bytes);
    return connection;
  }

  /**
   * Drops the input the server confirms having received. The count covers
   * every client of the session: input tracking assumes this client is the
   * only one sending.
   */
  #confirm(received: number): void {
    const base = this.#inputBase ?? received;
    let drop = Math.max(0, Math.min(received - base, this.unconfirmed));
    while (drop > 0) {
      const first = this.#unconfirmed[0];
      if (!first) break;
      if (first.length <= drop) {
        this.#unconfirmed.shift();
        drop -= first.length;
      } else {
        this.#unconfirmed[0] = first.subarray(drop);
        drop = 0;
      }
    }
    this.#inputBase = received;
  }

  #write(connection: ClientConnection, bytes: Uint8Array): void {
    // Writes go out in order; a failed one leaves its bytes queued for the next connection.
    this.#writing = this.#writing.then(() =>
      connection.closed ? undefined : connection.write(bytes)
    )
      .catch(() => connection.close());
  }
}

/**
 * Opens a TCP or TLS connection to the proxy within `timeout`. TLS starts
 * over a TCP connection of our own, so that it too gets `setNoDelay` (a
 * `Deno.connectTls` connection has no way to set it).
 */
async function open(
  proxy: HostPort,
  timeout: number,
  tls: ClientOptions["tls"],
): Promise<Deno.Conn> {
  // A timer cleared once connected (AbortSignal.timeout would live on for the whole timeout).
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new DOMException("timed out", "TimeoutError")),
    timeout,
  );
  try {
    const tcp = await Deno.connect({
      hostname: proxy.hostname,
      port: proxy.port,
      signal: abort.signal,
    });
    tcp.setNoDelay(true);
    if (!tls) return tcp;
    let conn: Deno.TlsConn;
    try {
      conn = await Deno.startTls(tcp, {
        hostname: proxy.hostname,
        ...(tls.caCerts ? { caCerts: tls.caCerts } : {}),
      });
    } catch (error) {
      closeQuietly(tcp);
      throw error;
    }
    // Certificates are checked in the TLS handshake: fail here, clearly, not at the first read.
    const late = new Promise<never>((_, reject) => {
      if (abort.signal.aborted) reject(abort.signal.reason);
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
    });
    await Promise.race([conn.handshake(), late]).catch((error) => {
      closeQuietly(conn);
      throw error;
    });
    return conn;
  } finally {
    clearTimeout(timer);
  }
}

/** Connects, sends a hello and reads the reply line, within the timeout. */
async function handshake(
  options: ClientOptions,
  hello: Hello,
): Promise<{ conn: Deno.Conn; reply: Reply | { bye: string }; early: Uint8Array }> {
  const proxy = options.proxy ?? DEFAULT_PROXY;
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  const where = formatHostPort(proxy);
  let conn: Deno.Conn;
  try {
    conn = await open(proxy, timeout, options.tls);
  } catch (error) {
    throw new ProxyUnavailableError(
      `no socketproxy server answering on ${where}${options.tls ? " over TLS" : ""}: ${
        describeConnectError(error)
      }`,
    );
  }
  const timer = setTimeout(() => closeQuietly(conn), timeout);
  try {
    await writeAll(conn, encoder.encode(formatHello(hello)));
    // Replies are short; what follows in the same read is early output.
    const buffer = new Uint8Array(4 * MAX_HELLO_BYTES);
    let filled = 0;
    while (true) {
      let count: number | null;
      try {
        count = await conn.read(buffer.subarray(filled));
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          throw new ConnectionLostError(`no reply from ${where} within ${timeout} ms`);
        }
        throw new ConnectionLostError(
          `connection to ${where} failed: ${describeConnectError(error)}`,
        );
      }
      if (count === null) {
        throw new ConnectionLostError(`${where} closed the connection without a reply`);
      }
      const lf = buffer.subarray(filled, filled + count).indexOf(10);
      filled += count;
      if (lf >= 0) {
        const end = filled - count + lf;
        const reply = parseReply(String.fromCharCode(...buffer.subarray(0, end)));
        return { conn, reply, early: buffer.slice(end + 1, filled) };
      }
      if (filled === buffer.length) {
        throw new ConnectionLostError(`${where} sent no reply line: is it a socketproxy server?`);
      }
    }
  } catch (error) {
    closeQuietly(conn);
    if (error instanceof SyntaxError) {
      throw new ConnectionLostError(`${where} is not a socketproxy server: ${error.message}`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
