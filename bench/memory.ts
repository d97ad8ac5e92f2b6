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

import { loadgen, startLoadgenServer, startServer } from "./workloads.ts";

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
  const create = async (total: number, keep: boolean): Promise<Deno.TcpConn[]> => {
    const conns: Deno.TcpConn[] = [];
    for (let i = 0; i < total; i += 64) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(64, total - i) }, () => newSession(server.port)),
      );
      if (keep) conns.push(...batch);
      else for (const conn of batch) conn.close();
    }
    return conns;
  };
  // Warm-up: the JIT and the allocators' first arenas.
  await create(200, false);
  await settle((idleSeconds + 2) * 1000);
  // Attached streaming sessions first, on a server that has not yet held
  // thousands (whose freed memory they would reuse): each client sends a
  // line and reads its echo, and stays.
  const before = mib();
  const conns = await create(attached, true);
  await Promise.all(conns.map(async (conn) => {
    await conn.write(
      encoder.encode("0123456789abcdef0123456789abcdef0123456789abcdef012345678901234\n"),
    );
    const buffer = new Uint8Array(256);
    for (let got = 0; got < 64;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      got += n;
    }
  }));
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
