/**
 * One attached connection of a client session: the reply, then the
 * session's output as it arrives. The session it belongs to is seen only
 * through {@linkcode ConnectionOwner}, so the two files do not import each
 * other.
 *
 * @module
 */

import { closeQuietly, writeAll } from "../_io.ts";
import { concatBytes } from "../bytes.ts";
import type { Reply } from "../protocol.ts";
import { ConnectionLostError } from "./errors.ts";

const READ_CHUNK = 64 * 1024;
const EMPTY = new Uint8Array(0);

/** What a {@linkcode ClientConnection} asks of the session it belongs to. */
export interface ConnectionOwner {
  /** Output the session holds back for the next reader, at most `max` bytes, or `null`. */
  takeBacklog(max?: number): Uint8Array | null;
  /** Gives back output that was read but not used, for the next reader. */
  holdBack(bytes: Uint8Array): void;
  /** Counts output bytes read from the server. */
  countReceived(count: number): void;
  /** Told when the connection closes, by either side. */
  connectionClosed(connection: ClientConnection): void;
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
  readonly #session: ConnectionOwner;
  /** Read buffer, allocated on the first read: polls that only read their pending bytes never need it. */
  #buffer: Uint8Array | null = null;
  /** Bytes after the reply line that came with it, not yet returned. */
  #early: Uint8Array;
  #closed = false;
  /** This side half-closed: the server's close that follows answers it. */
  #writeClosed = false;
  #closedByServer = false;
  /** Output bytes this connection delivered. */
  #delivered = 0;
  #onClose: (() => void) | null = null;

  /** @internal Made by {@linkcode ClientSession.connect}. */
  constructor(
    answered: { conn: Deno.Conn; reply: Reply; early: Uint8Array },
    session: ConnectionOwner,
  ) {
    this.#conn = answered.conn;
    this.reply = answered.reply;
    this.#early = answered.early;
    this.#session = session;
  }

  /** Output bytes read from this connection so far. */
  get delivered(): number {
    return this.#delivered;
  }

  /** Whether this connection was closed, by either side. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Whether the server ended this connection (not this side): the
   * destination closed and all output was sent, another client took the
   * session over, or the server stopped. Nothing on the wire tells which.
   */
  get closedByServer(): boolean {
    return this.#closedByServer;
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
    const early = this.#takeEarly(Infinity);
    if (early) return early;
    if (this.#closed) return null;
    this.#buffer ??= new Uint8Array(READ_CHUNK);
    let count: number | null;
    try {
      count = await this.#conn.read(this.#buffer);
    } catch (error) {
      if (this.#closed) return null;
      if (error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe) {
        this.#endedByServer();
        return null;
      }
      throw error;
    }
    if (count === null) {
      this.#endedByServer();
      return null;
    }
    this.#count(count);
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
      const early = this.#takeEarly(out.length - have);
      if (early) {
        out.set(early, have);
        have += early.length;
        continue;
      }
      const read = this.#closed
        ? null
        : await this.#conn.read(out.subarray(have)).catch(() => null);
      if (read === null) {
        this.#endedByServer();
        break;
      }
      have += read;
      this.#count(read);
    }
    return have;
  }

  /** @internal Reads whatever more this connection is sent, until the server closes it. */
  async readToEnd(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (let chunk = await this.#readSocket(); chunk !== null; chunk = await this.#readSocket()) {
      parts.push(chunk);
    }
    return concatBytes(parts);
  }

  async #readSocket(): Promise<Uint8Array | null> {
    const early = this.#takeEarly(Infinity);
    if (early) return early;
    if (this.#closed) return null;
    const buffer = new Uint8Array(READ_CHUNK);
    const count = await this.#conn.read(buffer).catch(() => null);
    if (count === null) {
      this.#endedByServer();
      return null;
    }
    this.#count(count);
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
    this.#writeClosed = true;
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

  /** Takes up to `max` of the bytes that came with the reply, counting them; `null` once none are left. */
  #takeEarly(max: number): Uint8Array | null {
    if (this.#early.length === 0) return null;
    const early = this.#early.subarray(0, max);
    this.#early = early.length === this.#early.length ? EMPTY : this.#early.subarray(early.length);
    this.#count(early.length);
    return early;
  }

  #count(bytes: number): void {
    this.#delivered += bytes;
    this.#session.countReceived(bytes);
  }

  /** A read found the connection ended, and this side had not closed it (nor its sending side). */
  #endedByServer(): void {
    if (!this.#closed && !this.#writeClosed) this.#closedByServer = true;
    this.close();
  }
}
