/**
 * Framed (version 2) input through the server, byte for byte, under a slow
 * destination. The client sends seeded input as `D` frames of random sizes
 * (bursts of small ones, a few tiny ones at a time, medium ones, full
 * 256 KiB ones) in random-sized socket writes, so that frame boundaries
 * fall anywhere in the server's reads, never beyond the input window past
 * the latest `I`. The destination takes a random part of each write, in
 * moods: fast, or slow (each write waits until the client has sent more).
 * Both of the server's input paths run: the pieces of small reads copied
 * into reused chunks, and a read that is most of the reader's buffer kept
 * where it was read, its pieces joined up there (the frame headers between
 * them squeezed out), while the reader goes on in a spare buffer. One case drops the connection
 * mid-stream (often inside a frame), or has it taken over, and resumes from
 * the reply's `<in>`, four times.
 *
 * The destination is a {@linkcode FakeConn} whose writes the test paces: on
 * loopback TCP a destination would take a few MiB into kernel buffers at
 * once, however slowly it read. It copies what it takes when a write
 * completes, and compares it with the input as it comes, so a buffer the
 * server reuses while it is held, or while its write is in flight, shows
 * as bytes that differ (the first differing offset is in the failure).
 *
 * The seed, printed in every failure, decides the frames a connection sends
 * and the destination's moods and takes; how the frames are split into
 * writes, where a resumed connection starts, and the interleaving with the
 * server depend on timing as well.
 */

import assert from "node:assert/strict";
import { concatBytes } from "../lib/bytes.ts";
import { Wakeup } from "../lib/_io.ts";
import { encodeFrame, FRAME_HEADER_BYTES, MAX_DATA_PAYLOAD } from "../lib/frames.ts";
import type { Reply } from "../lib/protocol.ts";
import { FakeConn } from "./_fake_conn.ts";
import {
  decoder,
  firstDifference,
  prng,
  randomBytes,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

/** Bound on the steps (a frame framed, or a wait for `I`) of one connection's sender. */
const MAX_STEPS = 100_000;
/** Bound on the frames one connection's reader reads. */
const MAX_FRAMES = 100_000;
/** Bound on the destination's pauses, per session. */
const MAX_PAUSES = 1000;
/** Bound on the client's steps one pause of the destination waits for. */
const MAX_WAKES = 100_000;

/** An integer in `[low, high]`. */
function between(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

/**
 * What the client sends for a while: `typing` (bursts of small frames, as
 * fast as the window lets them go), `keystrokes` (a few tiny frames at a
 * time, each burst confirmed by `I` before the next: the destination
 * catches up within a chunk, which is then filled from its start again),
 * `paste` (full frames, now and then a medium one) or `mixed` (bursts of
 * small frames, medium and full ones). Typing first grows the server's read
 * buffer to its largest before any piece is kept; a paste first keeps
 * pieces while it grows.
 */
type Phase = "typing" | "keystrokes" | "paste" | "mixed";

const PHASES: readonly Phase[] = ["typing", "keystrokes", "paste", "mixed"];

/** The payload sizes of the next frames in `phase`. */
function nextSizes(random: () => number, phase: Phase): number[] {
  if (phase === "keystrokes") {
    return Array.from({ length: between(random, 1, 8) }, () => between(random, 1, 64));
  }
  const roll = phase === "typing" ? 0 : phase === "paste" ? 0.4 + 0.6 * random() : random();
  if (roll < 0.4) {
    return Array.from({ length: between(random, 1, 32) }, () => between(random, 1, 4 * KIB));
  }
  if (roll < 0.55) return [between(random, 4 * KIB + 1, MAX_DATA_PAYLOAD - 1)];
  return [MAX_DATA_PAYLOAD];
}

/** The size of the client's next socket write: tiny, small or large. */
function writeSize(random: () => number): number {
  const roll = random();
  if (roll < 0.25) return between(random, 1, 100);
  if (roll < 0.6) return between(random, 101, 16 * KIB);
  return between(random, 16 * KIB + 1, 400 * KIB);
}

/** How much of a write the destination takes: a little, some, or a lot (less when slow). */
function takeSize(random: () => number, slow: boolean): number {
  const roll = random();
  if (roll < 0.1) return between(random, 1, 512);
  if (roll < 0.5 || slow) return between(random, 513, 32 * KIB);
  return between(random, 32 * KIB + 1, 192 * KIB);
}

/** The frame integer at `at` in `bytes`. */
function uint64(bytes: Uint8Array, at: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}

function hex(seed: number): string {
  return `0x${seed.toString(16).padStart(8, "0")}`;
}

/** Resolves after `ms`: the destination's pause (load shaping, not synchronization). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * How far the test's client has got: the bytes it has written on all its
 * connections, and whether it is waiting (for an `I`, a reply, or with
 * nothing left to send). The slow destination holds writes on it.
 */
class ClientProgress {
  /** Bytes written, frames and hellos alike. */
  written = 0;
  #waiting = true;
  readonly #changed = new Wakeup();

  /** The client wrote `count` bytes. */
  wrote(count: number): void {
    this.written += count;
    this.#changed.wake();
  }

  /** The client waits (or goes on sending). */
  set waiting(waiting: boolean) {
    this.#waiting = waiting;
    this.#changed.wake();
  }

  /** Resolves once the client has written `count` more bytes, or waits. */
  async moreWritten(count: number): Promise<void> {
    const target = this.written + count;
    for (let wakes = 0; this.written < target && !this.#waiting && wakes < MAX_WAKES; wakes++) {
      await withDeadline(this.#changed.wait(), WAIT_MS, "the client to write more");
    }
  }
}

/**
 * A destination that takes input slowly: each write of the session's takes
 * a random part of what it is given. It has moods, each for a random number
 * of writes: fast (it takes at once, and catches up with what the server
 * holds) and slow (before each write, at most {@linkcode MAX_PAUSES} in all,
 * it waits until the client has sent some more or is waiting for a count,
 * and then a moment for the server to read it: the server holds input
 * meanwhile, and reads on). What it takes, copied as the write completes,
 * is compared with the input as it comes.
 */
class SlowDestination {
  readonly fake = new FakeConn();
  /** Bytes taken. */
  taken = 0;
  /** The input offset of the first byte taken that differs (or is one too many), or -1. */
  firstDifference = -1;
  pauses = 0;
  readonly #expected: Uint8Array;
  #slow = false;
  /** Writes left in the current mood. */
  #moodLeft = 0;

  constructor(expected: Uint8Array, seed: number, progress: ClientProgress) {
    this.#expected = expected;
    const random = prng(seed);
    const write = this.fake.write.bind(this.fake);
    this.fake.write = async (bytes: Uint8Array): Promise<number> => {
      if (this.#moodLeft-- <= 0) {
        this.#slow = random() < 0.5;
        this.#moodLeft = between(random, 1, 8);
      }
      if (this.#slow && this.pauses < MAX_PAUSES) {
        this.pauses++;
        await progress.moreWritten(between(random, 16 * KIB, 512 * KIB));
        await pause(between(random, 0, 2));
      }
      const take = Math.min(bytes.length, takeSize(random, this.#slow));
      const count = await write(bytes.subarray(0, take));
      // FakeConn copied what it took once the write completed (after the pause).
      this.#check(this.fake.written.pop() ?? new Uint8Array(0));
      return count;
    };
  }

  #check(got: Uint8Array): void {
    if (this.firstDifference < 0) {
      const want = this.#expected.subarray(this.taken, this.taken + got.length);
      const at = firstDifference(got, want);
      if (at >= 0) this.firstDifference = this.taken + at;
    }
    this.taken += got.length;
  }
}

/**
 * One framed connection of the test's client: its reply, and the `I` frames
 * read in the background until the count reaches the input's total, the
 * reader fails, or the connection is dropped.
 */
class InputConnection implements Disposable {
  readonly raw: TestClient;
  readonly reply: Reply;
  /** The latest count: the reply's `<in>`, then each `I`. */
  confirmed: number;
  /** `I` frames read. */
  counts = 0;
  /** Why reading stopped early, if it failed. */
  failure: unknown = undefined;
  /** Resolves once reading stops; never rejects. */
  readonly reading: Promise<void>;
  readonly #counted = new Wakeup();
  #stopped = false;
  #dropped = false;

  constructor(raw: TestClient, reply: Reply, total: number) {
    this.raw = raw;
    this.reply = reply;
    this.confirmed = reply.in;
    this.reading = this.#read(total);
  }

  /** Connects, sends `hello` and reads the reply. */
  static async open(port: number, hello: string, total: number): Promise<InputConnection> {
    const raw = await TestClient.connect(port);
    try {
      return new InputConnection(raw, await raw.hello(hello), total);
    } catch (error) {
      raw.close();
      throw error;
    }
  }

  /** Resolves at the next `I`, or at once when reading has stopped. */
  nextCount(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return withDeadline(this.#counted.wait(), WAIT_MS, "an I frame");
  }

  /** Closes the connection, as a crash would, and waits for the reader to stop. */
  async drop(): Promise<void> {
    this.#dropped = true;
    this.raw.close();
    await this.reading;
  }

  async #read(total: number): Promise<void> {
    try {
      for (let frames = 0; this.confirmed < total; frames++) {
        if (frames >= MAX_FRAMES) throw new Error(`no I ${total} within ${MAX_FRAMES} frames`);
        const header = await this.raw.readExactly(FRAME_HEADER_BYTES);
        const type = String.fromCharCode(header[0] ?? 0);
        const length = new DataView(header.buffer).getUint32(1);
        const payload = await this.raw.readExactly(length);
        if (type === "E" && length > 16) {
          const reason = decoder.decode(payload.subarray(16));
          throw new Error(`E ${reason}: in ${uint64(payload, 0)}, sent ${uint64(payload, 8)}`);
        }
        if (type !== "I" || length !== 8) throw new Error(`a ${type} frame of ${length} bytes`);
        const count = uint64(payload, 0);
        if (count < this.confirmed || count > total) {
          throw new Error(`I ${count} after ${this.confirmed}, of ${total} bytes in all`);
        }
        this.confirmed = count;
        this.counts++;
        this.#counted.wake();
      }
    } catch (error) {
      if (!this.#dropped) this.failure = error;
    } finally {
      this.#stopped = true;
      this.#counted.wake();
    }
  }

  [Symbol.dispose](): void {
    this.raw.close();
  }
}

/**
 * Sends `input` from `from` on `conn` as `D` frames of random sizes, in
 * random-sized writes, never beyond the window past the latest count. With
 * `start`, its first phase is that one, not a random one. With
 * `dropAt`, it stops framing there, and its last write ends at a random
 * point of what it framed (inside a frame, often), for the connection to be
 * dropped.
 *
 * @returns The input offset framed up to.
 */
async function sendInput(
  conn: InputConnection,
  input: Uint8Array,
  options: {
    from: number;
    /** Decides the frames: phases and sizes. */
    frames: () => number;
    /** Decides how they go: when staged frames are written, in what writes, where a drop cuts. */
    writes: () => number;
    dropAt: number;
    start: Phase | null;
    progress: ClientProgress;
  },
): Promise<number> {
  const { frames, writes, dropAt, progress } = options;
  const window = conn.reply.window ?? 0;
  assert.ok(window > MAX_DATA_PAYLOAD, `a window of ${window}`);
  let staged: Uint8Array[] = [];
  let stagedBytes = 0;
  async function flush(cut: boolean): Promise<void> {
    const bytes = concatBytes(staged);
    staged = [];
    stagedBytes = 0;
    const end = cut ? between(writes, 0, bytes.length) : bytes.length;
    for (let at = 0; at < end;) {
      const count = Math.min(writeSize(writes), end - at);
      await conn.raw.write(bytes.subarray(at, at + count));
      progress.wrote(count);
      at += count;
    }
  }
  async function counted(): Promise<void> {
    progress.waiting = true;
    await conn.nextCount();
    progress.waiting = false;
  }
  let framed = options.from;
  let sizes: number[] = [];
  let phase: Phase = "mixed";
  let phaseEnd = framed;
  let flushAt = between(writes, 1, window);
  progress.waiting = false;
  try {
    for (let step = 0; framed < input.length && framed < dropAt; step++) {
      if (step >= MAX_STEPS) throw new Error(`input not sent within ${MAX_STEPS} steps`);
      if (conn.failure !== undefined) throw conn.failure;
      if (sizes.length === 0) {
        if (phase === "keystrokes" && conn.confirmed < framed) {
          // As a person would: what was typed is taken before more is typed.
          await flush(false);
          await counted();
          continue;
        }
        if (framed >= phaseEnd) {
          phase = framed === options.from && options.start
            ? options.start
            : PHASES[between(frames, 0, PHASES.length - 1)] ?? "mixed";
          phaseEnd = framed +
            (phase === "keystrokes"
              ? between(frames, 128, 2 * KIB)
              : between(frames, 256 * KIB, 2 * MIB));
        }
        sizes = nextSizes(frames, phase);
      }
      const size = Math.min(sizes[0] ?? 1, input.length - framed);
      if (framed + size - conn.confirmed > window) {
        // Beyond the window: what is framed goes, and its count comes back.
        await flush(false);
        await counted();
        continue;
      }
      sizes.shift();
      const frame = encodeFrame({ type: "D", payload: input.subarray(framed, framed + size) });
      staged.push(frame);
      stagedBytes += frame.length;
      framed += size;
      if (stagedBytes >= flushAt) {
        await flush(false);
        flushAt = between(writes, 1, window);
      }
    }
    await flush(framed >= dropAt);
  } finally {
    // Nothing more is sent: a destination that waits for more takes what it has.
    progress.waiting = true;
  }
  return framed;
}

/** One case: the input's seed and size, the window, and how many times the connection goes. */
interface Case {
  seed: number;
  bytes: number;
  /** The server's `--buffer`: the window. */
  window: number;
  /**
   * Times the connection goes mid-stream: dropped (closed) and then resumed,
   * or, every other time, resumed first (a takeover) and then closed.
   */
  drops: number;
  /** The first connection's first phase. */
  start: Phase;
}

/**
 * Sends seeded input through a framed session to a slow destination,
 * dropping and resuming the connection at random offsets, and checks that
 * the destination took exactly the input, in order, and that the last `I`
 * counts all of it.
 */
async function checkInput({ seed, bytes, window, drops, start }: Case): Promise<void> {
  const random = prng(seed);
  const frames = prng(seed ^ 0x0f0f0f0f);
  const writes = prng(seed ^ 0x3c3c3c3c);
  const input = randomBytes(bytes, seed);
  const progress = new ClientProgress();
  const destination = new SlowDestination(input, seed ^ 0x5eed5eed, progress);
  await using proxy = startServer(1, {
    bufferSize: window,
    connect: () => Promise.resolve(destination.fake.conn),
  });
  using connections = new DisposableStack();
  const dropAts = Array.from(
    { length: drops },
    () => between(random, Math.floor(bytes / 10), Math.floor(bytes * 0.9)),
  ).sort((a, b) => a - b);
  const notes: string[] = [];
  const where = (): string =>
    `seed ${hex(seed)}: the destination took ${destination.taken} of ${bytes} bytes` +
    ` (first differing offset ${destination.firstDifference}, ${destination.pauses} pauses)` +
    (notes.length > 0 ? `; ${notes.join("; ")}` : "");
  let session: Reply | null = null;
  let previous = { confirmed: 0, framed: 0 };
  let takenOver: InputConnection | null = null;
  const opened: InputConnection[] = [];
  for (let attachment = 0; attachment <= drops; attachment++) {
    const hello: string = session
      ? `RESUME ${session.id} ${session.secret} 0 framed`
      : "NEW framed";
    const conn: InputConnection = connections.use(
      await InputConnection.open(proxy.port, hello, bytes),
    );
    opened.push(conn);
    session ??= conn.reply;
    assert.equal(conn.reply.window, window, where());
    // The connection this one took over is told E taken-over, which it does not wait for.
    await takenOver?.drop();
    takenOver = null;
    const from = conn.reply.in;
    assert.ok(
      from >= previous.confirmed && from <= previous.framed,
      `${where()}: resumed with in ${from}, confirmed ${previous.confirmed}, framed ${previous.framed}`,
    );
    const dropAt = dropAts[attachment] ?? Infinity;
    let framed: number;
    try {
      framed = await sendInput(conn, input, {
        from,
        frames,
        writes,
        dropAt,
        start: attachment === 0 ? start : null,
        progress,
      });
    } catch (error) {
      throw new Error(`${where()}: sending failed`, { cause: error });
    }
    if (framed < bytes) {
      const takeover = attachment % 2 === 1;
      notes.push(
        `${
          takeover ? "taken over" : "dropped"
        } at ${framed} (confirmed ${conn.confirmed}), resumed`,
      );
      previous = { confirmed: conn.confirmed, framed };
      if (takeover) takenOver = conn;
      else await conn.drop();
      continue;
    }
    await conn.reading;
    if (conn.failure !== undefined) {
      throw new Error(`${where()}: reading I frames failed`, { cause: conn.failure });
    }
    assert.equal(conn.confirmed, bytes, `${where()}: the last I`);
  }
  assert.equal(destination.firstDifference, -1, `${where()}: the bytes differ`);
  assert.equal(destination.taken, bytes, where());
  const counts = opened.reduce((sum, conn) => sum + conn.counts, 0);
  assert.ok(counts > 0, `${where()}: ${counts} I frames`);
}

/**
 * Four seeds, three windows (the default 1 MiB twice), a few MiB each;
 * two start typing (the server's read buffer grows to its largest before
 * any piece is kept), two start with large frames (pieces kept as it grows).
 */
const CASES: readonly Case[] = [
  { seed: 0x1f2e3d4c, bytes: 8 * MIB, window: MIB, drops: 0, start: "typing" },
  { seed: 0x00c0ffee, bytes: 8 * MIB + 12_345, window: MIB, drops: 0, start: "paste" },
  { seed: 0x5a17ab1e, bytes: 7 * MIB + 777, window: 512 * KIB, drops: 0, start: "typing" },
  { seed: 0x7e57da7a, bytes: 8 * MIB + 1, window: 2 * MIB, drops: 0, start: "mixed" },
];

for (const c of CASES) {
  Deno.test(
    `framed input of random frames in random writes reaches a slow destination byte for byte (seed ${
      hex(c.seed)
    }, window ${c.window / KIB} KiB)`,
    async () => {
      await checkInput(c);
    },
  );
}

Deno.test("framed input dropped mid-stream, or taken over, and resumed from the reply's in arrives once, in order (seed 0x0d509ed1)", async () => {
  await checkInput({
    seed: 0x0d509ed1,
    bytes: 8 * MIB,
    window: 2 * MIB,
    drops: 4,
    start: "typing",
  });
});
