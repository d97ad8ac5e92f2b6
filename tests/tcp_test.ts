/**
 * The server's fair TCP connections (lib/proxy/tcp.ts): client
 * connections moved onto `node:net` once they stay, and destination
 * connections on it from the start, behaving as the `Deno.Conn`s they
 * replace.
 */

import assert from "node:assert/strict";
import { closeQuietly, writeAll } from "../lib/_io.ts";
import { concatBytes } from "../lib/bytes.ts";
import { handshake } from "../lib/proxy/handshake.ts";
import type { SessionStore } from "../lib/proxy/session_store.ts";
import { ClientConn, connectFair, type Connection } from "../lib/proxy/tcp.ts";
import { LogCapture, randomBytes, withDeadline } from "./_helpers.ts";

/** How the pair's server side is made. */
type Kind = "client moved onto node:net" | "destination on node:net" | "Deno.Conn";

/**
 * A connected pair: `fair` (the server's side, as `kind` says) and `peer`
 * (a plain Deno.Conn).
 */
async function pair(
  kind: Kind = "client moved onto node:net",
): Promise<{ fair: Connection; peer: Deno.TcpConn } & Disposable> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  let fair: Connection;
  let peer: Deno.TcpConn;
  if (kind === "destination on node:net") {
    [fair, peer] = await Promise.all([
      connectFair({ hostname: "127.0.0.1", port }),
      listener.accept(),
    ]);
  } else {
    let accepted: Deno.TcpConn;
    [peer, accepted] = await connected(listener);
    if (kind === "Deno.Conn") {
      fair = accepted;
    } else {
      const client = new ClientConn(accepted);
      client.makeFair();
      assert.ok(client.fair, "moved at once when nothing is under way");
      fair = client;
    }
  }
  return {
    fair,
    peer,
    [Symbol.dispose]() {
      closeQuietly(fair);
      closeQuietly(peer);
    },
  };
}

/** A connection to `listener` and its accepted end. */
function connected(listener: Deno.TcpListener): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  return Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
}

async function readAll(conn: Connection | Deno.Conn, length: number, size: number) {
  const out = new Uint8Array(length);
  const buffer = new Uint8Array(size);
  for (let got = 0; got < length;) {
    const count = await conn.read(buffer);
    if (count === null) throw new Error(`ended after ${got} of ${length} bytes`);
    out.set(buffer.subarray(0, count), got);
    got += count;
  }
  return out;
}

/** Everything `conn` reads until its end. */
async function readUntilEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (let count = await conn.read(buffer); count !== null; count = await conn.read(buffer)) {
    chunks.push(buffer.slice(0, count));
  }
  return concatBytes(chunks);
}

Deno.test("this runtime's node:net has what tcp.ts needs: a client connection moves onto it", async () => {
  using both = await pair();
  assert.equal((both.fair.remoteAddr as Deno.NetAddr).port, both.peer.localAddr.port);
  assert.equal((both.fair.localAddr as Deno.NetAddr).port, both.peer.remoteAddr.port);
});

Deno.test("a client connection moves onto node:net only between reads, and loses no byte", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [peer, accepted] = await connected(listener);
  using _peer = peer;
  const client = new ClientConn(accepted);
  try {
    const buffer = new Uint8Array(16);
    const first = client.read(buffer);
    client.makeFair();
    assert.equal(client.fair, false, "not while a Deno.Conn read is under way");
    await writeAll(peer, new TextEncoder().encode("one"));
    assert.equal(await first, 3);
    assert.equal(client.fair, true, "moved as that read ended");
    await writeAll(peer, new TextEncoder().encode("two"));
    assert.equal(new TextDecoder().decode(await readAll(client, 3, 16)), "two");
    await writeAll(client, new TextEncoder().encode("back"));
    assert.equal(new TextDecoder().decode(await readAll(peer, 4, 16)), "back");
  } finally {
    client.close();
  }
});

Deno.test("a client connection read as a poll is (hello, input, end) stays a Deno.Conn; one read more moves it", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  for (const reads of [3, 4]) {
    const [peer, accepted] = await connected(listener);
    using _peer = peer;
    const client = new ClientConn(accepted);
    try {
      for (let read = 1; read <= reads; read++) {
        await writeAll(peer, new TextEncoder().encode(`read ${read}`));
        assert.equal(new TextDecoder().decode(await readAll(client, 6, 6)), `read ${read}`);
      }
      assert.equal(client.fair, reads > 3, `after ${reads} reads`);
      await writeAll(peer, new TextEncoder().encode("after"));
      assert.equal(new TextDecoder().decode(await readAll(client, 5, 16)), "after");
    } finally {
      client.close();
    }
    assert.equal(await peer.read(new Uint8Array(1)), null);
  }
});

for (const kind of ["client moved onto node:net", "destination on node:net"] as const) {
  Deno.test(`${kind}: 8 MiB each way arrive intact, read into one reused buffer`, async () => {
    using both = await pair(kind);
    const down = randomBytes(8 << 20, 1);
    const up = randomBytes(8 << 20, 2);
    const [fromFair, fromPeer] = await withDeadline(
      Promise.all([
        readAll(both.peer, up.length, 65536),
        readAll(both.fair, down.length, 65536),
        writeAll(both.fair, up),
        writeAll(both.peer, down),
      ]),
      30_000,
      "both transfers",
    );
    assert.deepEqual(fromFair, up);
    assert.deepEqual(fromPeer, down);
  });

  Deno.test(`${kind}: reads only when asked, so a read's buffer is not written once it has resolved`, async () => {
    using both = await pair(kind);
    const first = new Uint8Array(4).fill(0);
    await writeAll(both.peer, new TextEncoder().encode("abcd"));
    assert.equal(await both.fair.read(first), 4);
    await writeAll(both.peer, new TextEncoder().encode("efgh"));
    // The second write is in the kernel now: a socket still reading would
    // read it into \`first\` within these turns of the event loop.
    for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(new TextDecoder().decode(first), "abcd");
    assert.equal(new TextDecoder().decode(await readAll(both.fair, 4, 4)), "efgh");
  });

  Deno.test(`${kind}: a read asked for while one is pending waits its turn, in order, as with Deno.Conn`, async () => {
    /**
     * What reads get of three writes of the peer: a reader that reads again
     * as soon as a read resolves (A), and one read asked for while A's
     * first was pending (B), which goes before A's second.
     */
    async function reads(of: Kind): Promise<string[]> {
      using both = await pair(of);
      const got: string[] = [];
      const arrived = { wake: () => {} };
      const next = () => new Promise<void>((resolve) => arrived.wake = resolve);
      const record = (name: string, buffer: Uint8Array) => (count: number | null) => {
        got.push(`${name}:${new TextDecoder().decode(buffer.subarray(0, count ?? 0))}`);
        arrived.wake();
      };
      const readA = (async () => {
        for (let read = 0; read < 2; read++) {
          const buffer = new Uint8Array(3);
          record(`A${read}`, buffer)(await both.fair.read(buffer));
        }
      })();
      const bufferB = new Uint8Array(3);
      const readB = both.fair.read(bufferB).then(record("B", bufferB));
      for (const word of ["one", "two", "thr"]) {
        const arrival = next();
        await writeAll(both.peer, new TextEncoder().encode(word));
        await arrival;
      }
      await Promise.all([readA, readB]);
      return got;
    }
    const expected = await reads("Deno.Conn");
    assert.deepEqual(expected, ["A0:one", "B:two", "A1:thr"], "Deno.Conn, as this test expects it");
    assert.deepEqual(await reads(kind), expected);
  });

  Deno.test(`${kind}: half-open, closeWrite ends the peer's reads and leaves its own`, async () => {
    using both = await pair(kind);
    await writeAll(both.fair, new TextEncoder().encode("bye"));
    await both.fair.closeWrite();
    assert.deepEqual(new TextDecoder().decode(await readAll(both.peer, 3, 16)), "bye");
    assert.equal(await both.peer.read(new Uint8Array(1)), null);
    await writeAll(both.peer, new TextEncoder().encode("still"));
    await both.peer.closeWrite();
    assert.equal(new TextDecoder().decode(await readAll(both.fair, 5, 16)), "still");
    assert.equal(await both.fair.read(new Uint8Array(1)), null);
    assert.equal(await both.fair.read(new Uint8Array(1)), null, "the end is told again");
  });

  Deno.test(`${kind}: close interrupts a pending read, the peer sees the end, a second close throws`, async () => {
    using both = await pair(kind);
    const pending = both.fair.read(new Uint8Array(16));
    both.fair.close();
    await assert.rejects(pending, Deno.errors.Interrupted);
    assert.equal(await withDeadline(both.peer.read(new Uint8Array(1)), 10_000, "the end"), null);
    assert.throws(() => both.fair.close(), Deno.errors.BadResource);
    await assert.rejects(both.fair.read(new Uint8Array(1)), Deno.errors.BadResource);
    await assert.rejects(both.fair.write(new Uint8Array(1)), Deno.errors.BadResource);
  });

  Deno.test(`${kind}: fails as Deno.Conn does when the peer resets, the end and then BrokenPipe on writing`, async () => {
    /** What a read and a write give once the peer closed with bytes unread (a reset). */
    async function afterReset(of: Kind): Promise<[unknown, unknown]> {
      using both = await pair(of);
      const conn = both.fair;
      await writeAll(conn, new Uint8Array(1024));
      both.peer.close();
      const read = await conn.read(new Uint8Array(16));
      // The first write after a reset may still be taken; a later one fails.
      const written = await (async () => {
        for (let attempt = 0; attempt < 100; attempt++) await conn.write(new Uint8Array(16));
        return "all written";
      })().catch((error) => error.constructor.name);
      return [read, written];
    }
    const expected = await afterReset("Deno.Conn");
    assert.deepEqual(expected, [null, "BrokenPipe"], "Deno.Conn, as this test expects it");
    assert.deepEqual(await afterReset(kind), expected);
  });

  Deno.test(`${kind}: lets go of its descriptors, 200 connections opened and closed leave none open`, async () => {
    const before = [...Deno.readDirSync("/proc/self/fd")].length;
    for (let i = 0; i < 200; i++) {
      using both = await pair(kind);
      both.fair.close();
      assert.equal(await both.peer.read(new Uint8Array(1)), null);
    }
    // The descriptor closes with the socket's close event, a turn later.
    for (let turn = 0; turn < 100; turn++) {
      if ([...Deno.readDirSync("/proc/self/fd")].length <= before) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok([...Deno.readDirSync("/proc/self/fd")].length <= before);
  });
}

Deno.test("connectFair fails as Deno.connect does: ConnectionRefused, and the signal's reason on abort", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  await assert.rejects(connectFair({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
  const aborted = new AbortController();
  const reason = new Error("gave up");
  aborted.abort(reason);
  await assert.rejects(
    connectFair({ hostname: "127.0.0.1", port, signal: aborted.signal }),
    reason,
  );
});

Deno.test("a moved connection whose hello times out is answered ERR timeout, and read on until the client closes", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [peer, accepted] = await connected(listener);
  using _peer = peer;
  const client = new ClientConn(accepted);
  client.makeFair();
  const logs = new LogCapture();
  const done = handshake(client, {
    store: {} as SessionStore, // never reached: no hello is complete
    timeout: 50,
    logger: logs.logger,
    signal: new AbortController().signal,
  });
  await writeAll(peer, new TextEncoder().encode("RESUME half"));
  // The answer, then the end of the server's writing side...
  const answer = new TextDecoder().decode(await readUntilEnd(peer));
  assert.match(answer, /^ERR timeout /);
  // ...while the server still reads: what the client sends now is dropped,
  // not refused with a reset (after which a write fails), and the server
  // closes once the client has.
  for (let write = 0; write < 20; write++) await writeAll(peer, new Uint8Array(100));
  await peer.closeWrite();
  assert.equal(await peer.read(new Uint8Array(16)), null);
  await withDeadline(done, 10_000, "the handshake's end");
});

Deno.test("a client connection sets TCP_NODELAY before its second write, or a first one of more than a segment, and once", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  for (const first of [100, 1200, 1201]) {
    const [peer, accepted] = await connected(listener);
    using _peer = peer;
    const calls: (boolean | undefined)[] = [];
    const set = accepted.setNoDelay.bind(accepted);
    accepted.setNoDelay = (noDelay?: boolean) => {
      calls.push(noDelay);
      set(noDelay);
    };
    const client = new ClientConn(accepted);
    try {
      await writeAll(client, new Uint8Array(first));
      assert.deepEqual(calls, first > 1200 ? [true] : [], `after a first write of ${first} bytes`);
      await writeAll(client, new Uint8Array(10));
      await writeAll(client, new Uint8Array(10));
      assert.deepEqual(calls, [true], `after three writes, the first of ${first} bytes`);
      assert.equal((await readAll(peer, first + 20, 4096)).length, first + 20);
    } finally {
      client.close();
    }
  }
});
