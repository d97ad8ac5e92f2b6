/**
 * A connection in memory, for tests that must hold a destination's writes
 * or count exactly what a session reads from a client.
 *
 * @module
 */

import { concatBytes } from "../lib/bytes.ts";
import { WAIT_MS, withDeadline } from "./_helpers.ts";

/**
 * Stands in for a `Deno.Conn` (pass {@linkcode FakeConn.conn}): reads are
 * served from what the test feeds, writes are recorded, and may be held.
 */
export class FakeConn {
  /** Bytes written to this connection, in order. */
  readonly written: Uint8Array[] = [];
  /** Total bytes written (writes completed). */
  writtenBytes = 0;
  /** Total bytes handed out by reads. */
  readBytes = 0;
  /** Called after each read with its count, to check invariants as they hold. */
  onRead: ((count: number) => void) | null = null;
  /** Called before each write completes; may delay it. */
  beforeWrite: (() => Promise<void>) | null = null;
  #input: Uint8Array[] = [];
  #ended = false;
  #closed = false;
  #pendingRead: { buffer: Uint8Array; resolve: (count: number | null) => void } | null = null;
  #held: PromiseWithResolvers<void> | null = null;
  #watchers: { bytes: number; resolve: () => void }[] = [];

  /** Whether TCP keep-alive was asked for. */
  keptAlive = false;
  /** Whether the connection was asked to move onto `node:net` (lib/proxy/tcp.ts). */
  madeFair = false;

  setKeepAlive(): void {
    this.keptAlive = true;
  }

  makeFair(): void {
    this.madeFair = true;
  }

  /** This connection typed as the session expects it. */
  get conn(): Deno.Conn {
    return this as unknown as Deno.Conn;
  }

  /** Makes `bytes` available to reads. */
  feed(bytes: Uint8Array): void {
    this.#input.push(bytes);
    this.#serve();
  }

  /** Reads return EOF once what was fed is consumed. */
  end(): void {
    this.#ended = true;
    this.#serve();
  }

  /** Writes wait until {@linkcode FakeConn.release}. */
  hold(): void {
    this.#held ??= Promise.withResolvers<void>();
  }

  /** Lets held writes complete, and later ones at once. */
  release(): void {
    this.#held?.resolve();
    this.#held = null;
  }

  /** Resolves once at least `bytes` have been written; fails after the test deadline. */
  waitForWritten(bytes: number): Promise<void> {
    if (this.writtenBytes >= bytes) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#watchers.push({ bytes, resolve });
    return withDeadline(promise, WAIT_MS, `${bytes} bytes written`);
  }

  /** Everything written, as one array. */
  output(): Uint8Array {
    return concatBytes(this.written);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    const { promise, resolve } = Promise.withResolvers<number | null>();
    this.#pendingRead = { buffer, resolve };
    this.#serve();
    return promise;
  }

  async write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) throw new Deno.errors.BadResource("Bad resource ID");
    await this.#held?.promise;
    await this.beforeWrite?.();
    if (this.#closed) throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    this.written.push(bytes.slice());
    this.writtenBytes += bytes.length;
    this.#watchers = this.#watchers.filter((watcher) => {
      if (this.writtenBytes < watcher.bytes) return true;
      watcher.resolve();
      return false;
    });
    return bytes.length;
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Bad resource ID");
    this.#closed = true;
    this.#pendingRead?.resolve(null);
    this.#pendingRead = null;
    this.release();
  }

  #serve(): void {
    const pending = this.#pendingRead;
    if (!pending) return;
    const next = this.#input[0];
    if (!next) {
      if (this.#ended) {
        this.#pendingRead = null;
        pending.resolve(null);
      }
      return;
    }
    const count = Math.min(next.length, pending.buffer.length);
    pending.buffer.set(next.subarray(0, count));
    if (count === next.length) this.#input.shift();
    else this.#input[0] = next.subarray(count);
    this.#pendingRead = null;
    this.readBytes += count;
    pending.resolve(count);
    this.onRead?.(count);
  }
}
