/**
 * The proxy server's plain TCP connections, read fairly.
 *
 * Why: Deno polls each new `Deno.Conn` read or write once on the spot, so
 * a connection whose bytes are already there is served again in the same
 * turn, while those that wait for the I/O driver wait behind it; with a
 * thousand busy sessions, hundreds waited over a second for one echo
 * (docs/performance.md, `bench/deno_conn_echo.ts`). `node:net` reads a
 * socket when epoll says it is readable, in that order, and is fair; read
 * into a buffer of the caller's (its `onread` option), with no new buffer
 * per read, it relays about as fast as `Deno.Conn`.
 *
 * - Destination connections are `node:net` sockets from the start
 *   ({@linkcode connectFair}).
 * - Client connections are accepted by `Deno.listen` (its errors, such as
 *   `EMFILE`, reach the accept loop in `./listener.ts`; `node:net`'s server
 *   in Deno 2.9 stops accepting for good after one) and served as
 *   `Deno.Conn`s, which costs least for a poll that lasts a moment. One that
 *   stays (read more often than a poll is, or attached over a second: see
 *   {@linkcode ClientConn}) is moved onto `node:net` between two reads: its
 *   socket is opened as a `node:net` handle (`openFromRid`, a second
 *   descriptor for the same socket).
 *
 * A socket's read buffer is set per read the way `onread` does it
 * (`useUserBuffer`). These are internals of Deno's `node:net`, found once
 * by name; a runtime without them keeps client connections as `Deno.Conn`s
 * and fails at the first destination connection, and the tests fail on it
 * before a release does.
 *
 * @module
 */

import net from "node:net";
import process from "node:process";
import { closeQuietly } from "../_io.ts";

/** What the server uses of a connection: `Deno.Conn`s and this module's both are. */
export interface Connection {
  /** As `Deno.Conn.read`: resolves with the count read into `buffer`, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** As `Deno.Conn.write`: `buffer` must not change until this settles. */
  write(buffer: Uint8Array): Promise<number>;
  /** Closes both ways at once; throws `BadResource` when closed already. */
  close(): void;
  /** Ends the writing side once what was written has gone. */
  closeWrite(): Promise<void>;
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.Addr;
  /** TCP only. */
  setNoDelay?(noDelay?: boolean): void;
  /** TCP only. */
  setKeepAlive?(keepAlive?: boolean): void;
  /** Client connections only: see {@linkcode ClientConn.makeFair}. */
  makeFair?(): void;
}

/** What this module calls on a `node:net` handle. */
interface Handle {
  reading: boolean;
  useUserBuffer(buffer: Uint8Array): void;
  readStart(): number;
}

/** A handle that can take over a `Deno.Conn`'s socket. */
interface SocketHandle extends Handle {
  openFromRid(rid: number): number;
}

/** Where a `node:net` socket keeps its `onread` buffer and callback. */
interface ReadFields {
  buffer: symbol;
  callback: symbol;
}

let readFields: ReadFields | undefined;

/** Finds {@linkcode ReadFields} once. */
function findReadFields(): ReadFields {
  if (readFields) return readFields;
  const probe = new net.Socket({ onread: { buffer: new Uint8Array(1), callback: () => true } });
  const symbols = Object.getOwnPropertySymbols(probe);
  probe.destroy();
  const buffer = symbols.find((symbol) => symbol.description === "kBuffer");
  const callback = symbols.find((symbol) => symbol.description === "kBufferCb");
  if (!buffer || !callback) {
    throw new Error(
      `node:net of Deno ${Deno.version.deno} keeps no onread fields that socketproxy knows`,
    );
  }
  readFields = { buffer, callback };
  return readFields;
}

/** What taking over a `Deno.Conn`'s socket needs. */
interface Takeover {
  /** `node:net`'s TCP handle class (`tcp_wrap`'s `TCP`) and its type for a connected socket. */
  TCP: new (type: number) => SocketHandle;
  socketType: number;
  /** Where a `Deno.Conn` keeps its resource id. */
  rid: symbol;
}

let takeover: Takeover | null | undefined;

/** Finds {@linkcode Takeover} once; `null` in a runtime without it. */
function findTakeover(conn: Deno.Conn): Takeover | null {
  if (takeover !== undefined) return takeover;
  takeover = null;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding("tcp_wrap");
    const { TCP, constants } = binding as {
      TCP?: new (type: number) => SocketHandle;
      constants?: { SOCKET?: unknown };
    };
    const rid = Object.getOwnPropertySymbols(conn).find((symbol) =>
      symbol.description === "Deno.internal.rid"
    );
    if (
      typeof TCP === "function" && typeof constants?.SOCKET === "number" && rid &&
      typeof TCP.prototype.openFromRid === "function"
    ) {
      findReadFields();
      takeover = { TCP, socketType: constants.SOCKET, rid };
    }
  } catch {
    // Not the node:net this was written for: client connections stay `Deno.Conn`s.
  }
  return takeover;
}

/**
 * The `onread` option of every socket here: it makes the socket read into
 * the buffer {@linkcode FairSocket.read} sets, not a new one, and reads
 * start only when a read asks (the callback is replaced per socket).
 */
const NOT_READING = { buffer: new Uint8Array(0), callback: (): boolean => false };

/**
 * Connects to `hostname:port` with a `node:net` socket, read fairly.
 *
 * @throws As `Deno.connect`: `ConnectionRefused` and the rest (with
 * `node:net`'s message); the signal's reason when it aborts.
 */
export function connectFair(
  options: { hostname: string; port: number; signal?: AbortSignal },
): Promise<Connection> {
  const { hostname, port, signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const fields = findReadFields();
  const { promise, resolve, reject } = Promise.withResolvers<Connection>();
  const socket = net.connect({
    host: hostname,
    port,
    allowHalfOpen: true,
    onread: NOT_READING,
  });
  socket.pause();
  const abort = () => {
    socket.destroy();
    reject(signal?.reason);
  };
  signal?.addEventListener("abort", abort, { once: true });
  const failed = (error: Error) => {
    signal?.removeEventListener("abort", abort);
    reject(asDenoError(error));
  };
  socket.once("error", failed);
  socket.once("connect", () => {
    signal?.removeEventListener("abort", abort);
    socket.off("error", failed);
    resolve(new FairSocket(socket, fields, null));
  });
  return promise;
}

/**
 * A poll reads its hello, maybe input, and the end: a client connection
 * read more often than this stays, and moves onto `node:net` after its
 * last `Deno.Conn` read.
 */
const MOVE_AFTER_READS = 4;

/**
 * The largest first write that goes out at once with Nagle's algorithm on:
 * with nothing in flight it fits one segment (IPv6's least MTU less the
 * headers), and is never held back.
 */
const ONE_SEGMENT = 1200;

/**
 * A client connection: a `Deno.TcpConn` until it is read for the
 * {@linkcode MOVE_AFTER_READS}th time or {@linkcode ClientConn.makeFair}
 * is called, then its socket through `node:net`. The owner of `conn` from
 * now on.
 */
export class ClientConn implements Connection {
  readonly #conn: Deno.TcpConn;
  #fair: Connection | null = null;
  #wanted = false;
  /** Reads and writes of `#conn` not settled yet. */
  #busy = 0;
  /** Reads of `#conn` so far. */
  #reads = 0;
  /** Closed: never moved afterwards, as its descriptor may be another socket's by then. */
  #closed = false;
  /** Written to already; TCP_NODELAY set. */
  #wrote = false;
  #noDelay = false;
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.Addr;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.localAddr = conn.localAddr;
    this.remoteAddr = conn.remoteAddr;
  }

  /** Whether it reads through `node:net` now. */
  get fair(): boolean {
    return this.#fair !== null;
  }

  /**
   * Moves the connection onto `node:net` once no read or write of it is
   * under way (at once, or when the one under way ends). For a
   * connection that stays: it costs a descriptor and more than a poll
   * should pay.
   */
  makeFair(): void {
    this.#wanted = true;
    this.#switch();
  }

  #switch(): void {
    if (!this.#wanted || this.#fair || this.#busy > 0 || this.#closed) return;
    this.#wanted = false;
    const found = findTakeover(this.#conn);
    const rid = (this.#conn as unknown as Record<symbol, unknown>)[found?.rid ?? Symbol()];
    if (!found || typeof rid !== "number") return;
    const handle = new found.TCP(found.socketType);
    if (handle.openFromRid(rid) !== 0) return;
    const socket = new net.Socket({
      handle,
      allowHalfOpen: true,
      pauseOnCreate: true,
      onread: NOT_READING,
    } as net.SocketConstructorOpts);
    this.#fair = new FairSocket(socket, findReadFields(), this.#conn);
  }

  /** Runs one `#conn` operation, moving to `node:net` after it if asked meanwhile. */
  #track<T>(operation: Promise<T>): Promise<T> {
    this.#busy++;
    return operation.finally(() => {
      this.#busy--;
      this.#switch();
    });
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#fair) return this.#fair.read(buffer);
    if (++this.#reads === MOVE_AFTER_READS) this.#wanted = true;
    return this.#track(this.#conn.read(buffer));
  }

  /**
   * Writes, with TCP_NODELAY set before a second write or a first one of
   * more than {@linkcode ONE_SEGMENT}: a poll's one small answer never
   * waits for Nagle's algorithm, and pays no system call for it (8 µs on
   * these machines, 7% of a poll's CPU, when it was set at every accept).
   */
  write(buffer: Uint8Array): Promise<number> {
    if (!this.#noDelay && (this.#wrote || buffer.byteLength > ONE_SEGMENT)) {
      try {
        this.setNoDelay(true);
      } catch {
        // Reset or closed: the write says so.
      }
    }
    this.#wrote = true;
    return this.#fair ? this.#fair.write(buffer) : this.#track(this.#conn.write(buffer));
  }

  closeWrite(): Promise<void> {
    return this.#fair ? this.#fair.closeWrite() : this.#track(this.#conn.closeWrite());
  }

  close(): void {
    if (this.#fair) {
      this.#fair.close();
    } else {
      this.#conn.close();
    }
    this.#closed = true;
  }

  setNoDelay(noDelay = true): void {
    this.#noDelay = noDelay;
    if (this.#fair) this.#fair.setNoDelay?.(noDelay);
    else this.#conn.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive = true): void {
    if (this.#fair) this.#fair.setKeepAlive?.(keepAlive);
    else this.#conn.setKeepAlive(keepAlive);
  }
}

type Pending = {
  resolve: (count: number | null) => void;
  reject: (error: Error) => void;
};

/** Deno's error classes for the `node:net` codes the server tells apart. */
const ERROR_CLASSES: Record<string, new (message: string) => Error> = {
  ECONNRESET: Deno.errors.ConnectionReset,
  ECONNREFUSED: Deno.errors.ConnectionRefused,
  ENOTFOUND: Deno.errors.NotFound,
  EPIPE: Deno.errors.BrokenPipe,
  ECONNABORTED: Deno.errors.ConnectionAborted,
  ENOTCONN: Deno.errors.NotConnected,
  ETIMEDOUT: Deno.errors.TimedOut,
  ECANCELED: Deno.errors.Interrupted,
  ERR_STREAM_DESTROYED: Deno.errors.BrokenPipe,
  ERR_STREAM_WRITE_AFTER_END: Deno.errors.BrokenPipe,
};

function netAddr(hostname: string | undefined, port: number | undefined): Deno.NetAddr {
  return { transport: "tcp", hostname: hostname ?? "", port: port ?? 0 };
}

/** A `node:net` error as the `Deno.errors` class of its code, keeping its message and code. */
function asDenoError(error: Error & { code?: unknown }): Error {
  const code = typeof error.code === "string" ? error.code : "";
  const Class = ERROR_CLASSES[code];
  if (!Class) return error;
  return Object.assign(new Class(error.message), { code });
}

/**
 * A connected `node:net` socket as a {@linkcode Connection}. Reading is
 * stopped between reads, so bytes not asked for stay in the kernel, as
 * with `Deno.Conn`; the socket is half-open, so `closeWrite` leaves
 * reading on.
 */
class FairSocket implements Connection {
  readonly #socket: net.Socket;
  readonly #buffer: symbol;
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  #pending: Pending | null = null;
  /** Reads asked for while one was pending, in order. */
  readonly #waiting: (Pending & { buffer: Uint8Array })[] = [];
  #ended = false;
  #error: Error | null = null;
  #closed = false;

  /**
   * @param socket Connected, not reading, made with `onread`.
   * @param owner The `Deno.Conn` whose descriptor it shares, closed after it.
   */
  constructor(socket: net.Socket, fields: ReadFields, owner: Deno.Conn | null) {
    this.#socket = socket;
    this.#buffer = fields.buffer;
    this.localAddr = netAddr(socket.localAddress, socket.localPort);
    this.remoteAddr = netAddr(socket.remoteAddress, socket.remotePort);
    (socket as unknown as Record<symbol, unknown>)[fields.callback] = (count: number) =>
      this.#onRead(count);
    socket.on("end", () => this.#finish(null));
    socket.on("error", (error) => {
      this.#error ??= asDenoError(error);
      this.#finish(this.#error);
    });
    socket.on("close", () => {
      this.#finish(null);
      if (owner) closeQuietly(owner);
    });
  }

  read(buffer: Uint8Array): Promise<number | null> {
    // A read asked for while one is under way waits its turn, in order, as with `Deno.Conn`.
    if (this.#pending || this.#waiting.length > 0) {
      const { promise, resolve, reject } = Promise.withResolvers<number | null>();
      this.#waiting.push({ buffer, resolve, reject });
      return promise;
    }
    return this.#read(buffer);
  }

  #read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(null);
    if (buffer.byteLength === 0) return Promise.resolve(0);
    const socket = this.#socket as unknown as Record<symbol, unknown> & { _handle: Handle | null };
    const handle = socket._handle;
    // Checked before the read is pending: a pending read no caller holds
    // would reject unhandled when the socket's end settles it.
    if (!handle) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    const { promise, resolve, reject } = Promise.withResolvers<number | null>();
    this.#pending = { resolve, reject };
    socket[this.#buffer] = buffer;
    handle.useUserBuffer(buffer);
    if (!handle.reading) {
      handle.reading = true;
      const status = handle.readStart();
      if (status < 0) this.#socket.destroy(new Error(`read failed (${status})`));
    }
    return promise;
  }

  /** A read landed in the pending read's buffer: settle it, and read no more until asked. */
  #onRead(count: number): boolean {
    const pending = this.#pending;
    this.#pending = null;
    pending?.resolve(count);
    this.#settled();
    return false;
  }

  /**
   * A read has settled: the next one waiting starts, once the callback that
   * settled it has returned (a read started within it would be stopped).
   */
  #settled(): void {
    if (this.#waiting.length > 0) queueMicrotask(() => this.#startWaiting());
  }

  #startWaiting(): void {
    // A read that settles at once (the end, an error) leaves none pending: the next goes on.
    while (!this.#pending) {
      const next = this.#waiting.shift();
      if (!next) return;
      this.#read(next.buffer).then(next.resolve, next.reject);
    }
  }

  /** The end, an error or the close: settles a pending read. */
  #finish(error: Error | null): void {
    if (error === null) this.#ended = true;
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = null;
    if (error) pending.reject(error);
    else if (this.#closed) pending.reject(new Deno.errors.Interrupted("operation canceled"));
    else pending.resolve(null);
    this.#settled();
  }

  write(buffer: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    if (this.#error) return Promise.reject(this.#error);
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#socket.write(buffer, (error) => {
      if (error) {
        // Failed: nothing more reaches the socket. node:net would still hand
        // a write or end() to it before its error event, and Deno 2.9.6 then
        // closed a descriptor twice and the listening socket with it (the
        // "five times" random-drops test in framed_independent_client_test.ts).
        this.#error ??= asDenoError(error);
        reject(this.#error);
      } else {
        resolve(buffer.byteLength);
      }
    });
    return promise;
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    if (this.#error) return Promise.reject(this.#error);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#socket.end((error?: Error | null) => {
      const failed = this.#error ?? (error ? asDenoError(error) : null);
      if (failed) reject(failed);
      else resolve();
    });
    return promise;
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Bad resource ID");
    this.#closed = true;
    this.#socket.destroy();
    this.#finish(null);
  }

  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive = true): void {
    this.#socket.setKeepAlive(keepAlive);
  }
}
