/**
 * The memory benchmark (`deno task bench memory`): the server's resident
 * memory per detached session, per attached streaming session, and whether
 * it is given back once sessions end: rounds of sessions created (each with
 * its destination connection), left detached, and expired by the idle
 * timeout, with the resident memory read after each step. Attached
 * sessions are measured first, on a fresh server.
 *
 * @module
 */

import { haveNode, startRelay } from "./fairness.ts";
import {
  havePython,
  loadgen,
  startAsyncioProxy,
  startLoadgenServer,
  startServer,
} from "./workloads.ts";

const encoder = new TextEncoder();

/** Memory figures, in KiB per session or MiB of the whole server. */
export interface MemoryFigures {
  sessions: number;
  /** Resident memory at the start (after a warm-up), MiB. */
  startMiB: number;
  /** After each round: once the sessions were created, and once they had expired, MiB. */
  rounds: { createdMiB: number; expiredMiB: number }[];
  /** Resident memory per detached session in the first round, KiB. */
  detachedKiB: number;
  /** Attached streaming sessions measured, and the memory each adds, KiB. */
  attached: number;
  attachedKiB: number;
}

/** Opens a session with `NEW` and leaves it (detached once the connection closes). */
async function newSession(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode("NEW\n"));
  const buffer = new Uint8Array(256);
  let line = "";
  while (!line.includes("\n")) {
    const count = await conn.read(buffer);
    if (count === null) throw new Error("closed before the reply");
    line += String.fromCharCode(...buffer.subarray(0, count));
  }
  if (!line.startsWith("OK ")) throw new Error(`unexpected reply: ${line}`);
  return conn;
}

/** `total` connections made by `open`, 64 at a time; kept open, or closed as they come. */
async function openInBatches(
  total: number,
  open: () => Promise<Deno.TcpConn>,
  keep: boolean,
): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < total; i += 64) {
    const batch = await Promise.all(Array.from({ length: Math.min(64, total - i) }, open));
    if (keep) conns.push(...batch);
    else for (const conn of batch) conn.close();
  }
  return conns;
}

/** `total` sessions opened on `port`; kept open (attached) or closed (detached). */
function createSessions(port: number, total: number, keep: boolean): Promise<Deno.TcpConn[]> {
  return openInBatches(total, () => newSession(port), keep);
}

/** Sends a 64-byte line and reads its echo: the connection has streamed. */
async function echoOnce(conn: Deno.Conn): Promise<void> {
  await conn.write(
    encoder.encode("0123456789abcdef0123456789abcdef0123456789abcdef012345678901234\n"),
  );
  const buffer = new Uint8Array(256);
  for (let got = 0; got < 64;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    got += n;
  }
}

/**
 * How long after a burst of sessions the memory is read: past the quiet
 * second after which the server gives back what the burst grew (see
 * lib/proxy/memory_reducer.ts), as it is for the minutes or hours
 * sessions stay.
 */
const SETTLED_MS = 2500;

async function settle(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `rounds` rounds of `count` sessions against a server whose idle
 * timeout is `idleSeconds`, then measures `attached` streaming sessions.
 */
export async function memory(
  options: { count: number; rounds: number; attached: number; idleSeconds: number },
): Promise<MemoryFigures | null> {
  const { count, rounds, attached, idleSeconds } = options;
  const binary = await loadgen();
  if (!binary) return null;
  await using destination = await startLoadgenServer(binary, "echod");
  await using server = await startServer(destination.port, [`--idle-timeout=${idleSeconds}s`]);
  const mib = (): number => server.rss() / 2 ** 20;
  const create = (total: number, keep: boolean) => createSessions(server.port, total, keep);
  // Warm-up: the JIT and the allocators' first arenas.
  await create(200, false);
  await settle((idleSeconds + 2) * 1000);
  // Attached streaming sessions first, on a server that has not yet held
  // thousands (whose freed memory they would reuse): each client sends a
  // line and reads its echo, and stays.
  const before = mib();
  const conns = await create(attached, true);
  await Promise.all(conns.map(echoOnce));
  await settle(SETTLED_MS);
  const attachedKiB = (mib() - before) * 1024 / attached;
  for (const conn of conns) conn.close();
  await settle((idleSeconds + 3) * 1000);
  const startMiB = mib();
  const measured: { createdMiB: number; expiredMiB: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    const startedAt = performance.now();
    await create(count, false);
    await settle(SETTLED_MS);
    const createdMiB = mib();
    if (performance.now() - startedAt >= idleSeconds * 1000) {
      throw new Error(
        `creating ${count} sessions and settling took over the idle timeout (${idleSeconds} s): ` +
          "the first had expired before they were measured; raise idleSeconds",
      );
    }
    // Expired by the idle sweep, then time for the runtime to give memory back.
    await settle((idleSeconds + 3) * 1000);
    measured.push({ createdMiB, expiredMiB: mib() });
  }
  return {
    sessions: count,
    startMiB,
    rounds: measured,
    detachedKiB: ((measured[0]?.createdMiB ?? NaN) - startMiB) * 1024 / count,
    attached,
    attachedKiB,
  };
}

/** What the peers take, KiB each; null where the peer is not installed. */
export interface PeerMemoryFigures {
  /** bench/asyncio_proxy.py (Python asyncio), per detached session. */
  pythonDetachedKiB: number | null;
  /** bench/node_relay.mjs run by Node, per attached connection that has echoed a line. */
  nodeAttachedKiB: number | null;
}

/**
 * The peers of the per-session figures, measured as the server's are:
 * `count` sessions created and left detached on the Python implementation
 * of the protocol, and `attached` connections through Node's relay each
 * echoing a line and staying, in front of the same echo destination.
 */
export async function peerMemory(
  options: { count: number; attached: number },
): Promise<PeerMemoryFigures | null> {
  const binary = await loadgen();
  if (!binary) return null;
  await using destination = await startLoadgenServer(binary, "echod");
  let pythonDetachedKiB: number | null = null;
  if (await havePython()) {
    // No session expires while it is measured.
    await using python = await startAsyncioProxy(destination.port, 600);
    await createSessions(python.port, 200, false);
    await settle(SETTLED_MS);
    const before = python.rss();
    await createSessions(python.port, options.count, false);
    await settle(SETTLED_MS);
    pythonDetachedKiB = (python.rss() - before) / 1024 / options.count;
  }
  let nodeAttachedKiB: number | null = null;
  if (await haveNode()) {
    await using relay = await startRelay("node", destination.port);
    const open = async (): Promise<Deno.TcpConn> => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
      await echoOnce(conn);
      return conn;
    };
    await openInBatches(64, open, false);
    await settle(SETTLED_MS);
    const before = relay.rss();
    const conns = await openInBatches(options.attached, open, true);
    await settle(SETTLED_MS);
    nodeAttachedKiB = (relay.rss() - before) / 1024 / options.attached;
    for (const conn of conns) conn.close();
  }
  return { pythonDetachedKiB, nodeAttachedKiB };
}
