/**
 * The benchmark workloads: each sets up what it measures (a server
 * process, destinations, clients) in this process or in children, runs
 * for a bounded count or time, and returns figures. Nothing here is a
 * test: timing is what is being measured.
 *
 * @module
 */

import { ClientSession } from "../lib/client/mod.ts";
import { parseReply } from "../lib/protocol.ts";
import { writeAll } from "../lib/_io.ts";

export const encoder = new TextEncoder();
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Percentile of sorted samples (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** A port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Resolves once something accepts connections on `port` (10 s at most). */
export async function waitForPort(port: number, what: string): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  throw new Error(`${what} did not start listening on ${port}`);
}

/** A child process: the proxy server, the gateway, or socat. */
export class Child implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly #stderr: Promise<string>;

  constructor(command: string, args: string[]) {
    this.process = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#stderr = new Response(this.process.stderr).text();
  }

  /** Resident memory of the process now, in bytes (Linux). */
  rss(): number {
    const status = Deno.readTextFileSync(`/proc/${this.process.pid}/status`);
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.process.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await this.process.status;
    await this.#stderr;
  }
}

/**
 * Starts `command` with `args` and waits until it listens on `port`; one
 * that never does is stopped before the error is thrown, not left running.
 */
export async function startListening(
  command: string,
  args: string[],
  port: number,
  what: string,
): Promise<Child & { port: number }> {
  const child = new Child(command, args);
  try {
    await waitForPort(port, what);
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
  return Object.assign(child, { port });
}

/** Starts `main.ts server` on a free port in front of `destinationPort`. */
export async function startServer(
  destinationPort: number,
  extra: string[] = [],
): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(
    Deno.execPath(),
    [
      "run",
      "--allow-net",
      MAIN,
      "server",
      `--proxy=127.0.0.1:${port}`,
      "--admin=off",
      "--log-level=warn",
      "--max-sessions=50000",
      ...extra,
      `127.0.0.1:${destinationPort}`,
    ],
    port,
    "the server",
  );
}

/** Starts `main.ts web` on a free port in front of the proxy on `proxyPort`. */
export async function startGateway(proxyPort: number): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(
    Deno.execPath(),
    [
      "run",
      "--allow-net",
      MAIN,
      "web",
      `--listen=127.0.0.1:${port}`,
      `--proxy=127.0.0.1:${proxyPort}`,
      "--log-level=warn",
    ],
    port,
    "the gateway",
  );
}

/** `socat -b 131072` relaying a free port to `destinationPort`. */
export async function startSocat(destinationPort: number): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(
    "socat",
    [
      "-b",
      "131072",
      `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`,
      `TCP:127.0.0.1:${destinationPort}`,
    ],
    port,
    "socat",
  );
}

/** bench/onread_relay.mjs: a `node:net` relay reading into reused buffers. */
export const ONREAD_RELAY = new URL("./onread_relay.mjs", import.meta.url).pathname;

/**
 * A relay program in this directory (`file`), run by Node or by Deno,
 * relaying a free port to `destinationPort`.
 */
export async function startRelayProgram(
  runtime: "node" | "deno",
  file: string,
  destinationPort: number,
  name: string,
): Promise<Child & { port: number }> {
  const port = freePort();
  const ports = [String(port), String(destinationPort)];
  return await (runtime === "node"
    ? startListening("node", [file, ...ports], port, name)
    : startListening(Deno.execPath(), ["run", "--allow-net", file, ...ports], port, name));
}

/** A destination in this process: each connection is handed to `onConnection`. */
export class Destination implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  readonly conns = new Set<Deno.Conn>();
  readonly #loop: Promise<void>;

  constructor(onConnection: (conn: Deno.TcpConn) => Promise<void>) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.listener = listener;
    this.#loop = (async () => {
      try {
        for await (const conn of listener) {
          this.conns.add(conn);
          onConnection(conn).catch(() => {}).finally(() => {
            this.conns.delete(conn);
            try {
              conn.close();
            } catch {
              // Closed already.
            }
          });
        }
      } catch {
        // Closed.
      }
    })();
  }

  get port(): number {
    return this.listener.addr.port;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await this.#loop;
  }
}

/** Echoes everything back. */
export async function echo(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const count = await conn.read(buffer);
    if (count === null) return;
    await writeAll(conn, buffer.subarray(0, count));
  }
}

/** A raw client connection that has sent its hello and read its reply. */
export async function attach(
  port: number,
  hello: string,
): Promise<{ conn: Deno.TcpConn; early: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  await writeAll(conn, encoder.encode(hello));
  const buffer = new Uint8Array(512);
  let filled = 0;
  while (true) {
    const count = await conn.read(buffer.subarray(filled));
    if (count === null) throw new Error("closed before the reply");
    filled += count;
    const lf = buffer.subarray(0, filled).indexOf(10);
    if (lf >= 0) {
      const reply = parseReply(String.fromCharCode(...buffer.subarray(0, lf)));
      if ("bye" in reply) throw new Error("unexpected BYE");
      return { conn, early: filled - lf - 1 };
    }
  }
}

/** Throughput of one direction of one connection, MB/s (1 MB = 10^6 bytes). */
export interface Throughput {
  /** Output: destination to client. */
  output: number;
  /** Input: client to destination. */
  input: number;
  /** The relay process's CPU time per byte of output, ns (median of the runs); NaN for none. */
  outputCpuNs: number;
  /** The same for input. */
  inputCpuNs: number;
}

const CHUNK = 128 * 1024;

/** What sits between the client and the destination. */
export type Path = "direct" | "socketproxy" | "socat" | "onread";

/** Starts the relay of `path` in front of `destinationPort`; `null` for a direct connection. */
async function startRelay(
  path: Path,
  destinationPort: number,
): Promise<(Child & { port: number }) | null> {
  if (path === "direct") return null;
  if (path === "socat") return await startSocat(destinationPort);
  if (path === "onread") {
    return await startRelayProgram("deno", ONREAD_RELAY, destinationPort, "node:net onread relay");
  }
  return await startServer(destinationPort, ["--buffer=4m"]);
}

/**
 * Moves `bytes` one way between a client and a destination, over `path`;
 * returns MB/s, and the relay process's CPU time per byte (NaN for none).
 */
async function oneWay(
  path: Path,
  direction: "output" | "input",
  bytes: number,
): Promise<{ rate: number; cpuNsPerByte: number }> {
  const received = Promise.withResolvers<void>();
  const payload = new Uint8Array(CHUNK).fill(120);
  // The destination: a source for output, a sink for input.
  await using destination = new Destination(async (conn) => {
    if (direction === "output") {
      for (let sent = 0; sent < bytes; sent += CHUNK) await writeAll(conn, payload);
      return;
    }
    const buffer = new Uint8Array(CHUNK);
    for (let got = 0; got < bytes;) {
      const count = await conn.read(buffer);
      if (count === null) break;
      got += count;
    }
    received.resolve();
  });
  await using relay = await startRelay(path, destination.port) ?? null;
  const port = relay?.port ?? destination.port;
  // socat's child for this connection is counted while it lives: the last reading is taken before the close.
  const relayCpu = relay ? cpuNs(relay.process.pid, true) : NaN;
  const started = performance.now();
  const { conn, early } = path === "socketproxy"
    ? await attach(port, "NEW\n")
    : { conn: await Deno.connect({ hostname: "127.0.0.1", port }), early: 0 };
  try {
    if (direction === "output") {
      const buffer = new Uint8Array(CHUNK);
      for (let got = early; got < bytes;) {
        const count = await conn.read(buffer);
        if (count === null) throw new Error("output ended early");
        got += count;
      }
    } else {
      for (let sent = 0; sent < bytes; sent += CHUNK) await writeAll(conn, payload);
      await received.promise;
    }
    const rate = bytes / 1e6 / ((performance.now() - started) / 1000);
    const relayCpuNow = relay ? cpuNs(relay.process.pid, true) : NaN;
    return { rate, cpuNsPerByte: (relayCpuNow - relayCpu) / bytes };
  } finally {
    conn.close();
  }
}

/** Whether `command` runs and succeeds with `args` (a harmless way to run it, such as a version flag). */
export async function haveCommand(command: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

/** Whether socat is installed. */
export function haveSocat(): Promise<boolean> {
  return haveCommand("socat", ["-V"]);
}

/** Whether `python3` is installed, for bench/asyncio_proxy.py. */
export function havePython(): Promise<boolean> {
  return haveCommand("python3", ["--version"]);
}

/**
 * Starts bench/asyncio_proxy.py (protocol version 1 in Python asyncio, the
 * peer for the cost of a poll and of a session) on a free port in front of
 * `destinationPort`, expiring detached sessions after `idleSeconds`.
 */
export async function startAsyncioProxy(
  destinationPort: number,
  idleSeconds = 60,
): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(
    "python3",
    [
      new URL("./asyncio_proxy.py", import.meta.url).pathname,
      String(port),
      String(destinationPort),
      String(idleSeconds),
    ],
    port,
    "bench/asyncio_proxy.py",
  );
}

/**
 * Relay throughput over each of `paths`, each direction, in MB/s: the runs
 * are interleaved (one of each path in turn) so that all paths meet the
 * same machine, and the best of `runs` is kept.
 */
export async function throughput(
  paths: Path[],
  bytes: number,
  runs: number,
): Promise<Record<Path, Throughput>> {
  const best = {} as Record<Path, Throughput>;
  const cpu = {} as Record<Path, { output: number[]; input: number[] }>;
  for (const path of paths) {
    best[path] = { output: 0, input: 0, outputCpuNs: NaN, inputCpuNs: NaN };
    cpu[path] = { output: [], input: [] };
  }
  for (let run = 0; run < runs; run++) {
    for (const direction of ["output", "input"] as const) {
      for (const path of paths) {
        const { rate, cpuNsPerByte } = await oneWay(path, direction, bytes);
        best[path][direction] = Math.max(best[path][direction], rate);
        cpu[path][direction].push(cpuNsPerByte);
      }
    }
  }
  for (const path of paths) {
    best[path].outputCpuNs = median(cpu[path].output.filter(Number.isFinite));
    best[path].inputCpuNs = median(cpu[path].input.filter(Number.isFinite));
  }
  return best;
}

/**
 * CPU time of process `pid` (`"self"` for this one) so far, in ns: the sum
 * over its threads of `/proc/<pid>/task/<tid>/schedstat`'s time on a CPU
 * (exact to the ns, where `stat`'s times count 10 ms ticks); `NaN` without
 * `/proc`. A thread that ends between two readings takes its time with it.
 *
 * @param withChildren Add the time of its child processes alive now (and
 *   theirs): `socat` relays each connection in a process of its own.
 */
export function cpuNs(pid: number | "self", withChildren = false): number {
  try {
    let total = 0;
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(
          Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/schedstat`).split(" ")[0],
        );
      } catch {
        // The thread has ended.
      }
    }
    if (withChildren && typeof pid === "number") {
      for (const child of childProcesses(pid)) {
        // One that has ended meanwhile took its time with it.
        const time = cpuNs(child, true);
        if (Number.isFinite(time)) total += time;
      }
    }
    return total;
  } catch {
    return NaN;
  }
}

/** The processes whose parent is `pid` (from each `/proc/<pid>/stat`'s fourth field). */
function childProcesses(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const parent = Number(statFields(Number(entry.name))[1]);
      if (parent === pid) children.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/** Poll cycles: rate and latency of one cycle. */
export interface PollFigures {
  clients: number;
  cyclesPerSecond: number;
  p50ms: number;
  p99ms: number;
  /** The server's user + system CPU time per cycle, in µs; NaN when not measured. */
  cpuUsPerPoll: number;
}

/** The fields of `/proc/<pid>/stat` after the command name (in parentheses, spaces allowed): state, ppid, ... */
function statFields(pid: number): string[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU time a process has used so far, in seconds (Linux, /proc). */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return ticks / 100; // USER_HZ, 100 on Linux
}

/**
 * K clients, each with its own session on an echo destination, each doing
 * connect, `RESUME id secret ack` with 16 bytes of input, read the pending
 * output (the previous cycle's echo), close, in a loop.
 */
export async function pollCycles(
  serverPort: number,
  clients: number,
  seconds: number,
  serverPid?: number,
): Promise<PollFigures> {
  const sessions = await Promise.all(
    Array.from(
      { length: clients },
      () => ClientSession.create({ proxy: { hostname: "127.0.0.1", port: serverPort } }),
    ),
  );
  const binary = await loadgen();
  if (binary) {
    const cpuBefore = serverPid === undefined ? NaN : cpuSeconds(serverPid);
    const figures = await runLoadgen(binary, "poll", serverPort, seconds, sessions);
    const cpu = serverPid === undefined ? NaN : cpuSeconds(serverPid) - cpuBefore;
    await Promise.all(sessions.map((session) => session.close().catch(() => {})));
    return {
      clients,
      cyclesPerSecond: figures.count / figures.seconds,
      p50ms: figures.p50_ms,
      p99ms: figures.p99_ms,
      cpuUsPerPoll: cpu / figures.count * 1e6,
    };
  }
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const input = encoder.encode("0123456789abcdef");
  await Promise.all(sessions.map(async (session) => {
    const reply = new Uint8Array(512);
    let ack = 0;
    while (performance.now() < deadline) {
      const started = performance.now();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serverPort });
      conn.setNoDelay(true);
      const hello = encoder.encode(`RESUME ${session.id} ${session.secret} ${ack}\n`);
      const message = new Uint8Array(hello.length + input.length);
      message.set(hello);
      message.set(input, hello.length);
      await writeAll(conn, message);
      // Reply line, then exactly the pending bytes.
      let filled = 0;
      let lf = -1;
      while (lf < 0) {
        const count = await conn.read(reply.subarray(filled));
        if (count === null) throw new Error("closed before the reply");
        filled += count;
        lf = reply.subarray(0, filled).indexOf(10);
      }
      const fields = String.fromCharCode(...reply.subarray(0, lf)).split(" ");
      const pending = Number(fields[5]);
      let got = filled - lf - 1;
      while (got < pending) {
        const count = await conn.read(reply);
        if (count === null) break;
        got += count;
      }
      ack += Math.min(got, pending);
      conn.close();
      latencies.push(performance.now() - started);
    }
  }));
  await Promise.all(sessions.map((session) => session.close().catch(() => {})));
  latencies.sort((a, b) => a - b);
  return {
    clients,
    cyclesPerSecond: latencies.length / seconds,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    cpuUsPerPoll: NaN,
  };
}

/**
 * Resume latency: from connect to the first output byte of a detached
 * session's pending output (1 KiB, resumed from the same ack each time).
 */
export async function resumeLatency(
  serverPort: number,
  destination: Destination & { ready: Promise<void> },
  samples: number,
): Promise<{ p50ms: number; p99ms: number }> {
  const session = await ClientSession.create({
    proxy: { hostname: "127.0.0.1", port: serverPort },
  });
  await destination.ready;
  // Wait until the 1 KiB is pending.
  for (let attempt = 0; attempt < 1000; attempt++) {
    const { conn, early } = await attach(serverPort, `RESUME ${session.id} ${session.secret} 0\n`);
    conn.close();
    if (early > 0) break;
  }
  const latencies: number[] = [];
  const byte = new Uint8Array(1024 + 512);
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: serverPort });
    conn.setNoDelay(true);
    await writeAll(conn, encoder.encode(`RESUME ${session.id} ${session.secret} 0\n`));
    let filled = 0;
    while (true) {
      const count = await conn.read(byte.subarray(filled));
      if (count === null) throw new Error("closed");
      filled += count;
      const lf = byte.subarray(0, filled).indexOf(10);
      if (lf >= 0 && filled > lf + 1) break;
    }
    latencies.push(performance.now() - started);
    conn.close();
  }
  await session.close();
  latencies.sort((a, b) => a - b);
  return { p50ms: percentile(latencies, 50), p99ms: percentile(latencies, 99) };
}

/** Scale figures. */
export interface ScaleFigures {
  sessions: number;
  createSeconds: number;
  rssPerSessionKiB: number;
  attached: number;
  echoMessagesPerSecond: number;
  echoMBps: number;
  echoP50ms: number;
  echoP99ms: number;
}

/**
 * Creates `count` detached sessions (each with its destination connection)
 * and measures the server's memory per session; then keeps `attached` of
 * them attached, each echoing 64-byte messages, for `seconds`.
 */
export async function scale(
  count: number,
  attached: number,
  seconds: number,
): Promise<ScaleFigures> {
  const binary = await loadgen();
  await using destination = binary
    ? await startLoadgenServer(binary, "echod")
    : new Destination(echo);
  await using server = await startServer(destination.port);
  const proxy = { hostname: "127.0.0.1", port: server.port };
  // Warm up allocators and JIT before the baseline.
  await Promise.all(
    Array.from({ length: 50 }, () => ClientSession.create({ proxy }).then((s) => s.close())),
  );
  const before = server.rss();
  const started = performance.now();
  const sessions: ClientSession[] = [];
  const concurrency = 64;
  for (let i = 0; i < count; i += concurrency) {
    const batch = Math.min(concurrency, count - i);
    sessions.push(
      ...await Promise.all(Array.from({ length: batch }, () => ClientSession.create({ proxy }))),
    );
  }
  const createSeconds = (performance.now() - started) / 1000;
  // Let the detaches settle before reading memory.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = server.rss();
  const echoing = sessions.slice(0, attached);
  const figures = binary
    ? await runLoadgen(binary, "echo", server.port, seconds, echoing)
    : await echoInDeno(server.port, echoing, seconds);
  return {
    sessions: count,
    createSeconds,
    rssPerSessionKiB: (after - before) / count / 1024,
    attached,
    echoMessagesPerSecond: figures.count / figures.seconds,
    echoMBps: (figures.count * 64 * 2) / 1e6 / figures.seconds,
    echoP50ms: figures.p50_ms,
    echoP99ms: figures.p99_ms,
  };
}

/** Attached clients echoing 64-byte messages, generated in this process (no C compiler). */
async function echoInDeno(
  port: number,
  sessions: { id: string; secret: string }[],
  seconds: number,
): Promise<LoadFigures> {
  const message = new Uint8Array(64).fill(97);
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const conns = await Promise.all(
    sessions.map((session) => attach(port, `RESUME ${session.id} ${session.secret}\n`)),
  );
  await Promise.all(conns.map(async ({ conn }) => {
    const buffer = new Uint8Array(256);
    while (performance.now() < deadline) {
      const sent = performance.now();
      await writeAll(conn, message);
      for (let got = 0; got < message.length;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        got += n;
      }
      latencies.push(performance.now() - sent);
    }
  }));
  for (const { conn } of conns) conn.close();
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    seconds,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
  };
}

/** Gateway figures. */
export interface GatewayFigures {
  clients: number;
  pollsPerSecond: number;
  longPollsPerSecond: number;
}

/**
 * Through `socketproxy web`: K clients each polling (wait 0) in a loop, then
 * each long-polling with input that the echo destination answers at once.
 */
export async function gateway(
  proxyPort: number,
  clients: number,
  seconds: number,
): Promise<GatewayFigures> {
  await using web = await startGateway(proxyPort);
  const base = `http://127.0.0.1:${web.port}`;
  const sessions = await Promise.all(Array.from({ length: clients }, async () => {
    const response = await fetch(`${base}/api/sessions`, { method: "POST" });
    return await response.json() as { id: string; secret: string };
  }));
  const run = async (long: boolean): Promise<number> => {
    let done = 0;
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(sessions.map(async (session) => {
      let ack = 0;
      while (performance.now() < deadline) {
        const response = await fetch(`${base}/api/sessions/${session.id}/poll`, {
          method: "POST",
          body: JSON.stringify({
            secret: session.secret,
            ack,
            ...(long ? { input: "aGVsbG8K", wait: 5000 } : {}),
          }),
        });
        const body = await response.json();
        if (!response.ok) throw new Error(JSON.stringify(body));
        ack = body.ack;
        done++;
      }
    }));
    return done / seconds;
  };
  const pollsPerSecond = await run(false);
  const longPollsPerSecond = await run(true);
  await Promise.all(sessions.map((session) =>
    fetch(`${base}/api/sessions/${session.id}`, {
      method: "DELETE",
      body: JSON.stringify({ secret: session.secret }),
    }).then((response) => response.body?.cancel())
  ));
  return { clients, pollsPerSecond, longPollsPerSecond };
}

/** The load generator alone: poll cycles against a fake proxy that answers at once. */
export async function generatorAlone(clients: number, seconds: number): Promise<number> {
  const binary = await loadgen();
  if (binary) {
    await using fake = await startLoadgenServer(binary, "fake");
    const sessions = Array.from(
      { length: clients },
      () => ({ id: "abcdefghijklmnop", secret: "A".repeat(32) }),
    );
    const figures = await runLoadgen(binary, "poll", fake.port, seconds, sessions);
    return figures.count / figures.seconds;
  }
  const answer = encoder.encode(
    `OK abcdefghijklmnop ${"A".repeat(32)} 0 0 16 open\n0123456789abcdef`,
  );
  await using fake = new Destination(async (conn) => {
    const buffer = new Uint8Array(512);
    const count = await conn.read(buffer);
    if (count === null) return;
    await writeAll(conn, answer);
  });
  const sessions = Array.from(
    { length: clients },
    () => ({ id: "abcdefghijklmnop", secret: "A".repeat(32) }),
  );
  let cycles = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(sessions.map(async (session) => {
    const reply = new Uint8Array(512);
    while (performance.now() < deadline) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
      conn.setNoDelay(true);
      await writeAll(
        conn,
        encoder.encode(`RESUME ${session.id} ${session.secret} 0\n0123456789abcdef`),
      );
      let filled = 0;
      while (filled < answer.length) {
        const count = await conn.read(reply.subarray(filled));
        if (count === null) break;
        filled += count;
      }
      conn.close();
      cycles++;
    }
  }));
  return cycles / seconds;
}

/** The C load generator, compiled on first use; `null` without a C compiler. */
let compiled: Promise<string | null> | null = null;

/** Path of the compiled load generator (bench/loadgen.c), or `null` when no `cc` is there. */
export function loadgen(): Promise<string | null> {
  compiled ??= (async () => {
    const out = await Deno.makeTempFile({ prefix: "socketproxy-loadgen-" });
    const source = new URL("./loadgen.c", import.meta.url).pathname;
    try {
      const result = await new Deno.Command("cc", {
        args: ["-O2", "-o", out, source],
        stderr: "piped",
      })
        .output();
      return result.success ? out : null;
    } catch {
      return null;
    }
  })();
  return compiled;
}

/** Latency figures the load generator prints. */
export interface LoadFigures {
  count: number;
  seconds: number;
  p50_ms: number;
  p99_ms: number;
  /** Absent from the Deno fallback. */
  p999_ms?: number;
  max_ms?: number;
  /** Echo only: clients that waited longer than the bound for one echo. */
  starved?: number;
  /** Echo only: clients that got no echo at all. */
  idle?: number;
}

/**
 * Runs the load generator in `mode` against `port` for the given sessions;
 * `extra` follows the seconds (for echo: the starvation bound in ms).
 */
export async function runLoadgen(
  binary: string,
  mode: "poll" | "echo",
  port: number,
  seconds: number,
  sessions: { id: string; secret: string }[],
  extra: string[] = [],
): Promise<LoadFigures> {
  const child = new Deno.Command(binary, {
    args: [mode, String(port), String(seconds), ...extra],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(sessions.map((s) => `${s.id} ${s.secret}\n`).join("")));
  await writer.close();
  const output = await child.output();
  if (!output.success) throw new Error(`loadgen ${mode} failed`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** A helper server of the load generator (`fake` proxy or `echod` destination) on a free port. */
export async function startLoadgenServer(
  binary: string,
  mode: "fake" | "echod",
): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(binary, [mode, String(port)], port, `loadgen ${mode}`);
}

/**
 * Poll cycles against a reference server: the minimal Deno server
 * (bench/minimal_server.ts), the ceiling for a Deno server here, or the
 * protocol's floor (bench/floor_server.ts, which needs a destination):
 * cycles/s and its CPU time per cycle in µs.
 */
export async function minimalServerCycles(
  clients: number,
  seconds: number,
  floorDestination?: number,
): Promise<{ cyclesPerSecond: number; cpuUsPerPoll: number } | null> {
  const binary = await loadgen();
  if (!binary) return null;
  const port = freePort();
  const script = floorDestination === undefined ? "minimal_server.ts" : "floor_server.ts";
  await using server = new Child(Deno.execPath(), [
    "run",
    "--allow-net",
    new URL(`./${script}`, import.meta.url).pathname,
    String(port),
    ...(floorDestination === undefined ? [] : [String(floorDestination)]),
  ]);
  await waitForPort(port, script);
  // The floor keeps a session per id, so each client has its own.
  const sessions = Array.from(
    { length: clients },
    (_, client) => ({
      id: floorDestination === undefined ? "abcdefghijklmnop" : `floor${client}`,
      secret: "A".repeat(32),
    }),
  );
  const cpuBefore = cpuSeconds(server.process.pid);
  const figures = await runLoadgen(binary, "poll", port, seconds, sessions);
  const cpu = cpuSeconds(server.process.pid) - cpuBefore;
  return {
    cyclesPerSecond: figures.count / figures.seconds,
    cpuUsPerPoll: cpu / figures.count * 1e6,
  };
}

/** What sits between a WebSocket client and the destination. */
export type WsPath = "minimal" | "conn" | "socketproxy" | "websockify";

/** WebSocket figures of one path: medians of the rounds. */
export interface WsFigures {
  /** Output (destination to WebSocket client), MB/s. */
  output: number;
  /** Input (WebSocket client to destination), MB/s. */
  input: number;
  /** Round trip of a 64-byte message through an echo destination. */
  echoP50ms: number;
  echoP99ms: number;
}

/** The median of some figures. */
export function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? sorted[middle] ?? NaN : ((sorted[middle - 1] ?? NaN) +
    (sorted[middle] ?? NaN)) / 2;
}

/**
 * How long one WebSocket run may take: 256 MiB at the slowest rate any path
 * has shown (about 60 MB/s) takes 5 s. The minimal relay (on
 * `Deno.upgradeWebSocket`) stalled for good in one of two runs on 2026-12-08.
 */
const RUN_TIMEOUT_MS = 60_000;

/** Rejects after `ms`, so that a broken relay ends its run instead of hanging the benchmark. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A browser-side WebSocket client of the gateway's protocol (version 2):
 * sends the first message (with `input`), waits for `{"type":"attached"}`,
 * hands binary frames to `onBytes` and acknowledges them as the page does
 * (at half a window, and once it has taken what arrived), and sends input
 * within the window, waiting for `{"type":"in"}` when it is full.
 */
class WsClient {
  readonly socket: WebSocket;
  readonly attached: Promise<void>;
  /** Rejects when the socket ends, or the gateway sends an error. */
  readonly failed: Promise<never>;
  onBytes: (bytes: Uint8Array) => void = () => {};
  maxInput = 0;
  window = 0;
  sent: number;
  confirmed = 0;
  /** The output offset received, and the latest acknowledged. */
  received = 0;
  acked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #room: (() => void) | null = null;

  /**
   * @param lazyAck Acknowledge only at half the window, never by timer. The
   *   echo runs use it: Deno's WebSocket client turns TCP_NODELAY off, so an
   *   ack sent just before the next input holds that input back for the
   *   peer's delayed ACK (about 40 ms), which a browser (TCP_NODELAY on) never
   *   sees; acks are few at half the window.
   */
  constructor(
    url: string,
    first: { secret: string; ack: number; input: Uint8Array },
    readonly lazyAck = false,
  ) {
    this.sent = first.input.length;
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    const attached = Promise.withResolvers<void>();
    const failed = Promise.withResolvers<never>();
    this.attached = attached.promise;
    this.failed = failed.promise;
    // Rejections are awaited through races; this one need not be.
    this.failed.catch(() => {});
    attached.promise.catch(() => {});
    const fail = (why: string) => {
      const error = new Error(`WebSocket ${url}: ${why}`);
      attached.reject(error);
      failed.reject(error);
    };
    socket.onopen = () => {
      socket.send(JSON.stringify({ v: 2, ...first, input: first.input.toBase64() }));
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") {
        const bytes = new Uint8Array(event.data);
        this.onBytes(bytes);
        this.received += bytes.length;
        if (this.received - this.acked >= this.window / 2) this.#acknowledge();
        else if (!this.lazyAck) this.#ackTimer ??= setTimeout(() => this.#acknowledge(), 0);
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "attached") {
        this.maxInput = message.maxInput;
        this.window = message.window;
        this.confirmed = message.in;
        this.received = this.acked = message.from;
        attached.resolve();
      } else if (message.type === "in") {
        this.confirmed = message.in;
        this.#room?.();
        this.#room = null;
      } else if (message.type !== "end") {
        fail(event.data);
      }
    };
    socket.onclose = (event) => fail(`closed (${event.code} ${event.reason})`);
  }

  /** Sends `bytes` as input, in pieces of at most `maxInput`, within the window. */
  async send(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length;) {
      const room = this.window - (this.sent - this.confirmed);
      if (room <= 0) {
        await Promise.race([new Promise<void>((resolve) => this.#room = resolve), this.failed]);
        continue;
      }
      const size = Math.min(this.maxInput, room, bytes.length - at);
      this.socket.send(bytes.subarray(at, at + size));
      this.sent += size;
      at += size;
    }
  }

  #acknowledge(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.received <= this.acked || this.socket.readyState !== WebSocket.OPEN) return;
    this.acked = this.received;
    this.socket.send(JSON.stringify({ type: "ack", ack: this.received }));
  }

  close(): void {
    clearTimeout(this.#ackTimer);
    this.socket.onclose = null;
    this.socket.close();
  }
}

/**
 * A plain binary WebSocket client, for websockify and bench/conn_ws_relay.ts (no sessions, no
 * acknowledgements, no window): the first binary message is `first`, and
 * input is paced by the socket's `bufferedAmount` instead of a window.
 * It offers what the runs use of {@linkcode WsClient}.
 */
class RawWsClient {
  readonly socket: WebSocket;
  readonly attached: Promise<void>;
  readonly failed: Promise<never>;
  onBytes: (bytes: Uint8Array) => void = () => {};

  constructor(url: string, first: Uint8Array) {
    const socket = new WebSocket(url, ["binary"]);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    const attached = Promise.withResolvers<void>();
    const failed = Promise.withResolvers<never>();
    this.attached = attached.promise;
    this.failed = failed.promise;
    this.failed.catch(() => {});
    attached.promise.catch(() => {});
    socket.onopen = () => {
      socket.send(first);
      attached.resolve();
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") this.onBytes(new Uint8Array(event.data));
    };
    socket.onclose = (event) => {
      const error = new Error(`WebSocket ${url}: closed (${event.code} ${event.reason})`);
      attached.reject(error);
      failed.reject(error);
    };
  }

  /** Sends `bytes`, waiting while more than 1 MiB is queued on the socket. */
  async send(bytes: Uint8Array): Promise<void> {
    while (this.socket.bufferedAmount > 1024 * 1024) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    this.socket.send(bytes);
  }

  close(): void {
    this.socket.onclose = null;
    this.socket.close();
  }
}

/** The first input byte of a run (WebSocket or framed) tells the destination what to do. */
export const MODE_OUTPUT = 111; // "o": send the run's bytes
export const MODE_INPUT = 105; // "i": take the run's bytes in, then answer "d"
export const MODE_ECHO = 101; // "e": echo

/**
 * The destination of the WebSocket and framed runs: after the first byte, a
 * source of `bytes` (then held open), a sink of `bytes` that answers one
 * byte when it has them all, or an echo.
 */
export function modeDestination(bytes: number): Destination {
  const payload = new Uint8Array(CHUNK).fill(120);
  return new Destination(async (conn) => {
    conn.setNoDelay(true);
    const buffer = new Uint8Array(CHUNK);
    const first = await conn.read(buffer);
    if (first === null) return;
    const mode = buffer[0];
    if (mode === MODE_ECHO) {
      if (first > 1) await writeAll(conn, buffer.subarray(1, first));
      return await echo(conn);
    }
    if (mode === MODE_OUTPUT) {
      for (let sent = 0; sent < bytes; sent += CHUNK) {
        await writeAll(conn, payload.subarray(0, Math.min(CHUNK, bytes - sent)));
      }
    } else if (mode === MODE_INPUT) {
      for (let got = first - 1; got < bytes;) {
        const count = await conn.read(buffer);
        if (count === null) return;
        got += count;
      }
      await writeAll(conn, encoder.encode("d"));
    }
    // Held open until the run ends it.
    while (await conn.read(buffer) !== null);
  });
}

/** Where a WebSocket run connects: the gateway (with a new session) or the minimal relay. */
interface WsTarget {
  path: WsPath;
  port: number;
}

/** Opens a WebSocket on `target` whose first input is `mode`; runs `body`; cleans up. */
async function wsRun<T>(
  target: WsTarget,
  mode: number,
  body: (client: WsClient | RawWsClient, started: number) => Promise<T>,
): Promise<T> {
  const base = `http://127.0.0.1:${target.port}`;
  let session = { id: "minimalrelay0000", secret: "" };
  if (target.path === "socketproxy") {
    const response = await fetch(`${base}/api/sessions`, { method: "POST" });
    if (!response.ok) throw new Error(`POST /api/sessions: ${await response.text()}`);
    session = await response.json();
  }
  const started = performance.now();
  const client = target.path === "websockify" || target.path === "conn"
    ? new RawWsClient(`ws://127.0.0.1:${target.port}/`, new Uint8Array([mode]))
    : new WsClient(`ws://127.0.0.1:${target.port}/api/sessions/${session.id}/ws`, {
      secret: session.secret,
      ack: 0,
      input: new Uint8Array([mode]),
    }, mode === MODE_ECHO);
  try {
    await within(client.attached, 10_000, `${target.path}: attach`);
    return await within(
      Promise.race([body(client, started), client.failed]),
      RUN_TIMEOUT_MS,
      `${target.path}: run`,
    );
  } finally {
    client.close();
    if (target.path === "socketproxy") {
      await fetch(`${base}/api/sessions/${session.id}`, {
        method: "DELETE",
        body: JSON.stringify({ secret: session.secret }),
      }).then((response) => response.body?.cancel());
    }
  }
}

/** Output: the destination sends `bytes`; MB/s from opening the socket to the last byte. */
function wsOutput(target: WsTarget, bytes: number): Promise<number> {
  return wsRun(target, MODE_OUTPUT, async (client, started) => {
    const done = Promise.withResolvers<void>();
    let got = 0;
    client.onBytes = (chunk) => {
      got += chunk.length;
      if (got >= bytes) done.resolve();
    };
    await done.promise;
    return bytes / 1e6 / ((performance.now() - started) / 1000);
  });
}

/** Input: the client sends `bytes` within the window; MB/s until the destination has them all. */
function wsInput(target: WsTarget, bytes: number): Promise<number> {
  return wsRun(target, MODE_INPUT, async (client, started) => {
    const done = Promise.withResolvers<void>();
    client.onBytes = () => done.resolve();
    const payload = new Uint8Array(CHUNK).fill(121);
    for (let sent = 0; sent < bytes; sent += CHUNK) {
      await client.send(payload.subarray(0, Math.min(CHUNK, bytes - sent)));
    }
    await done.promise;
    return bytes / 1e6 / ((performance.now() - started) / 1000);
  });
}

/** Echo: `samples` 64-byte messages one after another; round-trip percentiles in ms. */
function wsEcho(target: WsTarget, samples: number): Promise<{ p50ms: number; p99ms: number }> {
  return wsRun(target, MODE_ECHO, async (client) => {
    const message = new Uint8Array(64).fill(97);
    const latencies: number[] = [];
    let got = 0;
    let back: (() => void) | null = null;
    client.onBytes = (chunk) => {
      got += chunk.length;
      if (got >= message.length) {
        got -= message.length;
        back?.();
      }
    };
    for (let i = 0; i < samples; i++) {
      const returned = new Promise<void>((resolve) => back = resolve);
      const sent = performance.now();
      await client.send(message);
      await returned;
      latencies.push(performance.now() - sent);
    }
    latencies.sort((a, b) => a - b);
    return { p50ms: percentile(latencies, 50), p99ms: percentile(latencies, 99) };
  });
}

/**
 * Starts one of the WebSocket relays of this folder on a free port in front
 * of `destinationPort`: bench/minimal_ws_relay.ts or bench/conn_ws_relay.ts.
 */
async function startWsRelay(
  script: "minimal_ws_relay.ts" | "conn_ws_relay.ts",
  destinationPort: number,
): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(
    Deno.execPath(),
    [
      "run",
      "--allow-net",
      new URL(`./${script}`, import.meta.url).pathname,
      String(port),
      String(destinationPort),
    ],
    port,
    script,
  );
}

/** Whether Debian's `websockify` is installed. */
export function haveWebsockify(): Promise<boolean> {
  return haveCommand("websockify", ["--help"]);
}

/** `websockify` on a free port in front of `destinationPort` (binary frames to TCP). */
async function startWebsockify(destinationPort: number): Promise<Child & { port: number }> {
  const port = freePort();
  return await startListening(
    "websockify",
    [`127.0.0.1:${port}`, `127.0.0.1:${destinationPort}`],
    port,
    "websockify",
  );
}

/**
 * WebSocket output, input and echo latency through `socketproxy web` and
 * `socketproxy server` (child processes, the default buffer), through the
 * minimal relay (bench/minimal_ws_relay.ts), through the hand-written one on
 * `Deno.Conn` (bench/conn_ws_relay.ts) and through `websockify`, each
 * of `paths`, in front of the same destination (in this process, with the
 * client). The runs are interleaved, one of each path in turn for each
 * workload in each round, and the median of the rounds is kept.
 */
export async function webSocketRelay(
  bytes: number,
  samples: number,
  rounds: number,
  paths: WsPath[] = ["minimal", "socketproxy"],
): Promise<Partial<Record<WsPath, WsFigures>>> {
  await using destination = modeDestination(bytes);
  await using server = await startServer(destination.port);
  await using web = await startGateway(server.port);
  await using minimal = paths.includes("minimal")
    ? await startWsRelay("minimal_ws_relay.ts", destination.port)
    : null;
  await using conn = paths.includes("conn")
    ? await startWsRelay("conn_ws_relay.ts", destination.port)
    : null;
  await using websockify = paths.includes("websockify")
    ? await startWebsockify(destination.port)
    : null;
  const targets: WsTarget[] = paths.map((path) => ({
    path,
    port: path === "minimal"
      ? minimal?.port ?? 0
      : path === "conn"
      ? conn?.port ?? 0
      : path === "websockify"
      ? websockify?.port ?? 0
      : web.port,
  }));
  const runs = (): Record<"output" | "input" | "p50" | "p99", number[]> => ({
    output: [],
    input: [],
    p50: [],
    p99: [],
  });
  const measured: Record<WsPath, ReturnType<typeof runs>> = {
    minimal: runs(),
    conn: runs(),
    socketproxy: runs(),
    websockify: runs(),
  };
  /** One run; one that fails or hangs is told and left out of the medians, and the rest go on. */
  async function attempt<T>(what: string, round: number, run: () => Promise<T>, failed: T) {
    try {
      return await run();
    } catch (error) {
      console.error(`${what}, round ${round + 1}: ${(error as Error).message}; left out`);
      return failed;
    }
  }
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      measured[target.path].output.push(
        await attempt(`${target.path} output`, round, () => wsOutput(target, bytes), NaN),
      );
    }
    for (const target of targets) {
      measured[target.path].input.push(
        await attempt(`${target.path} input`, round, () => wsInput(target, bytes), NaN),
      );
    }
    for (const target of targets) {
      const { p50ms, p99ms } = await attempt(
        `${target.path} echo`,
        round,
        () => wsEcho(target, samples),
        { p50ms: NaN, p99ms: NaN },
      );
      measured[target.path].p50.push(p50ms);
      measured[target.path].p99.push(p99ms);
    }
  }
  const kept = (values: number[]) => median(values.filter(Number.isFinite));
  const figures = (path: WsPath): WsFigures => ({
    output: kept(measured[path].output),
    input: kept(measured[path].input),
    echoP50ms: kept(measured[path].p50),
    echoP99ms: kept(measured[path].p99),
  });
  return Object.fromEntries(paths.map((path) => [path, figures(path)]));
}
