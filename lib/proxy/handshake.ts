/**
 * The handshake: reads a client's hello within the handshake timeout and
 * answers it, handing the connection to a session (`NEW`, `RESUME`, framed
 * or not) or ending one (`CLOSE`). Every failure is answered with one `ERR` line;
 * `ERR auth` only after the guessing throttle has held it back.
 *
 * @module
 */

import { closeQuietly, writeAll } from "../_io.ts";
import { peerAddress } from "../address.ts";
import { describeError, type Logger } from "../log.ts";
import { type Hello, MAX_HELLO_BYTES, parseHello, ProtocolError } from "../protocol.ts";
import type { SessionStore } from "./session_store.ts";
import type { Connection } from "./tcp.ts";

/** A hello and the bytes that followed it in the same read. */
export interface ReceivedHello {
  /** The parsed hello. */
  hello: Hello;
  /** Input that arrived after the hello's LF. */
  leftover: Uint8Array;
  /** The rest of the hello's buffer, after the leftover: free for the first input read. */
  spare: Uint8Array;
}

/** Options for {@linkcode handshake}. */
export interface HandshakeOptions {
  /** Where sessions are created and found. */
  store: SessionStore;
  /** Time allowed for a complete hello, in ms. */
  timeout: number;
  /** Where events are logged. */
  logger: Logger;
  /** Ends the guessing throttle's waits when the server stops. */
  signal: AbortSignal;
}

/** Most bytes read and dropped after an error reply before closing. */
const LINGER_BYTES = 64 * 1024;

/** Longest wait for the client to close after an error reply, in ms. */
const LINGER_MS = 1000;

const encoder = new TextEncoder();
const LF = 0x0a;

/** The peer closed before finishing its hello: nothing to answer. */
class PeerGone extends Error {}

/** A hello's deadline in a {@linkcode Deadlines} queue. */
interface Deadline {
  /** When it expires (`performance.now()`). */
  at: number;
  /** Rejects the handshake's wait; `null` once the hello has arrived or failed. */
  expire: ((error: ProtocolError) => void) | null;
}

/**
 * The deadlines of the hellos being read with one timeout. They start in
 * the order they expire, so a queue in arrival order with one timer for its
 * head replaces a timer per connection, set and cleared on every poll.
 */
class Deadlines {
  readonly #timeout: number;
  readonly #queue: Deadline[] = [];
  #head = 0;
  #live = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(timeout: number) {
    this.#timeout = timeout;
  }

  /** Starts a deadline `timeout` from now that calls `expire` unless ended first. */
  start(expire: (error: ProtocolError) => void): Deadline {
    const deadline: Deadline = { at: performance.now() + this.#timeout, expire };
    this.#queue.push(deadline);
    this.#live++;
    if (this.#timer === undefined) this.#arm(this.#timeout);
    return deadline;
  }

  /** Ends a deadline before it expires (idempotent). */
  end(deadline: Deadline): void {
    if (deadline.expire === null) return;
    deadline.expire = null;
    if (--this.#live > 0) return;
    // Nothing left to time: no timer may outlive the handshakes.
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#head = 0;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#expire(), ms);
  }

  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const deadline = queue[this.#head] as Deadline;
      if (deadline.expire !== null && deadline.at > now) break;
      this.#head++;
      const expire = deadline.expire;
      if (expire === null) continue;
      deadline.expire = null;
      this.#live--;
      expire(new ProtocolError("timeout", `no complete hello within ${this.#timeout} ms`));
    }
    // Drop the expired and ended entries once they are half the queue.
    if (this.#head > 64 && this.#head * 2 > queue.length) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
    const next = queue[this.#head];
    if (next) this.#arm(Math.max(1, Math.ceil(next.at - now)));
    else {
      queue.length = 0;
      this.#head = 0;
    }
  }
}

/** One deadline queue per handshake timeout in use (a server has one). */
const deadlineQueues = new Map<number, Deadlines>();

/**
 * Reads one hello line, at most {@linkcode MAX_HELLO_BYTES} long, within `timeout`.
 *
 * @param conn The new connection.
 * @param timeout Time allowed, in ms.
 * @returns The hello and any input after it.
 * @throws {ProtocolError} `bad-request` for an overlong or malformed hello,
 * `timeout` when it does not arrive in time.
 */
export async function readHello(conn: Connection, timeout: number): Promise<ReceivedHello> {
  const buffer = new Uint8Array(MAX_HELLO_BYTES);
  let filled = 0;
  let deadlines = deadlineQueues.get(timeout);
  if (!deadlines) deadlineQueues.set(timeout, deadlines = new Deadlines(timeout));
  const expired = Promise.withResolvers<never>();
  const deadline = deadlines.start(expired.reject);
  try {
    while (true) {
      const count = await Promise.race([conn.read(buffer.subarray(filled)), expired.promise]);
      if (count === null) throw new PeerGone("closed before finishing its hello");
      const lf = buffer.subarray(filled, filled + count).indexOf(LF);
      filled += count;
      if (lf >= 0) {
        const end = filled - count + lf;
        return {
          hello: parseHello(latin1(buffer, end)),
          leftover: buffer.subarray(end + 1, filled),
          spare: buffer.subarray(filled),
        };
      }
      if (filled === buffer.length) {
        throw new ProtocolError("bad-request", `hello longer than ${MAX_HELLO_BYTES} bytes`);
      }
    }
  } finally {
    deadlines.end(deadline);
  }
}

/** The first `end` bytes of `bytes` as a string of the same char codes. */
function latin1(bytes: Uint8Array, end: number): string {
  // apply takes the bytes as they are: a fifth of the time of spreading them.
  return String.fromCharCode.apply(null, bytes.subarray(0, end) as unknown as number[]);
}

/**
 * Runs the handshake on a new client connection. It never throws: every
 * failure is answered, logged and ends with the connection closed.
 *
 * @param conn The new connection.
 * @param options The store, timeout and logger.
 */
export async function handshake(conn: Connection, options: HandshakeOptions): Promise<void> {
  const { store, logger } = options;
  const peer = peerAddress(conn);
  const host = (conn.remoteAddr as Deno.NetAddr).hostname;
  const client = { peer, host, signal: options.signal };
  try {
    const { hello, leftover, spare } = await readHello(conn, options.timeout);
    const helloAt = performance.now();
    switch (hello.verb) {
      case "NEW": {
        const session = await store.create({
          peer,
          remote: conn.remoteAddr as Deno.NetAddr,
          local: conn.localAddr as Deno.NetAddr,
          ...(hello.to === undefined ? {} : { to: hello.to }),
          ...(hello.from === undefined ? {} : { from: hello.from }),
        });
        session.attach(
          conn,
          hello.framed ? { peer, ack: 0, framed: true, leftover } : { peer, leftover, spare },
        );
        return;
      }
      case "RESUME": {
        // A poll's resume is found at once; only a throttled or failing one waits.
        const session = store.authenticateNow(hello, host) ??
          await store.authenticate(hello, client);
        session.attach(
          conn,
          hello.framed
            ? { peer, ack: hello.ack, framed: true, leftover, helloAt }
            : { peer, ack: hello.ack, leftover, spare, helloAt },
        );
        return;
      }
      case "CLOSE": {
        (await store.authenticate(hello, client)).close(`closed by client ${peer}`);
        await answerAndClose(conn, `BYE ${hello.id}\n`);
        return;
      }
    }
  } catch (error) {
    if (error instanceof ProtocolError) {
      if (error.code === "bad-request" || error.code === "timeout") {
        logger.warn("handshake.failed", { peer, code: error.code, error: error.message });
      }
      await answerAndClose(conn, error.line());
    } else {
      logger.debug("handshake.aborted", { peer, error: describeError(error) });
      closeQuietly(conn);
    }
  }
}

/**
 * Sends a last line, then closes gracefully: the write side first, then,
 * after reading and dropping what the client still sends, the connection.
 * Closing with unread input would reset the connection, and a reset can
 * destroy the line before the client reads it.
 */
async function answerAndClose(conn: Connection, line: string): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), LINGER_MS);
  try {
    await writeAll(conn, encoder.encode(line));
    await conn.closeWrite();
    const sink = new Uint8Array(4096);
    let dropped = 0;
    while (dropped < LINGER_BYTES) {
      const count = await conn.read(sink);
      if (count === null) break;
      dropped += count;
    }
  } catch {
    // The client is gone or the linger timer closed the connection.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}
