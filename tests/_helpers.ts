/**
 * Test helpers: a proxy server on a free loopback port, destinations the
 * test controls, a raw protocol client, captured logs and a seeded PRNG.
 *
 * @module
 */

import { closeQuietly, writeAll } from "../lib/_io.ts";
import { SERVER_DEFAULTS, type ServerConfig } from "../lib/proxy/config.ts";
import { Logger, type LogRecord } from "../lib/log.ts";
import { parseReply, type Reply } from "../lib/protocol.ts";
import { ProxyServer, type ProxyServerOptions } from "../lib/proxy/server.ts";
import { Service } from "../lib/admin/service.ts";

export const encoder = new TextEncoder();

/** How long a test waits for an event or a read before failing instead of hanging, in ms. */
export const WAIT_MS = 10_000;
export const decoder = new TextDecoder();

/** Every secret a test client was issued in this test run. */
export const issuedSecrets = new Set<string>();

/** Fails when any secret issued so far appears in `texts`. */
export function assertNoSecrets(texts: Iterable<string>, where: string): void {
  for (const text of texts) {
    for (const secret of issuedSecrets) {
      if (text.includes(secret)) throw new Error(`a session secret appears in ${where}: ${text}`);
    }
  }
}

/** A wait for the first item (a log record, a line) that matches. */
interface Waiter<T> {
  match: (item: T) => boolean;
  resolve: (item: T) => void;
}

/** Resolves the waiters that `item` matches; returns the others, still waiting. */
function resolveMatching<T>(waiters: Waiter<T>[], item: T): Waiter<T>[] {
  return waiters.filter((waiter) => {
    if (!waiter.match(item)) return true;
    waiter.resolve(item);
    return false;
  });
}

/** Log records kept in memory, with a way to wait for one. */
export class LogCapture {
  readonly records: LogRecord[] = [];
  readonly lines: string[] = [];
  #waiters: Waiter<LogRecord>[] = [];
  readonly logger: Logger;

  constructor() {
    this.logger = new Logger({
      level: "debug",
      sink: (line, record) => {
        this.lines.push(line);
        this.records.push(record);
        if (Deno.env.get("TEST_LOG")) console.error(line);
        this.#waiters = resolveMatching(this.#waiters, record);
      },
    });
  }

  /** Resolves with the first record (past or future) of `event` that matches; fails after 10 s. */
  waitFor(
    event: string,
    match: (fields: LogRecord["fields"]) => boolean = () => true,
  ): Promise<LogRecord> {
    const test = (record: LogRecord): boolean => record.event === event && match(record.fields);
    const seen = this.records.find(test);
    if (seen) return Promise.resolve(seen);
    const { promise, resolve } = Promise.withResolvers<LogRecord>();
    const waiter = { match: test, resolve };
    this.#waiters.push(waiter);
    return withDeadline(promise, WAIT_MS, `log event ${event}`).finally(() => {
      this.#waiters = this.#waiters.filter((other) => other !== waiter);
    });
  }

  /** Records of `event` so far. */
  events(event: string): LogRecord[] {
    return this.records.filter((record) => record.event === event);
  }
}

/** A destination server whose connections the test drives directly. */
export class Destination implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  readonly conns: Deno.TcpConn[] = [];
  #queue: Deno.TcpConn[] = [];
  #waiting: ((conn: Deno.TcpConn) => void)[] = [];
  readonly #loop: Promise<void>;

  constructor(onConnection?: (conn: Deno.TcpConn) => void) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.listener = listener;
    this.#loop = (async () => {
      try {
        for await (const conn of listener) {
          this.conns.push(conn);
          if (onConnection) onConnection(conn);
          else {
            const waiter = this.#waiting.shift();
            if (waiter) waiter(conn);
            else this.#queue.push(conn);
          }
        }
      } catch {
        // Listener closed.
      }
    })();
  }

  get port(): number {
    return this.listener.addr.port;
  }

  /** The next connection the proxy makes. */
  accepted(): Promise<Deno.TcpConn> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    const { promise, resolve } = Promise.withResolvers<Deno.TcpConn>();
    this.#waiting.push(resolve);
    return promise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    for (const conn of this.conns) closeQuietly(conn);
    await this.#loop;
  }
}

/** An echo destination: every byte received is sent back. */
export function echoDestination(): Destination & { settled(): Promise<void> } {
  const tasks: Promise<void>[] = [];
  const destination = new Destination((conn) => {
    tasks.push((async () => {
      const buffer = new Uint8Array(65536);
      try {
        while (true) {
          const count = await conn.read(buffer);
          if (count === null) break;
          await writeAll(conn, buffer.subarray(0, count));
        }
      } catch {
        // Closed by the proxy or the test.
      }
      closeQuietly(conn);
    })());
  });
  return Object.assign(destination, {
    async settled() {
      await Promise.all(tasks);
    },
  });
}

/** A proxy server for tests, with captured logs. */
export interface TestServer extends AsyncDisposable {
  server: ProxyServer;
  logs: LogCapture;
  port: number;
}

/** Starts a proxy server on 127.0.0.1 port 0 in front of `destinationPort`. */
export function startServer(
  destinationPort: number,
  overrides:
    & Partial<Omit<ServerConfig, "destination">>
    & Pick<ProxyServerOptions, "connect" | "throttle" | "tls" | "memoryReducer"> = {},
): TestServer {
  const logs = new LogCapture();
  const server = ProxyServer.listen({
    ...SERVER_DEFAULTS,
    proxy: { hostname: "127.0.0.1", port: 0 },
    destination: { hostname: "127.0.0.1", port: destinationPort },
    ...overrides,
    logger: logs.logger,
  });
  return {
    server,
    logs,
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await server.close();
      assertNoSecrets(logs.lines, "the server log");
    },
  };
}

/** A whole service (proxy and admin API) for tests, with captured logs. */
export interface TestService extends AsyncDisposable {
  service: Service;
  logs: LogCapture;
  /** The proxy port. */
  port: number;
  /** The admin API's base URL. */
  admin: string;
}

/** Starts a service on 127.0.0.1 ports 0 in front of `destinationPort`. */
export async function startService(
  destinationPort: number,
  overrides: Partial<Omit<ServerConfig, "destination">> & Pick<ProxyServerOptions, "connect"> = {},
): Promise<TestService> {
  const logs = new LogCapture();
  const { connect, ...config } = overrides;
  const service = await Service.start({
    ...SERVER_DEFAULTS,
    proxy: { hostname: "127.0.0.1", port: 0 },
    admin: { hostname: "127.0.0.1", port: 0 },
    destination: { hostname: "127.0.0.1", port: destinationPort },
    ...config,
  }, { logger: logs.logger, ...(connect ? { connect } : {}) });
  const admin = service.admin?.addr;
  return {
    service,
    logs,
    port: service.proxy.addr.port,
    admin: admin ? `http://${admin.hostname}:${admin.port}` : "",
    async [Symbol.asyncDispose]() {
      await service.stop();
      assertNoSecrets(logs.lines, "the server log");
    },
  };
}

/** A raw protocol client with buffered reads. */
export class TestClient implements Disposable {
  readonly conn: Deno.TcpConn;
  #buffer = new Uint8Array(65536);
  #start = 0;
  #end = 0;
  #closed = false;

  /** Wraps a connection, such as a destination's end of a session. */
  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async connect(port: number): Promise<TestClient> {
    return new TestClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  get buffered(): number {
    return this.#end - this.#start;
  }

  async write(data: string | Uint8Array): Promise<void> {
    await writeAll(this.conn, typeof data === "string" ? encoder.encode(data) : data);
  }

  /** Reads more into the buffer; false at EOF. */
  async #fill(): Promise<boolean> {
    if (this.#buffer.length - this.#end < 16384) {
      const live = this.#buffer.subarray(this.#start, this.#end);
      const next = live.length * 2 + 16384 > this.#buffer.length
        ? new Uint8Array(this.#buffer.length * 2)
        : this.#buffer;
      next.set(live);
      this.#buffer = next;
      this.#end = live.length;
      this.#start = 0;
    }
    const count = await withDeadline(
      this.conn.read(this.#buffer.subarray(this.#end)),
      WAIT_MS,
      "data",
    )
      .catch((error) => {
        this.close(); // a read left pending would leak past the test
        throw error;
      });
    if (count === null) return false;
    this.#end += count;
    return true;
  }

  #take(count: number): Uint8Array {
    const bytes = this.#buffer.slice(this.#start, this.#start + count);
    this.#start += count;
    return bytes;
  }

  /** Reads one line without its LF; throws at EOF before a LF. */
  async readLine(): Promise<string> {
    while (true) {
      const lf = this.#buffer.subarray(this.#start, this.#end).indexOf(10);
      if (lf >= 0) {
        const line = decoder.decode(this.#take(lf));
        this.#start++;
        return line;
      }
      if (!await this.#fill()) {
        throw new Error(`EOF before a line; got "${decoder.decode(this.#take(this.buffered))}"`);
      }
    }
  }

  /** Reads exactly `count` bytes; throws at EOF before that. */
  async readExactly(count: number): Promise<Uint8Array> {
    while (this.buffered < count) {
      if (!await this.#fill()) throw new Error(`EOF after ${this.buffered} of ${count} bytes`);
    }
    return this.#take(count);
  }

  /** Reads up to `max` bytes that are available or arrive next; null at EOF. */
  async readSome(max = Infinity): Promise<Uint8Array | null> {
    if (this.buffered === 0 && !await this.#fill()) return null;
    return this.#take(Math.min(max, this.buffered));
  }

  /** Reads until the server closes; returns everything read. */
  async readToEnd(): Promise<Uint8Array> {
    while (await this.#fill());
    return this.#take(this.buffered);
  }

  /** Sends a hello and reads the reply line, parsed. */
  async hello(line: string): Promise<Reply> {
    await this.write(line + "\n");
    const reply = parseReply(await this.readLine());
    if ("bye" in reply) throw new Error(`unexpected BYE`);
    issuedSecrets.add(reply.secret);
    return reply;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.conn);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A seeded pseudo-random generator (mulberry32): reproducible test inputs. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` pseudo-random bytes from `seed`. */
export function randomBytes(length: number, seed: number): Uint8Array {
  const random = prng(seed);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (random() * 256) | 0;
  return bytes;
}

/** Compares byte arrays, reporting the first difference. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}

/** One poll: attach with `ack`, read exactly the pending bytes, leave. */
export async function poll(
  port: number,
  session: { id: string; secret: string },
  ack: number,
): Promise<{ reply: Reply; data: Uint8Array }> {
  using client = await TestClient.connect(port);
  const reply = await client.hello(`RESUME ${session.id} ${session.secret} ${ack}`);
  return { reply, data: await client.readExactly(reply.pending) };
}

/** Polls with the same `ack` until `pending` reaches `count`; bounded. */
export async function pollUntilPending(
  port: number,
  session: { id: string; secret: string },
  ack: number,
  count: number,
): Promise<{ reply: Reply; data: Uint8Array }> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    const result = await poll(port, session, ack);
    if (result.reply.pending >= count) return result;
  }
  throw new Error(`pending never reached ${count}`);
}

/**
 * Whether `program` runs and succeeds with `args` (a harmless way to run
 * it, such as a version flag): how a test that needs an installed tool
 * knows whether to run. For a program that is not installed,
 * `Deno.Command.output()` throws at once rather than rejecting, so a
 * `.catch` on its promise would not catch it.
 */
export async function installed(program: string, args: string[]): Promise<boolean> {
  try {
    const command = new Deno.Command(program, { args, stdout: "null", stderr: "null" });
    return (await command.output()).success;
  } catch {
    return false;
  }
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The permissions `deno task start` grants. */
export const RUN_PERMISSIONS = [
  "--allow-net",
  "--allow-env=SOCKETPROXY_*",
  "--allow-read",
];

/** Runs `main.ts` with arguments to completion, by default with {@linkcode RUN_PERMISSIONS}. */
export async function runMain(
  args: string[],
  options: { permissions?: string[]; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...options.permissions ?? RUN_PERMISSIONS, MAIN, ...args],
    ...(options.env ? { env: options.env } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * A `main.ts server` (or, with `command`, `main.ts web`) running as a child
 * process, its stderr read line by line.
 */
export class ServerProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly port: Promise<number>;
  /** The admin port, or 0 when the log says it is off. */
  readonly adminPort: Promise<number>;
  readonly #reading: Promise<void>;
  #waiters: Waiter<string>[] = [];

  constructor(args: string[], command: "server" | "web" = "server") {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_PERMISSIONS, MAIN, command, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const listening = this.waitFor((line) => line.includes(`${command}.listening`));
    // The server's proxy port, or the gateway's own.
    const portField = command === "server" ? "proxy" : "listen";
    this.port = listening.then((line) => {
      const match = new RegExp(`\\b${portField}[=":]+\\S+?:(\\d+)`).exec(line);
      if (!match) throw new Error(`no port in "${line}"`);
      return Number(match[1]);
    });
    this.adminPort = listening.then((line) =>
      Number(/\badmin[=":]+\S+?:(\d+)/.exec(line)?.[1] ?? 0)
    );
    this.port.catch(() => {});
    this.adminPort.catch(() => {});
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    let partial = "";
    for await (const text of this.child.stderr.pipeThrough(new TextDecoderStream())) {
      partial += text;
      let lf;
      while ((lf = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, lf);
        partial = partial.slice(lf + 1);
        this.lines.push(line);
        if (Deno.env.get("TEST_LOG")) console.error(line);
        this.#waiters = resolveMatching(this.#waiters, line);
      }
    }
    if (partial) this.lines.push(partial);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve("");
  }

  /** Resolves with the first line (past or future) that matches; "" at EOF. */
  waitFor(match: (line: string) => boolean): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    const { promise, resolve } = Promise.withResolvers<string>();
    this.#waiters.push({ match, resolve });
    return promise;
  }

  /** Sends a signal and waits for the exit status and the last log line. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await this.child.status;
    await this.#reading;
    assertNoSecrets(this.lines, "the server log");
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Rejects if `promise` has not settled within `ms`: a failing test must not hang. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
