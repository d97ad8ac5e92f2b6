// Independent conformance tests for the socketproxy wire protocol, version 2 ("framed
// attachments").
//
// Written from /work/shared/PROTOCOL.md alone: the frame encoder and decoder, the hello
// formatting, the reply parsing, the destination servers and the HTTP request below are all
// local to this file and import nothing from the implementation under test. The server is run
// as a subprocess (`deno run main.ts server ...`), as a user would run it; its command-line
// options and its `server.listening` / `session.closed` log lines (used only to learn its port
// and as an event to wait for) come from docs/server.md, as in independent_client_test.ts.
//
// Quotations in test names and comments are from PROTOCOL.md, section "Version 2: framed
// attachments" unless another section is named.

import assert from "node:assert/strict";

const HOST = "127.0.0.1";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const T = 5000;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const MAX_D = 262144;
const K64 = 65536;

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------
// Small utilities

function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? enc.encode(data) : data;
}

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs f, ignoring a throw (closing what is already closed, killing what has exited). */
function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // already done
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Listeners on some state: `until` resolves once a condition holds, rejects once it never can. */
class Waiters {
  readonly #set = new Set<() => void>();
  notify(): void {
    for (const l of [...this.#set]) l();
  }
  /** check() returns a value once the condition holds; dead() a message once it never will. */
  until<R>(
    check: () => R | undefined,
    dead: () => string | undefined,
    ms: number,
    what: () => string,
  ): Promise<R> {
    let l = (): void => {};
    const p = new Promise<R>((resolve, reject) => {
      l = () => {
        const v = check();
        if (v !== undefined) return resolve(v);
        const d = dead();
        if (d !== undefined) reject(new Error(d));
      };
      this.#set.add(l);
      l();
    });
    return withTimeout(p, ms, what).finally(() => this.#set.delete(l));
  }
}

/** Byte `x` of a deterministic stream; `salt` separates streams (output vs input). */
function pattern(offset: number, length: number, salt = 0): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const x = (offset + i) ^ salt;
    b[i] = Math.imul(x ^ (x >>> 13), 0x9e3779b1) >>> 24;
  }
  return b;
}
const OUT_SALT = 0;
const IN_SALT = 0x5a5a5a5;

/** Index of the first byte where `b` differs from pattern(offset, b.length, salt), or -1. */
function mismatch(b: Uint8Array, offset: number, salt: number): number {
  const want = pattern(offset, b.length, salt);
  for (let i = 0; i < b.length; i++) if (b[i] !== want[i]) return i;
  return -1;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A well-formed token ([A-Za-z0-9_-]) that nobody was given. */
function randomToken(length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  let s = "";
  for (const b of crypto.getRandomValues(new Uint8Array(length))) s += alphabet[b & 63];
  return s;
}

/** A growable FIFO of bytes: appended at the end, taken from the front. */
class Bytes {
  #b = new Uint8Array(1024);
  #s = 0;
  #e = 0;
  get length(): number {
    return this.#e - this.#s;
  }
  append(x: Uint8Array): void {
    if (this.#e + x.length > this.#b.length) {
      const len = this.length;
      let cap = this.#b.length;
      while (cap < len + x.length) cap *= 2;
      if (cap === this.#b.length) this.#b.copyWithin(0, this.#s, this.#e);
      else {
        const n = new Uint8Array(cap);
        n.set(this.#b.subarray(this.#s, this.#e));
        this.#b = n;
      }
      this.#s = 0;
      this.#e = len;
    }
    this.#b.set(x, this.#e);
    this.#e += x.length;
  }
  view(): Uint8Array {
    return this.#b.subarray(this.#s, this.#e);
  }
  take(n: number): Uint8Array {
    const out = this.#b.slice(this.#s, this.#s + n);
    this.#s += n;
    return out;
  }
  text(): string {
    return dec.decode(this.view());
  }
}

// ---------------------------------------------------------------------------
// Frames: "type (1 byte), length (4 bytes, big-endian), payload". "Integers in payloads are
// unsigned 64-bit big-endian, always below 2^53."

function header(type: string, length: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setUint32(1, length);
  return out;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const frame = (type: string, payload: Uint8Array = new Uint8Array(0)): Uint8Array =>
  cat(header(type, payload.length), payload);

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

function getU64(b: Uint8Array, off: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off);
  if (v >= 2n ** 53n) throw new Error(`integer ${v} is not below 2^53`);
  return Number(v);
}

/** What the server may send: D 1 to 262 144 bytes, I 8, E 8 + 8 + a 1 to 64 byte reason. */
const SERVER_FRAME_SIZES: Record<string, [number, number]> = {
  D: [1, MAX_D],
  I: [8, 8],
  E: [17, 80],
};

const dFrame = (data: string | Uint8Array): Uint8Array => frame("D", toBytes(data));
const aFrame = (offset: number): Uint8Array => frame("A", u64(offset));
const cFrame = (): Uint8Array => frame("C");

type End = { in: number; sent: number; reason: string };

type FramedOk = {
  id: string;
  secret: string;
  inCount: number;
  from: number;
  pending: number;
  state: string;
  window: number;
};

/** "OK <id> <secret> <in> <from> <pending> <state> <window>" */
function parseFramedOk(line: string): FramedOk {
  const f = line.split(" ");
  if (f[0] !== "OK" || f.length !== 8) {
    throw new Error(`expected an 8-field framed OK reply, got ${JSON.stringify(line)}`);
  }
  const [, id = "", secret = "", inS = "", fromS = "", pendingS = "", state = "", windowS = ""] = f;
  if (![inS, fromS, pendingS, windowS].every((v) => DECIMAL.test(v))) {
    throw new Error(`OK field not decimal: ${JSON.stringify(line)}`);
  }
  if (state !== "open" && state !== "closed") {
    throw new Error(`bad <state> in ${JSON.stringify(line)}`);
  }
  return {
    id,
    secret,
    inCount: Number(inS),
    from: Number(fromS),
    pending: Number(pendingS),
    state,
    window: Number(windowS),
  };
}

// ---------------------------------------------------------------------------
// The client: one connection, read by a background pump that parses the reply line, then
// either frames (framed hello answered OK) or raw bytes (anything else). It records every
// breach of PROTOCOL.md it can judge on its own in `violations`.

class Wire implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  readonly #in = new Bytes();
  readonly #waiters = new Waiters();
  readonly #pump: Promise<void>;
  #closed = false;
  #framedHello = false;
  #keepFrames = true;

  /** The reply line, once received (CR LF / LF stripped). */
  line: string | undefined;
  ok: FramedOk | undefined;
  mode: "line" | "frames" | "raw" = "line";
  /** Bytes after the reply line when not framed. */
  readonly raw = new Bytes();
  /** D payloads received on this connection, in order (unless onData is set). */
  readonly data = new Bytes();
  /** Called for each D frame instead of appending to `data`; set it before the hello. */
  onData: ((offset: number, payload: Uint8Array) => void) | undefined;
  readonly frames: { type: string; length: number }[] = [];
  /** Output offset after the last D frame received. */
  out = 0;
  /** Highest acknowledgement given to the server (the hello's ack counts). */
  acked = 0;
  /** The latest input count given by the server (reply <in>, then I frames). */
  lastI = 0;
  iFrames = 0;
  /** Input bytes sent in D frames on this connection, pipelined ones included. */
  inputSent = 0;
  window = 0;
  end: End | undefined;
  eof = false;
  readError: unknown;
  readonly violations: string[] = [];

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#pump = this.#run();
  }

  static async connect(port: number): Promise<Wire> {
    return new Wire(await Deno.connect({ hostname: HOST, port }));
  }

  keepFrames(on: boolean): void {
    this.#keepFrames = on;
  }

  async #run(): Promise<void> {
    const chunk = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#in.append(chunk.subarray(0, n));
        this.#parse();
        this.#waiters.notify();
      }
    } catch (e) {
      if (!this.#closed) this.readError = e;
    } finally {
      this.eof = true;
      this.#waiters.notify();
    }
  }

  #violation(msg: string): void {
    this.violations.push(msg);
    this.mode = "raw";
  }

  #parse(): void {
    while (this.mode === "line" && this.#line());
    while (this.mode === "frames" && this.#frame());
    if (this.mode === "raw" && this.#in.length > 0) this.raw.append(this.#in.take(this.#in.length));
  }

  /** The reply line; false until it is complete. */
  #line(): boolean {
    const buf = this.#in.view();
    const i = buf.indexOf(10);
    if (i < 0) {
      if (buf.length > 4096) this.#violation("reply line longer than 4096 bytes");
      return false;
    }
    let l = this.#in.take(i + 1).subarray(0, i);
    if (l.length > 0 && l[l.length - 1] === 13) l = l.subarray(0, -1);
    this.line = dec.decode(l);
    if (!/^[\x20-\x7e]*$/.test(this.line)) {
      this.#violation(`reply is not printable ASCII: ${JSON.stringify(this.line)}`);
    } else if (this.#framedHello && this.line.startsWith("OK")) {
      try {
        const ok = this.ok = parseFramedOk(this.line);
        this.out = ok.from;
        this.acked = Math.max(this.acked, ok.from);
        this.lastI = ok.inCount;
        this.window = ok.window;
        this.mode = "frames";
      } catch (e) {
        this.#violation(String(e));
      }
    } else this.mode = "raw";
    return true;
  }

  /** One frame from the server; false until it is complete, or on a violation. */
  #frame(): boolean {
    const buf = this.#in.view();
    if (buf.length < 5) return false;
    const type = String.fromCharCode(buf[0] ?? 0);
    const len = new DataView(buf.buffer, buf.byteOffset, 5).getUint32(1);
    const [min, max] = SERVER_FRAME_SIZES[type] ?? [];
    if (min === undefined || max === undefined || len < min || len > max) {
      this.#violation(`server sent frame type ${JSON.stringify(type)} of length ${len}`);
      return false;
    }
    if (buf.length < 5 + len) return false;
    this.#in.take(5);
    const p = this.#in.take(len);
    if (this.#keepFrames) this.frames.push({ type, length: len });
    // "After E the server sends nothing more".
    if (this.end !== undefined) this.violations.push(`frame ${type} (length ${len}) after E`);
    try {
      if (type === "D") this.#onD(p);
      else if (type === "I") this.#onI(getU64(p, 0));
      else this.#onE(p);
    } catch (e) {
      this.#violation(String(e));
      return false;
    }
    return true;
  }

  #onD(p: Uint8Array): void {
    if (this.onData) this.onData(this.out, p);
    else this.data.append(p);
    this.out += p.length;
    // "sends output ... up to <window> bytes beyond that acknowledgement, never more"
    if (this.window > 0 && this.out > this.acked + this.window) {
      this.violations.push(
        `output offset ${this.out} beyond ack ${this.acked} + window ${this.window}`,
      );
    }
  }

  #onI(v: number): void {
    // I counts input written over the session's life: it never goes down, and on this
    // connection it cannot pass <in> plus what this connection sent.
    const base = this.ok?.inCount ?? 0;
    if (v < this.lastI) this.violations.push(`I went down from ${this.lastI} to ${v}`);
    if (v > base + this.inputSent) {
      this.violations.push(`I ${v} beyond the input sent (${base} + ${this.inputSent})`);
    }
    this.lastI = v;
    this.iFrames++;
  }

  #onE(p: Uint8Array): void {
    const reason = dec.decode(p.subarray(16));
    if (!/^[\x21-\x7e]{1,64}$/.test(reason)) {
      this.violations.push(`E reason not 1-64 ASCII chars: ${JSON.stringify(reason)}`);
    }
    this.end = { in: getU64(p, 0), sent: getU64(p, 8), reason };
    // E's sent is "the output offset up to which it sent D frames on this connection"; its in
    // "the session's input count at that moment", which a count already given cannot exceed.
    if (this.end.sent !== this.out) {
      this.violations.push(`E sent ${this.end.sent}, but D frames reached offset ${this.out}`);
    }
    if (this.end.in < this.lastI) {
      this.violations.push(`E in ${this.end.in} below the latest count ${this.lastI}`);
    }
  }

  describe(): string {
    return `[line=${JSON.stringify(this.line)} mode=${this.mode} out=${this.out} ` +
      `acked=${this.acked} lastI=${this.lastI} inputSent=${this.inputSent} ` +
      `end=${JSON.stringify(this.end)} eof=${this.eof} readError=${String(this.readError)} ` +
      `violations=${JSON.stringify(this.violations)}]`;
  }

  /** Resolves once pred() holds; rejects if the connection ends first or after ms. */
  async waitFor(pred: () => boolean, what: string, ms = T): Promise<void> {
    await this.#waiters.until(
      () => pred() || undefined,
      () => this.eof ? `connection ended while waiting for ${what} ${this.describe()}` : undefined,
      ms,
      () => `${what} ${this.describe()}`,
    );
  }

  /** Whether pred() comes to hold within ms (false on timeout or end of the connection). */
  within(pred: () => boolean, ms: number): Promise<boolean> {
    return this.waitFor(pred, "", ms).then(() => true, () => pred());
  }

  async reply(ms = T): Promise<string> {
    await this.waitFor(() => this.line !== undefined, "the reply line", ms);
    return this.line ?? "";
  }

  async framedOk(ms = T): Promise<FramedOk> {
    const line = await this.reply(ms);
    assert.deepEqual(this.violations, [], `client-side violations for reply ${line}`);
    assert.ok(this.ok, `expected a framed OK reply, got ${JSON.stringify(line)}`);
    return this.ok;
  }

  waitOut(offset: number, ms = T): Promise<void> {
    return this.waitFor(() => this.out >= offset, `output up to offset ${offset}`, ms);
  }

  waitI(count: number, ms = T): Promise<void> {
    return this.waitFor(() => this.lastI >= count, `an I frame with count ${count}`, ms);
  }

  async waitEnd(ms = T): Promise<End> {
    await this.waitFor(() => this.end !== undefined, "an E frame", ms);
    return this.end as End;
  }

  /** Waits for E and for the server's close; asserts no violations; returns the E. */
  async finish(ms = T): Promise<End> {
    const e = await this.waitEnd(ms);
    await this.waitEof();
    this.assertClean();
    return e;
  }

  waitEof(ms = T): Promise<void> {
    return this.waitFor(() => this.eof, "the server to close the connection", ms);
  }

  /** Writes all of `data`; a write the server never takes fails the test after 20 s. */
  async send(data: string | Uint8Array): Promise<void> {
    const p = writeAll(this.#conn, toBytes(data));
    p.catch(() => {}); // a timed-out write fails when the connection is closed
    await withTimeout(p, 20000, () => `the server to read what we send ${this.describe()}`);
  }

  /** Sends a hello line with `extra` bytes (frames) in the same write. */
  async hello(line: string, extra: Uint8Array = new Uint8Array(0)): Promise<void> {
    const words = line.split(/\r?\n/)[0]?.split(" ") ?? [];
    this.#framedHello = words.includes("framed");
    if (words[0] === "RESUME" && DECIMAL.test(words[3] ?? "")) this.acked = Number(words[3]);
    // Count the input of D frames pipelined after the hello.
    for (let off = 0; off + 5 <= extra.length;) {
      const len = new DataView(extra.buffer, extra.byteOffset + off, 5).getUint32(1);
      if (extra[off] === 0x44) this.inputSent += len;
      off += 5 + len;
    }
    await this.send(cat(enc.encode(line), extra));
  }

  /** Sends input as D frames (at most MAX_D each). */
  async sendInput(data: string | Uint8Array): Promise<void> {
    const b = toBytes(data);
    for (let off = 0; off < b.length; off += MAX_D) {
      const part = b.subarray(off, Math.min(b.length, off + MAX_D));
      this.inputSent += part.length;
      await this.send(dFrame(part));
    }
  }

  async ack(offset: number): Promise<void> {
    this.acked = Math.max(this.acked, offset);
    await this.send(aFrame(offset));
  }

  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /** Expects nothing new for ms (an absence check: there is no event for "nothing came"). */
  async expectQuiet(ms: number): Promise<void> {
    const before = this.frames.length;
    const out = this.out;
    await delay(ms);
    assert.equal(this.out, out, `output moved from ${out} to ${this.out} ${this.describe()}`);
    assert.equal(this.frames.length, before, `unexpected frames ${this.describe()}`);
  }

  assertClean(): void {
    assert.deepEqual(this.violations, [], `protocol violations seen by the client`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    quietly(() => this.#conn.close());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#pump;
  }
}

// ---------------------------------------------------------------------------
// The proxy under test (options from docs/server.md)

class ProxyServer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  port = 0;
  adminPort = 0;
  readonly lines: string[] = [];
  readonly #waiters = new Waiters();
  readonly #drain: Promise<void>;
  #ended = false;

  private constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.#drain = this.#drainLoop();
  }

  static async start(destPort: number, opts: string[] = [], admin = false): Promise<ProxyServer> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        MAIN,
        "server",
        "--proxy=127.0.0.1:0",
        admin ? "--admin=127.0.0.1:0" : "--admin=off",
        "--log-level=debug",
        ...opts,
        `${HOST}:${destPort}`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const p = new ProxyServer(child);
    try {
      const line = await p.waitLog((l) => l.includes("server.listening"), 20000);
      const m = /proxy=127\.0\.0\.1:(\d+)/.exec(line);
      assert.ok(m, `no proxy= field in ${line}`);
      p.port = Number(m[1]);
      if (admin) {
        const a = /admin=127\.0\.0\.1:(\d+)/.exec(line);
        assert.ok(a, `no admin= field in ${line}`);
        p.adminPort = Number(a[1]);
      }
    } catch (e) {
      await p[Symbol.asyncDispose]();
      throw e;
    }
    return p;
  }

  async #drainLoop(): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of this.child.stderr.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let i: number;
        while ((i = pending.indexOf("\n")) >= 0) {
          this.lines.push(pending.slice(0, i));
          pending = pending.slice(i + 1);
        }
        this.#waiters.notify();
      }
    } finally {
      if (pending !== "") this.lines.push(pending);
      this.#ended = true;
      this.#waiters.notify();
    }
  }

  waitLog(pred: (line: string) => boolean, ms = T): Promise<string> {
    return this.#waiters.until(
      () => this.lines.find(pred),
      () => this.#ended ? `server exited; log:\n${this.lines.join("\n")}` : undefined,
      ms,
      () => "a server log line",
    );
  }

  waitEvent(event: string, id: string): Promise<string> {
    return this.waitLog((l) => {
      const f = l.split(" ");
      return f[2] === event && f.includes(`id=${id}`);
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    quietly(() => this.child.kill("SIGTERM"));
    await this.child.status;
    await this.#drain;
  }
}

// ---------------------------------------------------------------------------
// Destinations

class DestConn {
  readonly conn: Deno.Conn;
  readonly received = new Bytes();
  ended = false;
  readonly eof: Promise<void>;
  /** Bytes the destination managed to hand to its kernel (flood). */
  written = 0;
  readonly #echo: boolean;
  readonly #waiters = new Waiters();
  readonly #writes = new Set<Promise<void>>();
  #closed = false;
  #gate: PromiseWithResolvers<void> | undefined;

  constructor(conn: Deno.Conn, echo: boolean) {
    this.conn = conn;
    this.#echo = echo;
    this.eof = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const b = new Uint8Array(65536);
    try {
      for (;;) {
        while (this.#gate) await this.#gate.promise;
        const n = await this.conn.read(b);
        if (n === null) break;
        if (this.#echo) await writeAll(this.conn, b.subarray(0, n));
        this.received.append(b.subarray(0, n));
        this.#waiters.notify();
      }
    } catch {
      // reset or closed locally
    } finally {
      this.ended = true;
      this.#waiters.notify();
    }
  }

  /** Stops reading (after at most one more read), so the proxy's writes to us back up. */
  pause(): void {
    this.#gate ??= Promise.withResolvers<void>();
  }

  resume(): void {
    this.#gate?.resolve();
    this.#gate = undefined;
  }

  waitReceived(n: number, ms = T): Promise<Uint8Array> {
    return this.#waiters.until(
      () => this.received.length >= n ? this.received.view() : undefined,
      () =>
        this.ended ? `destination EOF after ${this.received.length} bytes, wanted ${n}` : undefined,
      ms,
      () => `the destination to receive ${n} bytes (has ${this.received.length})`,
    );
  }

  waitEof(ms = T): Promise<void> {
    return withTimeout(this.eof, ms, () => "the proxy to close the destination connection");
  }

  async write(data: string | Uint8Array): Promise<void> {
    await writeAll(this.conn, toBytes(data));
  }

  /** Writes the output pattern from offset 0 up to total, in chunks, until closed. */
  flood(total: number, chunkSize: (() => number) | number = K64): Promise<void> {
    const p = (async () => {
      for (let off = 0; off < total && !this.#closed;) {
        const want = typeof chunkSize === "number" ? chunkSize : chunkSize();
        const b = pattern(off, Math.min(want, total - off), OUT_SALT);
        for (let done = 0; done < b.length;) {
          const n = await this.conn.write(b.subarray(done));
          done += n;
          this.written += n;
        }
        off += b.length;
      }
    })();
    this.#writes.add(p.catch(() => {}));
    return p;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    quietly(() => this.conn.close());
  }

  async dispose(): Promise<void> {
    this.close();
    this.resume();
    await this.eof;
    await Promise.all(this.#writes);
  }
}

class Dest implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  readonly port: number;
  readonly conns: DestConn[] = [];
  readonly #waiters = new Waiters();
  readonly #loop: Promise<void>;

  constructor(readonly echo = false) {
    this.listener = Deno.listen({ hostname: HOST, port: 0 });
    this.port = (this.listener.addr as Deno.NetAddr).port;
    this.#loop = this.#acceptLoop();
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const c of this.listener) {
        this.conns.push(new DestConn(c, this.echo));
        this.#waiters.notify();
      }
    } catch {
      // listener closed
    }
  }

  conn(index: number, ms = T): Promise<DestConn> {
    return this.#waiters.until(
      () => this.conns[index],
      () => undefined,
      ms,
      () => `destination connection #${index}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    await this.#loop;
    await Promise.all(this.conns.map((c) => c.dispose()));
  }
}

// ---------------------------------------------------------------------------
// Hello helpers

/** Connects and sends a framed hello; the reply must be a framed OK. */
async function attach(
  proxy: ProxyServer,
  hello: string,
  extra?: Uint8Array,
  setup?: (w: Wire) => void,
): Promise<{ w: Wire; ok: FramedOk }> {
  const w = await Wire.connect(proxy.port);
  try {
    setup?.(w);
    await w.hello(hello, extra);
    return { w, ok: await w.framedOk() };
  } catch (e) {
    await w[Symbol.asyncDispose]();
    throw e;
  }
}

const newFramed = (proxy: ProxyServer, extra?: Uint8Array) => attach(proxy, "NEW framed\n", extra);

const resumeFramed = (
  proxy: ProxyServer,
  s: { id: string; secret: string },
  ack: number,
  extra?: Uint8Array,
) => attach(proxy, `RESUME ${s.id} ${s.secret} ${ack} framed\n`, extra);

/** A destination, the proxy in front of it, a NEW framed attachment and its destination
 * connection; disposed in reverse order. */
async function framedSession(
  opts: string[] = [],
  { admin = false, echo = false }: { admin?: boolean; echo?: boolean } = {},
) {
  const dest = new Dest(echo);
  const stack = new AsyncDisposableStack();
  stack.use(dest);
  try {
    const proxy = stack.use(await ProxyServer.start(dest.port, opts, admin));
    const { w, ok } = await newFramed(proxy);
    stack.use(w);
    const d = await dest.conn(0);
    return { dest, proxy, w, ok, d, [Symbol.asyncDispose]: () => stack.disposeAsync() };
  } catch (e) {
    await stack.disposeAsync();
    throw e;
  }
}

/** Sends a hello, returns its reply line. After ERR / BYE the server must close with nothing
 * more: "Every version 1 error applies, as a line, before any frame". */
async function helloLine(proxy: ProxyServer | number, hello: string): Promise<string> {
  await using w = await Wire.connect(typeof proxy === "number" ? proxy : proxy.port);
  await w.hello(hello);
  const line = await w.reply();
  if (line.startsWith("ERR") || line.startsWith("BYE")) {
    await w.waitEof();
    assert.equal(w.raw.length, 0, `bytes after ${line}: ${JSON.stringify(w.raw.text())}`);
  }
  return line;
}

function assertErr(line: string, code: string): void {
  assert.ok(
    line === `ERR ${code}` || line.startsWith(`ERR ${code} `),
    `expected ERR ${code}, got ${JSON.stringify(line)}`,
  );
}

/** "unknown session or wrong secret": a session that has ended answers ERR auth. */
async function assertSessionGone(
  proxy: ProxyServer,
  s: { id: string; secret: string },
  ack: number,
): Promise<void> {
  assertErr(await helloLine(proxy, `RESUME ${s.id} ${s.secret} ${ack} framed\n`), "auth");
  assertErr(await helloLine(proxy, `RESUME ${s.id} ${s.secret}\n`), "auth");
}

async function httpRequest(
  port: number,
  method: string,
  path: string,
): Promise<{ status: number; body: string }> {
  await using w = await Wire.connect(port);
  await w.hello(`${method} ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: close\r\n\r\n`);
  const status = await w.reply();
  await w.waitEof();
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(status);
  assert.ok(m, `not an HTTP status line: ${JSON.stringify(status)}`);
  return { status: Number(m[1]), body: w.raw.text() };
}

/** Output, a small input with its I, as a known state before ending an attachment. */
async function primeSession(w: Wire, d: DestConn): Promise<void> {
  await d.write("out");
  await w.waitOut(3);
  await w.sendInput("in");
  await d.waitReceived(2);
  await w.waitI(2);
}

/**
 * With the destination not reading: sends input in half windows until I stops advancing (the
 * proxy's writes to the destination are blocked), then tops it up to exactly <window> beyond
 * the latest count, so that the top-up is input the server holds behind a blocked write. All
 * earlier input of `w` must be confirmed. Returns the input sent.
 */
async function fillInput(w: Wire): Promise<number> {
  let sent = w.lastI;
  const deadline = Date.now() + 60000;
  for (let i = 0; i < 4000 && Date.now() < deadline; i++) {
    const n = Math.min(w.window / 2, w.window - (sent - w.lastI));
    if (n > 0) await w.sendInput(pattern(sent, n, IN_SALT));
    sent += n;
    const before = w.lastI;
    // I comes "at most 100 ms" after a write; none in 500 ms: the writes are stuck.
    const moved = await w.within(() => w.lastI > before || w.end !== undefined || w.eof, 500);
    assert.ok(w.end === undefined && !w.eof, `the connection ended while filling ${w.describe()}`);
    if (moved) continue;
    const top = w.window - (sent - w.lastI);
    if (top > 0) await w.sendInput(pattern(sent, top, IN_SALT));
    return sent + top;
  }
  throw new Error(`the input never stalled ${w.describe()}`);
}

/** Re-sends `probe` every 100 ms until a write fails (the server has closed the connection
 * fully: there is no event for that but the reset); returns the ms it took. */
async function msUntilClosed(w: Wire, probe: Uint8Array, ms: number): Promise<number> {
  const t0 = Date.now();
  for (let i = 0; i < ms / 100; i++) {
    try {
      await w.send(probe);
    } catch {
      return Date.now() - t0;
    }
    await delay(100);
  }
  throw new Error(`the server kept the connection open for ${ms} ms ${w.describe()}`);
}

// ---------------------------------------------------------------------------
// Tests: NEW framed

Deno.test('NEW framed: 8-field OK with <window> ("the server\'s per-session buffer limit"); D from <from>; A; I after each input; C answers E closed and the session is gone', async () => {
  await using s = await framedSession(["--buffer=64k"]);
  const { proxy, w, ok, d } = s;
  // Replies: id 1-64 and secret 22-64 chars of [A-Za-z0-9_-]; "NEW answers OK <id> <secret> 0 0
  // <pending> open" (the destination has sent nothing yet: pending 0).
  assert.match(ok.id, TOKEN);
  assert.ok(ok.id.length >= 1 && ok.id.length <= 64, `id length ${ok.id.length}`);
  assert.match(ok.secret, TOKEN);
  assert.ok(ok.secret.length >= 22 && ok.secret.length <= 64, `secret length ${ok.secret.length}`);
  assert.deepEqual([ok.inCount, ok.from, ok.pending, ok.state], [0, 0, 0, "open"]);
  assert.equal(ok.window, K64, "<window> is the per-session buffer limit (--buffer=64k)");

  await d.write("hello, framed");
  await w.waitOut(13);
  assert.equal(w.data.text(), "hello, framed");
  assert.ok(w.frames.every((f) => f.type === "D"), JSON.stringify(w.frames));
  await w.ack(13);

  // "After writing input it sends I with the new total, at most 100 ms later": unprompted
  // (1 s leaves room for a loaded machine).
  await w.sendInput("ping");
  await d.waitReceived(4);
  await w.waitI(4, 1000);
  assert.equal(w.lastI, 4);
  await w.sendInput("pong!!");
  await d.waitReceived(10);
  await w.waitI(10, 1000);
  assert.equal(d.received.text(), "ping" + "pong!!");

  // "An A below the latest one is ignored" (not an error).
  await w.ack(5);
  await d.write("more");
  await w.waitOut(17);
  assert.equal(w.data.text(), "hello, framedmore");
  await w.ack(17);

  // "a C frame is answered with E closed"; closed: "the session ... has ended".
  await w.send(cFrame());
  assert.deepEqual(await w.waitEnd(), { in: 10, sent: 17, reason: "closed" });
  await w.waitEof();
  await d.waitEof();
  w.assertClean();
  await assertSessionGone(proxy, ok, 17);
});

Deno.test('RESUME framed: <from> equals <ack> ("the hello\'s <ack> counts" as an acknowledgement); the <pending> bytes come as D frames at once', async () => {
  await using s = await framedSession(["--buffer=100000"]);
  const { proxy, w, ok, d } = s;
  assert.equal(ok.window, 100000);
  await d.write(pattern(0, 5000, OUT_SALT));
  await w.waitOut(5000);
  await w[Symbol.asyncDispose]();
  const r = await resumeFramed(proxy, ok, 1234);
  await using w2 = r.w;
  assert.deepEqual(
    [r.ok.id, r.ok.inCount, r.ok.from, r.ok.pending, r.ok.state, r.ok.window],
    [ok.id, 0, 1234, 5000 - 1234, "open", 100000],
  );
  await w2.waitOut(5000);
  assert.equal(mismatch(w2.data.view(), 1234, OUT_SALT), -1);
  assert.equal(w2.data.length, 5000 - 1234);
  assert.ok(w2.frames.every((f) => f.type === "D"), JSON.stringify(w2.frames));
  w2.assertClean();
});

// ---------------------------------------------------------------------------
// Tests: every end reason ("Before it closes a framed connection for any reason but the client
// closing the connection itself ... the server sends E")

Deno.test('E taken-over: a second framed RESUME takes over a framed attachment; "stays open"; D after E is discarded', async () => {
  await using s = await framedSession();
  const { proxy, w, ok, d } = s;
  await d.write("abcdef");
  await w.waitOut(6);
  await w.ack(4);
  await w.sendInput("xy");
  await w.waitI(2);

  const r = await resumeFramed(proxy, ok, 4);
  await using w2 = r.w;
  assert.deepEqual(
    [r.ok.id, r.ok.inCount, r.ok.from, r.ok.pending, r.ok.state],
    [ok.id, 2, 4, 2, "open"],
  );
  // E: the input count, and the offset up to which D frames went on this connection (6).
  assert.deepEqual(await w.waitEnd(), { in: 2, sent: 6, reason: "taken-over" });
  // "After E the server ... discards any D frame that follows": "late" never reaches the
  // destination.
  await w.send(dFrame("late")).catch(() => {}); // the server may have closed already
  await w.waitEof();

  await w2.waitOut(6);
  assert.equal(w2.data.text(), "ef");
  await w2.sendInput("z");
  await d.waitReceived(3);
  await w2.waitI(3);
  assert.equal(d.received.text(), "xyz");
  await d.write("g");
  await w2.waitOut(7);
  assert.equal(w2.data.text(), "efg");
  assert.equal(d.ended, false, "the destination connection stays open");
  w.assertClean();
  w2.assertClean();
});

Deno.test('E taken-over: a version 1 RESUME takes over a framed attachment ("Everything in version 1 stays as it is")', async () => {
  await using s = await framedSession();
  const { proxy, w, ok, d } = s;
  await primeSession(w, d);

  await using v1 = await Wire.connect(proxy.port);
  await v1.hello(`RESUME ${ok.id} ${ok.secret} 3\n`);
  assert.equal(await v1.reply(), `OK ${ok.id} ${ok.secret} 2 3 0 open`, "a v1 reply: 7 fields");
  assert.deepEqual(await w.finish(), { in: 2, sent: 3, reason: "taken-over" });

  // The v1 attachment is a raw stream.
  await d.write("raw!");
  await v1.waitFor(() => v1.raw.length >= 4, "raw output on the v1 attachment");
  assert.equal(v1.raw.text(), "raw!");
  await v1.send("typed");
  await d.waitReceived(7);
  assert.equal(d.received.text(), "intyped");
});

Deno.test('E destination-closed: after all output; D after it is discarded unjudged; "the client\'s last A reaches it and ends the session"', async () => {
  const TOTAL = 200000;
  await using s = await framedSession(["--buffer=64k"]);
  const { proxy, w, ok, d } = s;
  await w.sendInput("bye?");
  await w.waitI(4);
  const done = d.write(pattern(0, TOTAL, OUT_SALT)).then(() => d.close());
  // "A client acknowledges at least whenever half a window is unacknowledged"; the last 1000
  // bytes are acknowledged only after E, so that it is that A which ends the session.
  for (let i = 0; i < 1000 && w.end === undefined; i++) {
    await w.waitFor(
      () => w.end !== undefined || Math.min(w.out, TOTAL - 1000) - w.acked >= K64 / 2,
      "output to acknowledge",
    );
    if (w.end === undefined) await w.ack(Math.min(w.out, TOTAL - 1000));
  }
  await done;
  // "the destination closed, and all its output was sent on this connection"
  assert.deepEqual(await w.waitEnd(), { in: 4, sent: TOTAL, reason: "destination-closed" });
  assert.equal(mismatch(w.data.view(), 0, OUT_SALT), -1);
  assert.equal(w.data.length, TOTAL);
  // "once the destination's output has ended, the server discards input frames unread by the
  // destination, without counting them or judging them against the window": a D beyond the
  // window is no protocol error here (and there is no second E).
  await w.sendInput(pattern(0, K64 + 1, IN_SALT));
  // "After E destination-closed the server reads on": our final A reaches it.
  await w.ack(TOTAL);
  await w.closeWrite();
  await w.waitEof();
  w.assertClean();
  await proxy.waitEvent("session.closed", ok.id);
  await assertSessionGone(proxy, ok, TOTAL);
});

Deno.test('E destination-closed: the server reads on until the handshake timeout passes; a session not fully acknowledged "waits in state closed for a later hello"', async () => {
  await using s = await framedSession(["--handshake-timeout=1s"]);
  const { proxy, w, ok, d } = s;
  await d.write(pattern(0, 1000, OUT_SALT));
  d.close();
  assert.deepEqual(await w.waitEnd(), { in: 0, sent: 1000, reason: "destination-closed" });
  // The server half-closes after E ("sends nothing more") but reads on: we never close our
  // side nor acknowledge everything, so it closes once the handshake timeout (1 s) has passed,
  // not at once. Probing with A 600 (at or below what was sent) tells when.
  await w.waitEof();
  const lingered = await msUntilClosed(w, aFrame(600), 6000);
  assert.ok(lingered >= 500, `the server closed ${lingered} ms after E, before its timeout`);
  w.assertClean();

  const r = await resumeFramed(proxy, ok, 600);
  await using w2 = r.w;
  assert.deepEqual([r.ok.from, r.ok.pending, r.ok.state], [600, 400, "closed"]);
  assert.deepEqual(await w2.waitEnd(), { in: 0, sent: 1000, reason: "destination-closed" });
  assert.equal(mismatch(w2.data.view(), 600, OUT_SALT), -1);
  assert.equal(w2.data.length, 400);
  await w2.ack(1000);
  await w2.closeWrite();
  await w2.waitEof();
  w2.assertClean();
  await proxy.waitEvent("session.closed", ok.id);
  await assertSessionGone(proxy, ok, 1000);
});

const CLOSERS: [string, (proxy: ProxyServer, ok: FramedOk) => Promise<void>][] = [
  ['"CLOSE from another one"', async (proxy, ok) => {
    assert.equal(await helloLine(proxy, `CLOSE ${ok.id} ${ok.secret}\n`), `BYE ${ok.id}`);
  }],
  ['"the admin API" (DELETE /sessions/{id}, docs/server.md)', async (proxy, ok) => {
    const res = await httpRequest(proxy.adminPort, "DELETE", `/sessions/${ok.id}`);
    assert.equal(res.status, 200, res.body);
  }],
];

for (const [name, closeIt] of CLOSERS) {
  Deno.test(`E closed: ${name}; the session "has ended"`, async () => {
    await using s = await framedSession([], { admin: true });
    const { proxy, w, ok, d } = s;
    await primeSession(w, d);
    await closeIt(proxy, ok);
    assert.deepEqual(await w.finish(), { in: 2, sent: 3, reason: "closed" });
    await d.waitEof();
    await assertSessionGone(proxy, ok, 3);
  });
}

Deno.test('E server-stopping: "the server is shutting down" (SIGTERM)', async () => {
  await using s = await framedSession();
  const { proxy, w, d } = s;
  await primeSession(w, d);
  proxy.child.kill("SIGTERM");
  assert.deepEqual(await w.finish(), { in: 2, sent: 3, reason: "server-stopping" });
  await withTimeout(proxy.child.status, 10000, () => "the server to exit");
});

// ---------------------------------------------------------------------------
// Tests: protocol errors ("An unknown type, a type sent in the wrong direction, a length over
// the type's limit, or a payload of the wrong size is a protocol error"). Each starts from a
// known state (3 bytes of output received, 2 bytes of input confirmed), sends one bad thing,
// expects E protocol-error with in 2 and sent 3, then checks that the session "stays open".

/** [what, its bytes, whether only a header is sent: "the server judges a length from the
 * header alone and never reads an oversized payload"] */
type BadCase = [string, () => Uint8Array, boolean?];
const HUGE = 0xffffffff;

const BAD: BadCase[] = [
  ["an unknown frame type (Z)", () => frame("Z")],
  ["an unknown frame type (lowercase d)", () => frame("d", enc.encode("x"))],
  ["an unknown frame type announcing 2^32-1 bytes", () => header("Z", HUGE), true],
  ["an empty D frame (D carries 1 to 262 144 bytes)", () => header("D", 0)],
  ["a D frame longer than 262144 bytes", () => header("D", MAX_D + 1), true],
  ["a D frame announcing 2^32-1 bytes", () => header("D", HUGE), true],
  ["an A frame of 4 bytes", () => frame("A", new Uint8Array(4))],
  ["an A frame of 9 bytes", () => frame("A", new Uint8Array(9))],
  ["an A frame announcing 2^32-1 bytes", () => header("A", HUGE), true],
  ['"an A beyond what was sent" (4, 3 sent)', () => aFrame(4)],
  ["an A of 2^64-1", () => frame("A", new Uint8Array(8).fill(255))],
  // in = 2, all of it confirmed: the window leaves 65536 bytes.
  ['"input beyond the window" (a D of window+1 bytes)', () => dFrame(pattern(0, K64 + 1))],
  ["an I frame sent by the client (wrong direction)", () => frame("I", u64(0))],
  [
    "an E frame sent by the client (wrong direction)",
    () => frame("E", cat(u64(0), u64(0), enc.encode("closed"))),
  ],
  ["a C frame with a payload (C is empty)", () => frame("C", new Uint8Array(1))],
];

for (const [what, bytes, headerOnly] of BAD) {
  Deno.test(`E protocol-error: ${what}${headerOnly ? ", judged from the header alone" : ""}; the session stays open`, async () => {
    await using s = await framedSession(["--buffer=64k"]);
    const { proxy, w, ok, d } = s;
    await primeSession(w, d);
    await w.send(bytes());
    // "the server judges a length from the header alone and never reads an oversized
    // payload": well within the handshake timeout (10 s), without the payload.
    const e = await w.finish(headerOnly ? 3000 : T);
    assert.deepEqual(e, { in: 2, sent: 3, reason: "protocol-error" });

    const r = await resumeFramed(proxy, ok, 3);
    await using w2 = r.w;
    assert.deepEqual([r.ok.state, r.ok.inCount, r.ok.from, r.ok.pending], ["open", 2, 3, 0]);
    await w2.sendInput("!");
    await d.waitReceived(3);
    await w2.waitI(3);
    assert.equal(d.received.text(), "in!", "nothing of the bad frame reached the destination");
    await d.write("k");
    await w2.waitOut(4);
    assert.equal(w2.data.text(), "k");
    w2.assertClean();
  });
}

// ---------------------------------------------------------------------------
// Tests: the input window ("A client sends at most <window> bytes of input beyond the latest
// count it was given (the reply's <in>, then each I)")

Deno.test("input window: exactly <window> beyond <in>, then exactly <window> beyond the latest I, is accepted", async () => {
  await using s = await framedSession(["--buffer=64k"]);
  const { w, d } = s;
  // Two frames of half a window each, in one write: K64 beyond <in> 0.
  await w.send(
    cat(dFrame(pattern(0, K64 / 2, IN_SALT)), dFrame(pattern(K64 / 2, K64 / 2, IN_SALT))),
  );
  w.inputSent += K64;
  await w.waitI(K64);
  await w.sendInput(pattern(K64, K64, IN_SALT));
  await w.waitI(2 * K64);
  await d.waitReceived(2 * K64);
  assert.equal(mismatch(d.received.view(), 0, IN_SALT), -1);
  assert.equal(w.end, undefined, `no E ${w.describe()}`);
  w.assertClean();
});

Deno.test("input held while the destination does not read: a takeover drops it uncounted; <in> and E's in say exactly what the destination gets", async () => {
  // "when another attachment of the session begins (a takeover, or any later resume), input
  // still held for an earlier one is dropped" and "A client that keeps its input until I
  // confirms it can therefore resend exactly what comes after <in>".
  const WIN = 128 * 1024;
  await using s = await framedSession(["--buffer=128k"]);
  const { proxy, w, ok, d } = s;
  d.pause();
  const sent = await fillInput(w);
  const confirmed = w.lastI;
  assert.equal(sent - confirmed, WIN, "filled to exactly the window");

  const r = await resumeFramed(proxy, ok, 0);
  await using w2 = r.w;
  const n = r.ok.inCount;
  assert.ok(n >= confirmed && n <= sent, `<in> ${n} outside [${confirmed}, ${sent}]`);
  // "the server is about to close this connection": with the count at that moment.
  assert.deepEqual(await w.finish(), { in: n, sent: 0, reason: "taken-over" });

  await w2.sendInput("tail");
  d.resume();
  await w2.waitI(n + 4, 30000);
  await d.waitReceived(n + 4, 30000);
  const got = d.received.view();
  assert.equal(mismatch(got.subarray(0, n), 0, IN_SALT), -1, "the first <in> bytes are w's input");
  assert.equal(
    dec.decode(got.subarray(n)),
    "tail",
    "then the new attachment's, nothing dropped between",
  );
  console.log(`filled ${sent} bytes; ${n} counted at the takeover, ${sent - n} dropped`);
  w2.assertClean();
});

Deno.test('"It keeps reading frames whatever the destination does, so that A and C always get through"', async () => {
  const WIN = 128 * 1024;
  await using s = await framedSession(["--buffer=128k"]);
  const { proxy, w, ok, d } = s;
  d.pause();
  await d.write(pattern(0, WIN + 10, OUT_SALT));
  await w.waitOut(WIN);
  const sent = await fillInput(w);
  // The input side is stuck; an A still releases the output past the window.
  await w.ack(WIN);
  await w.waitOut(WIN + 10);
  await w.ack(WIN + 10);
  await w.send(cFrame());
  const e = await w.finish();
  assert.deepEqual([e.reason, e.sent], ["closed", WIN + 10]);
  assert.ok(e.in >= w.lastI && e.in <= sent, `E in ${e.in} outside [${w.lastI}, ${sent}]`);
  await assertSessionGone(proxy, ok, WIN + 10);
  // The destination gets at most the counted input, in order.
  d.resume();
  await d.waitEof(30000);
  assert.ok(d.received.length <= e.in, `destination got ${d.received.length} > E in ${e.in}`);
  assert.equal(mismatch(d.received.view(), 0, IN_SALT), -1);
});

// ---------------------------------------------------------------------------
// Tests: hello errors and pipelining

Deno.test("hello errors: framed RESUME without <ack>, CLOSE framed, repeated or unknown options are ERR bad-request; v1 errors (ack, auth, unknown-destination) come as lines", async () => {
  await using s = await framedSession();
  const { proxy, w, ok, d } = s;
  await d.write("12345");
  await w.waitOut(5);

  // "A framed RESUME always carries <ack> (RESUME <id> <secret> framed is ERR bad-request).
  // CLOSE has no framed form." "Any other option, or a repeated one, is ERR bad-request."
  for (
    const hello of [
      `RESUME ${ok.id} ${ok.secret} framed`,
      `CLOSE ${ok.id} ${ok.secret} framed`,
      "NEW framed framed",
      "NEW framed bogus=1",
      `RESUME ${ok.id} ${ok.secret} 0 framed framed`,
    ]
  ) assertErr(await helloLine(proxy, `${hello}\n`), "bad-request");
  // "ack <sent>: <ack> is beyond what was ever sent".
  assert.match(
    await helloLine(proxy, `RESUME ${ok.id} ${ok.secret} 99 framed\n`),
    /^ERR ack 5( |$)/,
  );
  // "auth: unknown session or wrong secret".
  const wrong = ok.secret.slice(0, -1) + (ok.secret.endsWith("A") ? "B" : "A");
  assertErr(await helloLine(proxy, `RESUME ${ok.id} ${wrong} 0 framed\n`), "auth");
  assertErr(
    await helloLine(proxy, `RESUME ${randomToken(16)} ${randomToken(32)} 0 framed\n`),
    "auth",
  );
  // "A name the server does not have is answered ERR unknown-destination <name>".
  assertErr(await helloLine(proxy, "NEW framed to=nosuch\n"), "unknown-destination nosuch");

  // None of these touched the attached session (only "A successful RESUME" takes over).
  assert.equal(w.end, undefined, `no E for the attached client ${w.describe()}`);
  await d.write("6");
  await w.waitOut(6);
  assert.equal(w.data.text(), "123456");
  assert.equal(d.ended, false);
  assert.equal(s.dest.conns.length, 1, "no destination connection for the rejected NEWs");
  w.assertClean();
});

Deno.test("hello errors: NEW framed with nothing listening at the destination is ERR unreachable, a line", async () => {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await using proxy = await ProxyServer.start(port);
  assertErr(await helloLine(proxy, "NEW framed\n"), "unreachable");
});

Deno.test("hello errors: a framed RESUME older than the retained output is ERR gap <lowest>; RESUME at <lowest> works", async () => {
  await using dest = new Dest();
  await using proxy = await ProxyServer.start(dest.port, ["--buffer=4k"]);
  // A v1 streaming client: output already sent is released to make room.
  await using v1 = await Wire.connect(proxy.port);
  await v1.hello("NEW\n");
  const m = /^OK (\S+) (\S+) 0 0 0 open$/.exec(await v1.reply());
  assert.ok(m, v1.line);
  const s = { id: m[1] ?? "", secret: m[2] ?? "" };
  const d = await dest.conn(0);
  await d.write(pattern(0, 20000, OUT_SALT));
  await v1.waitFor(() => v1.raw.length >= 20000, "20000 bytes of streaming output");
  const gap = await helloLine(proxy, `RESUME ${s.id} ${s.secret} 0 framed\n`);
  const g = /^ERR gap (\d+)( |$)/.exec(gap);
  assert.ok(g, `expected ERR gap <lowest>, got ${JSON.stringify(gap)}`);
  const lowest = Number(g[1]);
  // Retained output "never exceeds the per-session buffer limit" (Semantics, 2).
  assert.ok(lowest >= 20000 - 4096 && lowest <= 20000, gap);
  // "<lowest> is the offset the client can resume from"; it takes over the v1 client.
  const r = await resumeFramed(proxy, s, lowest);
  await using w = r.w;
  assert.deepEqual([r.ok.from, r.ok.pending, r.ok.window], [lowest, 20000 - lowest, 4096]);
  await w.waitOut(20000);
  assert.equal(mismatch(w.data.view(), lowest, OUT_SALT), -1);
  await v1.waitEof();
  w.assertClean();
});

Deno.test('"Bytes a client sends after a framed hello\'s LF, even in the same segment, are frames": NEW framed (CR LF)', async () => {
  await using dest = new Dest();
  await using proxy = await ProxyServer.start(dest.port);
  // "a CR right before the LF is ignored"
  const { w } = await attach(
    proxy,
    "NEW framed\r\n",
    cat(dFrame("early"), aFrame(0), dFrame("-bird")),
  );
  await using _w = w;
  const d = await dest.conn(0);
  await d.waitReceived(10);
  assert.equal(d.received.text(), "early-bird");
  await w.waitI(10);
  await d.write("worm");
  await w.waitOut(4);
  assert.equal(w.data.text(), "worm");
  w.assertClean();
});

Deno.test('"Bytes a client sends after a framed hello\'s LF, even in the same segment, are frames": RESUME framed, with A, D and C', async () => {
  await using s = await framedSession();
  const { proxy, w, ok, d } = s;
  await primeSession(w, d);
  await w[Symbol.asyncDispose]();
  const r = await resumeFramed(proxy, ok, 3, cat(aFrame(3), dFrame("more")));
  await using w2 = r.w;
  assert.equal(r.ok.inCount, 2);
  await d.waitReceived(6);
  assert.equal(d.received.text(), "inmore");
  await w2.waitI(6);
  // A C frame pipelined after the hello ends the session too.
  const r3 = await resumeFramed(proxy, ok, 3, cFrame());
  await using w3 = r3.w;
  assert.deepEqual(await w2.waitEnd(), { in: 6, sent: 3, reason: "taken-over" });
  assert.deepEqual(await w3.finish(), { in: 6, sent: 3, reason: "closed" });
  await d.waitEof();
  w2.assertClean();
  await assertSessionGone(proxy, ok, 3);
});

// ---------------------------------------------------------------------------
// Tests: the output window and backpressure on the destination

Deno.test('output window (--buffer=64k): "up to <window> bytes beyond that acknowledgement, never more"; an A below the latest is ignored; acks release more; the destination is pushed back', async () => {
  const FLOOD = 256 * 1024 * 1024;
  await using s = await framedSession(["--buffer=64k"]);
  const { proxy, w, ok, d } = s;
  w.keepFrames(false);
  assert.equal(ok.window, K64);
  d.flood(FLOOD);

  // Never acknowledged: exactly one window, then nothing.
  await w.waitOut(K64);
  await w.expectQuiet(500);
  assert.equal(w.out, K64);

  // An A below the latest is ignored; an ack of half the window lets exactly that much more in.
  await w.ack(K64 / 2);
  await w.ack(100);
  await w.waitOut(K64 / 2 + K64);
  await w.expectQuiet(300);
  assert.equal(w.out, K64 / 2 + K64);

  // "The server retains all output from the client's latest acknowledgement on": a reattach
  // from it gets the same bytes.
  await w[Symbol.asyncDispose]();
  const r = await resumeFramed(proxy, ok, K64 / 2);
  await using w2 = r.w;
  w2.keepFrames(false);
  assert.equal(r.ok.from, K64 / 2);
  assert.equal(r.ok.pending, K64, "the whole window from the ack is available at once");
  await w2.waitOut(K64 / 2 + K64);

  // "A client acknowledges at least whenever half a window is unacknowledged": output flows.
  const TARGET = 2 * 1024 * 1024;
  for (let i = 0; i < 10000 && w2.out < TARGET; i++) {
    await w2.waitFor(() => w2.out - w2.acked >= K64 / 2, "half a window of output");
    await w2.ack(w2.out);
  }
  await w2.waitOut(TARGET);
  assert.equal(mismatch(w2.data.view(), K64 / 2, OUT_SALT), -1, "output is in order");

  // Stop acknowledging: the output stops exactly one window past the last ack, and the
  // destination stalls: "the server stops reading from the destination, and TCP flow control
  // pushes back on the destination" (Semantics, 2). No event says "stalled": poll, bounded.
  const lastAck = w2.acked;
  await w2.waitOut(lastAck + K64);
  let stable = 0;
  let last = -1;
  for (let i = 0; i < 200 && stable < 5; i++) {
    await delay(100);
    stable = d.written === last ? stable + 1 : 0;
    last = d.written;
  }
  assert.equal(stable, 5, `the destination never stalled (wrote ${d.written} bytes)`);
  assert.equal(w2.out, lastAck + K64, "exactly one window beyond the ack");
  const beyond = d.written - w2.out;
  console.log(
    `destination wrote ${d.written} bytes; client has ${w2.out}; ${beyond} in the server and kernel buffers`,
  );
  assert.ok(beyond < 48 * 1024 * 1024, `the destination wrote ${beyond} bytes beyond the client`);
  assert.ok(d.written < FLOOD / 4);
  w2.assertClean();
});

// ---------------------------------------------------------------------------
// Tests: no deadlock

Deno.test('no deadlock: an echoing destination and a 6 MiB paste within the input window ("It keeps reading frames whatever the destination does")', async () => {
  const TOTAL = 6 * 1024 * 1024;
  await using s = await framedSession(["--buffer=64k"], { echo: true });
  const { w, ok } = s;
  w.keepFrames(false);
  const window = ok.window;
  let sent = 0;
  const writer = (async () => {
    for (let i = 0; i < 100000 && sent < TOTAL; i++) {
      await w.waitFor(() => sent - w.lastI < window, "room in the input window", 20000);
      const n = Math.min(16384, window - (sent - w.lastI), TOTAL - sent);
      await w.sendInput(pattern(sent, n, IN_SALT));
      sent += n;
    }
  })();
  const acker = (async () => {
    for (let i = 0; i < 100000 && w.acked < TOTAL; i++) {
      await w.waitFor(
        () => w.out - w.acked >= window / 2 || (w.out === TOTAL && w.acked < TOTAL),
        "output to acknowledge",
        20000,
      );
      await w.ack(w.out);
    }
  })();
  await withTimeout(Promise.all([writer, acker]), 60000, () => `the echo ${w.describe()}`);
  await w.waitI(TOTAL);
  assert.equal(w.out, TOTAL);
  assert.equal(mismatch(w.data.view(), 0, IN_SALT), -1, "echo differs from the input");
  assert.equal(w.data.length, TOTAL);
  w.assertClean();
});

// ---------------------------------------------------------------------------
// Tests: randomized drops

Deno.test('random drops: guarantee 6, "Exactly once, both ways": 4 MiB out, 2 MiB in, dozens of abrupt drops', async () => {
  const seedEnv = Deno.env.get("FRAMED_SEED");
  const seed = seedEnv !== undefined
    ? Number(seedEnv)
    : crypto.getRandomValues(new Uint32Array(1))[0] ?? 1;
  try {
    await randomDrops(seed);
  } catch (e) {
    console.error(`random drops failed with seed ${seed} (rerun with FRAMED_SEED=${seed})`);
    throw e;
  }
});

Deno.test("random drops with seed 2386695309, five times: a write failing under a moved client connection closes nothing else", async () => {
  // This seed's drops make writes fail (EPIPE) on client connections the
  // server moved onto node:net; a write or end handed to such a socket
  // after the failure made Deno 2.9.6's node:net close a descriptor twice
  // and then the listening socket, about one run in two (lib/proxy/tcp.ts).
  for (let run = 0; run < 5; run++) await randomDrops(2386695309);
});

async function randomDrops(seed: number): Promise<void> {
  const OUT_TOTAL = 4 * 1024 * 1024;
  const IN_TOTAL = 2 * 1024 * 1024;
  const DROPS = 40;
  const rnd = mulberry32(seed);
  const rint = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const deadline = Date.now() + 120000;

  await using dest = new Dest();
  await using proxy = await ProxyServer.start(dest.port, ["--buffer=128k"]);

  let session: { id: string; secret: string } | undefined;
  let received = 0; // output received and verified = our ack
  let confirmed = 0; // input confirmed by I / <in>
  let drops = 0;
  let finished = false;
  let destDone: Promise<void> | undefined;
  let finalEnd: End | undefined;
  let ackedMost = 0; // the highest acknowledgement any attachment gave (A or hello)
  const log: string[] = [];

  for (let attempt = 0; attempt < DROPS + 100 && !finished; attempt++) {
    assert.ok(Date.now() < deadline, `out of time after ${attempt} attachments`);
    await using w = await Wire.connect(proxy.port);
    w.keepFrames(false);
    // Set before the hello: the pending D frames may come with the reply.
    w.onData = (offset, p) => {
      if (offset !== received) throw new Error(`D at ${offset}, expected ${received}`);
      const bad = mismatch(p, offset, OUT_SALT);
      if (bad >= 0) throw new Error(`output differs at offset ${offset + bad}`);
      received += p.length;
    };
    const dropping = drops < DROPS;
    // Kind 0 (drop right after the hello) only once the session exists.
    const kind = dropping ? rint(session === undefined ? 1 : 0, 4) : -1;
    // The pending D frames may arrive with the reply and advance `received` before framedOk()
    // returns: keep the ack this hello carries.
    const helloAck = received;
    if (session === undefined) await w.hello("NEW framed\n");
    else await w.hello(`RESUME ${session.id} ${session.secret} ${helloAck} framed\n`);
    ackedMost = Math.max(ackedMost, helloAck); // "the hello's <ack> counts as one"
    if (kind === 0) {
      // Drop right after the hello.
      w.close();
      drops++;
      log.push(`#${attempt} drop after hello`);
      continue;
    }
    // destination-closed: the session "ends once all of its output is acknowledged", even when
    // our connection dropped before E reached us. Only then may it be unknown (ERR auth).
    const line = await w.reply(10000);
    if (line.startsWith("ERR auth") && ackedMost === OUT_TOTAL && received === OUT_TOTAL) {
      log.push(`#${attempt} ${line}: ended by an earlier acknowledgement of all output`);
      finished = true;
      break;
    }
    const ok = await w.framedOk(10000);
    if (session === undefined) {
      session = ok;
      const d = await dest.conn(0);
      // The destination writes all of its output in random chunks, waits for all the
      // input, then closes.
      const flooded = d.flood(OUT_TOTAL, () => rint(1, 48 * 1024));
      destDone = Promise.all([flooded, d.waitReceived(IN_TOTAL, 110000)]).then(() => d.close());
      destDone.catch(() => {}); // awaited at the end
    }
    assert.equal(ok.from, helloAck, "<from> equals the ack");
    assert.ok(ok.inCount >= confirmed, `<in> ${ok.inCount} went below ${confirmed}`);
    assert.ok(ok.inCount <= IN_TOTAL, `<in> ${ok.inCount} beyond the input`);
    confirmed = ok.inCount;
    const window = ok.window;
    let next = ok.inCount; // "resend exactly what comes after <in>"
    const startOut = received;
    const startIn = next;
    const limit = kind === 1 || kind === 2 ? rint(0, window) : rint(1, 64 * 1024);

    // Kinds 3 and 4 are input events; once all input is sent, they drop on output instead,
    // or the attachment would carry the rest of the output to the end without a drop.
    const inputDone = (): boolean => next >= IN_TOTAL;
    const dropCond = (): boolean => {
      switch (kind) {
        case 1:
        case 2:
          return received >= startOut + limit;
        case 3:
          return next >= startIn + limit || (inputDone() && received >= startOut + limit);
        case 4:
          return w.iFrames >= 1 || (inputDone() && received > startOut);
        default:
          return false;
      }
    };
    const stop = (): boolean => w.eof || w.end !== undefined;

    const writer = (async () => {
      for (let i = 0; i < 100000 && next < IN_TOTAL && !stop(); i++) {
        await w.waitFor(() => stop() || next - w.lastI < window, "room in the input window", 20000);
        if (stop()) break;
        const n = Math.min(rint(1, 32 * 1024), window - (next - w.lastI), IN_TOTAL - next);
        const chunk = pattern(next, n, IN_SALT);
        next += n;
        await w.sendInput(chunk);
      }
    })();
    const acker = (async () => {
      for (let i = 0; i < 100000 && !w.eof; i++) {
        const threshold = rint(1, window / 2);
        await w.waitFor(
          () => w.end !== undefined || received - w.acked >= threshold,
          "output to acknowledge",
          20000,
        );
        if (received > w.acked) await w.ack(received);
        if (w.end !== undefined) {
          if (w.end.reason === "destination-closed" && received === OUT_TOTAL) {
            await w.closeWrite();
          }
          break;
        }
      }
    })();
    const dropper = (async () => {
      if (kind < 0) return;
      await w.waitFor(() => stop() || dropCond(), "the drop point", 30000);
      if (!stop()) {
        w.close();
        drops++;
        log.push(`#${attempt} drop kind ${kind} at out ${received} in ${next}`);
      }
    })();
    const results = await Promise.allSettled([dropper, acker, writer]);
    // A drop makes the writer and acker fail on the closed connection; anything else is a bug.
    const errors = results.filter((r) => r.status === "rejected").map((r) =>
      String((r as PromiseRejectedResult).reason)
    );
    if (!w.eof) await w.waitEof(10000);
    assert.deepEqual(w.violations, [], `attempt ${attempt}: ${w.describe()}`);
    confirmed = Math.max(confirmed, w.lastI);
    ackedMost = Math.max(ackedMost, w.acked);
    if (w.end !== undefined) {
      log.push(`#${attempt} E ${JSON.stringify(w.end)}`);
      assert.notEqual(w.end.reason, "protocol-error", `${w.describe()} ${log.join("\n")}`);
      if (w.end.reason === "destination-closed" && received === OUT_TOTAL) {
        finished = true;
        finalEnd = w.end;
      }
    } else {
      // No E: only acceptable when we dropped the connection ourselves.
      const dropped = log.at(-1)?.startsWith(`#${attempt} drop`) ?? false;
      assert.ok(dropped, `attempt ${attempt} failed: ${errors.join("; ")} ${w.describe()}`);
    }
  }
  assert.ok(finished, `did not finish; drops ${drops}\n${log.join("\n")}`);
  assert.ok(drops >= 20, `only ${drops} drops happened\n${log.join("\n")}`);
  assert.ok(destDone);
  await destDone;
  const d = await dest.conn(0);
  assert.equal(received, OUT_TOTAL);
  assert.equal(d.received.length, IN_TOTAL, "the destination got every input byte exactly once");
  assert.equal(mismatch(d.received.view(), 0, IN_SALT), -1, "input differs at the destination");
  if (finalEnd !== undefined) assert.deepEqual([finalEnd.in, finalEnd.sent], [IN_TOTAL, OUT_TOTAL]);
  console.log(`seed ${seed}: ${drops} drops`);
}
