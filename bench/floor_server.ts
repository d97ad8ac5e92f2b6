/**
 * The least a server following the protocol must do per poll cycle: the
 * minimal server's accept, hello, reply and close, plus what a session is
 * (one kept destination connection per session id, the poll's input written
 * to it, and its output sent to the attached client or kept for the next
 * poll). No limits, no checks, no secrets, no logs: the floor the poll
 * benchmark measures socketproxy's CPU per poll against, beside the minimal
 * server, which does strictly less than the protocol asks.
 *
 *     deno run --allow-net bench/floor_server.ts PORT DEST_PORT
 *
 * @module
 */

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0]) });
const destinationPort = Number(Deno.args[1]);
const encoder = new TextEncoder();
const INPUT = 16;

/** A session: its destination, the output no client has taken, the client attached. */
interface Session {
  destination: Deno.Conn;
  pending: Uint8Array[];
  client: Deno.Conn | null;
}

const sessions = new Map<string, Session>();

async function sessionFor(id: string): Promise<Session> {
  const known = sessions.get(id);
  if (known) return known;
  const destination = await Deno.connect({ hostname: "127.0.0.1", port: destinationPort });
  destination.setNoDelay(true);
  const session: Session = { destination, pending: [], client: null };
  sessions.set(id, session);
  void (async () => {
    const buffer = new Uint8Array(4096);
    for (let count = await destination.read(buffer); count !== null;) {
      const bytes = buffer.slice(0, count);
      if (session.client) await session.client.write(bytes).catch(() => 0);
      else session.pending.push(bytes);
      count = await destination.read(buffer);
    }
  })();
  return session;
}

for await (const conn of listener) {
  void (async () => {
    conn.setNoDelay(true);
    const buffer = new Uint8Array(512);
    try {
      let filled = 0;
      let lf = -1;
      while (lf < 0 || filled < lf + 1 + INPUT) {
        const count = await conn.read(buffer.subarray(filled));
        if (count === null) break;
        filled += count;
        lf = buffer.subarray(0, filled).indexOf(10);
      }
      const id = String.fromCharCode(...buffer.subarray(0, lf)).split(" ")[1] ?? "";
      const session = await sessionFor(id);
      const pending = session.pending.splice(0);
      const total = pending.reduce((sum, bytes) => sum + bytes.length, 0);
      const reply = encoder.encode(`OK ${id} ${"A".repeat(32)} 0 0 ${total} open\n`);
      const out = new Uint8Array(reply.length + total);
      out.set(reply);
      let at = reply.length;
      for (const bytes of pending) {
        out.set(bytes, at);
        at += bytes.length;
      }
      await conn.write(out);
      session.client = conn;
      await session.destination.write(buffer.subarray(lf + 1, filled));
      while (await conn.read(buffer) !== null);
      session.client = null;
    } catch {
      // The client went away: nothing to do but close.
    }
    conn.close();
  })();
}
