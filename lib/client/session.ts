/**
 * A client's view of one session ({@linkcode ClientSession}): the output
 * offset it has received, so every reconnect resumes exactly, and the input
 * it was given, kept until the server's `<in>` confirms it and resent after
 * a reconnect. It knows when the session has ended, and sends no hello
 * after that. Import it from `mod.ts`, the library's public entry.
 *
 * @module
 */

import { closeQuietly } from "../_io.ts";
import { concatBytes } from "../bytes.ts";
import {
  AuthError,
  type GapError,
  type Hello,
  ID_PATTERN,
  SECRET_PATTERN,
  type SessionState,
} from "../protocol.ts";
import { ClientConnection } from "./connection.ts";
import { ConnectionLostError, InputOffsetError, SessionEndedError } from "./errors.ts";
import { type ClientOptions, DEFAULT_PROXY, DEFAULT_TIMEOUT_MS, handshake } from "./handshake.ts";
import type { HostPort } from "../address.ts";

/** Options for {@linkcode ClientSession.create}. */
export interface CreateOptions extends ClientOptions {
  /**
   * Whether `create` waits for what the new session's first connection is
   * sent (up to the server's `--buffer` bytes) and holds it for the first
   * poll or stream. With
   * `false`, it sends `NEW`, reads the reply and leaves: for a caller that
   * reads the output from offset 0 later, with `RESUME <id> <secret> 0`
   * (a poll of this session, or another process given `ack: 0`). That is
   * exactly once only while the server still retains the first byte: once
   * the destination has said more than `--buffer` before that resume, the
   * server may have released the start, and the resume meets
   * {@linkcode GapError}.
   * @default {true}
   */
  readFirstOutput?: boolean;
}

/** Options for {@linkcode ClientSession.resume}: where the session stands. */
export interface ResumeOptions extends ClientOptions {
  /**
   * The output offset this client has received. Without it, the first
   * connection asks for the output no client has been sent yet, and
   * counts from there.
   */
  ack?: number;
  /**
   * The session input offset at which input given to
   * {@linkcode ClientSession.send} starts. Without it, the input is taken
   * as new; with it, input the server already has is not sent again, and
   * an `inputAt` beyond the server's `<in>` fails the attach with
   * `InputOffsetError`, sending nothing.
   */
  inputAt?: number;
}

/** Options for {@linkcode ClientSession.poll}. */
export interface PollOptions {
  /**
   * How long to wait for output, in ms; 0 returns the pending output at once.
   * @default {0}
   */
  wait?: number;
  /**
   * `"first"`: return as soon as there is any output; `"deadline"`:
   * collect all output that arrives within `wait`.
   * @default {"first"}
   */
  until?: "first" | "deadline";
  /** Ends the poll early, with what it has read. */
  signal?: AbortSignal;
  /**
   * Receives the output as it arrives; the poll then returns nothing. When
   * it throws, the poll stops and rethrows: give back what was not used
   * with {@linkcode ClientSession.holdBack} so that it is not counted.
   */
  onOutput?: (bytes: Uint8Array) => void | Promise<void>;
}

/** Options for {@linkcode ClientSession.stream}. */
export interface StreamOptions {
  /** Ends the stream, detaching (the session stays alive on the server). */
  signal?: AbortSignal;
}

const DEFAULT_MAX_UNCONFIRMED = 256 * 1024;
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Output taken from the server and not yet handed out, with the offset it starts at. */
interface Held {
  bytes: Uint8Array;
  offset: number;
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
  readonly #maxUnconfirmed: number;
  /**
   * Output taken from the server: the `<ack>` of the next resume. `null`
   * until known: a session resumed without an offset takes the server's.
   */
  #taken: number | null;
  #state: SessionState | "unknown" = "unknown";
  /** Set once the server is known to have forgotten the session: no more hellos. */
  #ended = false;
  /** Input not yet confirmed by a reply's `<in>`; it starts at input offset `#inputBase`. */
  #unconfirmed: Uint8Array[] = [];
  #unconfirmedBytes = 0;
  /** Input given up: the destination had closed before the server received it. */
  #undelivered = 0;
  /** `null` until a reply says where the session's input stands. */
  #inputBase: number | null;
  /** Output taken from the server but not yet handed out, oldest first. */
  #backlog: Held[] = [];
  #live: ClientConnection | null = null;
  /** The connection of the last hello answered `OK`, and whether that hello had an `<ack>`. */
  #last: ClientConnection | null = null;
  #lastAcknowledged = false;
  #writing: Promise<void> = Promise.resolve();
  /** The connection a {@linkcode ClientSession.stream} reads, which may be re-attached. */
  #streaming: ClientConnection | null = null;
  /** While a stream attaches or re-attaches: settles once it has (or has given up). */
  #attaching: PromiseWithResolvers<void> | null = null;
  /** A stream connection half-closed to re-attach once it has handed over its output. */
  #retiring: ClientConnection | null = null;

  private constructor(
    credentials: { id: string; secret: string },
    options: ClientOptions & { received: number | null; inputBase: number | null },
  ) {
    this.id = credentials.id;
    this.secret = credentials.secret;
    this.#proxy = options.proxy ?? DEFAULT_PROXY;
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.#tls = options.tls;
    this.#maxUnconfirmed = options.maxUnconfirmed ?? DEFAULT_MAX_UNCONFIRMED;
    this.#taken = options.received;
    this.#inputBase = options.inputBase;
  }

  /**
   * Creates a session (`NEW`). Nothing the destination says first is
   * missed or repeated: the library half-closes the connection `NEW`
   * opened, so that the server stops releasing what it streams there and
   * detaches once it has sent what it has, reads it all, and holds it for
   * the first {@linkcode ClientSession.poll} or
   * {@linkcode ClientSession.stream}, which resume right after it. (A
   * streaming connection's output may be released once written, so a
   * client that just closed it could find the first bytes gone.) With
   * `readFirstOutput: false` it leaves right after the reply instead, and
   * the session's first resume starts at offset 0.
   *
   * @param options The proxy and timeout, and whether to read the first output.
   * @returns The new session.
   * @throws {ProxyUnavailableError} When no proxy answers.
   * @throws {UnreachableError} When the proxy cannot reach the destination.
   * @throws {BusyError} At the proxy's session limit.
   */
  static async create(options: CreateOptions = {}): Promise<ClientSession> {
    const { conn, reply, early } = await handshake(options, { verb: "NEW" });
    if ("bye" in reply) {
      closeQuietly(conn);
      throw new ConnectionLostError("the server answered NEW with BYE");
    }
    const session = new ClientSession(reply, { ...options, received: 0, inputBase: 0 });
    session.#state = reply.state;
    if (options.readFirstOutput === false) {
      // Output that came with the reply is not counted: a resume at 0 fetches it again.
      closeQuietly(conn);
      return session;
    }
    await session.#drain(new ClientConnection({ conn, reply, early }, session), 0);
    return session;
  }

  /**
   * Resumes an existing session, without connecting yet.
   *
   * @param credentials The session's id and secret.
   * @param options The proxy and timeout, and where the session stands.
   * @returns The session.
   * @throws {TypeError} When the id or the secret is malformed.
   * @throws {RangeError} When `ack` or `inputAt` is not an offset.
   */
  static resume(
    credentials: { id: string; secret: string },
    options: ResumeOptions = {},
  ): ClientSession {
    // Checked here, so that nothing else can ride along in a hello.
    if (!ID_PATTERN.test(credentials.id)) {
      throw new TypeError(
        `Cannot resume session "${
          credentials.id.slice(0, 64)
        }": a session id is 1 to 64 characters of A-Z a-z 0-9 _ -`,
      );
    }
    if (!SECRET_PATTERN.test(credentials.secret)) {
      // The secret itself is not quoted: it may be a real one, slightly damaged.
      throw new TypeError(
        `Cannot resume session "${credentials.id}": a secret is 22 to 64 characters of A-Z a-z 0-9 _ -`,
      );
    }
    for (const [name, value] of [["ack", options.ack], ["inputAt", options.inputAt]] as const) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
        throw new RangeError(`Cannot resume at ${name} ${value}: an offset is a whole number >= 0`);
      }
    }
    return new ClientSession(credentials, {
      ...options,
      received: options.ack ?? null,
      inputBase: options.inputAt ?? null,
    });
  }

  /**
   * Output bytes received so far over the whole session: the offset of the
   * next byte handed out. Pass it as `ack` to resume this session exactly
   * from another client or process.
   */
  get received(): number {
    return this.#backlog[0]?.offset ?? this.#taken ?? 0;
  }

  /** The destination's state at the last reply, `unknown` before any. */
  get state(): SessionState | "unknown" {
    return this.#state;
  }

  /**
   * Whether the session is known to have ended on the server: its
   * destination closed and a reply acknowledged all its output, it was
   * closed with {@linkcode ClientSession.close}, or a hello was refused
   * with `ERR auth`. The library then sends no more hellos.
   */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Whether the server, not this client, ended the last connection: the
   * destination closed and all its output was sent, another client took
   * the session over, or the server stopped. Nothing on the wire tells
   * which; the next reply's `state` tells whether the destination closed
   * (but a hello takes the session back from a client that took it over).
   */
  get detachedByServer(): boolean {
    return this.#last?.closedByServer ?? false;
  }

  /**
   * Whether the server dropped the last poll before sending it anything:
   * it closed an acknowledged connection whose reply said `open` with
   * nothing pending, and no output came. Either the destination closed
   * without another word (the server then keeps the session, in state
   * `closed`, until a hello is told so), or another client took the
   * session over, or the server stopped; nothing on the wire tells which.
   * A further hello is not refused for the first two (it learns `closed`
   * in the first), but in the second it takes the session back from the
   * client that took it.
   */
  get droppedByServer(): boolean {
    const last = this.#last;
    return !this.#ended && last !== null && last.closedByServer && this.#lastAcknowledged &&
      last.reply.state === "open" && last.reply.pending === 0 && last.delivered === 0;
  }

  /**
   * The former name of {@linkcode ClientSession.droppedByServer}.
   *
   * @deprecated Use {@linkcode ClientSession.droppedByServer}: the server
   * no longer ends a session when it drops a poll this way (the destination
   * closed, or a takeover), so the session has not ended.
   */
  get mayHaveEnded(): boolean {
    return this.droppedByServer;
  }

  /** The session's input count at the last reply: input the server confirms having received. */
  get inputConfirmed(): number {
    return this.#inputBase ?? 0;
  }

  /** Input bytes given to {@linkcode ClientSession.send} that the server has not confirmed. */
  get unconfirmed(): number {
    return this.#unconfirmedBytes;
  }

  /**
   * Input bytes given to {@linkcode ClientSession.send} that will never
   * reach the destination: it had closed before the server received them.
   */
  get undelivered(): number {
    return this.#undelivered;
  }

  /** Whether {@linkcode ClientSession.received} is known (false for a session resumed without `ack`, before it connects). */
  get offsetKnown(): boolean {
    return this.#taken !== null;
  }

  /**
   * Queues input for the destination. It is written at once when a
   * connection is attached, and kept until a later reply confirms it, so
   * nothing is lost if the connection drops. Once a reply has said the
   * destination closed, input is counted as
   * {@linkcode ClientSession.undelivered} instead.
   *
   * @param data Bytes, or text sent as UTF-8.
   */
  send(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data.slice();
    if (bytes.length === 0) return;
    if (this.#state === "closed") {
      this.#undelivered += bytes.length;
      return;
    }
    this.#unconfirmed.push(bytes);
    this.#unconfirmedBytes += bytes.length;
    const live = this.#live;
    if (!live) return;
    this.#write(live, bytes);
    if (live === this.#streaming && this.#unconfirmedBytes > this.#maxUnconfirmed) {
      this.#retire(live);
    }
  }

  /**
   * Attaches a connection. `exact` resumes at the received offset
   * (acknowledged delivery: at most the server's `--buffer` beyond it on
   * this connection); `streaming` asks for output without limit. Before a
   * streaming hello, which lets the server release all output it has sent
   * to any connection, the library catches up exactly: it resumes at the
   * received offset, half-closes, and holds all that connection is sent
   * (at most `--buffer`) for the next read. So output an earlier connection
   * was sent but never delivered is fetched before the server may release
   * it, and this client causes no gap of its own.
   *
   * @param mode How to attach.
   * @returns The attached connection; close it to detach. When the catch-up
   * finds the destination closed, it is that connection, already drained:
   * reads hand out what it held, then end.
   * @throws {GapError} When output this client has not received was released.
   * @throws {AuthError} When the session is unknown or ended.
   * @throws {SessionEndedError} When the session is known to have ended: no hello is sent.
   */
  async connect(mode: "exact" | "streaming" = "exact"): Promise<ClientConnection> {
    if (this.#taken === null) {
      const first = await this.#attach(undefined);
      this.#taken = first.reply.from;
      return first;
    }
    if (mode === "exact") return await this.#attach(this.#taken);
    // Only another client sending output meanwhile (a takeover) can leave
    // the streaming hello ahead of what the catch-up fetched.
    for (let attempt = 0; attempt < 10; attempt++) {
      const from = this.#taken;
      // Output only: input waits for the streaming connection, so that no
      // write can fail on this half-closed one and cut the catch-up short.
      const exact = await this.#attach(from, { input: false });
      await this.#drain(exact, from);
      // The destination closed: all its output is held, nothing more will come.
      if (exact.reply.state === "closed") return exact;
      const connection = await this.#attach(undefined);
      if (connection.reply.from === this.#taken) return connection;
      connection.close();
    }
    throw new ConnectionLostError("could not attach in streaming mode: the output keeps moving on");
  }

  /**
   * One poll: attach exactly, send queued input, read the pending output
   * and leave. Output the library holds (from {@linkcode ClientSession.create},
   * a re-fetch, or {@linkcode ClientSession.holdBack}) comes first. Once
   * the session is known to have ended, it hands out what it holds without
   * connecting.
   *
   * @param options How long to wait, and where the output goes.
   * @returns The output, possibly empty.
   * @throws {SessionEndedError} When the session has ended and nothing is held.
   */
  async poll(options: PollOptions = {}): Promise<Uint8Array> {
    const { signal } = options;
    const wait = options.wait ?? 0;
    const deadline = performance.now() + wait;
    if (signal?.aborted) return EMPTY;
    const parts: Uint8Array[] = [];
    // With onOutput, output is handed over as it arrives instead of at the end.
    const take = async (bytes: Uint8Array): Promise<void> => {
      if (bytes.length === 0) return;
      if (options.onOutput) await options.onOutput(bytes);
      else parts.push(bytes);
    };
    if (this.#ended && this.#backlog.length > 0) {
      for (let held = this.takeBacklog(); held; held = this.takeBacklog()) await take(held);
      return concatBytes(parts);
    }
    await using connection = await this.connect("exact");
    // An abort (the caller went away) ends the poll with what it has read.
    const abort = (): void => connection.close();
    signal?.addEventListener("abort", abort, { once: true });
    using _ = { [Symbol.dispose]: () => signal?.removeEventListener("abort", abort) };
    if (signal?.aborted) connection.close();
    // Output held from before counts as output: a poll for the first output returns with it.
    let total = 0;
    for (let held = this.takeBacklog(); held; held = this.takeBacklog()) {
      total += held.length;
      await take(held);
    }
    const pending = new Uint8Array(connection.reply.pending);
    const got = await connection.readInto(pending, 0);
    await take(pending.subarray(0, got));
    total += got;
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
    return concatBytes(parts);
  }

  /**
   * Resolves once all input given so far has been written to a connection
   * (or there is none to write it to). While a
   * {@linkcode ClientSession.stream} attaches or re-attaches, it waits for
   * that first; the re-attach needs the stream to be read meanwhile.
   */
  async flush(): Promise<void> {
    // One attach is enough: the connection it makes is written all input
    // not yet confirmed, so what was given before this call is then queued
    // in #writing. A later re-attach concerns only input given later.
    await this.#attaching?.promise;
    await this.#writing;
  }

  /**
   * Moves past output lost to a gap: the next resume starts from the lowest
   * offset the server still has. Output the library already holds is
   * handed out first.
   *
   * @param error The gap the server reported.
   * @returns How many bytes of output were lost.
   */
  skipGap(error: GapError): number {
    const taken = this.#taken ?? 0;
    if (error.lowest <= taken) return 0;
    this.#taken = error.lowest;
    return error.lowest - taken;
  }

  /**
   * Stays attached, yielding output as it arrives, until the server closes
   * the connection or `signal` aborts. Input given to
   * {@linkcode ClientSession.send} meanwhile is written at once; when more
   * than `maxUnconfirmed` of it is unconfirmed, the stream re-attaches to
   * trim it, without losing or repeating output.
   *
   * @param options `signal` ends the stream (detaching, not ending the session).
   * @returns The output, chunk by chunk.
   */
  async *stream(options: StreamOptions = {}): AsyncGenerator<Uint8Array> {
    const { signal } = options;
    if (signal?.aborted) return;
    let connection: ClientConnection | null = null;
    const abort = (): void => {
      connection?.close();
      this.#retiring?.close();
    };
    signal?.addEventListener("abort", abort, { once: true });
    try {
      connection = await this.#attachStream();
      while (!signal?.aborted) {
        const chunk = await connection.read();
        if (chunk !== null) {
          yield chunk;
          continue;
        }
        if (this.#retiring !== connection || signal?.aborted) return;
        // The retired connection has handed over all its output: attach anew.
        connection = await this.#attachStream();
      }
    } finally {
      signal?.removeEventListener("abort", abort);
      connection?.close();
      this.#streaming = null;
      this.#retiring = null;
      this.#attached();
      await this.#writing;
    }
  }

  /**
   * Ends the session on the server (`CLOSE`): the destination connection is
   * closed and its output discarded.
   *
   * @throws {AuthError} When the session is unknown or already ended
   * ({@linkcode SessionEndedError}, without asking, when the library knows).
   */
  async close(): Promise<void> {
    this.#live?.close();
    const { conn, reply } = await this.#handshake({
      verb: "CLOSE",
      id: this.id,
      secret: this.secret,
    });
    closeQuietly(conn);
    if (!("bye" in reply)) throw new ConnectionLostError("the server answered CLOSE without BYE");
    this.#state = "closed";
    this.#ended = true;
  }

  /** @internal Takes output held back for the caller, at most `max` bytes. */
  takeBacklog(max = Infinity): Uint8Array | null {
    const first = this.#backlog[0];
    if (!first || max <= 0) return null;
    if (first.bytes.length <= max) {
      this.#backlog.shift();
      return first.bytes;
    }
    this.#backlog[0] = { bytes: first.bytes.subarray(max), offset: first.offset + max };
    return first.bytes.subarray(0, max);
  }

  /**
   * Gives back output that was handed out but not used (a write to where
   * it was going failed): it is no longer counted as received, and the
   * next read or poll hands it out first.
   *
   * @param bytes The last bytes handed out, in order.
   */
  holdBack(bytes: Uint8Array): void {
    if (bytes.length > 0) this.#backlog.unshift({ bytes, offset: this.received - bytes.length });
  }

  /** @internal Counts output read from the server. */
  countReceived(count: number): void {
    this.#taken = (this.#taken ?? 0) + count;
  }

  /** @internal Forgets a closed connection. */
  connectionClosed(connection: ClientConnection): void {
    if (this.#live === connection) this.#live = null;
  }

  /** Keeps output taken from the server at `offset`, for the next reader. */
  #hold(bytes: Uint8Array, offset: number): void {
    if (bytes.length > 0) this.#backlog.push({ bytes, offset });
  }

  /**
   * Half-closes `connection`, so that the server sends what it has and
   * detaches, and holds all it was sent, from offset `from`, for the next
   * reader. Bounded like the handshake: a server that never detaches costs
   * the timeout, no more.
   */
  async #drain(connection: ClientConnection, from: number): Promise<void> {
    const timer = setTimeout(() => connection.close(), this.#timeout);
    try {
      await connection.closeWrite();
      this.#hold(await connection.readToEnd(), from);
    } finally {
      clearTimeout(timer);
      connection.close();
    }
  }

  #options(): ClientOptions {
    return { proxy: this.#proxy, timeout: this.#timeout, ...(this.#tls ? { tls: this.#tls } : {}) };
  }

  /** Sends a hello, unless the session is known to be over: the server would refuse it as a failed guess. */
  async #handshake(hello: Hello): ReturnType<typeof handshake> {
    if (this.#ended) {
      throw new SessionEndedError(`session ${this.id} has ended: no hello sent`);
    }
    try {
      return await handshake(this.#options(), hello);
    } catch (error) {
      // Unknown or a wrong secret: asking again would only count as another guess.
      if (error instanceof AuthError) this.#ended = true;
      throw error;
    }
  }

  /**
   * Sends a `RESUME` and takes in its reply. With `input` (the default),
   * the connection becomes the one input is written to, starting with the
   * input the server has not received.
   */
  async #attach(
    ack: number | undefined,
    options: { input: boolean } = { input: true },
  ): Promise<ClientConnection> {
    this.#live?.close();
    const hello: Hello = ack === undefined
      ? { verb: "RESUME", id: this.id, secret: this.secret }
      : { verb: "RESUME", id: this.id, secret: this.secret, ack };
    const { conn, reply, early } = await this.#handshake(hello);
    if ("bye" in reply) {
      closeQuietly(conn);
      throw new ConnectionLostError("the server answered RESUME with BYE");
    }
    if (this.#inputBase !== null && reply.in < this.#inputBase) {
      // The caller's record is ahead of the server's: sending would put the
      // input at the wrong offset.
      closeQuietly(conn);
      throw new InputOffsetError(
        `the session has ${reply.in} bytes of input, not ${this.#inputBase}`,
        reply.in,
      );
    }
    this.#state = reply.state;
    const connection = new ClientConnection({ conn, reply, early }, this);
    if (options.input) this.#live = connection;
    this.#last = connection;
    this.#lastAcknowledged = ack !== undefined;
    this.#confirm(reply.in);
    if (reply.state === "closed") {
      // The server drops input once the destination has closed: what it
      // has not received never will be.
      this.#undelivered += this.#unconfirmedBytes;
      this.#unconfirmed = [];
      this.#unconfirmedBytes = 0;
      // Acknowledged, closed, nothing pending: the server ends the session
      // right after this reply.
      if (ack !== undefined && reply.pending === 0) this.#ended = true;
    }
    // Resend what the server has not received, before any new input.
    if (options.input) { for (const bytes of this.#unconfirmed) this.#write(connection, bytes); }
    return connection;
  }

  /** Attaches the connection a stream reads, and lets those waiting in flush() go on. */
  async #attachStream(): Promise<ClientConnection> {
    this.#attaching ??= Promise.withResolvers<void>();
    try {
      const connection = await this.connect("streaming");
      this.#streaming = connection;
      return connection;
    } finally {
      this.#retiring = null;
      this.#attached();
    }
  }

  #attached(): void {
    const attaching = this.#attaching;
    this.#attaching = null;
    attaching?.resolve();
  }

  /**
   * Retires a stream connection to learn how much input the server has
   * received: half-closing it makes the server stop releasing what it sent
   * there, send what it has, and detach; the stream reads all of it, then
   * attaches anew, and that reply's `<in>` trims the input kept. Input
   * given meanwhile waits for the new connection.
   */
  #retire(connection: ClientConnection): void {
    if (this.#retiring) return;
    this.#retiring = connection;
    this.#live = null;
    this.#attaching ??= Promise.withResolvers<void>();
    this.#writing = this.#writing.then(() => connection.closeWrite());
  }

  /**
   * Drops the input the server confirms having received. The count covers
   * every client of the session: input tracking assumes this client is the
   * only one sending.
   */
  #confirm(received: number): void {
    const base = this.#inputBase ?? received;
    let drop = Math.max(0, Math.min(received - base, this.#unconfirmedBytes));
    this.#unconfirmedBytes -= drop;
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
