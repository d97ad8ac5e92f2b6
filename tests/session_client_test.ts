/**
 * The page's session client (web/session_client.ts), run in Deno against a
 * real gateway: every transport, reloads, restarts and the fallback.
 */

import assert from "node:assert/strict";
import { gatewayHandler, type GatewayLimits } from "../lib/gateway/mod.ts";
import { HttpServer } from "../lib/http/server.ts";
import { BrowserSession, type Status, type Transport } from "../web/session_client.ts";
import { Wakeup } from "../lib/_io.ts";
import { Forwarder } from "./_forwarder.ts";
import { startStack } from "./_stack.ts";
import { concatBytes } from "../lib/bytes.ts";
import {
  decoder,
  Destination,
  encoder,
  firstDifference,
  LogCapture,
  randomBytes,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { MemoryStorage } from "./_memory_storage.ts";

/** A gateway on a port of its own; `intercept` plays something in front of it (nginx, say). */
async function serveGateway(
  proxyPort: number,
  options: {
    port?: number;
    limits?: Partial<GatewayLimits>;
    intercept?: (request: Request) => Response | null;
  } = {},
) {
  const logs = new LogCapture();
  const server = await HttpServer.listen({ hostname: "127.0.0.1", port: options.port ?? 0 }, {
    handler: (signal) => {
      const handler = gatewayHandler({
        proxy: { hostname: "127.0.0.1", port: proxyPort },
        logger: logs.logger,
        signal,
        ...(options.limits ? { limits: options.limits } : {}),
      });
      return (request, info) => options.intercept?.(request) ?? handler(request, info);
    },
    logger: logs.logger,
    name: "web",
  });
  return {
    base: `http://127.0.0.1:${server.addr.port}/`,
    port: server.addr.port,
    logs,
    [Symbol.asyncDispose]: () => server.close(),
  };
}

/** What something in front of the gateway that cannot pass WebSockets answers them. */
function refuseWebSockets(request: Request): Response | null {
  return request.url.endsWith("/ws") ? new Response("no", { status: 400 }) : null;
}

/** A page's session with its output and statuses recorded. */
function page(
  base: string,
  storage: MemoryStorage,
  transport: Transport | "auto",
  options: { webSocketRetry?: number; onStatus?: (status: Status) => void } = {},
) {
  let output = "";
  const statuses: Status[] = [];
  const details: string[] = [];
  const notices: string[] = [];
  let waiter: { until: (text: string) => boolean; resolve: () => void } | null = null;
  const session = new BrowserSession({
    base,
    storage,
    transport,
    longPollWait: 2000,
    pollInterval: 20,
    ...(options.webSocketRetry === undefined ? {} : { webSocketRetry: options.webSocketRetry }),
    onOutput(bytes) {
      output += decoder.decode(bytes);
      if (waiter?.until(output)) waiter.resolve();
    },
    onStatus(status, detail) {
      statuses.push(status);
      details.push(detail);
      options.onStatus?.(status);
      if (waiter?.until(output)) waiter.resolve();
    },
    onNotice(message) {
      notices.push(message);
      if (waiter?.until(output)) waiter.resolve();
    },
  });
  return {
    session,
    statuses,
    details,
    notices,
    get output() {
      return output;
    },
    /** Waits until the output satisfies `until`. */
    async wait(until: (text: string) => boolean): Promise<void> {
      if (until(output)) return;
      const { promise, resolve } = Promise.withResolvers<void>();
      waiter = { until, resolve };
      await withDeadline(promise, WAIT_MS, `output, having ${JSON.stringify(output)}`);
    },
  };
}

for (const transport of ["websocket", "longpoll", "poll"] as const) {
  Deno.test(`${transport}: output arrives, input goes out, a reload resumes with nothing repeated`, async () => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await serveGateway(proxy.port);
    const storage = new MemoryStorage();
    const first = page(gateway.base, storage, transport);
    await first.session.start();
    using dest = new TestClient(await destination.accepted());
    await dest.write("Welcome!\r\n");
    await first.wait((text) => text === "Welcome!\r\n");
    first.session.send(encoder.encode("look\r\n"));
    assert.equal(decoder.decode(await dest.readExactly(6)), "look\r\n");
    await dest.write("You see a room.\r\n");
    await first.wait((text) => text.endsWith("room.\r\n"));
    // Reload: the page goes, a new one starts from what storage remembers.
    first.session.stop();
    await first.session.stopped();
    await dest.write("While you were away.\r\n");
    const second = page(gateway.base, storage, transport);
    await second.session.start();
    await second.wait((text) => text === "While you were away.\r\n");
    second.session.send(encoder.encode("again\r\n"));
    assert.equal(decoder.decode(await dest.readExactly(7)), "again\r\n");
    assert.equal(proxy.server.store.size, 1, "the same session throughout");
    second.session.stop();
    await second.session.stopped();
  });
}

Deno.test("the page reconnects when the gateway comes back, with nothing lost", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const storage = new MemoryStorage();
  const before = await serveGateway(proxy.port);
  const port = before.port;
  const view = page(before.base, storage, "websocket");
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("one ");
  await view.wait((text) => text === "one ");
  await before[Symbol.asyncDispose](); // the gateway goes away: the socket drops
  await dest.write("two ");
  await using _after = await serveGateway(proxy.port, { port });
  await view.wait((text) => text === "one two ");
  assert.ok(view.statuses.includes("reconnecting"));
  view.session.stop();
  await view.session.stopped();
});

Deno.test("auto falls back to long-polling when WebSockets do not get through", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await serveGateway(proxy.port, { intercept: refuseWebSockets });
  const view = page(gateway.base, new MemoryStorage(), "auto");
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("via long-poll");
  await view.wait((text) => text === "via long-poll");
  assert.equal(view.session.transport, "longpoll");
  view.session.stop();
  await view.session.stopped();
});

Deno.test("renew ends the old session and starts a new one", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await serveGateway(proxy.port);
  const view = page(gateway.base, new MemoryStorage(), "websocket");
  await view.session.start();
  const old = view.session.current?.id;
  using first = new TestClient(await destination.accepted());
  await view.session.renew();
  using second = new TestClient(await destination.accepted());
  assert.notEqual(view.session.current?.id, old);
  assert.equal((await first.readToEnd()).length, 0, "the old destination connection closed");
  await second.write("fresh");
  await view.wait((text) => text === "fresh");
  view.session.stop();
  await view.session.stopped();
});

for (const transport of ["websocket", "longpoll"] as const) {
  Deno.test(`${transport}: the page's own final ack ends a session whose destination closed`, async () => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await serveGateway(proxy.port);
    const storage = new MemoryStorage();
    const view = page(gateway.base, storage, transport);
    await view.session.start();
    const dest = await destination.accepted();
    await dest.write(encoder.encode("bye"));
    dest.close();
    await view.wait((text) => text === "bye");
    await view.session.stopped();
    assert.equal(view.statuses.at(-1), "ended");
    assert.equal(view.output, "bye", "nothing repeated by the final poll");
    assert.equal(storage.items.size, 0, "nothing left to resume");
    await proxy.logs.waitFor("session.closed");
    assert.deepEqual(gateway.logs.events("web.auth_failed"), [], "no hello after the end");
    if (transport === "websocket") {
      const polls = gateway.logs.events("web.request").filter((record) =>
        record.fields.path === "/api/sessions/{id}/poll"
      );
      assert.deepEqual(polls, [], "the acknowledgement went on the socket: no final poll");
    }
  });
}

for (const transport of ["websocket", "longpoll", "poll"] as const) {
  Deno.test(`${transport}: a paste larger than the gateway's input limit goes out whole, in pieces`, async () => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await serveGateway(proxy.port, { limits: { maxInput: 4096 } });
    const view = page(gateway.base, new MemoryStorage(), transport);
    await view.session.start();
    using dest = new TestClient(await destination.accepted());
    const paste = randomBytes(100 * 1024, 11);
    view.session.send(paste);
    assert.equal(firstDifference(await dest.readExactly(paste.length), paste), -1);
    assert.deepEqual(view.notices, []);
    // Every input request stayed within the limit, so none was refused.
    const refused = gateway.logs.events("web.request").filter((record) =>
      record.fields.status === 413
    );
    assert.ok(refused.length <= 1, "at most one 413, which teaches the page the limit");
    view.session.stop();
    await view.session.stopped();
  });
}

Deno.test("input the gateway refuses for good is dropped with a notice, not retried forever", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  // A body limit below the input limit: the input fits the one, never the other.
  await using gateway = await serveGateway(proxy.port, {
    limits: { maxBody: 1024, maxInput: 4096 },
  });
  const view = page(gateway.base, new MemoryStorage(), "poll");
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  view.session.send(new Uint8Array(2048));
  await view.wait(() => view.notices.length > 0);
  assert.match(view.notices[0] ?? "", /^2048 bytes of input were refused: Request bodies/);
  view.session.send(encoder.encode("still here"));
  assert.equal(decoder.decode(await dest.readExactly(10)), "still here");
  view.session.stop();
  await view.session.stopped();
});

Deno.test("websocket: typing far past the input limit keeps the stored input small, and a reload goes on", async () => {
  await using destination = new Destination();
  // The window: how much input may be unconfirmed.
  await using proxy = startServer(destination.port, { bufferSize: 8192 });
  await using gateway = await serveGateway(proxy.port, { limits: { maxInput: 4096 } });
  const storage = new MemoryStorage();
  const typed = randomBytes(96 * 1024, 12);
  const first = page(gateway.base, storage, "websocket");
  await first.session.start();
  using dest = new TestClient(await destination.accepted());
  await first.wait(() => first.statuses.includes("connected"));
  let largest = 0;
  const half = typed.length / 2;
  // Typed a keystroke at a time, looking at what is stored after every 2 KiB has arrived.
  for (let at = 0; at < half; at += 2048) {
    for (let key = at; key < at + 2048; key += 64) {
      first.session.send(typed.subarray(key, key + 64));
    }
    assert.equal(
      firstDifference(await dest.readExactly(2048), typed.subarray(at, at + 2048)),
      -1,
    );
    const stored = JSON.parse(storage.getItem("socketproxy-session") ?? "{}");
    largest = Math.max(largest, Uint8Array.fromBase64(stored.input).length);
  }
  // Only what the gateway has not confirmed is kept (a window at most), never all that was typed.
  assert.ok(largest <= 8192, `stored input grew to ${largest} bytes`);
  // Reload with input still unconfirmed: it is sent once, in pieces, and typing goes on.
  first.session.stop();
  await first.session.stopped();
  const second = page(gateway.base, storage, "websocket");
  await second.session.start();
  second.session.send(typed.subarray(half));
  assert.equal(firstDifference(await dest.readExactly(half), typed.subarray(half)), -1);
  assert.equal(proxy.server.store.size, 1);
  assert.ok(gateway.logs.events("web.request").every((record) => record.fields.status !== 413));
  second.session.stop();
  await second.session.stopped();
});

Deno.test("auto stays on WebSocket through a gateway outage", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const before = await serveGateway(proxy.port);
  const port = before.port;
  const view = page(before.base, new MemoryStorage(), "auto");
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("one ");
  await view.wait((text) => text === "one ");
  await before[Symbol.asyncDispose]();
  // Several WebSocket attempts fail while the gateway is away.
  await view.wait(() => view.statuses.filter((status) => status === "reconnecting").length >= 3);
  await using _after = await serveGateway(proxy.port, { port });
  await dest.write("two");
  await view.wait((text) => text === "one two");
  assert.equal(view.session.transport, "websocket");
  view.session.stop();
  await view.session.stopped();
});

Deno.test("auto tries WebSocket again after falling back", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  let refusing = true;
  await using gateway = await serveGateway(proxy.port, {
    intercept: (request) => refusing ? refuseWebSockets(request) : null,
  });
  const view = page(gateway.base, new MemoryStorage(), "auto", { webSocketRetry: 100 });
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("polled ");
  await view.wait((text) => text === "polled ");
  assert.equal(view.session.transport, "longpoll");
  refusing = false;
  await dest.write("and back");
  await view.wait(() =>
    view.details.at(-1) === "WebSocket" && view.statuses.at(-1) === "connected"
  );
  assert.equal(view.session.transport, "websocket");
  assert.equal(view.output, "polled and back");
  view.session.stop();
  await view.session.stopped();
});

Deno.test("the first session is retried while the proxy is away, showing reconnecting", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  let refused = 0;
  await using gateway = await serveGateway(proxy.port, {
    intercept: (request) =>
      request.method === "POST" && request.url.endsWith("/api/sessions") && refused++ < 2
        ? Response.json({ error: "busy", message: "The proxy is at its session limit" }, {
          status: 503,
        })
        : null,
  });
  const view = page(gateway.base, new MemoryStorage(), "websocket");
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("at last");
  await view.wait((text) => text === "at last");
  assert.equal(refused, 3);
  assert.deepEqual(view.statuses.slice(0, 3), ["connecting", "reconnecting", "reconnecting"]);
  view.session.stop();
  await view.session.stopped();
});

for (const transport of ["longpoll"] as const) {
  Deno.test(`${transport}: two windows on one session exchange it at most once, then one stops until resumed`, async () => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await serveGateway(proxy.port);
    /** Which window stopped, in order, and the wake-up for the next. */
    const stops: string[] = [];
    const stop = new Wakeup();
    async function stopped(count: number): Promise<string | undefined> {
      for (let round = 0; stops.length < count && round < 100; round++) {
        await withDeadline(stop.wait(), WAIT_MS, `window stop number ${count}`);
      }
      return stops[count - 1];
    }
    function window(name: string, storage: MemoryStorage) {
      return page(gateway.base, storage, transport, {
        onStatus(status) {
          if (status !== "taken-over") return;
          stops.push(name);
          stop.wake();
        },
      });
    }
    const storage = new MemoryStorage();
    const first = window("first", storage);
    await first.session.start();
    using dest = new TestClient(await destination.accepted());
    await dest.write("one ");
    await first.wait((text) => text === "one ");
    // A duplicated tab: a copy of the first window's storage, the same session.
    const copy = new MemoryStorage();
    for (const [key, value] of storage.items) copy.items.set(key, value);
    const windows = { first, second: window("second", copy) };
    await windows.second.session.start();

    const loserName = await stopped(1);
    assert.ok(loserName === "first" || loserName === "second");
    const loser = windows[loserName];
    const winner = windows[loserName === "first" ? "second" : "first"];
    assert.equal(loser.details.at(-1), "another window is using this session");
    await loser.session.stopped();
    const takeovers = proxy.logs.events("session.taken_over").length;
    assert.ok(takeovers <= 4, `${takeovers} takeovers`);
    // The other window holds the session: output and input go through it. (A long-poll cut
    // short to send input is taken over by the poll with it: the window's own, once here.)
    await dest.write("two");
    await winner.wait((text) => text.endsWith("two"));
    winner.session.send(encoder.encode("from the winner"));
    assert.equal(decoder.decode(await dest.readExactly(15)), "from the winner");
    assert.ok(proxy.logs.events("session.taken_over").length <= takeovers + 1);
    assert.equal(stops.length, 1, "the other window went on");

    // Resuming in the stopped window takes the session back for good: the other one stops.
    // Input given at once goes out whole: the session's input count, which includes the other
    // window's, is not taken as this window's.
    await loser.session.resume();
    loser.session.send(encoder.encode("resumed"));
    assert.equal(decoder.decode(await dest.readExactly(7)), "resumed");
    assert.equal(await stopped(2), loserName === "first" ? "second" : "first");
    await winner.session.stopped();
    await dest.write("three");
    await loser.wait((text) => text.endsWith("three"));
    assert.ok(proxy.logs.events("session.taken_over").length <= takeovers + 4);
    loser.session.stop();
    await loser.session.stopped();
  });
}

Deno.test("websocket: a page back at a closed session with all its output ends it, with no hello refused", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await serveGateway(proxy.port);
  const storage = new MemoryStorage();
  const first = page(gateway.base, storage, "websocket");
  await first.session.start();
  const dest = await destination.accepted();
  await dest.write(encoder.encode("bye"));
  await first.wait((text) => text === "bye");
  first.session.stop(); // a reload, during which the destination closes
  await first.session.stopped();
  // The gateway has ended its proxy connection (the session creation's was the first).
  await proxy.logs.waitFor(
    "session.detached",
    () => proxy.logs.events("session.detached").length === 2,
  );
  dest.close();
  await proxy.logs.waitFor("destination.closed");
  const second = page(gateway.base, storage, "websocket");
  await second.session.start();
  await second.session.stopped();
  assert.deepEqual([second.statuses.at(-1), second.output], ["ended", ""]);
  assert.equal(storage.items.size, 0, "nothing left to resume");
  await proxy.logs.waitFor("session.closed");
  assert.deepEqual(gateway.logs.events("web.auth_failed"), [], "no hello after the end");
});

Deno.test("websocket: a window whose session another takes over is told so at once, stops, and takes it back when resumed", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await serveGateway(proxy.port);
  const stopped = new Wakeup();
  const storage = new MemoryStorage();
  const options = {
    onStatus(status: Status) {
      if (status === "taken-over") stopped.wake();
    },
  };
  const first = page(gateway.base, storage, "websocket", options);
  await first.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("one ");
  await first.wait((text) => text === "one ");
  // A duplicated tab: a copy of the first window's storage, the same session.
  const copy = new MemoryStorage();
  for (const [key, value] of storage.items) copy.items.set(key, value);
  const second = page(gateway.base, copy, "websocket", options);
  await second.session.start();
  await withDeadline(first.session.stopped(), WAIT_MS, "the first window stopping");
  assert.deepEqual(
    [first.statuses.at(-1), first.details.at(-1)],
    ["taken-over", "taken over by another window"],
  );
  await second.wait(() => second.statuses.at(-1) === "connected");
  assert.equal(proxy.logs.events("session.taken_over").length, 1, "no exchange back and forth");
  await dest.write("two");
  await second.wait((text) => text === "two");
  second.session.send(encoder.encode("from the second"));
  assert.equal(decoder.decode(await dest.readExactly(15)), "from the second");
  assert.equal(first.statuses.filter((status) => status === "taken-over").length, 1);

  // Resuming in the first window takes the session back; the second stops in turn. Input
  // given at once goes out whole: the session's count, which includes the second window's
  // input, is not taken as this window's.
  await first.session.resume();
  first.session.send(encoder.encode("resumed"));
  assert.equal(decoder.decode(await dest.readExactly(7)), "resumed");
  await withDeadline(second.session.stopped(), WAIT_MS, "the second window stopping");
  assert.equal(second.statuses.at(-1), "taken-over");
  await dest.write("three");
  await first.wait((text) => text.endsWith("three"));
  // What the second window took, and acknowledged, was its own: the proxy has let it go.
  assert.equal(first.output, "one three");
  assert.ok(first.details.includes("3 bytes of output were lost"), first.details.join("; "));
  assert.equal(proxy.logs.events("session.taken_over").length, 2);
  first.session.stop();
  await first.session.stopped();
});

Deno.test("websocket: a session closed elsewhere ends the page, which does not reconnect", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await serveGateway(proxy.port);
  const storage = new MemoryStorage();
  const view = page(gateway.base, storage, "websocket");
  await view.session.start();
  using _dest = new TestClient(await destination.accepted());
  await view.wait(() => view.statuses.at(-1) === "connected");
  const stored = JSON.parse(storage.getItem("socketproxy-session") ?? "{}");
  const answer = await fetch(`${gateway.base}api/sessions/${stored.id}`, {
    method: "DELETE",
    body: JSON.stringify({ secret: stored.secret }),
  });
  assert.equal(answer.status, 200);
  await answer.body?.cancel();
  await withDeadline(view.session.stopped(), WAIT_MS, "the page stopping");
  assert.deepEqual(
    [view.statuses.at(-1), view.details.at(-1)],
    ["ended", "the session was closed"],
  );
  assert.equal(storage.items.size, 0, "nothing left to resume");
  assert.deepEqual(gateway.logs.events("web.auth_failed"), [], "no hello after the end");
});

Deno.test("websocket: a stopping server ends the page with a notice; it does not reconnect", async () => {
  await using stack = await startStack();
  const storage = new MemoryStorage();
  const view = page(`${stack.url}/`, storage, "websocket");
  await view.session.start();
  using dest = new TestClient(await stack.destination.accepted());
  await dest.write("before");
  await view.wait((text) => text === "before");
  await stack.server.stop();
  await withDeadline(view.session.stopped(), WAIT_MS, "the page stopping");
  assert.deepEqual(
    [view.statuses.at(-1), view.details.at(-1)],
    ["ended", "server stopped: sessions did not survive"],
  );
  assert.ok(!view.statuses.includes("reconnecting"), view.statuses.join());
  assert.equal(storage.items.size, 0, "nothing left to resume");
});

/** Records what pages send on their WebSockets, while `fn` runs. */
async function recordingWebSockets(
  fn: (sent: { messages: unknown[]; arrived: Wakeup }) => Promise<void>,
): Promise<void> {
  const record = { messages: [] as unknown[], arrived: new Wakeup() };
  const Original = globalThis.WebSocket;
  globalThis.WebSocket = class extends Original {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      record.messages.push(typeof data === "string" ? JSON.parse(data) : data);
      record.arrived.wake();
      super.send(data);
    }
  };
  try {
    await fn(record);
  } finally {
    globalThis.WebSocket = Original;
  }
}

/** The offsets of the acknowledgements among `messages`. */
function acks(messages: unknown[]): number[] {
  return messages.flatMap((message) => {
    const ack = message as { type?: string; ack?: number };
    return ack.type === "ack" && typeof ack.ack === "number" ? [ack.ack] : [];
  });
}

Deno.test("websocket: the page acknowledges output as it takes it: when it has taken all, and past half a window", async () => {
  await recordingWebSockets(async (sent) => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port, { bufferSize: 8192 });
    await using gateway = await serveGateway(proxy.port);
    const view = page(gateway.base, new MemoryStorage(), "websocket");
    await view.session.start();
    using dest = new TestClient(await destination.accepted());
    // A little output, far below half the window: acknowledged once taken.
    await dest.write("a".repeat(100));
    await view.wait((text) => text.length === 100);
    for (let round = 0; !acks(sent.messages).includes(100); round++) {
      assert.ok(round < 100, "bounded");
      await withDeadline(sent.arrived.wait(), WAIT_MS, "the acknowledgement of 100 bytes");
    }
    // Far more than the window: it flows only because the page acknowledges as it goes.
    const flood = encoder.encode("b".repeat(64 * 1024));
    const writing = dest.write(flood);
    await view.wait((text) => text.length === 100 + flood.length);
    await writing;
    const offsets = acks(sent.messages);
    assert.ok(offsets.length >= flood.length / 8192, `${offsets.length} acknowledgements`);
    assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), "in order");
    // What it has taken when it stops is acknowledged too, at once.
    await dest.write("z");
    await view.wait((text) => text.endsWith("z"));
    view.session.stop();
    assert.equal(acks(sent.messages).at(-1), 100 + flood.length + 1);
    await view.session.stopped();
  });
});

Deno.test("websocket: a dropped proxy connection mid-paste and mid-burst reconnects; input and output exact", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 8192 });
  await using forwarder = new Forwarder(proxy.port);
  await using gateway = await serveGateway(forwarder.port, { limits: { maxInput: 4096 } });
  const received: Uint8Array[] = [];
  let receivedBytes = 0;
  const statuses: Status[] = [];
  const output = new Wakeup();
  const session = new BrowserSession({
    base: gateway.base,
    storage: new MemoryStorage(),
    transport: "websocket",
    onOutput(bytes) {
      received.push(bytes.slice());
      receivedBytes += bytes.length;
      output.wake();
    },
    onStatus(status) {
      statuses.push(status);
    },
  });
  await session.start();
  using dest = new TestClient(await destination.accepted());
  const paste = randomBytes(96 * 1024, 14);
  const burst = randomBytes(2 * 1024 * 1024, 15);
  session.send(paste);
  const writing = dest.write(burst);
  const head = await dest.readExactly(16 * 1024);
  // The network between the gateway and the proxy drops: neither side ended it.
  forwarder.cut();
  const tail = await dest.readExactly(paste.length - head.length);
  assert.equal(firstDifference(concatBytes([head, tail]), paste), -1, "the paste once, in order");
  for (let round = 0; receivedBytes < burst.length; round++) {
    assert.ok(round < 100_000, "bounded");
    await withDeadline(output.wait(), WAIT_MS, `output, having ${receivedBytes}`);
  }
  await writing;
  assert.equal(firstDifference(concatBytes(received), burst), -1, "the burst once, in order");
  assert.ok(statuses.includes("reconnecting"), statuses.join());
  const framed = forwarder.hellos.filter((hello) => hello.endsWith(" framed"));
  assert.ok(framed.length >= 2, `reattached: ${forwarder.hellos.length} hellos`);
  // Nothing more than the paste reached the destination.
  session.send(encoder.encode("end"));
  assert.equal(decoder.decode(await dest.readExactly(3)), "end");
  session.stop();
  await session.stopped();
});
