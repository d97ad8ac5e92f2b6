/**
 * A client's view of one session ({@linkcode ClientSession}): the output
 * offset it has received, so every reconnect resumes exactly, and the input
 * it was given, kept until the server's `<in>` confirms it and resent after
 * a reconnect. It knows when the session has ended, and sends no hello
 * after that. Import it from `mod.ts`, the library's public entry.
 *
 * @module
 */

import { closeQuietly, Wakeup } from "../_io.ts";
import { concatBytes } from "../bytes.ts";
import {
  AuthError,
  type GapError,
  type Hello,
  ID_PATTERN,
  type Reply,
  SECRET_PATTERN,
  type SessionState,
} from "../protocol.ts";
import { ClientConnection } from "./connection.ts";
import { ConnectionLostError, InputOffsetError, SessionEndedError } from "./errors.ts";
import { FramedConnection, isVersion1Refusal } from "./framed.ts";
import { type EndReason, MAX_DATA_PAYLOAD } from "../frames.ts";
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
  /**
   * `NEW to=<name>`: which of the server's named destinations.
   * @default {the server's default destination}
   */
  to?: string;
  /**
   * `NEW from=<address>`: the end user's address, for a gateway the server
   * trusts (`<ipv4>[:<port>]` or `[<ipv6>][:<port>]`); from a peer it does
   * not trust, `create` throws {@linkcode UntrustedError}.
   * @default {none}
   */
  from?: string;
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

/**
 * How a {@linkcode ClientSession.stream} ended: the value the generator
 * returns, also kept as {@linkcode ClientSession.streamEnd}.
 *
 * - `detached`: the signal aborted, or the caller stopped reading; the
 *   session stays on the server.
 * - `taken-over`: another client attached to the session; it stays open.
 * - `destination-closed`: the destination closed and all its output was
 *   received and acknowledged: the session has ended.
 * - `closed`: the session was closed (`CLOSE`, the admin API).
 * - `server-stopping`: the server is shutting down; sessions do not survive it.
 * - `dropped`: only against a server that speaks version 1 alone: the server
 *   ended a poll early, and nothing on the wire tells why.
 */
export type StreamEnd =
  | "detached"
  | "taken-over"
  | "destination-closed"
  | "closed"
  | "server-stopping"
  | "dropped";

/** How long each poll of a stream waits for output, against a version 1 server, in ms. */
const FALLBACK_POLL_MS = 25_000;

/**
 * How long a poll that sent input waits, after half-closing, for the server
 * to detach (it does once it has forwarded the input): normally a round
 * trip; when the destination is not taking input, the poll leaves anyway.
 */
const INPUT_DRAIN_MS = 500;

/** Connections in a row that may drop without an `E` and without progress before a stream gives up. */
const MAX_DROPS = 3;
/** Most input handed to one framed write. */
const MAX_INPUT_WRITE = 4 * MAX_DATA_PAYLOAD;
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
  /** The framed connection a {@linkcode ClientSession.stream} reads, while it is attached. */
  #framed: FramedConnection | null = null;
  /** While a stream attaches: settles once it has (or has given up). */
  #attaching: PromiseWithResolvers<void> | null = null;
  /** Woken when input goes out on the framed connection, or it ends. */
  readonly #inputMoved = new Wakeup();
  /** The server refused a framed hello: it speaks version 1 only. */
  #version1Only = false;
  #streamEnd: StreamEnd | null = null;

  private constructor(
    credentials: { id: string; secret: string },
    options: ClientOptions & { received: number | null; inputBase: number | null },
  ) {
    this.id = credentials.id;
    this.secret = credentials.secret;
    this.#proxy = options.proxy ?? DEFAULT_PROXY;
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.#tls = options.tls;
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
   * @throws {UnknownDestinationError} For a `to` the server does not have.
   * @throws {UntrustedError} For a `from` the server does not believe from this client.
   */
  static async create(options: CreateOptions = {}): Promise<ClientSession> {
    const { conn, reply, early } = await handshake(options, {
      verb: "NEW",
      ...(options.to === undefined ? {} : { to: options.to }),
      ...(options.from === undefined ? {} : { from: options.from }),
    });
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
   * Whether the server, not this client, ended the last version 1
   * connection (a poll): the destination closed and all its output was
   * sent, another client took the session over, or the server stopped.
   * A poll that sent input half-closes its side and reads until the server
   * closes: that close answers the half-close and does not count here.
   * Nothing on a version 1 wire tells which; a stream, framed, is told:
   * see {@linkcode ClientSession.streamEnd}.
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

  /** How the last {@linkcode ClientSession.stream} ended; `null` before one has, and while one runs. */
  get streamEnd(): StreamEnd | null {
    return this.#streamEnd;
  }

  /** Whether {@linkcode ClientSession.received} is known (false for a session resumed without `ack`, before it connects). */
  get offsetKnown(): boolean {
    return this.#taken !== null;
  }

  /**
   * Queues input for the destination. It is written at once when a
   * connection is attached (a stream's, within the server's window), and
   * kept until the server confirms it (a reply's `<in>`, a stream's `I`),
   * so nothing is lost if the connection drops. Once the server has said
   * the destination closed, input is counted as
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
    if (this.#framed) this.#sendFramed(this.#framed);
    else if (this.#live) this.#write(this.#live, bytes);
  }

  /**
   * Attaches a connection exactly, as a poll does: it resumes at the
   * received offset (acknowledged delivery: at most the server's
   * `--buffer` beyond it on this connection). A session resumed without an
   * offset asks, this once, for the output no client has been sent yet,
   * and counts from there.
   *
   * @returns The attached connection; close it to detach.
   * @throws {GapError} When output this client has not received was released.
   * @throws {AuthError} When the session is unknown or ended.
   * @throws {SessionEndedError} When the session is known to have ended: no hello is sent.
   */
  async connect(): Promise<ClientConnection> {
    if (this.#taken === null) {
      const first = await this.#attach(undefined);
      this.#taken = first.reply.from;
      return first;
    }
    return await this.#attach(this.#taken);
  }

  /**
   * One poll: attach exactly, send queued input, read the pending output
   * and leave. Output the library holds (from {@linkcode ClientSession.create},
   * a re-fetch, or {@linkcode ClientSession.holdBack}) comes first. Once
   * the session is known to have ended, it hands out what it holds without
   * connecting. A poll that sends input leaves by half-closing and reading
   * until the server detaches (output that arrives meanwhile is returned
   * too), so that the server has counted the input when it returns, and
   * the next reply's `<in>` covers it; when the destination is not taking
   * input, it leaves after half a second with the input unconfirmed.
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
    await using connection = await this.connect();
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
    // Input goes out on this connection; input the server does not take
    // in time stays unconfirmed, and the next poll sends it again from its
    // reply's `<in>`.
    const bound = connection.closedPromise(Math.max(1000, deadline - performance.now()));
    await Promise.race([this.#writing, bound]);
    if (this.#unconfirmedBytes > 0 && !connection.closed) {
      // Leave by half-closing and reading until the server detaches: it has
      // then forwarded and counted the input. Closed at once, the input may
      // still be unread when the next poll's resume takes this connection
      // over, and a takeover drops it (docs/protocol.md, takeover). A server
      // whose destination is not taking input does not read the half-close:
      // the wait for it is bounded, so the poll still returns its output.
      const cut = setTimeout(() => connection.close(), INPUT_DRAIN_MS);
      try {
        await connection.closeWrite();
        for (let more = await connection.read(); more !== null; more = await connection.read()) {
          await take(more);
        }
      } finally {
        clearTimeout(cut);
      }
    }
    return concatBytes(parts);
  }

  /**
   * Resolves once all input given so far has been written to a connection
   * (or there is none to write it to). While a
   * {@linkcode ClientSession.stream} attaches, it waits for that first; a
   * stream's input waits for the window the server's `I` frames open, so
   * awaiting this after each {@linkcode ClientSession.send} keeps the input
   * held here within one window.
   */
  async flush(): Promise<void> {
    await this.#attaching?.promise;
    for (let framed = this.#framed; framed && !framed.closed; framed = this.#framed) {
      if (framed.inputSent >= this.#inputEnd()) break;
      await this.#inputMoved.wait();
    }
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
   * Stays attached, yielding output as it arrives, over one framed
   * (version 2) connection: output is acknowledged as it is taken (each
   * chunk once the next is asked for), input given to
   * {@linkcode ClientSession.send} is written within the server's window
   * and kept until the server's `I` confirms it, and a connection that
   * drops is attached again where it stood, resending what was not
   * confirmed. It ends when the server says why (`E`), or `signal` aborts;
   * the generator returns the {@linkcode StreamEnd}.
   *
   * Against a server that refuses framed hellos (version 1 only), it polls
   * instead: long polls, exact both ways.
   *
   * @param options `signal` ends the stream (detaching, not ending the session).
   * @returns The output, chunk by chunk; then how the stream ended.
   * @throws {ConnectionLostError} When the connection keeps dropping.
   * @throws {ProxyUnavailableError} When a re-attach finds no server.
   * @throws {GapError} When output this client has not received was released.
   * @throws {AuthError} When the session is unknown or ended.
   */
  async *stream(options: StreamOptions = {}): AsyncGenerator<Uint8Array, StreamEnd> {
    const { signal } = options;
    this.#streamEnd = null;
    let framed: FramedConnection | null = null;
    const abort = (): void => {
      framed?.close();
      this.#live?.close();
    };
    signal?.addEventListener("abort", abort, { once: true });
    let end: StreamEnd = "detached";
    try {
      for (let held = this.takeBacklog(); held && !signal?.aborted; held = this.takeBacklog()) {
        yield held;
      }
      if (this.#version1Only) return end = yield* this.#pollStream(signal);
      for (let drops = 0; !signal?.aborted;) {
        const before = this.#progress();
        let ended: StreamEnd | null = null;
        let attached = true;
        try {
          framed = await this.#attachFramed();
        } catch (error) {
          // A connection lost in the handshake is a drop like any other.
          if (!(error instanceof ConnectionLostError) || signal?.aborted) throw error;
          attached = false;
        }
        if (framed === null) return end = yield* this.#pollStream(signal);
        if (attached) {
          // What the drain of a first attach at an unknown offset held comes first.
          for (let held = this.takeBacklog(); held && !signal?.aborted; held = this.takeBacklog()) {
            yield held;
          }
          if (signal?.aborted) break;
          ended = yield* this.#readFramed(framed);
        }
        if (ended !== null) return end = ended;
        if (signal?.aborted) break;
        // Dropped without an E: attach again where it stood, unless it keeps failing.
        drops = this.#progress() === before ? drops + 1 : 0;
        if (drops >= MAX_DROPS) {
          throw new ConnectionLostError(
            `the connection to the server dropped ${drops} times in a row without progress`,
          );
        }
      }
      return end;
    } finally {
      signal?.removeEventListener("abort", abort);
      framed?.close();
      this.#framed = null;
      this.#attached();
      this.#inputMoved.wake();
      this.#streamEnd = end;
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
    this.#takeReply(reply, () => closeQuietly(conn));
    const connection = new ClientConnection({ conn, reply, early }, this);
    if (options.input) this.#live = connection;
    this.#last = connection;
    this.#lastAcknowledged = ack !== undefined;
    // Acknowledged, closed, nothing pending: the server ends the session
    // right after this reply.
    if (reply.state === "closed" && ack !== undefined && reply.pending === 0) this.#ended = true;
    // Resend what the server has not received, before any new input.
    if (options.input) { for (const bytes of this.#unconfirmed) this.#write(connection, bytes); }
    return connection;
  }

  /**
   * Attaches a stream's framed connection at the received offset, sending
   * the input not yet confirmed; `null` from a server that speaks version
   * 1 only. A session resumed without an offset first learns it with a
   * version 1 attach, drained like `create`'s, so nothing is skipped.
   */
  async #attachFramed(): Promise<FramedConnection | null> {
    this.#attaching ??= Promise.withResolvers<void>();
    try {
      this.#live?.close();
      if (this.#taken === null) {
        const first = await this.#attach(undefined, { input: false });
        this.#taken = first.reply.from;
        await this.#drain(first, first.reply.from);
      }
      if (this.#ended) throw new SessionEndedError(`session ${this.id} has ended: no hello sent`);
      let framed: FramedConnection;
      try {
        framed = await FramedConnection.open(this.#options(), {
          verb: "RESUME",
          id: this.id,
          secret: this.secret,
          ack: this.#taken,
        });
      } catch (error) {
        if (error instanceof AuthError) this.#ended = true;
        if (!isVersion1Refusal(error)) throw error;
        this.#version1Only = true;
        return null;
      }
      this.#takeReply(framed.reply, () => framed.close());
      this.#framed = framed;
      this.#sendFramed(framed);
      return framed;
    } finally {
      this.#attached();
    }
  }

  /**
   * Takes in a reply's `<in>` and `<state>`: confirms input, and gives up
   * what a closed destination will never receive.
   *
   * @throws {InputOffsetError} When the caller's record of the input is
   * ahead of the server's (sending would put input at the wrong offset);
   * `close` has closed the connection.
   */
  #takeReply(reply: Reply, close: () => void): void {
    if (this.#inputBase !== null && reply.in < this.#inputBase) {
      close();
      throw new InputOffsetError(
        `the session has ${reply.in} bytes of input, not ${this.#inputBase}`,
        reply.in,
      );
    }
    this.#state = reply.state;
    this.#confirm(reply.in);
    // The server drops input once the destination has closed.
    if (reply.state === "closed") this.#giveUpInput();
  }

  #attached(): void {
    const attaching = this.#attaching;
    this.#attaching = null;
    attaching?.resolve();
  }

  /**
   * Reads a framed connection until it ends: yields output, acknowledging
   * what was taken; confirms input on `I`.
   *
   * @returns How the server ended it, or `null` when it dropped without saying.
   */
  async *#readFramed(framed: FramedConnection): AsyncGenerator<Uint8Array, StreamEnd | null> {
    const window = framed.reply.window;
    while (true) {
      // Everything yielded so far was taken: acknowledge it when half a
      // window waits, or before waiting for the network.
      const taken = this.received;
      if (
        taken - framed.acknowledged >= window / 2 ||
        (!framed.buffered && taken > framed.acknowledged)
      ) {
        void framed.acknowledge(Math.min(taken, framed.received));
      }
      const event = await framed.next();
      if (event === null) {
        this.#framed = null;
        this.#inputMoved.wake();
        return null;
      }
      switch (event.type) {
        case "output":
          this.countReceived(event.bytes.length);
          yield event.bytes;
          break;
        case "input":
          this.#confirm(event.count);
          this.#sendFramed(framed);
          break;
        case "end":
          return await this.#endFramed(framed, event.reason, event.in);
      }
    }
  }

  /** The server's `E`: what it means for the session. */
  async #endFramed(framed: FramedConnection, reason: EndReason, input: number): Promise<StreamEnd> {
    this.#framed = null;
    this.#confirm(input);
    this.#inputMoved.wake();
    switch (reason) {
      case "destination-closed":
        // All its output has been yielded: acknowledging it ends the session.
        this.#state = "closed";
        this.#giveUpInput();
        await framed.acknowledge(this.received);
        this.#ended = this.received === framed.received;
        framed.close();
        return "destination-closed";
      case "taken-over":
        framed.close();
        return "taken-over";
      case "closed":
      case "server-stopping":
        framed.close();
        this.#state = "closed";
        this.#ended = true;
        this.#giveUpInput();
        return reason;
      case "protocol-error":
        framed.close();
        throw new ConnectionLostError(
          "the server ended the stream for a protocol error of this client",
        );
    }
  }

  /**
   * A stream against a server that speaks version 1 only: long polls, each
   * exact both ways (output from the received offset, input from `<in>`).
   */
  async *#pollStream(signal: AbortSignal | undefined): AsyncGenerator<Uint8Array, StreamEnd> {
    while (!signal?.aborted) {
      if (this.#ended) return "destination-closed";
      let output: Uint8Array;
      try {
        output = await this.poll({ wait: FALLBACK_POLL_MS, ...(signal ? { signal } : {}) });
      } catch (error) {
        if (error instanceof SessionEndedError) return "destination-closed";
        throw error;
      }
      if (output.length > 0) yield output;
      else if (this.droppedByServer) return "dropped";
    }
    return "detached";
  }

  /** Writes the input not yet written on `framed`, as far as its window allows. */
  #sendFramed(framed: FramedConnection): void {
    const end = this.#inputEnd();
    // A closed connection takes nothing (sendInput would not move inputSent on):
    // what it did not send goes on the next attach.
    for (
      let room = framed.inputRoom;
      room > 0 && framed.inputSent < end && !framed.closed;
      room = framed.inputRoom
    ) {
      const start = framed.inputSent - (this.#inputBase ?? 0);
      const bytes = this.#unconfirmedSlice(start, Math.min(room, MAX_INPUT_WRITE));
      if (bytes.length === 0) break;
      this.#writing = framed.sendInput(bytes).then(() => this.#inputMoved.wake());
    }
  }

  /** The input offset after the last byte given to {@linkcode ClientSession.send}. */
  #inputEnd(): number {
    return (this.#inputBase ?? 0) + this.#unconfirmedBytes;
  }

  /** Up to `max` bytes of the unconfirmed input, from `start` bytes into it. */
  #unconfirmedSlice(start: number, max: number): Uint8Array {
    const parts: Uint8Array[] = [];
    let skip = start;
    let left = max;
    for (const bytes of this.#unconfirmed) {
      if (left === 0) break;
      if (skip >= bytes.length) {
        skip -= bytes.length;
        continue;
      }
      const part = bytes.subarray(skip, skip + left);
      skip = 0;
      left -= part.length;
      parts.push(part);
    }
    return parts.length === 1 ? parts[0] ?? EMPTY : concatBytes(parts);
  }

  /** Output and input so far: a stream that drops without changing it made no progress. */
  #progress(): string {
    return `${this.received} ${this.#inputBase}`;
  }

  /** The server will never receive the input not yet confirmed. */
  #giveUpInput(): void {
    this.#undelivered += this.#unconfirmedBytes;
    this.#unconfirmed = [];
    this.#unconfirmedBytes = 0;
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
