/**
 * `deno task soak`: 500 concurrent polling clients against a real server
 * for 10 minutes. Each sends seeded random input with its polls and checks
 * that the echo destination's answer comes back byte for byte, once. Prints
 * a summary; exits 1 on any error, any lost or repeated byte, or server
 * memory that keeps growing after the warm-up.
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
const samples: { at: number; rss: number }[] = [];
const started = performance.now();
const sampler = setInterval(() => {
  samples.push({ at: (performance.now() - started) / 1000, rss: server.rss() });
  const last = samples.at(-1);
  console.log(
    `${Math.round(last?.at ?? 0)} s: ${polls} polls, ${errors} errors, server RSS ${
      Math.round((last?.rss ?? 0) / 2 ** 20)
    } MiB`,
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

async function client(index: number): Promise<void> {
  const random = generator(index + 1);
  const session = await ClientSession.create({ proxy });
  const sent: number[] = []; // every byte sent, to check the echo against
  let checked = 0;
  while (performance.now() < deadline) {
    try {
      const size = Math.floor(random() * 256);
      const input = new Uint8Array(size);
      for (let i = 0; i < size; i++) input[i] = Math.floor(random() * 256);
      session.send(input);
      for (const byte of input) sent.push(byte);
      const output = await session.poll({ wait: 200 });
      polls++;
      bytesOut += output.length;
      for (const byte of output) {
        if (byte !== sent[checked++]) mismatches++;
      }
    } catch (error) {
      errors++;
      if (firstErrors.length < 5) firstErrors.push(String(error));
    }
  }
  // Collect the rest of the echo.
  for (let attempt = 0; attempt < 50 && checked < sent.length; attempt++) {
    const output = await session.poll({ wait: 200 });
    for (const byte of output) if (byte !== sent[checked++]) mismatches++;
  }
  if (checked !== sent.length) mismatches += Math.abs(sent.length - checked);
  await session.close();
}

await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));
clearInterval(sampler);

// Memory after the warm-up (the first fifth of the run): flat means no trend up.
const warm = samples.filter((sample) => sample.at > (minutes * 60) / 5);
const first = warm[0]?.rss ?? NaN;
const peak = Math.max(...warm.map((sample) => sample.rss));
const growth = (peak - first) / first;
const seconds = (performance.now() - started) / 1000;
console.log(`
soak: ${clients} clients polling for ${minutes} min against an echo destination
  polls          ${polls} (${Math.round(polls / seconds)}/s)
  output bytes   ${bytesOut}
  errors         ${errors}${firstErrors.length ? ` (${firstErrors.join("; ")})` : ""}
  lost/repeated  ${mismatches} bytes
  server RSS     ${Math.round(first / 2 ** 20)} MiB after warm-up, peak ${
  Math.round(peak / 2 ** 20)
} MiB (${(growth * 100).toFixed(1)}%)`);
const ok = errors === 0 && mismatches === 0 && !(growth > 0.15);
console.log(ok ? "soak: OK" : "soak: FAILED");
if (!ok) Deno.exitCode = 1;
