/**
 * The 1 000-session echo benchmark (`deno task bench fairness`): many
 * attached connections, each sending 64 bytes and waiting for their echo
 * in a loop (bench/loadgen.c), through socketproxy and through four
 * 20-line relays in front of the same echo destination: one on `node:net`
 * run by Node, the same file run by Deno, one on `node:net` reading into
 * reused buffers (bench/onread_relay.mjs), and one on `Deno.Conn` read
 * loops. Rounds are interleaved, one of each path in turn, and the median
 * of the rounds is kept. A connection is starved when it waited longer
 * than the bound for one echo.
 *
 * @module
 */

import { ClientSession } from "../lib/client/mod.ts";
import {
  Child,
  haveCommand,
  type LoadFigures,
  loadgen,
  median,
  ONREAD_RELAY,
  runLoadgen,
  startLoadgenServer,
  startRelayProgram,
  startServer,
} from "./workloads.ts";

/** What sits between the echoing clients and the destination. */
export type FairPath =
  | "node"
  | "deno node:net"
  | "deno node:net onread"
  | "deno Deno.Conn"
  | "socketproxy";

/** The figures of one path: medians of the rounds. */
export interface FairFigures {
  echoesPerSecond: number;
  p50ms: number;
  p99ms: number;
  p999ms: number;
  /** Connections that waited longer than the bound for one echo. */
  starved: number;
}

const NODE_RELAY = new URL("./node_relay.mjs", import.meta.url).pathname;
const DENO_RELAY = new URL("./deno_conn_relay.ts", import.meta.url).pathname;

/** Whether `node` runs. */
export function haveNode(): Promise<boolean> {
  return haveCommand("node", ["--version"]);
}

/** Who runs which file, for each plain relay. */
const RELAYS: Record<Exclude<FairPath, "socketproxy">, ["node" | "deno", string]> = {
  "node": ["node", NODE_RELAY],
  "deno node:net": ["deno", NODE_RELAY],
  "deno node:net onread": ["deno", ONREAD_RELAY],
  "deno Deno.Conn": ["deno", DENO_RELAY],
};

/** Starts one of the plain relays in front of `destination`. */
export function startRelay(
  path: Exclude<FairPath, "socketproxy">,
  destination: number,
): Promise<Child & { port: number }> {
  const [runtime, file] = RELAYS[path];
  return startRelayProgram(runtime, file, destination, path);
}

/**
 * `clients` connections echoing 64 bytes for `seconds` through each path,
 * `rounds` interleaved rounds; `boundMs` is the starvation bound.
 */
export async function fairness(
  options: { clients: number; seconds: number; rounds: number; boundMs: number },
): Promise<Partial<Record<FairPath, FairFigures>> | null> {
  const { clients, seconds, rounds, boundMs } = options;
  const binary = await loadgen();
  if (!binary) return null;
  await using destination = await startLoadgenServer(binary, "echod");
  await using server = await startServer(destination.port);
  const proxy = { hostname: "127.0.0.1", port: server.port };
  const sessions: ClientSession[] = [];
  for (let i = 0; i < clients; i += 64) {
    sessions.push(
      ...await Promise.all(
        Array.from({ length: Math.min(64, clients - i) }, () => ClientSession.create({ proxy })),
      ),
    );
  }
  const relays: FairPath[] = await haveNode()
    ? ["node", "deno node:net", "deno node:net onread", "deno Deno.Conn"]
    : ["deno node:net", "deno node:net onread", "deno Deno.Conn"];
  const paths: FairPath[] = [...relays, "socketproxy"];
  const measured = new Map<FairPath, LoadFigures[]>(paths.map((path) => [path, []]));
  // A plain relay echoes the hello line, which the load generator takes for the reply.
  const anyone = Array.from({ length: clients }, () => ({ id: "x", secret: "y" }));
  for (let round = 0; round < rounds; round++) {
    for (const path of paths) {
      let figures: LoadFigures;
      if (path === "socketproxy") {
        figures = await runLoadgen(binary, "echo", server.port, seconds, sessions, [
          String(boundMs),
        ]);
      } else {
        await using relay = await startRelay(path, destination.port);
        figures = await runLoadgen(binary, "echo", relay.port, seconds, anyone, [String(boundMs)]);
      }
      measured.get(path)?.push(figures);
    }
  }
  await Promise.all(sessions.map((session) => session.close().catch(() => {})));
  const result: Partial<Record<FairPath, FairFigures>> = {};
  for (const [path, runs] of measured) {
    result[path] = {
      echoesPerSecond: median(runs.map((run) => run.count / run.seconds)),
      p50ms: median(runs.map((run) => run.p50_ms)),
      p99ms: median(runs.map((run) => run.p99_ms)),
      p999ms: median(runs.map((run) => run.p999_ms ?? NaN)),
      starved: median(runs.map((run) => run.starved ?? NaN)),
    };
  }
  return result;
}
