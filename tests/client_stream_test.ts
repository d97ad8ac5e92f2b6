/**
 * The client library's stream over a framed (version 2) connection: the
 * end reasons as typed values, re-attaching after a drop without loss or
 * repeat, acknowledging only what was taken, and falling back to exact
 * polls against a server that speaks version 1 only.
 */

import assert from "node:assert/strict";
import { ClientSession, ProxyUnavailableError } from "../lib/client/mod.ts";
import { writeAll } from "../lib/_io.ts";
import {
  decoder,
  Destination,
  echoDestination,
  encoder,
  firstDifference,
  issuedSecrets,
  randomBytes,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { Forwarder } from "./_forwarder.ts";

function at(port: number) {
  return { proxy: { hostname: "127.0.0.1", port } };
}

async function created(port: number): Promise<ClientSession> {
  const session = await ClientSession.create(at(port));
  issuedSecrets.add(session.secret);
  return session;
}

/** Reads a stream to its end: the output, and how it ended. */
async function drain(
  stream: AsyncGenerator<Uint8Array, string>,
): Promise<{ text: string; end: string }> {
  let text = "";
  for (let next = await stream.next();; next = await stream.next()) {
    if (next.done) return { text, end: next.value };
    text += decoder.decode(next.value);
  }
}

Deno.test("a destination that closes ends the stream with destination-closed, and its last A ends the session", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  const dest = await destination.accepted();
  const stream = session.stream();
  const first = stream.next();
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  await writeAll(dest, encoder.encode("last words"));
  dest.close();
  const chunk = await first;
  assert.equal(chunk.done, false);
  const rest = await drain(stream);
  assert.equal(decoder.decode(chunk.value as Uint8Array) + rest.text, "last words");
  assert.equal(rest.end, "destination-closed");
  assert.equal(session.streamEnd, "destination-closed");
  assert.equal(session.state, "closed");
  assert.equal(session.ended, true);
  await proxy.logs.waitFor("session.closed");
  assert.equal(proxy.server.store.size, 0, "the acknowledgement ended the session");
});

Deno.test("CLOSE from another connection ends the stream with closed", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  const stream = session.stream();
  const ending = drain(stream);
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  using other = await TestClient.connect(proxy.port);
  await other.write(`CLOSE ${session.id} ${session.secret}\n`);
  assert.equal(await other.readLine(), `BYE ${session.id}`);
  assert.deepEqual(await ending, { text: "", end: "closed" });
  assert.equal(session.ended, true);
});

Deno.test("a server that stops ends the stream with server-stopping", async () => {
  await using destination = new Destination();
  const proxy = startServer(destination.port);
  const session = await created(proxy.port);
  const ending = drain(session.stream());
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  await proxy[Symbol.asyncDispose]();
  assert.deepEqual(await ending, { text: "", end: "server-stopping" });
  assert.equal(session.ended, true);
});

Deno.test("output is acknowledged only once the caller asks for more: a chunk never taken is sent again", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  const stream = session.stream();
  const first = stream.next();
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  await dest.write("taken but not used");
  assert.equal(decoder.decode((await first).value as Uint8Array), "taken but not used");
  // The caller stops without asking for the next chunk.
  assert.deepEqual(await stream.return("detached"), { done: true, value: "detached" });
  await proxy.logs.waitFor("session.detached");
  const again = ClientSession.resume(session, { ...at(proxy.port), ack: 0 });
  assert.equal(decoder.decode(await again.poll()), "taken but not used");
  assert.equal(proxy.server.counters.gaps, 0);
});

Deno.test("input sent after the stream's connection closed, before the stream ends, is kept and goes on the next attach", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  const stop = new AbortController();
  const stream = session.stream({ signal: stop.signal });
  const first = stream.next();
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  await dest.write("attached");
  assert.equal(decoder.decode((await first).value as Uint8Array), "attached");
  // The abort closes the framed connection at once; the stream notices at its next step.
  stop.abort();
  session.send("after the close");
  assert.equal(session.unconfirmed, 15, "kept, not taken by the closed connection");
  assert.deepEqual(await stream.next(), { done: true, value: "detached" });
  await proxy.logs.waitFor("session.detached");
  await session.poll({ wait: 0 });
  assert.equal(decoder.decode(await dest.readExactly(15)), "after the close");
});

Deno.test("connections cut under a stream: it attaches again by itself, and both directions stay exact", async () => {
  const total = 1024 * 1024;
  const input = randomBytes(total, 31);
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { bufferSize: 64 * 1024 });
  await using forwarder = new Forwarder(proxy.port);
  const session = await created(forwarder.port);
  const received = new Uint8Array(total);
  const stop = new AbortController();
  const stream = session.stream({ signal: stop.signal });
  let next = stream.next();
  let cuts = 0;
  const sending = (async () => {
    for (let sent = 0; sent < total; sent += 8192) {
      session.send(input.subarray(sent, sent + 8192));
      await session.flush();
    }
  })();
  await withDeadline(
    (async () => {
      for (let result = await next; !result.done; result = await next) {
        received.set(result.value, session.received - result.value.length);
        // A cut every 128 KiB or so, wherever the frames are.
        if (session.received > (cuts + 1) * 128 * 1024 && cuts < 6) {
          cuts++;
          forwarder.cut();
        }
        if (session.received === total) stop.abort();
        next = stream.next();
      }
    })(),
    WAIT_MS * 3,
    "all output",
  );
  await sending;
  assert.equal(cuts, 6);
  assert.equal(firstDifference(received, input), -1, "output: each byte once, in order");
  const framed = forwarder.hellos.filter((hello) => hello.endsWith(" framed"));
  assert.ok(framed.length > cuts, `${framed.length} framed attaches for ${cuts} cuts`);
  assert.equal(proxy.server.counters.gaps, 0);
});

Deno.test("a re-attach that finds no server fails the stream with ProxyUnavailableError", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const forwarder = new Forwarder(proxy.port);
  const session = await created(forwarder.port);
  const ending = drain(session.stream());
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  await forwarder[Symbol.asyncDispose]();
  await assert.rejects(ending, ProxyUnavailableError);
});

Deno.test("against a server that speaks version 1 only, a stream polls exactly: no streaming hello", async () => {
  const total = 256 * 1024;
  const input = randomBytes(total, 41);
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { bufferSize: 16 * 1024 });
  await using forwarder = new Forwarder(proxy.port, { refuseFramed: true });
  const session = await created(forwarder.port);
  const received = new Uint8Array(total);
  const stop = new AbortController();
  const stream = session.stream({ signal: stop.signal });
  let next = stream.next();
  const sending = (async () => {
    for (let sent = 0; sent < total; sent += 4096) {
      session.send(input.subarray(sent, sent + 4096));
      await session.flush();
    }
  })();
  let end: string | undefined;
  await withDeadline(
    (async () => {
      for (let result = await next;; result = await next) {
        if (result.done) {
          end = result.value;
          break;
        }
        received.set(result.value, session.received - result.value.length);
        if (session.received === total) stop.abort();
        next = stream.next();
      }
    })(),
    WAIT_MS * 3,
    "all output",
  );
  await sending;
  assert.equal(end, "detached");
  assert.equal(firstDifference(received, input), -1, "output");
  const hellos = forwarder.hellos;
  assert.equal(hellos.filter((hello) => hello.endsWith(" framed")).length, 1, "asked once");
  const resumes = hellos.filter((hello) => hello.startsWith("RESUME") && !hello.endsWith("framed"));
  assert.ok(resumes.length > 1, "polled");
  for (const hello of resumes) {
    assert.match(hello, /^RESUME \S+ \S+ \d+$/, "every poll acknowledged: no streaming hello");
  }
  assert.equal(proxy.server.counters.gaps, 0);
});
