/**
 * `deno task soak`: 500 concurrent polling clients against a real server
 * for 10 minutes. Each sends seeded random input with its polls and checks
 * that the echo destination's answer comes back byte for byte, once. Prints
 * a summary; exits 1 on any error, any lost or repeated byte, or server
 * memory (or the clients' live heap) that keeps growing after the warm-up.
 *
 *     deno task soak [--minutes=10] [--clients=500]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ClientSession } from "../lib/client.ts";
import { Destination, echo, loadgen, startLoadgenServer, startServer } from "./workloads.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { minutes: { type: "string" }, clients: { type: "string" } },
  strict: true,
});
const minutes = Number(values.minutes ?? 10);
const clients = Number(values.clients ?? 500);
const binary = await loadgen();
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
const deadline = performance.now() + minutes * 60_000;
/** Server RSS, and this process's heap (the client library's, as a gateway would run it). */
const samples: { at: number; rss: number; heap: number }[] = [];
const started = performance.now();
const sampler = setInterval(() => {
  // With --v8-flags=--expose-gc (deno task soak), the heap is measured without its garbage.
  (globalThis as { gc?: () => void }).gc?.();
  samples.push({
    at: (performance.now() - started) / 1000,
    rss: server.rss(),
    heap: Deno.memoryUsage().heapUsed,
  });
  const last = samples.at(-1);
  console.log(
    `${Math.round(last?.at ?? 0)} s: ${polls} polls, ${errors} errors, server RSS ${
      Math.round((last?.rss ?? 0) / 2 ** 20)
    } MiB, load driver heap ${Math.round((last?.heap ?? 0) / 2 ** 20)} MiB`,
  );
}, 10_000);

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

async function client(index: number): Promise<void> {
  const random = generator(index + 1);
  const session = await ClientSession.create({ proxy });
  const expected = new Expected();
  while (performance.now() < deadline) {
    try {
      const size = Math.floor(random() * 256);
      const input = new Uint8Array(size);
      for (let i = 0; i < size; i++) input[i] = Math.floor(random() * 256);
      session.send(input);
      expected.push(input);
      const output = await session.poll({ wait: 200 });
      polls++;
      bytesOut += output.length;
      mismatches += expected.check(output);
    } catch (error) {
      errors++;
      if (firstErrors.length < 5) firstErrors.push(String(error));
    }
  }
  // Collect the rest of the echo.
  for (let attempt = 0; attempt < 50 && expected.pending > 0; attempt++) {
    mismatches += expected.check(await session.poll({ wait: 200 }));
  }
  mismatches += expected.pending;
  await session.close();
}

await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));
clearInterval(sampler);

// Memory after the warm-up (the first fifth of the run): flat means no trend up.
const warm = samples.filter((sample) => sample.at > (minutes * 60) / 5);
const first = warm[0]?.rss ?? NaN;
const peak = Math.max(...warm.map((sample) => sample.rss));
const growth = (peak - first) / first;
const heapFirst = warm[0]?.heap ?? NaN;
const heapPeak = Math.max(...warm.map((sample) => sample.heap));
const heapGrowth = (heapPeak - heapFirst) / heapFirst;
const seconds = (performance.now() - started) / 1000;
console.log(`
soak: ${clients} clients polling for ${minutes} min against an echo destination
  polls          ${polls} (${Math.round(polls / seconds)}/s)
  output bytes   ${bytesOut}
  errors         ${errors}${firstErrors.length ? ` (${firstErrors.join("; ")})` : ""}
  lost/repeated  ${mismatches} bytes
  server RSS     ${Math.round(first / 2 ** 20)} MiB after warm-up, peak ${
  Math.round(peak / 2 ** 20)
} MiB (${(growth * 100).toFixed(1)}%)
  driver heap    ${Math.round(heapFirst / 2 ** 20)} MiB after warm-up, peak ${
  Math.round(heapPeak / 2 ** 20)
} MiB (${(heapGrowth * 100).toFixed(1)}%): the clients' library, as a gateway runs it`);
const ok = errors === 0 && mismatches === 0 && !(growth > 0.15) && !(heapGrowth > 0.25);
console.log(ok ? "soak: OK" : "soak: FAILED");
if (!ok) Deno.exitCode = 1;
