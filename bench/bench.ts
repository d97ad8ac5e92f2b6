/**
 * `deno task bench`: measures socketproxy against what a user would compare
 * it with, in the same run, and prints a table (and JSON with --json=FILE).
 *
 *     deno task bench                 # everything (a few minutes)
 *     deno task bench --quick         # smaller runs, for a look
 *     deno task bench --json=bench.json
 *     deno task bench ws              # only these parts (throughput, framed, polls, resume,
 *                                     # scale, fairness, gateway, ws, websockify); the same
 *                                     # as --only=ws
 *
 * The framed part takes BENCH_FRAMED_MIB (MiB each way a run, default 256,
 * 64 with --quick), BENCH_FRAMED_ECHOES (64-byte echoes a run, default 2000)
 * and BENCH_FRAMED_ROUNDS (default 5, 3 with --quick) from the environment.
 * The WebSocket part (ws) takes BENCH_WS_MIB (MiB each way a run, default
 * 64, 16 with --quick), BENCH_WS_ECHOES (64-byte echoes a run, default 2000)
 * and BENCH_WS_ROUNDS (default 5, 1 with --quick) from the environment.
 * The fairness part takes BENCH_FAIR_CLIENTS (default 1000), BENCH_FAIR_SECONDS
 * (a run, default 3), BENCH_FAIR_ROUNDS (default 3, 1 with --quick) and
 * BENCH_FAIR_BOUND_MS (the starvation bound, default 1000). The websockify
 * part (skipped when Debian's websockify is not installed) takes
 * BENCH_WSK_MIB (default 256, 64 with --quick), BENCH_WS_ECHOES and
 * BENCH_WSK_ROUNDS (default 3, 1 with --quick).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { VERSION } from "../lib/version.ts";
import {
  Destination,
  echo,
  gateway,
  generatorAlone,
  havePython,
  haveSocat,
  haveWebsockify,
  loadgen,
  median,
  minimalServerCycles,
  pollCycles,
  type PollFigures,
  resumeLatency,
  scale,
  startAsyncioProxy,
  startLoadgenServer,
  startServer,
  type Throughput,
  throughput,
  webSocketRelay,
  type WsFigures,
} from "./workloads.ts";
import { framedComparison, type FramedFigures } from "./framed.ts";
import { type FairFigures, fairness } from "./fairness.ts";
import { memory, peerMemory } from "./memory.ts";
import { clusterPolls } from "./cluster.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { json: { type: "string" }, quick: { type: "boolean" }, only: { type: "string" } },
  strict: true,
  allowPositionals: true,
});
const quick = values.quick === true;
const PARTS = [
  "throughput",
  "framed",
  "polls",
  "resume",
  "scale",
  "fairness",
  "memory",
  "gateway",
  "cluster",
  "ws",
  "websockify",
];
const only = new Set(
  values.only?.split(",") ?? (positionals.length > 0 ? positionals : PARTS),
);
for (const part of only) {
  if (!PARTS.includes(part)) throw new Error(`No part ${part}: the parts are ${PARTS.join(", ")}`);
}

/** A whole number from the environment, or `fallback`. */
function fromEnv(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name}: a whole number > 0`);
  return value;
}

function machine(): Record<string, string | number> {
  const cpu = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ??
    "unknown";
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    socketproxy: VERSION,
  };
}

const fixed = (value: number, digits = 0): string =>
  Number.isFinite(value) ? value.toFixed(digits) : "n/a";

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, column) =>
    Math.max(...cells.map((row) => (row[column] ?? "").length))
  );
  console.log(`\n${title}`);
  for (const [index, row] of cells.entries()) {
    console.log(
      "  " +
        row.map((cell, column) =>
          column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)
        ).join("  "),
    );
    if (index === 0) console.log("  " + widths.map((width) => "-".repeat(width)).join("  "));
  }
}

const results: Record<string, unknown> = { machine: machine(), date: new Date().toISOString() };
console.log(`socketproxy ${VERSION} benchmarks on ${JSON.stringify(results.machine)}`);
console.log(
  await loadgen()
    ? "load generator: bench/loadgen.c (C, epoll), compiled with cc"
    : "load generator: in Deno (no cc to build bench/loadgen.c): it may be the bottleneck",
);

if (only.has("throughput")) {
  const bytes = (quick ? 64 : 512) * 1024 * 1024;
  const runs = quick ? 1 : 5;
  const measured = await throughput(
    await haveSocat()
      ? ["direct", "socketproxy", "socat", "onread"]
      : ["direct", "socketproxy", "onread"],
    bytes,
    runs,
  );
  const direct = measured.direct;
  const proxied = measured.socketproxy;
  const socat = measured.socat ?? null;
  const onread = measured.onread;
  results.throughput = { bytes, runs, direct, socketproxy: proxied, socat, onread };
  const relayRow = (name: string, figures: Throughput): string[] => [
    name,
    fixed(figures.output),
    fixed(figures.input),
    fixed(figures.output / direct.output, 2),
    fixed(figures.input / direct.input, 2),
    socat ? fixed(figures.output / socat.output, 2) : "n/a",
    socat ? fixed(figures.input / socat.input, 2) : "n/a",
    fixed(figures.outputCpuNs, 3),
    fixed(figures.inputCpuNs, 3),
  ];
  table(
    `1. Relay throughput of one attached session, MB/s (best of ${runs}, ${
      bytes / 2 ** 20
    } MiB each way);\n   relay ns/B: the relay process's CPU time (/proc schedstat) per byte, ` +
      "median of the runs (what a byte costs, whatever the noise)",
    [
      "path",
      "output",
      "input",
      "output / direct",
      "input / direct",
      "output / socat",
      "input / socat",
      "relay ns/B out",
      "relay ns/B in",
    ],
    [
      ["direct TCP", fixed(direct.output), fixed(direct.input), "1.00", "1.00", "", "", "", ""],
      relayRow("socketproxy", proxied),
      socat
        ? relayRow("socat -b 131072", socat)
        : ["socat -b 131072", "not installed", "", "", "", "", "", "", ""],
      relayRow("node:net onread relay", onread),
    ],
  );
}

if (only.has("framed")) {
  const mib = fromEnv("BENCH_FRAMED_MIB", quick ? 64 : 256);
  const echoes = fromEnv("BENCH_FRAMED_ECHOES", 2000);
  const rounds = fromEnv("BENCH_FRAMED_ROUNDS", quick ? 3 : 5);
  const buffer = "4m";
  const { medians, rounds: perRound } = await framedComparison({
    bytes: mib * 2 ** 20,
    echoes,
    rounds,
    buffer,
  });
  results.framed = { bytes: mib * 2 ** 20, echoes, rounds, buffer, medians, perRound };
  const { v1 } = medians;
  const row = (name: string, figures: FramedFigures): string[] => [
    name,
    fixed(figures.output),
    fixed(figures.input),
    fixed(figures.echoP50ms, 3),
    fixed(figures.echoP99ms, 3),
    fixed(figures.outputServerCpuNs, 3),
    fixed(figures.inputServerCpuNs, 3),
  ];
  const ratios = (name: string, figures: FramedFigures): string[] => [
    name,
    fixed(figures.output / v1.output, 2),
    fixed(figures.input / v1.input, 2),
    fixed(figures.echoP50ms / v1.echoP50ms, 2),
    fixed(figures.echoP99ms / v1.echoP99ms, 2),
    fixed(figures.outputServerCpuNs / v1.outputServerCpuNs, 2),
    fixed(figures.inputServerCpuNs / v1.inputServerCpuNs, 2),
  ];
  table(
    `1b. Framed (version 2) beside version 1 streaming, one server (--buffer=${buffer}, the window), ` +
      `median of ${rounds} interleaved round${rounds === 1 ? "" : "s"}:\n` +
      `   output and input of ${mib} MiB a run, MB/s; ${echoes} echoes of 64 bytes a run, ms. ` +
      "framed: a client on lib/frames.ts (A every half window, input within the window);\n" +
      "   FramedConnection: the client library's; server ns/B: the server process's CPU time\n" +
      "   (/proc schedstat) per byte of the output and the input run (what a byte costs, whatever the noise)",
    [
      "attachment",
      "output MB/s",
      "input MB/s",
      "echo p50 ms",
      "echo p99 ms",
      "server ns/B out",
      "server ns/B in",
    ],
    [
      row("v1 streaming", v1),
      row("framed", medians.framed),
      row("FramedConnection", medians.framedConnection),
      ratios("framed / v1", medians.framed),
      ratios("FramedConnection / v1", medians.framedConnection),
    ],
  );
}

if (only.has("polls") || only.has("resume") || only.has("gateway")) {
  // An echo destination, in C when it can be built, so it takes little of the CPU.
  const binary = await loadgen();
  await using destination = binary
    ? await startLoadgenServer(binary, "echod")
    : new Destination(echo);
  await using server = await startServer(destination.port);
  const seconds = quick ? 1 : 3;

  if (only.has("polls")) {
    const alone = await generatorAlone(64, seconds);
    const rows: (string | number)[][] = [];
    const polls = [];
    for (const clients of [1, 8]) {
      const figures = await pollCycles(server.port, clients, seconds, server.process.pid);
      polls.push(figures);
      rows.push([
        clients,
        fixed(figures.cyclesPerSecond),
        fixed(figures.p50ms, 2),
        fixed(figures.p99ms, 2),
        fixed(figures.cpuUsPerPoll, 1),
        "",
        "",
      ]);
    }
    // 64 clients: interleaved with the minimal server, medians, as the CPU
    // per poll of the two is what is compared.
    const rounds = quick ? 1 : 3;
    const ours: PollFigures[] = [];
    const minimal: { cyclesPerSecond: number; cpuUsPerPoll: number }[] = [];
    const floors: { cyclesPerSecond: number; cpuUsPerPoll: number }[] = [];
    const pythons: PollFigures[] = [];
    await using python = await havePython() ? await startAsyncioProxy(destination.port) : null;
    for (let round = 0; round < rounds; round++) {
      const ceiling = await minimalServerCycles(64, seconds);
      if (ceiling) minimal.push(ceiling);
      const floor = await minimalServerCycles(64, seconds, destination.port);
      if (floor) floors.push(floor);
      ours.push(await pollCycles(server.port, 64, seconds, server.process.pid));
      if (python) pythons.push(await pollCycles(python.port, 64, seconds, python.process.pid));
    }
    const floorCpu = floors.length > 0 ? median(floors.map((run) => run.cpuUsPerPoll)) : NaN;
    const ceiling = minimal.length > 0
      ? {
        cyclesPerSecond: median(minimal.map((run) => run.cyclesPerSecond)),
        cpuUsPerPoll: median(minimal.map((run) => run.cpuUsPerPoll)),
      }
      : null;
    polls.push(...ours);
    /** A 64-client row: medians of the runs, the CPU per poll against the two baselines. */
    const row64 = (label: string | number, runs: PollFigures[]): (string | number)[] => {
      const cpu = median(runs.map((run) => run.cpuUsPerPoll));
      return [
        label,
        fixed(median(runs.map((run) => run.cyclesPerSecond))),
        fixed(median(runs.map((run) => run.p50ms)), 2),
        fixed(median(runs.map((run) => run.p99ms)), 2),
        fixed(cpu, 1),
        ceiling ? fixed(cpu / ceiling.cpuUsPerPoll, 2) : "n/a",
        Number.isNaN(floorCpu) ? "n/a" : fixed(cpu / floorCpu, 2),
      ];
    };
    rows.push(row64(64, ours));
    if (pythons.length > 0) rows.push(row64("64, Python asyncio", pythons));
    results.polls = {
      generatorAlone64: alone,
      minimalDenoServer64: ceiling,
      minimal,
      floors,
      runs: polls,
      python: pythons,
    };
    table(
      `2. Poll cycles (connect, RESUME with ack and 16 bytes of input, read pending, close), ${seconds} s each ` +
        `(64 clients: median of ${rounds} rounds interleaved with the minimal server).\n` +
        `   The load generator alone (64 clients, against a fake proxy in C): ${
          fixed(alone)
        } cycles/s; ` +
        `a minimal Deno server (accept, read the hello and input, reply, read to the end, close: ` +
        `bench/minimal_server.ts): ${
          ceiling === null ? "n/a" : fixed(ceiling.cyclesPerSecond)
        } cycles/s, ` +
        `${ceiling === null ? "n/a" : fixed(ceiling.cpuUsPerPoll, 1)} µs CPU per poll; ` +
        `the protocol's floor (the minimal server plus a kept destination connection per ` +
        `session: bench/floor_server.ts): ${fixed(floorCpu, 1)} µs CPU per poll.\n` +
        "   Python asyncio: bench/asyncio_proxy.py (protocol version 1, the same clients, " +
        `interleaved)${pythons.length > 0 ? "" : ": n/a (no python3)"}`,
      [
        "clients",
        "cycles/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/poll",
        "CPU / minimal server's",
        "CPU / floor's",
      ],
      rows,
    );
  }

  if (only.has("resume")) {
    await using source = Object.assign(
      new Destination(async (conn) => {
        await conn.write(new Uint8Array(1024).fill(64));
        await conn.read(new Uint8Array(16)); // hold the connection open
      }),
      { ready: Promise.resolve() },
    );
    await using resumeServer = await startServer(source.port);
    const figures = await resumeLatency(resumeServer.port, source, quick ? 500 : 3000);
    results.resume = figures;
    table(
      "3. Resume latency: connect to the first byte of a detached session's pending output",
      ["samples", "p50 ms", "p99 ms"],
      [[quick ? 500 : 3000, fixed(figures.p50ms, 3), fixed(figures.p99ms, 3)]],
    );
  }

  if (only.has("gateway")) {
    const rows: (string | number)[][] = [];
    const runs = [];
    for (const clients of [1, 16]) {
      const figures = await gateway(server.port, clients, seconds);
      runs.push(figures);
      rows.push([clients, fixed(figures.pollsPerSecond), fixed(figures.longPollsPerSecond)]);
    }
    results.gateway = runs;
    table(
      `5. Through the web gateway (POST .../poll; long-polls carry input the echo answers at once), ${seconds} s each`,
      ["clients", "polls/s", "long-polls/s"],
      rows,
    );
  }
}

if (only.has("scale")) {
  const count = quick ? 2000 : 10_000;
  const attached = quick ? 200 : 1000;
  const figures = await scale(count, attached, quick ? 1 : 3);
  results.scale = figures;
  table(
    "4. Scale: detached sessions (each with its destination connection), then attached ones echoing 64-byte messages",
    [
      "sessions",
      "create s",
      "RSS/session KiB",
      "attached",
      "echoes/s",
      "MB/s",
      "echo p50 ms",
      "echo p99 ms",
    ],
    [[
      figures.sessions,
      fixed(figures.createSeconds, 2),
      fixed(figures.rssPerSessionKiB, 1),
      figures.attached,
      fixed(figures.echoMessagesPerSecond),
      fixed(figures.echoMBps, 1),
      fixed(figures.echoP50ms, 2),
      fixed(figures.echoP99ms, 2),
    ]],
  );
}

if (only.has("fairness")) {
  const clients = fromEnv("BENCH_FAIR_CLIENTS", 1000);
  const seconds = fromEnv("BENCH_FAIR_SECONDS", 3);
  const rounds = fromEnv("BENCH_FAIR_ROUNDS", quick ? 1 : 3);
  const boundMs = fromEnv("BENCH_FAIR_BOUND_MS", 1000);
  const figures = await fairness({ clients, seconds, rounds, boundMs });
  results.fairness = { clients, seconds, rounds, boundMs, figures };
  if (figures === null) {
    console.log("\n4b. Fairness: skipped (no cc to build bench/loadgen.c)");
  } else {
    const node = figures.node;
    const row = (path: string, f: FairFigures): string[] => [
      path,
      fixed(f.echoesPerSecond),
      fixed(f.p50ms, 1),
      fixed(f.p99ms, 1),
      fixed(f.p999ms, 1),
      fixed(f.starved),
      node ? fixed(f.p99ms / node.p99ms, 2) : "n/a",
    ];
    table(
      `4b. Fairness: ${clients} attached connections each echoing 64 bytes in a loop, ${seconds} s a run, ` +
        `median of ${rounds} interleaved round${
          rounds === 1 ? "" : "s"
        }; starved: connections that ` +
        `waited over ${boundMs} ms for one echo.\n` +
        "   The relays (20 lines each, no sessions): bench/node_relay.mjs run by node and by deno, " +
        "bench/onread_relay.mjs (node:net reading into reused buffers), bench/deno_conn_relay.ts",
      ["path", "echoes/s", "p50 ms", "p99 ms", "p99.9 ms", "starved", "p99 / node"],
      Object.entries(figures).map(([path, f]) => row(path, f)),
    );
  }
}

if (only.has("memory")) {
  const count = fromEnv("BENCH_MEM_SESSIONS", quick ? 2000 : 10_000);
  // Long enough that no session expires before it is measured (creating
  // 10 000 takes about 4 s here), and memory() checks that it was.
  const idleSeconds = 10;
  const figures = await memory({ count, rounds: 2, attached: quick ? 200 : 1000, idleSeconds });
  results.memory = figures;
  if (figures === null) {
    console.log("\n4c. Memory: skipped (no cc to build bench/loadgen.c)");
  } else {
    const [first, second] = figures.rounds;
    table(
      `4c. Memory: ${count} sessions created, left detached and expired (idle timeout ${idleSeconds} s), twice; ` +
        `${figures.attached} attached streaming sessions measured first. Server RSS, MiB`,
      ["start", "round 1 created", "expired", "round 2 created", "expired", "round 2 over round 1"],
      [[
        fixed(figures.startMiB, 1),
        fixed(first?.createdMiB ?? NaN, 1),
        fixed(first?.expiredMiB ?? NaN, 1),
        fixed(second?.createdMiB ?? NaN, 1),
        fixed(second?.expiredMiB ?? NaN, 1),
        `${fixed(((second?.expiredMiB ?? NaN) / (first?.expiredMiB ?? NaN) - 1) * 100)}%`,
      ]],
    );
    const peers = await peerMemory({ count, attached: figures.attached });
    results.memoryPeers = peers;
    const peer = (kib: number | null | undefined, missing: string): string =>
      kib === null || kib === undefined ? `n/a (${missing})` : fixed(kib, 1);
    table(
      "4d. Memory per session beside peers, KiB of resident memory each: " +
        `${count} detached sessions; ${figures.attached} attached connections, each having echoed a line.\n` +
        "   Peers: bench/asyncio_proxy.py (protocol version 1 in Python asyncio), " +
        "bench/node_relay.mjs run by Node (a relay: no sessions)",
      ["", "socketproxy", "peer", "peer's figure", "socketproxy / peer"],
      [
        [
          "per detached session",
          fixed(figures.detachedKiB, 1),
          "Python asyncio",
          peer(peers?.pythonDetachedKiB, "no python3"),
          peers?.pythonDetachedKiB
            ? fixed(figures.detachedKiB / peers.pythonDetachedKiB, 2)
            : "n/a",
        ],
        [
          "per attached streaming session",
          fixed(figures.attachedKiB, 1),
          "Node relay",
          peer(peers?.nodeAttachedKiB, "no node"),
          peers?.nodeAttachedKiB ? fixed(figures.attachedKiB / peers.nodeAttachedKiB, 2) : "n/a",
        ],
      ],
    );
  }
}

if (only.has("ws")) {
  const mib = fromEnv("BENCH_WS_MIB", quick ? 16 : 64);
  const echoes = fromEnv("BENCH_WS_ECHOES", 2000);
  const rounds = fromEnv("BENCH_WS_ROUNDS", quick ? 1 : 5);
  const measured = await webSocketRelay(mib * 2 ** 20, echoes, rounds);
  const minimal = measured.minimal as WsFigures;
  const socketproxy = measured.socketproxy as WsFigures;
  results.ws = { bytes: mib * 2 ** 20, echoes, rounds, minimal, socketproxy };
  const row = (path: string, figures: typeof minimal): string[] => [
    path,
    fixed(figures.output),
    fixed(figures.input),
    fixed(figures.echoP50ms, 3),
    fixed(figures.echoP99ms, 3),
  ];
  table(
    `6. WebSocket (GET /api/sessions/{id}/ws) to a client in this process, median of ${rounds} round${
      rounds === 1 ? "" : "s"
    }:\n` +
      `   output and input of ${mib} MiB a run (input within the gateway's window), MB/s; ` +
      `${echoes} echoes of 64 bytes a run, ms.\n` +
      "   Baseline: bench/minimal_ws_relay.ts (Deno.serve + Deno.upgradeWebSocket to TCP, no sessions)",
    ["path", "output MB/s", "input MB/s", "echo p50 ms", "echo p99 ms"],
    [
      row("minimal WebSocket relay", minimal),
      row("socketproxy web + server", socketproxy),
      [
        "socketproxy / minimal",
        fixed(socketproxy.output / minimal.output, 2),
        fixed(socketproxy.input / minimal.input, 2),
        fixed(socketproxy.echoP50ms / minimal.echoP50ms, 2),
        fixed(socketproxy.echoP99ms / minimal.echoP99ms, 2),
      ],
    ],
  );
}

if (only.has("websockify")) {
  if (!await haveWebsockify()) {
    console.log("\n7. websockify: skipped (not installed: apt-get install websockify)");
  } else {
    const mib = fromEnv("BENCH_WSK_MIB", quick ? 64 : 256);
    const echoes = fromEnv("BENCH_WS_ECHOES", 2000);
    const rounds = fromEnv("BENCH_WSK_ROUNDS", quick ? 1 : 3);
    const measured = await webSocketRelay(mib * 2 ** 20, echoes, rounds, [
      "websockify",
      "minimal",
      "conn",
      "socketproxy",
    ]);
    results.websockify = { bytes: mib * 2 ** 20, echoes, rounds, measured };
    const peer = measured.websockify as WsFigures;
    const minimal = measured.minimal as WsFigures;
    const conn = measured.conn as WsFigures;
    const ours = measured.socketproxy as WsFigures;
    const row = (path: string, f: WsFigures): string[] => [
      path,
      fixed(f.output),
      fixed(f.input),
      fixed(f.echoP50ms, 3),
      fixed(f.echoP99ms, 3),
    ];
    const ratio = (label: string, f: WsFigures): string[] => [
      label,
      fixed(f.output / peer.output, 2),
      fixed(f.input / peer.input, 2),
      fixed(f.echoP50ms / peer.echoP50ms, 2),
      fixed(f.echoP99ms / peer.echoP99ms, 2),
    ];
    table(
      `7. WebSocket beside websockify (Debian's), same destination and client, median of ${rounds} ` +
        `interleaved round${
          rounds === 1 ? "" : "s"
        }: ${mib} MiB each way a run, MB/s; ${echoes} echoes ` +
        "of 64 bytes, ms.\n   websockify relays binary frames (no sessions, no resume, no window: " +
        "its input is paced by bufferedAmount); the minimal relay\n   (bench/minimal_ws_relay.ts, " +
        "Deno.upgradeWebSocket) and the Deno.Conn relay\n   (bench/conn_ws_relay.ts, RFC 6455 by hand) " +
        "are what this runtime gets with one hop",
      ["path", "output MB/s", "input MB/s", "echo p50 ms", "echo p99 ms"],
      [
        row("websockify", peer),
        row("minimal Deno relay", minimal),
        row("Deno.Conn relay", conn),
        row("socketproxy web + server", ours),
        ratio("minimal / websockify", minimal),
        ratio("Deno.Conn relay / websockify", conn),
        ratio("socketproxy / websockify", ours),
      ],
    );
  }
}

if (only.has("cluster")) {
  await using destination = new Destination(echo);
  const seconds = quick ? 1 : 3;
  const rounds = quick ? 1 : 3;
  const figures = await clusterPolls(destination.port, { clients: 16, seconds, rounds });
  results.cluster = figures;
  table(
    `Cluster: poll cycles (wait 0) through one gateway, 16 clients, median of ${rounds} ` +
      `interleaved round${rounds === 1 ? "" : "s"} of ${seconds} s`,
    ["nodes", "polls/s", "sessions per node"],
    figures.map((row) => [
      row.nodes,
      fixed(row.pollsPerSecond),
      Object.entries(row.spread).map(([node, count]) => `${node}:${count}`).join(" "),
    ]),
  );
}

if (values.json) {
  await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nwrote ${values.json}`);
}
