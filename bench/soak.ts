/**
 * `deno task soak`: 500 concurrent polling clients against a real server
 * for 10 minutes. Each sends seeded random input with its polls and checks
 * that the echo destination's answer comes back byte for byte, once. Prints
 * a summary; exits 1 on any error, any lost or repeated byte, server memory
 * (or the clients' live heap) that keeps growing after the warm-up, or a
 * run too short to judge memory at all.
 *
 *     deno task soak [--minutes=10] [--clients=500]
 *
 * `tests/soak_test.ts` runs {@linkcode soak} for a few seconds.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ClientSession } from "../lib/client/mod.ts";
import { Destination, echo, loadgen, startLoadgenServer, startServer } from "./workloads.ts";

/** How often memory is sampled, in ms. */
const SAMPLE_MS = 10_000;

/** Samples after the warm-up needed to judge memory (fewer: not judged). */
const MIN_SAMPLES = 3;

/** Options for {@linkcode soak}. */
export interface SoakOptions {
  /**
   * How long the clients poll, in minutes.
   * @default {10}
   */
  minutes?: number;
  /**
   * How many clients poll at once.
   * @default {500}
   */
  clients?: number;
  /**
   * Echo with the C load generator's `echod` when a C compiler is there,
   * which leaves this process to the clients; `false` echoes in this process.
   * @default {true}
   */
  loadgen?: boolean;
  /**
   * Where a progress line goes, one per memory sample.
   * @default {console.log}
   */
  progress?: (line: string) => void;
}

/** Memory at the first sample after the warm-up and at its peak since. */
export interface Growth {
  /** Bytes at the first sample after the warm-up. */
  first: number;
  /** Most bytes at any sample after the warm-up. */
  peak: number;
  /** `(peak - first) / first`. */
  growth: number;
}

/** Whether memory stayed flat after the warm-up, or why that could not be told. */
export type MemoryVerdict =
  | {
    verdict: "flat" | "growing";
    /** The server's resident memory. */
    server: Growth;
    /** This process's live heap: the client library, as a gateway runs it. */
    heap: Growth;
  }
  | { verdict: "not judged"; reason: string };

/** What a soak run found. */
export interface SoakSummary {
  minutes: number;
  clients: number;
  /** Wall time of the run, in seconds. */
  seconds: number;
  polls: number;
  /** Output bytes received by all clients. */
  bytesOut: number;
  /** Failed session creations, polls and closes. */
  errors: number;
  /** The first few errors, as text. */
  firstErrors: string[];
  /** Bytes that came back wrong, twice, or never. */
  mismatches: number;
  memory: MemoryVerdict;
}

/** Server memory may grow this much after the warm-up, the clients' heap {@linkcode HEAP_SLACK}. */
const RSS_SLACK = 0.15;
const HEAP_SLACK = 0.25;

/**
 * Runs `clients` polling clients against a server in a child process for
 * `minutes`, each checking its echoed input.
 *
 * @param options Duration, client count, echo and progress output.
 * @returns What the run found; see {@linkcode soakPassed}.
 *
 * @example A few seconds
 * ```ts ignore
 * const summary = await soak({ minutes: 0.05, clients: 20, loadgen: false });
 * console.log(formatSummary(summary));
 * ```
 */
export async function soak(options: SoakOptions = {}): Promise<SoakSummary> {
  const { minutes = 10, clients = 500, progress = console.log } = options;
  const binary = options.loadgen === false ? null : await loadgen();
  await using destination = binary
    ? await startLoadgenServer(binary, "echod")
    : new Destination(echo);
  await using server = await startServer(destination.port);
  const proxy = { hostname: "127.0.0.1", port: server.port };

  let polls = 0;
  let errors = 0;
  let bytesOut = 0;
  let mismatches = 0;
  const firstErrors: string[] = [];
  function failed(error: unknown): void {
    errors++;
    if (firstErrors.length < 5) firstErrors.push(String(error));
  }
  const started = performance.now();
  const deadline = started + minutes * 60_000;
  /** Server RSS, and this process's heap (the client library's, as a gateway would run it). */
  const samples: { at: number; rss: number; heap: number }[] = [];
  const sampler = setInterval(() => {
    // With --v8-flags=--expose-gc (deno task soak), the heap is measured without its garbage.
    (globalThis as { gc?: () => void }).gc?.();
    const sample = {
      at: (performance.now() - started) / 1000,
      rss: server.rss(),
      heap: Deno.memoryUsage().heapUsed,
    };
    samples.push(sample);
    progress(
      `${Math.round(sample.at)} s: ${polls} polls, ${errors} errors, server RSS ${
        Math.round(sample.rss / 2 ** 20)
      } MiB, load driver heap ${Math.round(sample.heap / 2 ** 20)} MiB`,
    );
  }, SAMPLE_MS);

  /** One client; it stops at its first error, which fails the run already. */
  async function client(index: number): Promise<void> {
    const random = generator(index + 1);
    let session: ClientSession;
    try {
      session = await ClientSession.create({ proxy });
    } catch (error) {
      failed(error);
      return;
    }
    const expected = new Expected();
    try {
      while (performance.now() < deadline) {
        const size = Math.floor(random() * 256);
        const input = new Uint8Array(size);
        for (let i = 0; i < size; i++) input[i] = Math.floor(random() * 256);
        session.send(input);
        expected.push(input);
        const output = await session.poll({ wait: 200 });
        polls++;
        bytesOut += output.length;
        mismatches += expected.check(output);
      }
      // Collect the rest of the echo.
      for (let attempt = 0; attempt < 50 && expected.pending > 0; attempt++) {
        mismatches += expected.check(await session.poll({ wait: 200 }));
      }
      mismatches += expected.pending;
      await session.close();
    } catch (error) {
      failed(error);
    }
  }

  try {
    await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));
  } finally {
    clearInterval(sampler);
  }
  return {
    minutes,
    clients,
    seconds: (performance.now() - started) / 1000,
    polls,
    bytesOut,
    errors,
    firstErrors,
    mismatches,
    memory: judgeMemory(samples, minutes),
  };
}

/** Memory after the warm-up (the first fifth of the run): flat means no trend up. */
function judgeMemory(
  samples: { at: number; rss: number; heap: number }[],
  minutes: number,
): MemoryVerdict {
  const warm = samples.filter((sample) => sample.at > (minutes * 60) / 5);
  if (warm.length < MIN_SAMPLES) {
    return {
      verdict: "not judged",
      reason: `${warm.length} memory samples after the warm-up, ${MIN_SAMPLES} needed: ` +
        `run at least ${Math.ceil(((MIN_SAMPLES + 1) * SAMPLE_MS) / 0.8 / 1000)} s ` +
        `(a sample every ${SAMPLE_MS / 1000} s, the first fifth is warm-up)`,
    };
  }
  function growth(values: number[]): Growth {
    const first = values[0] ?? NaN;
    const peak = Math.max(...values);
    return { first, peak, growth: (peak - first) / first };
  }
  const server = growth(warm.map((sample) => sample.rss));
  const heap = growth(warm.map((sample) => sample.heap));
  // NaN (an unreadable sample) counts as growing: the verdict must be earned.
  const flat = server.growth <= RSS_SLACK && heap.growth <= HEAP_SLACK;
  return { verdict: flat ? "flat" : "growing", server, heap };
}

/**
 * Whether a run passed: no error, no lost or repeated byte, and memory
 * judged flat.
 *
 * @param summary What {@linkcode soak} returned.
 * @returns `true` for a pass.
 */
export function soakPassed(summary: SoakSummary): boolean {
  return summary.errors === 0 && summary.mismatches === 0 && summary.memory.verdict === "flat";
}

/**
 * The summary as printed at the end of `deno task soak`.
 *
 * @param summary What {@linkcode soak} returned.
 * @returns Lines of text.
 */
export function formatSummary(summary: SoakSummary): string {
  const { memory } = summary;
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  const percent = (growth: number) => `${(growth * 100).toFixed(1)}%`;
  const memoryLines = memory.verdict === "not judged"
    ? [`  memory         not judged: ${memory.reason}`]
    : [
      `  server RSS     ${mib(memory.server.first)} MiB after warm-up, peak ${
        mib(memory.server.peak)
      } MiB (${percent(memory.server.growth)})`,
      `  driver heap    ${mib(memory.heap.first)} MiB after warm-up, peak ${
        mib(memory.heap.peak)
      } MiB (${percent(memory.heap.growth)}): the clients' library, as a gateway runs it`,
      `  memory         ${memory.verdict}`,
    ];
  const errors = summary.firstErrors.length ? ` (${summary.firstErrors.join("; ")})` : "";
  return [
    `soak: ${summary.clients} clients polling for ${summary.minutes} min against an echo destination`,
    `  polls          ${summary.polls} (${Math.round(summary.polls / summary.seconds)}/s)`,
    `  output bytes   ${summary.bytesOut}`,
    `  errors         ${summary.errors}${errors}`,
    `  lost/repeated  ${summary.mismatches} bytes`,
    ...memoryLines,
  ].join("\n");
}

/** A tiny seeded generator per client, so each stream is reproducible. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state ^ (state >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
    return state / 4294967296;
  };
}

/**
 * The bytes sent and not yet echoed, in the order sent: only the unchecked
 * tail is kept, so that the check's own memory stays flat however long the
 * soak runs.
 */
class Expected {
  readonly #chunks: Uint8Array[] = [];
  #offset = 0;
  /** Bytes sent and not yet seen back. */
  pending = 0;

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.pending += bytes.length;
  }

  /** Checks output against what was sent; returns the bytes that differ or were not sent. */
  check(output: Uint8Array): number {
    let wrong = 0;
    for (const byte of output) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) {
        wrong++;
        continue;
      }
      if (byte !== chunk[this.#offset++]) wrong++;
      this.pending--;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    return wrong;
  }
}

const USAGE = "Usage: deno task soak [--minutes=10] [--clients=500]";

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: { minutes: { type: "string" }, clients: { type: "string" } },
      strict: true,
    }));
  } catch (error) {
    console.error(`soak: ${error instanceof Error ? error.message : error}\n${USAGE}`);
    Deno.exit(2);
  }
  const minutes = Number(values.minutes ?? 10);
  const clients = Number(values.clients ?? 500);
  if (!(minutes > 0) || !(Number.isInteger(clients) && clients > 0)) {
    console.error(`soak: --minutes must be above 0 and --clients a whole number above 0\n${USAGE}`);
    Deno.exit(2);
  }
  const summary = await soak({ minutes, clients });
  console.log(`\n${formatSummary(summary)}`);
  const passed = soakPassed(summary);
  console.log(passed ? "soak: OK" : "soak: FAILED");
  if (!passed) Deno.exitCode = 1;
}

if (import.meta.main) await main();
