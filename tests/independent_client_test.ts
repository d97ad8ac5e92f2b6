// Independent conformance tests for the socketproxy wire protocol, version 1.
//
// Written from /work/shared/PROTOCOL.md alone: the client, the line reader, the
// hello formatting, the reply parsing and the destination servers below are all
// local to this file and import nothing from the implementation under test.

import assert from "node:assert/strict";

const HOST = "127.0.0.1";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DEFAULT_TIMEOUT = 5000;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------
// Small utilities

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? enc.encode(data) : data;
}

/** Deterministic, non-periodic-looking output: byte at stream offset x. */
function pattern(offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const x = offset + i;
    b[i] = (x * 31 + Math.floor(x / 251) * 7) & 0xff;
  }
  return b;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A well-formed token ([A-Za-z0-9_-]) that nobody was given. */
function randomToken(length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let s = "";
  for (const b of bytes) s += alphabet[b & 63];
  return s;
}

// ---------------------------------------------------------------------------
// Protocol client

class Client implements Disposable {
  #conn: Deno.TcpConn;
  #buf: Uint8Array = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<Client> {
    return new Client(await Deno.connect({ hostname: HOST, port }));
  }

  async send(data: string | Uint8Array): Promise<void> {
    const b = toBytes(data);
    let off = 0;
    while (off < b.length) off += await this.#conn.write(b.subarray(off));
  }

  /** One read into the buffer. Returns false on EOF (or reset). */
  async #fill(deadline: number, what: string): Promise<boolean> {
    const ms = Math.max(1, deadline - Date.now());
    const chunk = new Uint8Array(65536);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, ms);
    try {
      const n = await this.#conn.read(chunk);
      if (n === null) return false;
      this.#buf = concat(this.#buf, chunk.subarray(0, n));
      return true;
    } catch (e) {
      if (timedOut) throw new Error(`timed out waiting for ${what}`);
      if (e instanceof Deno.errors.ConnectionReset) return false;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads one LF-terminated line; a CR right before the LF is dropped. */
  async readLine(ms = DEFAULT_TIMEOUT): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.#buf.indexOf(10);
      if (i >= 0) {
        let line = this.#buf.subarray(0, i);
        this.#buf = this.#buf.slice(i + 1);
        if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, -1);
        return dec.decode(line);
      }
      if (this.#buf.length > 4096) throw new Error("reply line longer than 4096 bytes");
      if (!(await this.#fill(deadline, "a reply line"))) {
        throw new Error(`EOF before a complete line; got ${JSON.stringify(dec.decode(this.#buf))}`);
      }
    }
  }

  async readExact(n: number, ms = DEFAULT_TIMEOUT): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    while (this.#buf.length < n) {
      if (!(await this.#fill(deadline, `${n} bytes (have ${this.#buf.length})`))) {
        throw new Error(`EOF after ${this.#buf.length} of ${n} expected bytes`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Reads everything until the server closes the connection. */
  async readToEnd(ms = DEFAULT_TIMEOUT): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    while (await this.#fill(deadline, "the server to close the connection")) {
      if (this.#buf.length > 64 * 1024 * 1024) throw new Error("runaway stream");
    }
    const out = this.#buf;
    this.#buf = new Uint8Array(0);
    return out;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// ---------------------------------------------------------------------------
// Replies

type OkReply = {
  kind: "OK";
  id: string;
  secret: string;
  inCount: number;
  from: number;
  pending: number;
  state: string;
};
type ErrReply = { kind: "ERR"; code: string; arg: string | undefined; line: string };
type ByeReply = { kind: "BYE"; id: string };
type Reply = OkReply | ErrReply | ByeReply;

function parseReply(line: string): Reply {
  assert.match(line, /^[\x20-\x7e]*$/, `reply is not printable ASCII: ${JSON.stringify(line)}`);
  const f = line.split(" ");
  switch (f[0]) {
    case "OK": {
      assert.equal(f.length, 7, `OK reply must have 7 fields: ${JSON.stringify(line)}`);
      const [, id = "", secret = "", inS = "", fromS = "", pendingS = "", state = ""] = f;
      for (const [name, v] of [["in", inS], ["from", fromS], ["pending", pendingS]]) {
        assert.match(v ?? "", DECIMAL, `OK field <${name}> not decimal: ${JSON.stringify(line)}`);
      }
      assert.ok(state === "open" || state === "closed", `bad <state> in ${JSON.stringify(line)}`);
      return {
        kind: "OK",
        id,
        secret,
        inCount: Number(inS),
        from: Number(fromS),
        pending: Number(pendingS),
        state,
      };
    }
    case "ERR":
      assert.ok(f.length >= 2 && (f[1] ?? "") !== "", `ERR without code: ${JSON.stringify(line)}`);
      return { kind: "ERR", code: f[1] ?? "", arg: f[2], line };
    case "BYE":
      assert.equal(f.length, 2, `BYE reply must be "BYE <id>": ${JSON.stringify(line)}`);
      return { kind: "BYE", id: f[1] ?? "" };
    default:
      throw new assert.AssertionError({ message: `unknown reply ${JSON.stringify(line)}` });
  }
}

function expectOk(line: string): OkReply {
  const r = parseReply(line);
  assert.equal(r.kind, "OK", `expected OK, got ${JSON.stringify(line)}`);
  return r as OkReply;
}

function expectErr(line: string, code: string): ErrReply {
  const r = parseReply(line);
  assert.equal(r.kind, "ERR", `expected ERR ${code}, got ${JSON.stringify(line)}`);
  assert.equal((r as ErrReply).code, code, `expected ERR ${code}, got ${JSON.stringify(line)}`);
  return r as ErrReply;
}

/** The server must close the connection after ERR / BYE, sending nothing more. */
async function expectClosedByServer(c: Client): Promise<void> {
  const rest = await c.readToEnd();
  assert.equal(
    rest.length,
    0,
    `unexpected bytes before close: ${JSON.stringify(dec.decode(rest))}`,
  );
}

// ---------------------------------------------------------------------------
// The proxy under test

class ProxyServer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  port = 0;
  readonly lines: string[] = [];
  #listeners = new Set<() => void>();
  #drain: Promise<void>;
  #ended = false;

  private constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.#drain = this.#drainLoop();
  }

  static async start(destPort: number, opts: string[] = []): Promise<ProxyServer> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        MAIN,
        "server",
        "--proxy=127.0.0.1:0",
        // Not the default localhost:9010: another server may hold it.
        "--admin=off",
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
      const line = await p.waitLog((l) => l.includes("server.listening"), 0, 20000);
      const m = /proxy=127\.0\.0\.1:(\d+)/.exec(line);
      assert.ok(m, `no proxy= field in ${line}`);
      p.port = Number(m[1]);
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
        this.#notify();
      }
    } finally {
      if (pending !== "") this.lines.push(pending);
      this.#ended = true;
      this.#notify();
    }
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  /** Index to pass to waitLog so that only lines logged from now on match. */
  mark(): number {
    return this.lines.length;
  }

  waitLog(pred: (line: string) => boolean, since = 0, ms = DEFAULT_TIMEOUT): Promise<string> {
    let listener = (): void => {};
    const p = new Promise<string>((resolve, reject) => {
      listener = () => {
        for (let i = since; i < this.lines.length; i++) {
          const l = this.lines[i];
          if (l !== undefined && pred(l)) return resolve(l);
        }
        if (this.#ended) reject(new Error(`server exited; log:\n${this.lines.join("\n")}`));
      };
      this.#listeners.add(listener);
      listener();
    });
    return withTimeout(p, ms, "a server log line").finally(() => this.#listeners.delete(listener));
  }

  /** Waits for `event` (e.g. "session.detached") about session `id`. */
  waitEvent(event: string, id: string, since: number, ms = DEFAULT_TIMEOUT): Promise<string> {
    return this.waitLog(
      (l) => {
        const f = l.split(" ");
        return f[2] === event && f.includes(`id=${id}`);
      },
      since,
      ms,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await this.child.status;
    await this.#drain;
  }
}

// ---------------------------------------------------------------------------
// Destination servers

/** Echoes every byte back on every connection. */
class EchoDest implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  readonly port: number;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #loop: Promise<void>;

  constructor() {
    this.listener = Deno.listen({ hostname: HOST, port: 0 });
    this.port = (this.listener.addr as Deno.NetAddr).port;
    this.#loop = this.#acceptLoop();
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const c of this.listener) {
        this.#conns.add(c);
        this.#tasks.add(this.#echo(c));
      }
    } catch {
      // listener closed
    }
  }

  async #echo(c: Deno.Conn): Promise<void> {
    const b = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await c.read(b);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await c.write(b.subarray(off, n));
      }
    } catch {
      // closed
    } finally {
      this.#conns.delete(c);
      try {
        c.close();
      } catch {
        // already closed
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    await this.#loop;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await Promise.all(this.#tasks);
  }
}

/** One accepted destination connection, driven by the test. */
class DestConn {
  readonly conn: Deno.Conn;
  received: Uint8Array = new Uint8Array(0);
  ended = false;
  readonly eof: Promise<void>;
  #listeners = new Set<() => void>();
  #writes = new Set<Promise<void>>();
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.eof = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const b = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.conn.read(b);
        if (n === null) break;
        this.received = concat(this.received, b.subarray(0, n));
        this.#notify();
      }
    } catch {
      // reset or closed locally
    } finally {
      this.ended = true;
      this.#notify();
    }
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  waitReceived(n: number, ms = DEFAULT_TIMEOUT): Promise<Uint8Array> {
    let listener = (): void => {};
    const p = new Promise<Uint8Array>((resolve, reject) => {
      listener = () => {
        if (this.received.length >= n) resolve(this.received);
        else if (this.ended) {
          reject(new Error(`destination EOF after ${this.received.length} bytes, wanted ${n}`));
        }
      };
      this.#listeners.add(listener);
      listener();
    });
    return withTimeout(p, ms, `destination to receive ${n} bytes`).finally(() =>
      this.#listeners.delete(listener)
    );
  }

  /** Resolves when the proxy closes its side of this connection. */
  waitEof(ms = DEFAULT_TIMEOUT): Promise<void> {
    return withTimeout(this.eof, ms, "the proxy to close the destination connection");
  }

  async write(data: string | Uint8Array): Promise<void> {
    const b = toBytes(data);
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  /** Starts writing without waiting (flow control may hold it back). */
  writeInBackground(data: string | Uint8Array): Promise<void> {
    const p = this.write(data);
    const tracked = p.catch(() => {});
    this.#writes.add(tracked);
    return p;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  async dispose(): Promise<void> {
    this.close();
    await this.eof;
    await Promise.all(this.#writes);
  }
}

/** Accepts connections and hands them to the test; writes on demand, records input. */
class DrivenDest implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  readonly port: number;
  readonly conns: DestConn[] = [];
  #listeners = new Set<() => void>();
  #loop: Promise<void>;

  constructor(port = 0) {
    this.listener = Deno.listen({ hostname: HOST, port });
    this.port = (this.listener.addr as Deno.NetAddr).port;
    this.#loop = this.#acceptLoop();
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const c of this.listener) {
        this.conns.push(new DestConn(c));
        for (const l of [...this.#listeners]) l();
      }
    } catch {
      // listener closed
    }
  }

  /** The index-th accepted connection (0-based), waiting for it if needed. */
  conn(index: number, ms = DEFAULT_TIMEOUT): Promise<DestConn> {
    let listener = (): void => {};
    const p = new Promise<DestConn>((resolve) => {
      listener = () => {
        const c = this.conns[index];
        if (c !== undefined) resolve(c);
      };
      this.#listeners.add(listener);
      listener();
    });
    return withTimeout(p, ms, `destination connection #${index}`).finally(() =>
      this.#listeners.delete(listener)
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

async function openNew(proxy: ProxyServer, extra = ""): Promise<{ c: Client; ok: OkReply }> {
  const c = await Client.connect(proxy.port);
  try {
    await c.send(`NEW\n${extra}`);
    return { c, ok: expectOk(await c.readLine()) };
  } catch (e) {
    c.close();
    throw e;
  }
}

function resumeLine(id: string, secret: string, ack?: number): string {
  return ack === undefined ? `RESUME ${id} ${secret}\n` : `RESUME ${id} ${secret} ${ack}\n`;
}

/** Opens a connection, sends `hello`, returns the client and its reply line. */
async function sendHello(proxy: ProxyServer, hello: string): Promise<{ c: Client; line: string }> {
  const c = await Client.connect(proxy.port);
  try {
    await c.send(hello);
    return { c, line: await c.readLine() };
  } catch (e) {
    c.close();
    throw e;
  }
}

/** Closes a client and waits until the server logs that it detached. */
async function detach(proxy: ProxyServer, c: Client, id: string): Promise<void> {
  const mark = proxy.mark();
  c.close();
  await proxy.waitEvent("session.detached", id, mark);
}

// ---------------------------------------------------------------------------
// Tests: NEW

Deno.test("NEW answers OK <id> <secret> 0 0 <pending> open with a well-formed id and secret", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const a = await openNew(proxy);
  using _a = a.c;
  const b = await openNew(proxy);
  using _b = b.c;
  for (const ok of [a.ok, b.ok]) {
    assert.match(ok.id, TOKEN);
    assert.ok(ok.id.length >= 1 && ok.id.length <= 64, `id length ${ok.id.length}`);
    assert.match(ok.secret, TOKEN);
    assert.ok(
      ok.secret.length >= 22 && ok.secret.length <= 64,
      `secret length ${ok.secret.length}`,
    );
    assert.equal(ok.inCount, 0);
    assert.equal(ok.from, 0);
    assert.equal(ok.pending, 0, "the destination has written nothing yet");
    assert.equal(ok.state, "open");
  }
  assert.notEqual(a.ok.id, b.ok.id, "two sessions must not share an id");
  assert.notEqual(a.ok.secret, b.ok.secret, "two sessions must not share a secret");
  await dest.conn(1);
});

Deno.test("a NEW session relays bytes both ways between client and destination", async () => {
  await using dest = new EchoDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c } = await openNew(proxy);
  using _c = c;
  await c.send("ping\n");
  assert.equal(dec.decode(await c.readExact(5)), "ping\n");
  await c.send("pong");
  assert.equal(dec.decode(await c.readExact(4)), "pong");
});

Deno.test("a CR right before the LF of the hello is ignored", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, line } = await sendHello(proxy, "NEW\r\n");
  using _c = c;
  const ok = expectOk(line);
  assert.equal(ok.state, "open");
  const { c: c2, line: line2 } = await sendHello(proxy, `RESUME ${ok.id} ${ok.secret} 0\r\n`);
  using _c2 = c2;
  assert.equal(expectOk(line2).id, ok.id);
});

Deno.test("bytes pipelined after the NEW line in the same write reach the destination", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const c = await Client.connect(proxy.port);
  using _c = c;
  await c.send("NEW\npipelined-input");
  expectOk(await c.readLine());
  const d = await dest.conn(0);
  assert.equal(dec.decode(await d.waitReceived(15)), "pipelined-input");
});

Deno.test("bytes pipelined after a RESUME line in the same write reach the destination", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await detach(proxy, c, ok.id);
  const c2 = await Client.connect(proxy.port);
  using _c2 = c2;
  await c2.send(`RESUME ${ok.id} ${ok.secret} 0\nafter-resume`);
  const ok2 = expectOk(await c2.readLine());
  assert.equal(ok2.id, ok.id);
  assert.equal(dec.decode(await d.waitReceived(12)), "after-resume");
});

// ---------------------------------------------------------------------------
// Tests: RESUME and delivery

Deno.test("RESUME without ack delivers only the output not yet sent to any client", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await d.write("first");
  assert.equal(dec.decode(await c.readExact(5)), "first");
  await detach(proxy, c, ok.id);
  await d.write("second");
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret));
  using _c2 = c2;
  const r = expectOk(line);
  assert.equal(r.id, ok.id);
  assert.equal(r.secret, ok.secret);
  assert.equal(r.inCount, 0);
  assert.equal(r.from, 5, "output not yet sent starts after the 5 bytes already sent");
  assert.ok(r.pending <= 6, `pending ${r.pending} exceeds the 6 unsent bytes`);
  assert.equal(r.state, "open");
  assert.equal(dec.decode(await c2.readExact(6)), "second");
});

Deno.test("RESUME with ack delivers output from ack, pending is exact and follows the reply at once", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await d.write("0123456789");
  assert.equal(dec.decode(await c.readExact(10)), "0123456789");
  await detach(proxy, c, ok.id);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret, 4));
  using _c2 = c2;
  const r = expectOk(line);
  assert.equal(r.id, ok.id);
  assert.equal(r.from, 4, "<from> equals <ack>");
  assert.equal(r.pending, 6, "all 10 bytes were read from the destination; 6 are after ack 4");
  assert.equal(r.state, "open");
  // The pending bytes must follow at once, without the client sending anything.
  assert.equal(dec.decode(await c2.readExact(r.pending, 2000)), "456789");
});

Deno.test("a polling client collects a long output stream exactly once and in order", async () => {
  const BUFFER = 16 * 1024;
  const TOTAL = 256 * 1024;
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port, ["--buffer=16k"]);
  // Exactly-once from the very first byte: NEW, close, then attach with ack 0.
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await detach(proxy, c, ok.id);
  const writer = d.writeInBackground(pattern(0, TOTAL));

  const collected = new Uint8Array(TOTAL);
  let ack = 0;
  let polls = 0;
  const MAX_POLLS = 20000;
  while (ack < TOTAL) {
    assert.ok(++polls <= MAX_POLLS, `no progress after ${MAX_POLLS} polls (ack=${ack})`);
    const p = await Client.connect(proxy.port);
    try {
      await p.send(resumeLine(ok.id, ok.secret, ack));
      const r = expectOk(await p.readLine());
      assert.equal(r.from, ack, "<from> equals <ack>");
      assert.equal(r.state, "open");
      assert.ok(r.pending <= BUFFER, `pending ${r.pending} exceeds --buffer ${BUFFER}`);
      assert.ok(ack + r.pending <= TOTAL, `pending ${r.pending} at ${ack} is beyond the output`);
      const bytes = await p.readExact(r.pending);
      collected.set(bytes, ack);
      ack += r.pending;
    } finally {
      p.close();
    }
  }
  await withTimeout(writer, DEFAULT_TIMEOUT, "the destination writer");
  assert.equal(ack, TOTAL);
  assert.deepEqual(collected, pattern(0, TOTAL), "output collected out of order or repeated");
});

Deno.test("output produced while detached is never dropped, even beyond --buffer", async () => {
  const TOTAL = 40000;
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port, ["--buffer=4k"]);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await detach(proxy, c, ok.id);
  const writer = d.writeInBackground(pattern(0, TOTAL));
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret));
  using _c2 = c2;
  const r = expectOk(line);
  assert.equal(r.from, 0, "nothing was sent to any client yet");
  assert.ok(r.pending <= 4096, `pending ${r.pending} exceeds --buffer`);
  assert.deepEqual(await c2.readExact(TOTAL), pattern(0, TOTAL));
  await withTimeout(writer, DEFAULT_TIMEOUT, "the destination writer");
});

Deno.test("<in> counts the input received so a client can resend exactly what follows it", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const message = enc.encode("hello, destination: the whole message");
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await c.send(message.subarray(0, 7));
  await d.waitReceived(7);
  await detach(proxy, c, ok.id);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret));
  using _c2 = c2;
  const r = expectOk(line);
  assert.equal(r.inCount, 7, "the server received 7 input bytes");
  await c2.send(message.subarray(r.inCount));
  assert.deepEqual(await d.waitReceived(message.length), message);
  const { c: c3, line: line3 } = await sendHello(proxy, resumeLine(ok.id, ok.secret));
  using _c3 = c3;
  assert.equal(expectOk(line3).inCount, message.length);
});

// ---------------------------------------------------------------------------
// Tests: CLOSE

Deno.test("CLOSE answers BYE <id> and closes both the client and the destination connection", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await detach(proxy, c, ok.id);
  const { c: c2, line } = await sendHello(proxy, `CLOSE ${ok.id} ${ok.secret}\n`);
  using _c2 = c2;
  assert.equal(line, `BYE ${ok.id}`);
  await expectClosedByServer(c2);
  await d.waitEof();
});

Deno.test("CLOSE also closes the client connection attached to the session", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  using _c = c;
  const d = await dest.conn(0);
  const { c: c2, line } = await sendHello(proxy, `CLOSE ${ok.id} ${ok.secret}\n`);
  using _c2 = c2;
  assert.equal(line, `BYE ${ok.id}`);
  await expectClosedByServer(c);
  await d.waitEof();
});

Deno.test("a session ended by CLOSE can no longer be resumed", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  c.close();
  const { c: c2, line } = await sendHello(proxy, `CLOSE ${ok.id} ${ok.secret}\n`);
  c2.close();
  assert.equal(line, `BYE ${ok.id}`);
  const { c: c3, line: line3 } = await sendHello(proxy, resumeLine(ok.id, ok.secret, 0));
  using _c3 = c3;
  expectErr(line3, "auth");
  await expectClosedByServer(c3);
});

// ---------------------------------------------------------------------------
// Tests: errors

Deno.test("RESUME with an unknown id is rejected with ERR auth", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, line } = await sendHello(proxy, resumeLine(randomToken(16), randomToken(32)));
  using _c = c;
  expectErr(line, "auth");
  await expectClosedByServer(c);
});

Deno.test("RESUME with a wrong secret is rejected with ERR auth", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  using _c = c;
  const wrong = randomToken(ok.secret.length);
  assert.notEqual(wrong, ok.secret);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, wrong, 0));
  using _c2 = c2;
  expectErr(line, "auth");
  await expectClosedByServer(c2);
});

Deno.test("an unknown session and a wrong secret get indistinguishable ERR auth replies", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  using _c = c;
  const wrong = randomToken(ok.secret.length);
  const { c: c2, line: wrongSecret } = await sendHello(proxy, resumeLine(ok.id, wrong, 0));
  c2.close();
  const unknownId = randomToken(ok.id.length);
  const { c: c3, line: unknown } = await sendHello(proxy, resumeLine(unknownId, wrong, 0));
  c3.close();
  expectErr(wrongSecret, "auth");
  expectErr(unknown, "auth");
  assert.equal(wrongSecret, unknown);
});

Deno.test("CLOSE with a wrong secret is rejected with ERR auth and the session stays open", async () => {
  await using dest = new EchoDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  using _c = c;
  const { c: c2, line } = await sendHello(proxy, `CLOSE ${ok.id} ${randomToken(32)}\n`);
  using _c2 = c2;
  expectErr(line, "auth");
  await expectClosedByServer(c2);
  await c.send("still here");
  assert.equal(dec.decode(await c.readExact(10)), "still here");
});

Deno.test("a hello with an unknown verb is rejected with ERR bad-request", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, line } = await sendHello(proxy, "HELLO there\n");
  using _c = c;
  expectErr(line, "bad-request");
  await expectClosedByServer(c);
});

Deno.test("a malformed RESUME hello (non-decimal ack) is rejected with ERR bad-request", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  using _c = c;
  const { c: c2, line } = await sendHello(proxy, `RESUME ${ok.id} ${ok.secret} ten\n`);
  using _c2 = c2;
  expectErr(line, "bad-request");
  await expectClosedByServer(c2);
});

Deno.test("a hello longer than 512 bytes including its LF is rejected with ERR bad-request", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const hello = `RESUME ${"a".repeat(513 - 10)} x\n`; // 513 bytes with the LF
  assert.equal(hello.length, 513);
  // Reply well before the default 10 s handshake timeout.
  const { c, line } = await sendHello(proxy, hello);
  using _c = c;
  expectErr(line, "bad-request");
  await expectClosedByServer(c);
});

Deno.test("more than 512 bytes without an LF are rejected with ERR bad-request, not a timeout", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const c = await Client.connect(proxy.port);
  using _c = c;
  await c.send("N".repeat(600));
  expectErr(await c.readLine(3000), "bad-request");
  await expectClosedByServer(c);
});

Deno.test("an incomplete hello is rejected with ERR timeout after the handshake timeout", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port, ["--handshake-timeout=300ms"]);
  const c = await Client.connect(proxy.port);
  using _c = c;
  const start = Date.now();
  await c.send("NE");
  expectErr(await c.readLine(3000), "timeout");
  assert.ok(Date.now() - start >= 250, "ERR timeout came before the handshake timeout");
  await expectClosedByServer(c);
  assert.equal(dest.conns.length, 0, "no destination connection for a timed-out hello");
});

Deno.test("NEW to a destination with nothing listening is rejected with ERR unreachable", async () => {
  const port = freePort();
  await using proxy = await ProxyServer.start(port);
  const { c, line } = await sendHello(proxy, "NEW\n");
  using _c = c;
  expectErr(line, "unreachable");
  await expectClosedByServer(c);
});

Deno.test("a NEW rejected with ERR unreachable leaves no session behind", async () => {
  const port = freePort();
  await using proxy = await ProxyServer.start(port, ["--max-sessions=1"]);
  const { c, line } = await sendHello(proxy, "NEW\n");
  c.close();
  expectErr(line, "unreachable");
  // Now make the destination reachable on that port: with one slot, NEW must succeed.
  await using dest = new DrivenDest(port);
  const { c: c2 } = await openNew(proxy);
  using _c2 = c2;
  await dest.conn(0);
});

Deno.test("NEW beyond --max-sessions is rejected with ERR busy", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port, ["--max-sessions=1"]);
  const { c } = await openNew(proxy);
  using _c = c;
  const { c: c2, line } = await sendHello(proxy, "NEW\n");
  using _c2 = c2;
  expectErr(line, "busy");
  await expectClosedByServer(c2);
});

Deno.test("a streaming client too far behind gets ERR gap <lowest> and can resume from lowest", async () => {
  const BUFFER = 4096;
  const TOTAL = 20000;
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port, ["--buffer=4k"]);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  const writer = d.writeInBackground(pattern(0, TOTAL));
  assert.deepEqual(await c.readExact(TOTAL), pattern(0, TOTAL));
  await withTimeout(writer, DEFAULT_TIMEOUT, "the destination writer");
  await detach(proxy, c, ok.id);

  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret, 0));
  using _c2 = c2;
  const err = expectErr(line, "gap");
  await expectClosedByServer(c2);
  assert.match(err.arg ?? "", DECIMAL, `ERR gap without a decimal <lowest>: ${line}`);
  const lowest = Number(err.arg);
  assert.ok(lowest > 0 && lowest < TOTAL, `lowest ${lowest} out of (0, ${TOTAL})`);
  assert.ok(TOTAL - lowest <= BUFFER, `retains ${TOTAL - lowest} bytes, more than --buffer`);

  const { c: c3, line: line3 } = await sendHello(proxy, resumeLine(ok.id, ok.secret, lowest));
  using _c3 = c3;
  const r = expectOk(line3);
  assert.equal(r.from, lowest);
  assert.equal(r.pending, TOTAL - lowest);
  assert.deepEqual(await c3.readExact(r.pending), pattern(lowest, TOTAL - lowest));
});

Deno.test("RESUME with an ack beyond what was ever sent is rejected with ERR ack <sent>", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await d.write("hello");
  assert.equal(dec.decode(await c.readExact(5)), "hello");
  await detach(proxy, c, ok.id);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret, 6));
  using _c2 = c2;
  const err = expectErr(line, "ack");
  assert.equal(err.arg, "5", `ERR ack must report the 5 bytes sent: ${line}`);
  await expectClosedByServer(c2);
  // The session is intact: resuming at what was sent works.
  const { c: c3, line: line3 } = await sendHello(proxy, resumeLine(ok.id, ok.secret, 5));
  using _c3 = c3;
  const r = expectOk(line3);
  assert.equal(r.from, 5);
  assert.equal(r.pending, 0);
});

// ---------------------------------------------------------------------------
// Tests: takeover, closed state, idle timeout

Deno.test("a second RESUME takes over the session and the server closes the first connection", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  using _c = c;
  const d = await dest.conn(0);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret));
  using _c2 = c2;
  expectOk(line);
  await expectClosedByServer(c);
  await d.write("to the newest");
  assert.equal(dec.decode(await c2.readExact(13)), "to the newest");
  await c2.send("from the newest");
  assert.equal(dec.decode(await d.waitReceived(15)), "from the newest");
});

Deno.test("after the destination closes, RESUME reports state closed, delivers the remaining output, then the server closes", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  await detach(proxy, c, ok.id);
  const mark = proxy.mark();
  await d.write("last words");
  d.close();
  await proxy.waitEvent("destination.closed", ok.id, mark);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret));
  using _c2 = c2;
  const r = expectOk(line);
  assert.equal(r.state, "closed");
  assert.equal(r.from, 0);
  assert.equal(r.pending, 10);
  assert.equal(dec.decode(await c2.readToEnd()), "last words");
});

Deno.test("an attached client gets the destination's last output and then the server closes the connection", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port);
  const { c } = await openNew(proxy);
  using _c = c;
  const d = await dest.conn(0);
  await d.write("goodbye");
  d.close();
  assert.equal(dec.decode(await c.readToEnd()), "goodbye");
});

Deno.test("a session detached longer than the idle timeout is closed and can no longer be resumed", async () => {
  await using dest = new DrivenDest();
  await using proxy = await ProxyServer.start(dest.port, ["--idle-timeout=300ms"]);
  const { c, ok } = await openNew(proxy);
  const d = await dest.conn(0);
  c.close();
  await d.waitEof(3000);
  const { c: c2, line } = await sendHello(proxy, resumeLine(ok.id, ok.secret, 0));
  using _c2 = c2;
  expectErr(line, "auth");
  await expectClosedByServer(c2);
});
