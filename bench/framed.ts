/**
 * `deno task bench framed`: what a framed (version 2) attachment costs
 * beside a version 1 streaming one, in the same run, over one server
 * process each: output and input throughput, and the echo latency of
 * 64-byte messages. The framed client is the library's `FramedConnection`,
 * acknowledging every half window and sending input within the window,
 * as a real client does.
 *
 * @module
 */

import { Wakeup, writeAll } from "../lib/_io.ts";
import { FramedConnection } from "../lib/client/mod.ts";
import { attach, Destination, echo, percentile, startServer } from "./workloads.ts";

/** Which kind of attachment. */
export type Attachment = "v1" | "framed";

/** One kind's figures. */
export interface FramedFigures {
  /** Output, destination to client, MB/s. */
  output: number;
  /** Input, client to destination, MB/s. */
  input: number;
  /** Echo of 64 bytes, p50 and p99, ms. */
  echoP50: number;
  echoP99: number;
}

const CHUNK = 128 * 1024;
const payload = new Uint8Array(CHUNK).fill(120);

/** Opens a framed session on `port`. */
function openFramed(port: number): Promise<FramedConnection> {
  return FramedConnection.open({ proxy: { hostname: "127.0.0.1", port } }, { verb: "NEW" });
}

/** Reads framed output until `bytes` have come, acknowledging every half window. */
async function readFramed(framed: FramedConnection, bytes: number): Promise<void> {
  const half = framed.reply.window / 2;
  while (framed.received < bytes) {
    const event = await framed.next();
    if (event === null || event.type === "end") throw new Error("the framed stream ended early");
    if (framed.received - framed.acknowledged >= half) void framed.acknowledge(framed.received);
  }
}

async function outputRate(kind: Attachment, bytes: number): Promise<number> {
  await using destination = new Destination(async (conn) => {
    for (let sent = 0; sent < bytes; sent += CHUNK) await writeAll(conn, payload);
  });
  await using server = await startServer(destination.port, ["--buffer=4m"]);
  const started = performance.now();
  if (kind === "v1") {
    const { conn, early } = await attach(server.port, "NEW\n");
    const buffer = new Uint8Array(CHUNK);
    for (let got = early; got < bytes;) {
      const count = await conn.read(buffer);
      if (count === null) throw new Error("output ended early");
      got += count;
    }
    conn.close();
  } else {
    const framed = await openFramed(server.port);
    await readFramed(framed, bytes);
    framed.close();
  }
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

async function inputRate(kind: Attachment, bytes: number): Promise<number> {
  const received = Promise.withResolvers<void>();
  await using destination = new Destination(async (conn) => {
    const buffer = new Uint8Array(CHUNK);
    for (let got = 0; got < bytes;) {
      const count = await conn.read(buffer);
      if (count === null) break;
      got += count;
    }
    received.resolve();
  });
  await using server = await startServer(destination.port, ["--buffer=4m"]);
  const started = performance.now();
  if (kind === "v1") {
    const { conn } = await attach(server.port, "NEW\n");
    for (let sent = 0; sent < bytes; sent += CHUNK) await writeAll(conn, payload);
    await received.promise;
    conn.close();
  } else {
    const framed = await openFramed(server.port);
    const counted = new Wakeup();
    const reading = (async () => {
      // I frames open the window; output there is none.
      for (let event = await framed.next(); event; event = await framed.next()) {
        counted.wake();
        if (event.type === "end") break;
      }
      counted.wake();
    })();
    for (let sent = 0; sent < bytes;) {
      const room = Math.min(framed.inputRoom, CHUNK, bytes - sent);
      if (room === 0) {
        if (framed.closed) throw new Error("the framed connection closed");
        await counted.wait();
        continue;
      }
      await framed.sendInput(payload.subarray(0, room));
      sent += room;
    }
    await received.promise;
    framed.close();
    await reading;
  }
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

async function echoLatency(kind: Attachment, echoes: number): Promise<[number, number]> {
  await using destination = new Destination(echo);
  await using server = await startServer(destination.port);
  const message = new Uint8Array(64).fill(97);
  const times: number[] = [];
  if (kind === "v1") {
    const { conn } = await attach(server.port, "NEW\n");
    const buffer = new Uint8Array(64);
    for (let i = 0; i < echoes; i++) {
      const started = performance.now();
      await writeAll(conn, message);
      for (let got = 0; got < 64;) {
        const count = await conn.read(buffer.subarray(got));
        if (count === null) throw new Error("the echo ended early");
        got += count;
      }
      times.push(performance.now() - started);
    }
    conn.close();
  } else {
    const framed = await openFramed(server.port);
    for (let i = 0; i < echoes; i++) {
      const started = performance.now();
      const target = framed.received + 64;
      await framed.sendInput(message);
      while (framed.received < target) {
        const event = await framed.next();
        if (event === null || event.type === "end") throw new Error("the echo ended early");
      }
      void framed.acknowledge(framed.received);
      times.push(performance.now() - started);
    }
    framed.close();
  }
  times.sort((a, b) => a - b);
  return [percentile(times, 50), percentile(times, 99)];
}

/**
 * Measures both kinds, interleaved (v1, framed, v1, framed, ...), keeping
 * the best throughput and the median latency percentiles of `rounds`.
 *
 * @param bytes Bytes each way a round.
 * @param echoes Echoes a round.
 * @param rounds Rounds.
 * @returns Each kind's figures.
 */
export async function framedComparison(
  bytes: number,
  echoes: number,
  rounds: number,
): Promise<Record<Attachment, FramedFigures>> {
  const samples: Record<Attachment, FramedFigures[]> = { v1: [], framed: [] };
  for (let round = 0; round < rounds; round++) {
    for (const kind of ["v1", "framed"] as const) {
      const output = await outputRate(kind, bytes);
      const input = await inputRate(kind, bytes);
      const [echoP50, echoP99] = await echoLatency(kind, echoes);
      samples[kind].push({ output, input, echoP50, echoP99 });
    }
  }
  const summary = (list: FramedFigures[]): FramedFigures => {
    const middle = (values: number[]): number =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
    return {
      output: Math.max(...list.map((figures) => figures.output)),
      input: Math.max(...list.map((figures) => figures.input)),
      echoP50: middle(list.map((figures) => figures.echoP50)),
      echoP99: middle(list.map((figures) => figures.echoP99)),
    };
  };
  return { v1: summary(samples.v1), framed: summary(samples.framed) };
}
