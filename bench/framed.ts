/**
 * `deno task bench framed`: what a framed (version 2) attachment costs per
 * byte beside a version 1 streaming one, against one `main.ts server`
 * process, in the same run: output throughput (destination to client),
 * input throughput (client to destination) and the echo latency of 64-byte
 * messages. Three clients take turns, round after round:
 *
 * - `v1`: `RESUME <id> <secret>` (streaming, as `NEW` is), raw reads and writes;
 * - `framed`: `RESUME <id> <secret> 0 framed`, a client on `lib/frames.ts`
 *   alone, as one written from the protocol would be: it reads `D` frames
 *   with `FrameReader`, sends an `A` every half window, and sends input as
 *   `D` frames within the window, opened by the `I` frames it reads;
 * - `framedConnection`: the same through the client library's
 *   `FramedConnection`, what a Deno program using the library gets.
 *
 * Each run has its own session, created beforehand (`NEW`, then left) and
 * closed afterwards, so that neither the destination's connect nor
 * sessions left behind weigh on a figure. The destination is told what to
 * do by the first input byte, as in the WebSocket part.
 *
 * @module
 */

import { Wakeup, writeAll } from "../lib/_io.ts";
import {
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameReader,
  putFrameHeader,
} from "../lib/frames.ts";
import { formatHello, MAX_HELLO_BYTES, parseReply, type Reply } from "../lib/protocol.ts";
import { ClientSession, FramedConnection } from "../lib/client/mod.ts";
import {
  attach,
  cpuNs,
  encoder,
  median,
  MODE_ECHO,
  MODE_INPUT,
  MODE_OUTPUT,
  modeDestination,
  percentile,
  startServer,
} from "./workloads.ts";

/** The three clients compared. */
export type FramedClientKind = "v1" | "framed" | "framedConnection";

/** The clients, in the order each round runs them. */
export const FRAMED_CLIENT_KINDS: readonly FramedClientKind[] = [
  "v1",
  "framed",
  "framedConnection",
];

/** One client's figures: of one round, or the medians of the rounds. */
export interface FramedFigures {
  /** Output, destination to client, MB/s (10^6 bytes), from connect to the last byte. */
  output: number;
  /** Input, client to destination, MB/s, from connect until the destination has it all. */
  input: number;
  /** Round trip of a 64-byte message through an echo destination, ms. */
  echoP50ms: number;
  echoP99ms: number;
  /** The server's CPU time (from `/proc`) per byte of the output run, ns. */
  outputServerCpuNs: number;
  /** The server's CPU time per byte of the input run, ns. */
  inputServerCpuNs: number;
  /** This process's CPU time (the client and the destination) per byte of the output run, ns. */
  outputBenchCpuNs: number;
  /** This process's CPU time per byte of the input run, ns. */
  inputBenchCpuNs: number;
}

/** Options for {@linkcode framedComparison}. */
export interface FramedComparisonOptions {
  /** Bytes each way a run. */
  bytes: number;
  /** Echoes a run. */
  echoes: number;
  /** Rounds; each runs every workload with every client, one after another. */
  rounds: number;
  /**
   * The server's `--buffer`, and so the framed window.
   * @default {"4m"}
   */
  buffer?: string;
}

/** The comparison's result: the medians, and every round's figures. */
export interface FramedComparison {
  medians: Record<FramedClientKind, FramedFigures>;
  rounds: Record<FramedClientKind, FramedFigures[]>;
}

const CHUNK = 128 * 1024;
/** The most a run may take before its connection is closed under it. */
const RUN_MS = 120_000;

/** A client attached to a session whose destination has been told its mode. */
interface BenchClient {
  /** Reads `bytes` of output. */
  readOutput(bytes: number): Promise<void>;
  /** Sends `bytes` of input, then waits for the destination's one-byte answer. */
  sendInput(bytes: number): Promise<void>;
  /** Sends `message`, waits for it back and acknowledges it; the round trip in ms. */
  echo(message: Uint8Array): Promise<number>;
  /** Closes the connection (the session stays). */
  close(): void;
}

/** Version 1 streaming: the bytes as they come, on the raw connection. */
class Version1Client implements BenchClient {
  readonly #conn: Deno.Conn;
  readonly #buffer = new Uint8Array(CHUNK);
  readonly #payload = new Uint8Array(CHUNK).fill(121);

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  static async open(port: number, session: ClientSession, mode: number): Promise<Version1Client> {
    const { conn, early } = await attach(port, `RESUME ${session.id} ${session.secret}\n`);
    if (early > 0) throw new Error(`v1: ${early} bytes of output before any input`);
    await writeAll(conn, Uint8Array.of(mode));
    return new Version1Client(conn);
  }

  async readOutput(bytes: number): Promise<void> {
    for (let got = 0; got < bytes;) {
      const count = await this.#conn.read(this.#buffer);
      if (count === null) throw new Error("v1: the output ended early");
      got += count;
    }
  }

  async sendInput(bytes: number): Promise<void> {
    for (let sent = 0; sent < bytes; sent += CHUNK) await writeAll(this.#conn, this.#payload);
    if (await this.#conn.read(this.#buffer) === null) throw new Error("v1: no answer");
  }

  async echo(message: Uint8Array): Promise<number> {
    const started = performance.now();
    await writeAll(this.#conn, message);
    for (let got = 0; got < message.length;) {
      const count = await this.#conn.read(this.#buffer);
      if (count === null) throw new Error("v1: the echo ended early");
      got += count;
    }
    return performance.now() - started;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** Connects, sends a framed hello and reads the reply: the reply, and the frames that came with it. */
async function attachFramed(
  port: number,
  session: ClientSession,
): Promise<{ conn: Deno.Conn; reply: Reply & { window: number }; leftover: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const hello = formatHello({
      verb: "RESUME",
      id: session.id,
      secret: session.secret,
      ack: 0,
      framed: true,
    });
    await writeAll(conn, encoder.encode(hello));
    const buffer = new Uint8Array(4 * MAX_HELLO_BYTES);
    for (let filled = 0; filled < buffer.length;) {
      const count = await conn.read(buffer.subarray(filled));
      if (count === null) throw new Error("framed: closed before the reply");
      filled += count;
      const lf = buffer.subarray(0, filled).indexOf(10);
      if (lf < 0) continue;
      const reply = parseReply(String.fromCharCode(...buffer.subarray(0, lf)));
      if ("bye" in reply || reply.window === undefined) throw new Error("framed: not a v2 reply");
      return {
        conn,
        reply: { ...reply, window: reply.window },
        leftover: buffer.slice(lf + 1, filled),
      };
    }
    throw new Error("framed: no reply line");
  } catch (error) {
    conn.close();
    throw error;
  }
}

/**
 * A framed client on `lib/frames.ts` alone: `FrameReader` over the
 * connection, an `A` at every half window of output, input as `D` frames
 * (each header put in front of the payload of one reused buffer) within
 * the window that the `I` frames open.
 */
class FramedClient implements BenchClient {
  readonly #conn: Deno.Conn;
  readonly #reader: FrameReader;
  readonly #window: number;
  /** One `D` frame's header, then a chunk of input. */
  readonly #frame = new Uint8Array(FRAME_HEADER_BYTES + CHUNK).fill(121);
  #received: number;
  #acknowledged: number;
  #inputSent: number;
  #inputConfirmed: number;
  /** Woken by every `I` frame, and when reading ends. */
  readonly #counted = new Wakeup();

  private constructor(conn: Deno.Conn, reply: Reply & { window: number }, leftover: Uint8Array) {
    this.#conn = conn;
    this.#reader = new FrameReader(conn, { direction: "to-client", leftover });
    this.#window = reply.window;
    this.#received = this.#acknowledged = reply.from;
    this.#inputSent = this.#inputConfirmed = reply.in;
  }

  static async open(port: number, session: ClientSession, mode: number): Promise<FramedClient> {
    const { conn, reply, leftover } = await attachFramed(port, session);
    const client = new FramedClient(conn, reply, leftover);
    await writeAll(conn, encodeFrame({ type: "D", payload: Uint8Array.of(mode) }));
    client.#inputSent += 1;
    return client;
  }

  /** The next frame; an `I` raises the confirmed input. Throws at the end, or at an `E`. */
  async #next(): Promise<Frame> {
    const frame = await this.#reader.next();
    if (frame === null) throw new Error("framed: the connection ended");
    if (frame.type === "E") throw new Error(`framed: ended by the server (${frame.reason})`);
    if (frame.type === "I") {
      this.#inputConfirmed = Math.max(this.#inputConfirmed, frame.count);
      this.#counted.wake();
    }
    return frame;
  }

  async #acknowledge(): Promise<void> {
    this.#acknowledged = this.#received;
    await writeAll(this.#conn, encodeFrame({ type: "A", offset: this.#received }));
  }

  async readOutput(bytes: number): Promise<void> {
    const end = this.#received + bytes;
    while (this.#received < end) {
      const frame = await this.#next();
      if (frame.type !== "D") continue;
      this.#received += frame.payload.length;
      if (this.#received - this.#acknowledged >= this.#window / 2) await this.#acknowledge();
    }
  }

  async sendInput(bytes: number): Promise<void> {
    // Reads I frames (which open the window) until the destination's answer.
    const answered = (async () => {
      try {
        while ((await this.#next()).type !== "D");
      } finally {
        this.#counted.wake();
      }
    })();
    answered.catch(() => {}); // awaited below, or raced
    for (let sent = 0; sent < bytes;) {
      const room = this.#window - (this.#inputSent - this.#inputConfirmed);
      if (room <= 0) {
        await Promise.race([this.#counted.wait(), answered]);
        continue;
      }
      const size = Math.min(room, CHUNK, bytes - sent);
      putFrameHeader(this.#frame, 0, "D", size);
      await writeAll(this.#conn, this.#frame.subarray(0, FRAME_HEADER_BYTES + size));
      this.#inputSent += size;
      sent += size;
    }
    await answered;
  }

  async echo(message: Uint8Array): Promise<number> {
    while (this.#window - (this.#inputSent - this.#inputConfirmed) < message.length) {
      await this.#next();
    }
    const started = performance.now();
    await writeAll(this.#conn, encodeFrame({ type: "D", payload: message }));
    this.#inputSent += message.length;
    const end = this.#received + message.length;
    while (this.#received < end) {
      const frame = await this.#next();
      if (frame.type === "D") this.#received += frame.payload.length;
    }
    const elapsed = performance.now() - started;
    await this.#acknowledge();
    return elapsed;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** The client library's `FramedConnection`, used as `ClientSession.stream` and the gateway use it. */
class LibraryClient implements BenchClient {
  readonly #framed: FramedConnection;
  readonly #payload = new Uint8Array(CHUNK).fill(121);

  private constructor(framed: FramedConnection) {
    this.#framed = framed;
  }

  static async open(port: number, session: ClientSession, mode: number): Promise<LibraryClient> {
    const framed = await FramedConnection.open(
      { proxy: { hostname: "127.0.0.1", port } },
      { verb: "RESUME", id: session.id, secret: session.secret, ack: 0 },
    );
    await framed.sendInput(Uint8Array.of(mode));
    return new LibraryClient(framed);
  }

  async #next(): Promise<"output" | "input"> {
    // Output is counted and dropped at once: a view will do.
    const event = await this.#framed.next({ copy: false });
    if (event === null) throw new Error("framedConnection: the connection ended");
    if (event.type === "end") throw new Error(`framedConnection: ended (${event.reason})`);
    return event.type;
  }

  async readOutput(bytes: number): Promise<void> {
    const framed = this.#framed;
    const end = framed.received + bytes;
    while (framed.received < end) {
      await this.#next();
      if (framed.received - framed.acknowledged >= framed.reply.window / 2) {
        await framed.acknowledge(framed.received);
      }
    }
  }

  async sendInput(bytes: number): Promise<void> {
    const framed = this.#framed;
    const counted = new Wakeup();
    const answered = (async () => {
      try {
        while (await this.#next() !== "output") counted.wake();
      } finally {
        counted.wake();
      }
    })();
    answered.catch(() => {}); // awaited below, or raced
    for (let sent = 0; sent < bytes;) {
      const size = Math.min(framed.inputRoom, CHUNK, bytes - sent);
      if (size === 0) {
        await Promise.race([counted.wait(), answered]);
        continue;
      }
      await framed.sendInput(this.#payload.subarray(0, size));
      sent += size;
    }
    await answered;
  }

  async echo(message: Uint8Array): Promise<number> {
    const framed = this.#framed;
    while (framed.inputRoom < message.length) await this.#next();
    const started = performance.now();
    const end = framed.received + message.length;
    await framed.sendInput(message);
    while (framed.received < end) await this.#next();
    const elapsed = performance.now() - started;
    await framed.acknowledge(framed.received);
    return elapsed;
  }

  close(): void {
    this.#framed.close();
  }
}

const OPEN: Record<
  FramedClientKind,
  (port: number, session: ClientSession, mode: number) => Promise<BenchClient>
> = {
  v1: (port, session, mode) => Version1Client.open(port, session, mode),
  framed: (port, session, mode) => FramedClient.open(port, session, mode),
  framedConnection: (port, session, mode) => LibraryClient.open(port, session, mode),
};

/**
 * One run: a new session, a client of `kind` attached with `mode` as its
 * first input, `body` timed from the connect (or by itself), the session
 * closed. The connection is closed under a run that takes over `RUN_MS`.
 */
async function run<T>(
  port: number,
  target: { kind: FramedClientKind; mode: number },
  body: (client: BenchClient, started: number) => Promise<T>,
): Promise<T> {
  const session = await ClientSession.create({
    proxy: { hostname: "127.0.0.1", port },
    readFirstOutput: false,
  });
  try {
    const started = performance.now();
    const client = await OPEN[target.kind](port, session, target.mode);
    const timer = setTimeout(() => client.close(), RUN_MS);
    try {
      return await body(client, started);
    } finally {
      clearTimeout(timer);
      client.close();
    }
  } finally {
    await session.close();
  }
}

/** A throughput run's figures: MB/s, and CPU ns per byte of the server and of this process. */
interface RateFigures {
  rate: number;
  serverCpuNs: number;
  benchCpuNs: number;
}

/** Moves `bytes` one way (`MODE_OUTPUT` or `MODE_INPUT`) with a client of `kind`, timed and with the CPU it took. */
function rate(
  server: { port: number; pid: number },
  kind: FramedClientKind,
  mode: number,
  bytes: number,
): Promise<RateFigures> {
  return run(server.port, { kind, mode }, async (client, started) => {
    const serverCpu = cpuNs(server.pid);
    const benchCpu = cpuNs("self");
    if (mode === MODE_OUTPUT) await client.readOutput(bytes);
    else await client.sendInput(bytes);
    return {
      rate: bytes / 1e6 / ((performance.now() - started) / 1000),
      serverCpuNs: (cpuNs(server.pid) - serverCpu) / bytes,
      benchCpuNs: (cpuNs("self") - benchCpu) / bytes,
    };
  });
}

function echoLatency(
  port: number,
  kind: FramedClientKind,
  echoes: number,
): Promise<{ p50: number; p99: number }> {
  return run(port, { kind, mode: MODE_ECHO }, async (client) => {
    const message = new Uint8Array(64).fill(97);
    const times: number[] = [];
    for (let i = 0; i < echoes; i++) times.push(await client.echo(message));
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), p99: percentile(times, 99) };
  });
}

/**
 * Measures v1 streaming beside the two framed clients through one server
 * (`--buffer`, the framed window, the same for all), interleaved: each
 * round runs output, then input, then echo, each with every client in
 * turn. Keeps the median of the rounds of each figure.
 *
 * @param options Bytes each way, echoes and rounds, and the server's buffer.
 * @returns The medians, and every round's figures.
 */
export async function framedComparison(
  options: FramedComparisonOptions,
): Promise<FramedComparison> {
  const { bytes, rounds } = options;
  await using destination = modeDestination(bytes);
  await using server = await startServer(destination.port, [`--buffer=${options.buffer ?? "4m"}`]);
  const target = { port: server.port, pid: server.process.pid };
  const measured = {} as Record<FramedClientKind, FramedFigures[]>;
  for (const kind of FRAMED_CLIENT_KINDS) measured[kind] = [];
  for (let round = 0; round < rounds; round++) {
    const output = {} as Record<FramedClientKind, RateFigures>;
    const input = {} as Record<FramedClientKind, RateFigures>;
    const echoes = {} as Record<FramedClientKind, { p50: number; p99: number }>;
    for (const kind of FRAMED_CLIENT_KINDS) {
      output[kind] = await rate(target, kind, MODE_OUTPUT, bytes);
    }
    for (const kind of FRAMED_CLIENT_KINDS) {
      input[kind] = await rate(target, kind, MODE_INPUT, bytes);
    }
    for (const kind of FRAMED_CLIENT_KINDS) {
      echoes[kind] = await echoLatency(server.port, kind, options.echoes);
    }
    for (const kind of FRAMED_CLIENT_KINDS) {
      measured[kind].push({
        output: output[kind].rate,
        input: input[kind].rate,
        echoP50ms: echoes[kind].p50,
        echoP99ms: echoes[kind].p99,
        outputServerCpuNs: output[kind].serverCpuNs,
        inputServerCpuNs: input[kind].serverCpuNs,
        outputBenchCpuNs: output[kind].benchCpuNs,
        inputBenchCpuNs: input[kind].benchCpuNs,
      });
    }
  }
  const medians = {} as Record<FramedClientKind, FramedFigures>;
  for (const kind of FRAMED_CLIENT_KINDS) {
    const list = measured[kind];
    medians[kind] = {
      output: median(list.map((figures) => figures.output)),
      input: median(list.map((figures) => figures.input)),
      echoP50ms: median(list.map((figures) => figures.echoP50ms)),
      echoP99ms: median(list.map((figures) => figures.echoP99ms)),
      outputServerCpuNs: median(list.map((figures) => figures.outputServerCpuNs)),
      inputServerCpuNs: median(list.map((figures) => figures.inputServerCpuNs)),
      outputBenchCpuNs: median(list.map((figures) => figures.outputBenchCpuNs)),
      inputBenchCpuNs: median(list.map((figures) => figures.inputBenchCpuNs)),
    };
  }
  return { medians, rounds: measured };
}
