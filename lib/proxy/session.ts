/**
 * One session: a destination connection, its output buffer, and at most one
 * attached client connection at a time.
 *
 * Three pumps move the bytes, each a loop over one reused buffer:
 *
 * - the destination reader reads into the {@linkcode OutputBuffer} directly,
 *   and stops while the buffer is full (backpressure onto the destination);
 * - the output sender writes the reply line, then output from the buffer to
 *   the attached client, from the attachment's starting offset on;
 * - the input receiver reads from the client and writes to the destination,
 *   one chunk at a time, so input is read no faster than the destination
 *   takes it.
 *
 * Attaching a second client detaches the first (takeover). A client that
 * closes its side has what it sent forwarded, is sent what is available and
 * is then detached. When the destination closes, the attached client gets
 * the rest of the output and is disconnected; the session ends once that
 * output has been delivered, or when no client has come for it in time.
 *
 * A framed attachment (version 2) has pumps of its own, in
 * `framed_attachment.ts`; this file attaches, detaches and ends it like any
 * other, and lends it the output buffer and the destination writes.
 *
 * @module
 */

import { closeQuietly, Wakeup, writeAll } from "../_io.ts";
import type { Counters } from "./counters.ts";
import { secretsEqual } from "./credentials.ts";
import { describeError, type Logger } from "../log.ts";
import { OutputBuffer } from "./output_buffer.ts";
import { formatReply, MAX_HELLO_BYTES, ProtocolError, type SessionState } from "../protocol.ts";
import type { EndReason } from "../frames.ts";
import { FramedAttachment, type FramedHost } from "./framed_attachment.ts";
import type { SessionTrace } from "../telemetry.ts";
import type { Connection } from "./tcp.ts";

/**
 * How an attachment paces output: `acknowledged` (`RESUME` with `<ack>`,
 * exactly once), `streaming` (`NEW`, `RESUME` without `<ack>`) or `framed`
 * (`NEW framed`, `RESUME ... framed`: version 2, exactly once both ways).
 */
export type DeliveryMode = "acknowledged" | "streaming" | "framed";

/** Pending output up to this size is sent in one write with the reply line. */
const SMALL_PENDING = 4096;

/** The input receiver's first read size; it doubles while reads come back full. */
const FIRST_INPUT_CHUNK = 4 * 1024;

/** The input receiver's largest read size. */
const MAX_INPUT_CHUNK = 512 * 1024;

/**
 * Input a leaving client's receiver may add at once to what waits for a
 * busy destination: all it can hold (the hello's leftover and two reads).
 * Past that, a client that closed its side stays attached until the
 * destination catches up, so clients that come and go cannot pile input up.
 */
const MAX_INPUT_BACKLOG = MAX_HELLO_BYTES + 2 * MAX_INPUT_CHUNK;

/** How long a detached session whose destination closed and whose output was all sent waits: 1 hour. */
const CLOSED_TIMEOUT = 60 * 60 * 1000;

/** How long a framed connection is read after `E destination-closed`, by default: the handshake timeout's default. */
const CLOSED_LINGER = 10_000;

const encoder = new TextEncoder();

interface Attachment {
  conn: Connection;
  peer: string;
  mode: DeliveryMode;
  /** The offset the hello started from. */
  from: number;
  /** The reply said `closed`: the client knows the destination has closed. */
  toldClosed: boolean;
  /** The next offset to send. */
  position: number;
  /** The client closed its side: detach once caught up. */
  draining: boolean;
  /** The input receiver has ended: what it read is forwarded (or dropped on takeover). */
  inputDone: boolean;
  /** Set while the input receiver waits: wakes it when the attachment ends. */
  wakeReceiver: (() => void) | null;
  /** A framed attachment's own pumps; `null` for version 1. */
  framed: FramedAttachment | null;
  /** When the hello was read, until the reply is written (`performance.now()`); `null`: not measured. */
  helloAt: number | null;
  /** When it attached (`performance.now()`). */
  attachedAt: number;
  /** TCP keep-alive is on for `conn` (see {@linkcode Session.keepAlive}). */
  keptAlive: boolean;
}

/** Input read from a client; `buffer` is reused for reads once the chunk is written. */
interface Chunk {
  bytes: Uint8Array;
  buffer: Uint8Array | null;
}

/** What a session tells its store about its life. */
export interface SessionEvents {
  /** A client attached. */
  attached(session: Session): void;
  /** The last client detached and none is attached now. */
  detached(session: Session): void;
  /** The session ended and has released everything. */
  ended(session: Session): void;
}

/** How a client attaches: see {@linkcode Session.attach}. */
export interface AttachOptions {
  /** The client's address, for logs. */
  peer: string;
  /** The hello's `<ack>`; `undefined` for streaming delivery (and 0 for `NEW framed`). */
  ack?: number | undefined;
  /**
   * A framed hello (version 2): frames both ways after the reply. Needs `ack`.
   * @default {false}
   */
  framed?: boolean;
  /**
   * When the hello was read (`performance.now()`): the time to the reply
   * written counts in the resume histogram.
   * @default {not measured}
   */
  helloAt?: number;
  /**
   * Input the client sent after the hello, forwarded first.
   * @default {no input}
   */
  leftover?: Uint8Array;
  /**
   * Free bytes the input receiver reads into first (the rest of the
   * hello's buffer), so that a poll, whose next read is its end, needs
   * no read buffer of its own. Not for framed attachments.
   * @default {none}
   */
  spare?: Uint8Array;
}

const EMPTY_INPUT = new Uint8Array(0);

/** Where every session's chain of destination writes starts: one promise for all. */
const SETTLED: Promise<void> = Promise.resolve();

/** Options for {@linkcode Session}. */
export interface SessionOptions {
  /** The session id. */
  id: string;
  /** The session secret. */
  secret: string;
  /** The connected destination. */
  destination: Connection;
  /** Per-session retained-output limit, in bytes. */
  bufferSize: number;
  /** Where session events are logged. */
  logger: Logger;
  /** Server-wide counters this session adds its bytes and gaps to. */
  counters: Counters;
  /**
   * The name of the destination, for status and logs.
   * @default {"default"}
   */
  destinationName?: string;
  /**
   * Whom the session is for: the end user's address a trusted gateway gave
   * (`from=`), or the address of the client that created it.
   * @default {unknown: `null`}
   */
  client?: string;
  /**
   * The session's OpenTelemetry span: told each attach, detach, takeover
   * and the end.
   * @default {none}
   */
  trace?: SessionTrace;
  /** Receives attach, detach and end notices. */
  events: SessionEvents;
  /**
   * How long the session waits, detached, once its destination has closed
   * and all output has been sent, for a client to acknowledge the end, in
   * ms. The store's idle timeout may end it sooner.
   * @default {1 hour}
   */
  closedTimeout?: number;
  /**
   * How long a framed connection is read after `E destination-closed`, for
   * the client's last acknowledgement, in ms (the handshake timeout).
   * @default {10 s}
   */
  closedLinger?: number;
}

/** A snapshot of a session's figures, for status reports and tests. */
export interface SessionStats {
  /** Whether a client is attached. */
  attached: boolean;
  /** The attached client's address. */
  peer: string | null;
  /** The attached client's delivery mode. */
  mode: DeliveryMode | null;
  /** Destination state. */
  state: SessionState;
  /** When the session was created (ms since the epoch). */
  createdAt: number;
  /** When a client last attached (ms since the epoch). */
  lastAttachedAt: number;
  /** When the last client detached, or `null` while attached. */
  detachedAt: number | null;
  /** Input bytes received from clients. */
  bytesIn: number;
  /** Output bytes read from the destination. */
  bytesOut: number;
  /** Output bytes retained now. */
  buffered: number;
  /** Lowest offset a client may resume from. */
  floor: number;
  /** Highest offset sent to a client. */
  sent: number;
  /** Pumps running: the destination reader, and two per attached client. */
  tasks: number;
}

/**
 * A session: one destination connection that outlives its clients.
 *
 * @example Attach a client connection to a new session
 * ```ts ignore
 * const session = new Session({ id, secret, destination, bufferSize, logger, events });
 * session.attach(clientConn, { peer: "127.0.0.1:5000" });
 * ```
 */
export class Session {
  /** The session id. */
  readonly id: string;
  readonly #secret: string;
  readonly #destination: Connection;
  readonly #buffer: OutputBuffer;
  readonly #logger: Logger;
  readonly #counters: Counters;
  readonly #events: SessionEvents;
  #attachment: Attachment | null = null;
  #state: SessionState = "open";
  #ended = false;
  #inputBytes = 0;
  /** Input counted in `#inputBytes` that the destination has not taken yet. */
  #unwritten = 0;
  /** The latest destination write; each waits for the one before it. */
  #inputWrite: Promise<void> = SETTLED;
  readonly #outputArrived = new Wakeup();
  readonly #roomFreed = new Wakeup();
  /** Pumps running: the destination reader, and those of the attached client. */
  #tasks = 0;
  /** Woken whenever a pump stops; made by the first {@linkcode Session.settled}. */
  #taskStopped: Wakeup | null = null;
  readonly #createdAt = Date.now();
  #lastAttachedAt = this.#createdAt;
  #detachedAt: number | null = this.#createdAt;
  /** The last client's address, kept after it detaches. */
  #lastPeer: string | null = null;
  readonly #closedTimeout: number;
  /** Ends the session while it is detached with its destination closed. */
  #closedTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #closedLinger: number;
  readonly #trace: SessionTrace | null;
  /** The name of the destination. */
  readonly destinationName: string;
  /** Whom the session is for: a gateway's `from=`, or the creating client's address. */
  readonly client: string | null;
  /** What framed attachments use of this session; made at the first framed attach. */
  #framedHost: FramedHost | null = null;

  /**
   * Creates a session over a connected destination and starts reading it.
   *
   * @param options The id, secret, destination and limits.
   */
  constructor(options: SessionOptions) {
    this.id = options.id;
    this.#secret = options.secret;
    this.#destination = options.destination;
    this.#buffer = new OutputBuffer(options.bufferSize);
    this.#logger = options.logger;
    this.#counters = options.counters;
    this.#events = options.events;
    this.#closedTimeout = options.closedTimeout ?? CLOSED_TIMEOUT;
    this.#closedLinger = options.closedLinger ?? CLOSED_LINGER;
    this.#trace = options.trace ?? null;
    this.destinationName = options.destinationName ?? "default";
    this.client = options.client ?? null;
    // Not through #track: the reader accounts for itself, so that a detached
    // session keeps no reaction, closures or promise of its own for it.
    this.#tasks++;
    this.#readDestination();
  }

  /** `open` while the destination connection is, then `closed`. */
  get state(): SessionState {
    return this.#state;
  }

  /** When the last client detached (ms since the epoch), or `null` while one is attached. */
  get detachedAt(): number | null {
    return this.#detachedAt;
  }

  /** The attached client's address, or the last one's; `null` before the first attach. */
  get lastPeer(): string | null {
    return this.#lastPeer;
  }

  /** Whether the session is over and gone from its store. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Checks a presented secret in constant time.
   *
   * @param secret The secret a client presented.
   * @returns Whether it is this session's secret.
   */
  matches(secret: string): boolean {
    return secretsEqual(this.#secret, secret);
  }

  /**
   * Turns TCP keep-alive on for the attached client connection once it has
   * been attached `after` ms, so that a client that vanishes without a word
   * from a quiet session is noticed, and moves it onto `node:net`, so that
   * it is served fairly among a thousand others (`./tcp.ts`). The store
   * calls this for its attached sessions about once a second: a poll,
   * attached for milliseconds, never pays for either (and the first probe
   * is hours away anyway).
   *
   * @param now The time now (`performance.now()`).
   * @param after How long the attachment must have lasted, in ms.
   */
  keepAlive(now: number, after: number): void {
    const attachment = this.#attachment;
    if (!attachment || attachment.keptAlive || now - attachment.attachedAt < after) return;
    attachment.keptAlive = true;
    try {
      attachment.conn.setKeepAlive?.(true);
      // Staying attached: served fairly among the others from now on (./tcp.ts).
      attachment.conn.makeFair?.();
    } catch {
      // Closed meanwhile, or not TCP: its own read or write will tell.
    }
  }

  /** Current figures of the session. */
  stats(): SessionStats {
    const attachment = this.#attachment;
    return {
      attached: attachment !== null,
      peer: attachment?.peer ?? null,
      mode: attachment?.mode ?? null,
      state: this.#state,
      createdAt: this.#createdAt,
      lastAttachedAt: this.#lastAttachedAt,
      detachedAt: this.#detachedAt,
      bytesIn: this.#inputBytes,
      bytesOut: this.#buffer.end,
      buffered: this.#buffer.retained,
      floor: this.#buffer.floor,
      sent: this.#buffer.sent,
      tasks: this.#tasks,
    };
  }

  /**
   * Attaches a client connection: answers the hello with the `OK` reply,
   * then relays in both directions. An attached client is taken over.
   *
   * @param conn The client connection, its hello already read.
   * @param options The client's address, the hello's `<ack>` and the input after the hello.
   * @throws {ProtocolError} `gap` or `ack` when `ack` cannot be served.
   */
  attach(conn: Connection, options: AttachOptions): void {
    const { peer, ack, leftover = EMPTY_INPUT, framed = false, spare = EMPTY_INPUT } = options;
    if (framed && ack === undefined) throw new TypeError("A framed attachment needs an ack");
    const buffer = this.#buffer;
    if (ack !== undefined && ack < buffer.floor) {
      this.#counters.gaps++;
      this.#logger.warn("session.gap", { id: this.id, peer, ack, lowest: buffer.floor });
      throw new ProtocolError(
        "gap",
        `output before offset ${buffer.floor} is no longer retained`,
        buffer.floor,
      );
    }
    if (ack !== undefined && ack > buffer.sent) {
      this.#logger.warn("session.bad_ack", { id: this.id, peer, ack, sent: buffer.sent });
      throw new ProtocolError("ack", `only ${buffer.sent} bytes were ever sent`, buffer.sent);
    }
    const previous = this.#attachment;
    if (previous) {
      this.#attachment = null;
      release(previous, "taken-over");
      this.#outputArrived.wake(); // its sender may be waiting for output
      this.#logger.info("session.taken_over", { id: this.id, peer: previous.peer, by: peer });
      this.#trace?.event("session.taken_over", { peer: previous.peer, by: peer });
    }
    const mode: DeliveryMode = framed ? "framed" : ack === undefined ? "streaming" : "acknowledged";
    // A streaming or framed client stays: served fairly among the others
    // from now on (./tcp.ts). An acknowledged one may be a poll, which
    // should not pay for that; it moves once it shows it stays.
    if (mode !== "acknowledged") conn.makeFair?.();
    const from = ack ?? buffer.sent;
    if (ack === undefined) buffer.allowRelease(from);
    else buffer.acknowledge(ack);
    this.#roomFreed.wake();
    const reply = formatReply({
      id: this.id,
      secret: this.#secret,
      in: this.#inputBytes,
      from,
      pending: buffer.end - from,
      state: this.#state,
      ...(framed ? { window: buffer.limit } : {}),
    });
    const attachment: Attachment = {
      conn,
      peer,
      mode,
      from,
      toldClosed: this.#state === "closed",
      position: from,
      draining: false,
      inputDone: false,
      wakeReceiver: null,
      helloAt: options.helloAt ?? null,
      attachedAt: performance.now(),
      keptAlive: false,
      framed: framed
        ? new FramedAttachment(this.#framedHost ??= this.#newFramedHost(), {
          conn,
          peer,
          from,
          window: buffer.limit,
          reply: encoder.encode(reply),
          leftover,
          closedLinger: this.#closedLinger,
          onReplySent: () => this.#replySent(attachment),
        })
        : null,
    };
    this.#attachment = attachment;
    this.#lastPeer = peer;
    this.#lastAttachedAt = Date.now();
    this.#detachedAt = null;
    clearTimeout(this.#closedTimer);
    // A poll attaches and detaches for every request: at debug level, so
    // that a busy server does not spend its time writing them (nor, when
    // debug is off, building their fields).
    const level = mode === "acknowledged" ? "debug" : "info";
    if (this.#logger.enabled(level)) {
      this.#logger.log(level, "session.attached", {
        id: this.id,
        peer,
        mode,
        from,
        pending: buffer.end - from,
        state: this.#state,
      });
    }
    this.#trace?.event("session.attached", { peer, mode, from });
    this.#events.attached(this);
    if (attachment.framed) {
      this.#track(attachment.framed.run());
    } else {
      this.#track(this.#sendOutput(attachment, reply));
      this.#track(this.#receiveInput(attachment, leftover, spare));
    }
  }

  /**
   * Ends the session: closes the destination and any attached client and
   * frees the buffer. Idempotent.
   *
   * @param reason Why, for the log.
   * @param end What a framed client's `E` frame says: `closed` (`CLOSE`, the
   * admin API), or `server-stopping`.
   */
  close(reason: string, end: EndReason = "closed"): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#closedTimer);
    const attachment = this.#attachment;
    this.#attachment = null;
    if (attachment) release(attachment, end);
    this.#closeDestination();
    this.#buffer.dispose();
    this.#outputArrived.wake();
    this.#roomFreed.wake();
    this.#logger.info("session.closed", { id: this.id, reason, peer: attachment?.peer });
    this.#trace?.end(reason);
    this.#events.ended(this);
  }

  /** Resolves once every pump of this session has stopped. */
  async settled(): Promise<void> {
    while (this.#tasks > 0) await (this.#taskStopped ??= new Wakeup()).wait();
  }

  /** The reply is written: a resume's latency is known. */
  #replySent(attachment: Attachment): void {
    if (attachment.helloAt === null) return;
    this.#counters.timings.resume.observeSince(attachment.helloAt);
    attachment.helloAt = null;
  }

  /** What a framed attachment may use of this session: see {@linkcode FramedHost}. */
  #newFramedHost(): FramedHost {
    // deno-lint-ignore no-this-alias
    const session = this;
    return {
      get buffer() {
        return session.#buffer;
      },
      get state() {
        return session.#state;
      },
      get inputBytes() {
        return session.#inputBytes;
      },
      isCurrent: (framed) => this.#attachment?.framed === framed,
      nextEvent: () => this.#outputArrived.wait(),
      wake: () => {
        this.#outputArrived.wake();
        this.#roomFreed.wake();
      },
      forward: (bytes) => this.#forward(bytes),
      detach: (framed, reason, error) => {
        const attachment = this.#attachment;
        if (attachment?.framed === framed) this.#detach(attachment, reason, error);
      },
      close: (reason) => this.close(reason),
    };
  }

  #track(task: Promise<void>): void {
    this.#tasks++;
    // One reaction for both outcomes: a poll starts two of these.
    task.then(
      () => this.#stopped(false),
      (error) => this.#stopped(true, error),
    );
  }

  /** A pump has stopped; `error` is what it threw, if it `failed`. */
  #stopped(failed: boolean, error?: unknown): void {
    this.#tasks--;
    this.#taskStopped?.wake();
    if (failed) {
      this.#logger.error("internal.error", { id: this.id, error: describeError(error) });
    }
  }

  /**
   * Reads the destination into the buffer until it closes or the session
   * ends. Counted in `#tasks` by the constructor, it reports its own stop
   * (see {@linkcode Session.#track}) and never rejects.
   */
  async #readDestination(): Promise<void> {
    const buffer = this.#buffer;
    try {
      try {
        while (!this.#ended) {
          const region = buffer.reserve();
          if (region === null) {
            this.#logger.debug("destination.paused", { id: this.id, buffered: buffer.retained });
            await this.#roomFreed.wait();
            continue;
          }
          const count = await this.#destination.read(region);
          if (count === null || this.#ended) break;
          buffer.commit(count);
          this.#counters.bytesOut += count;
          this.#outputArrived.wake();
        }
      } catch (error) {
        if (!this.#ended) {
          this.#logger.warn("destination.error", {
            id: this.id,
            peer: this.#attachment?.peer,
            error: describeError(error),
          });
        }
      }
      this.#closeDestination();
    } catch (error) {
      // Not the destination's failure: an internal error, as #track reports it.
      this.#stopped(true, error);
      return;
    }
    this.#stopped(false);
  }

  async #sendOutput(attachment: Attachment, reply: string): Promise<void> {
    const buffer = this.#buffer;
    try {
      // A poll's few pending bytes ride with the reply line: one write, not
      // two, from one buffer the (ASCII) line is encoded into. (The only
      // place output is copied in the server; large output goes from the
      // ring to the socket as it is.)
      const pending = buffer.end - attachment.position;
      if (pending > 0 && pending <= SMALL_PENDING) {
        const first = new Uint8Array(reply.length + pending);
        encoder.encodeInto(reply, first);
        for (let at = 0; at < pending;) {
          const view = buffer.view(attachment.position + at);
          first.set(view, reply.length + at);
          at += view.length;
        }
        await writeAll(attachment.conn, first);
        this.#replySent(attachment);
        this.#sent(attachment, pending);
      } else {
        await writeAll(attachment.conn, encoder.encode(reply));
        this.#replySent(attachment);
      }
      while (this.#attachment === attachment) {
        if (attachment.position < buffer.end) {
          this.#sent(attachment, await attachment.conn.write(buffer.view(attachment.position)));
        } else if (this.#state === "closed") {
          this.#finish(attachment);
        } else if (attachment.draining && attachment.inputDone) {
          this.#detach(attachment, "client closed");
        } else {
          await this.#outputArrived.wait();
        }
      }
    } catch (error) {
      this.#detach(attachment, "client write failed", error);
    }
  }

  /** Records that `count` more bytes of output were written to `attachment`. */
  #sent(attachment: Attachment, count: number): void {
    attachment.position += count;
    // Written is sent, even if a takeover came meanwhile: a client may ack it.
    this.#buffer.markSent(attachment.position);
    if (this.#attachment !== attachment) return;
    if (attachment.mode === "streaming" && !attachment.draining) {
      this.#buffer.allowRelease(attachment.position);
      this.#roomFreed.wake();
    }
  }

  /**
   * Reads input from the client and forwards it to the destination. One
   * chunk may wait for the destination while the next read is already
   * outstanding, so that a client that leaves is noticed even when the
   * destination is slow; beyond that, the client is not read at all.
   *
   * Input read is forwarded, and counted in `<in>`, before the connection
   * is detached. Only a takeover drops it (the new client was told `<in>`
   * without it, and resends it), and a connection that fails while more
   * than {@linkcode MAX_INPUT_BACKLOG} waits for the destination (its
   * client resends from `<in>` too).
   */
  async #receiveInput(
    attachment: Attachment,
    leftover: Uint8Array,
    spare: Uint8Array,
  ): Promise<void> {
    const free: Uint8Array[] = [];
    // Read into first; not counted in `buffers`, and never read into again.
    let first: Uint8Array | null = spare.length > 0 ? spare : null;
    // Reads start small, so idle and polling clients cost little, and grow
    // while they come back full, so a flood takes few large reads.
    let size = FIRST_INPUT_CHUNK;
    const queue: Chunk[] = leftover.length > 0 ? [{ bytes: leftover, buffer: null }] : [];
    let writing: Chunk | null = null;
    let reading: { buffer: Uint8Array; done: Promise<{ count: number | null }> } | null = null;
    let buffers = 0;
    try {
      while (true) {
        if (!reading && !attachment.draining) {
          let buffer = first ?? free.pop();
          if (first) {
            first = null;
          } else if (buffer && buffer.length < size) {
            buffer = new Uint8Array(size); // outgrown
          } else if (!buffer && buffers < 2) {
            buffer = new Uint8Array(size);
            buffers++;
          }
          if (buffer) {
            const read = attachment.conn.read(buffer);
            reading = { buffer, done: read.then((count) => ({ count })) };
          }
        }
        if (!reading && queue.length === 0) return;
        // The client closed its side: hand on the rest now, so that the
        // sender can detach it, unless the destination is far behind.
        if (attachment.draining && this.#flush(queue)) return;
        // Wait for the first of: room to forward (the previous write done),
        // the read, or the attachment's end. One settled promise per event:
        // no waiter stays attached to a promise that may never settle.
        const event = await new Promise<"writable" | "gone" | { count: number | null }>(
          (resolve, reject) => {
            attachment.wakeReceiver = () => resolve("gone");
            if (queue.length > 0) this.#inputWrite.then(() => resolve("writable"));
            if (reading) reading.done.then(resolve, reject);
          },
        );
        attachment.wakeReceiver = null;
        if (event === "gone" || this.#attachment !== attachment) {
          if (this.#attachment === null) this.#flush(queue); // ended, not taken over
          return;
        }
        if (event === "writable") {
          // The previous write has finished: its buffer can be read into again.
          if (writing?.buffer) free.push(writing.buffer);
          writing = queue.shift() ?? null;
          if (writing) this.#forward(writing.bytes);
        } else if (reading && event.count === null) {
          reading = null;
          attachment.draining = true;
          this.#holdOutput();
          this.#outputArrived.wake();
        } else if (reading && event.count !== null) {
          const { buffer } = reading;
          const spareRead = buffer === spare;
          if (event.count === buffer.length && !spareRead && size < MAX_INPUT_CHUNK) size *= 2;
          queue.push({ bytes: buffer.subarray(0, event.count), buffer: spareRead ? null : buffer });
          reading = null;
        }
      }
    } catch (error) {
      if (this.#attachment === attachment) this.#flush(queue);
      this.#detach(attachment, "client read failed", error);
    } finally {
      attachment.inputDone = true;
      this.#outputArrived.wake(); // the sender may be waiting to detach
    }
  }

  /**
   * Forwards all of `queue` at once, unless that would leave more than
   * {@linkcode MAX_INPUT_BACKLOG} waiting for the destination. The chunks
   * keep their buffers: the receiver must not read into them again.
   *
   * @returns Whether the queue was forwarded (and is now empty).
   */
  #flush(queue: Chunk[]): boolean {
    if (this.#ended) return true;
    const bytes = queue.reduce((sum, chunk) => sum + chunk.bytes.length, 0);
    if (this.#unwritten > 0 && this.#unwritten + bytes > MAX_INPUT_BACKLOG) return false;
    for (const chunk of queue.splice(0)) this.#forward(chunk.bytes);
    return true;
  }

  /**
   * Counts input and writes it to the destination after earlier input, even
   * input from a connection since taken over. Once the destination has
   * closed, input is read and dropped, so that closing the client's
   * connection never meets unread bytes (which would reset it and could
   * destroy the last output in flight to it).
   */
  #forward(bytes: Uint8Array): Promise<void> {
    if (this.#state === "closed") return Promise.resolve();
    this.#inputBytes += bytes.length;
    this.#unwritten += bytes.length;
    this.#counters.bytesIn += bytes.length;
    this.#inputWrite = this.#inputWrite.then(() => this.#writeDestination(bytes));
    return this.#inputWrite;
  }

  async #writeDestination(bytes: Uint8Array): Promise<void> {
    try {
      if (this.#state === "closed") return;
      await writeAll(this.#destination, bytes);
    } catch (error) {
      if (this.#state === "open") {
        this.#logger.warn("destination.error", {
          id: this.id,
          peer: this.#attachment?.peer,
          error: describeError(error),
        });
      }
      this.#closeDestination();
    } finally {
      this.#unwritten -= bytes.length;
    }
  }

  /**
   * The destination closed and this client has been sent all output: it is
   * disconnected. The session ends once a hello acknowledges all output and
   * was answered `closed`, so that output lost with a dropped connection can
   * still be fetched, and a client that attached before the destination
   * closed learns `closed` from its next hello instead of `ERR auth`; in
   * streaming mode nothing shows whether the client received it.
   */
  #finish(attachment: Attachment): void {
    const acknowledged = attachment.mode === "acknowledged" && attachment.toldClosed &&
      attachment.from === this.#buffer.end;
    this.#detach(attachment, "destination closed");
    if (acknowledged) this.close("destination closed, output acknowledged");
  }

  #detach(attachment: Attachment, reason: string, error?: unknown): void {
    if (this.#attachment !== attachment) return;
    this.#attachment = null;
    if (attachment.mode === "acknowledged") {
      this.#counters.timings.poll.observeSince(attachment.attachedAt);
    }
    this.#detachedAt = Date.now();
    this.#holdOutput();
    this.#expireWhenClosed();
    release(attachment, "closed");
    this.#outputArrived.wake();
    const level = attachment.mode === "acknowledged" ? "debug" : "info";
    if (this.#logger.enabled(level)) {
      this.#logger.log(level, "session.detached", {
        id: this.id,
        peer: attachment.peer,
        reason,
        error: error === undefined ? undefined : describeError(error),
        sent: attachment.framed?.position ?? attachment.position,
      });
    }
    this.#trace?.event("session.detached", {
      peer: attachment.peer,
      reason,
      sent: attachment.framed?.position ?? attachment.position,
    });
    this.#events.detached(this);
  }

  /**
   * Stops releasing output sent in streaming mode. Once its client has gone
   * (or is going), what it was sent may never have arrived: keep it for a
   * resume with `<ack>`, and let a full buffer push back on the destination
   * until a client attaches again. Output written to a connection in the
   * moment before the server learns it has closed may still be released
   * if the buffer fills in that moment; a later resume then gets ERR gap.
   */
  #holdOutput(): void {
    this.#buffer.allowRelease(this.#buffer.floor);
  }

  /**
   * Once the destination has closed, all its output has been sent and no
   * client is attached, ends the session after the closed timeout: a client
   * that never acknowledges the end, such as a streaming one, must not keep
   * it (and its place under `--max-sessions`) forever, even with no idle
   * timeout. Output no client has been sent is never dropped this way.
   */
  #expireWhenClosed(): void {
    if (this.#state !== "closed" || this.#attachment !== null || this.#ended) return;
    if (this.#buffer.sent < this.#buffer.end) return;
    clearTimeout(this.#closedTimer);
    this.#closedTimer = setTimeout(
      () => this.close("destination closed, end not acknowledged"),
      this.#closedTimeout,
    );
  }

  #closeDestination(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    closeQuietly(this.#destination);
    this.#outputArrived.wake();
    if (!this.#ended) {
      this.#logger.info("destination.closed", {
        id: this.id,
        peer: this.#attachment?.peer,
        output: this.#buffer.end,
      });
      this.#trace?.event("destination.closed", { output: this.#buffer.end });
    }
    this.#expireWhenClosed();
  }
}

/**
 * Closes an attachment's connection and wakes what waits on its behalf; a
 * framed one is sent `E` with `end` first.
 */
function release(attachment: Attachment, end: EndReason): void {
  if (attachment.framed) {
    attachment.framed.end(end);
    return;
  }
  closeQuietly(attachment.conn);
  attachment.wakeReceiver?.();
}
