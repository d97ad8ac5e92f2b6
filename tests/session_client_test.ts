/**
 * The page's session client (web/session_client.ts), run in Deno against a
 * real gateway: every transport, reloads, restarts and the fallback.
 */

import assert from "node:assert/strict";
import { gatewayHandler } from "../lib/web_gateway.ts";
import { BrowserSession, type Status, type Transport } from "../web/session_client.ts";
import {
  decoder,
  Destination,
  encoder,
  issuedSecrets,
  LogCapture,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

/** sessionStorage for tests. */
class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
    const secret = JSON.parse(value).secret;
    if (typeof secret === "string") issuedSecrets.add(secret);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

/** A gateway on a port of its own; `refuseWebSockets` plays a proxy in front that cannot pass them. */
function serveGateway(proxyPort: number, port = 0, refuseWebSockets = false) {
  const logs = new LogCapture();
  const stop = new AbortController();
  const handler = gatewayHandler({
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: logs.logger,
    signal: stop.signal,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    (request, info) => {
      if (refuseWebSockets && request.url.endsWith("/ws")) {
        return new Response("no", {
          status: 400,
        });
      }
      return handler(request, info);
    },
  );
  return {
    base: `http://127.0.0.1:${server.addr.port}/`,
    port: server.addr.port,
    logs,
    async [Symbol.asyncDispose]() {
      stop.abort();
      await server.shutdown();
    },
  };
}

/** A page's session with its output and statuses recorded. */
function page(base: string, storage: MemoryStorage, transport: Transport | "auto") {
  let output = "";
  const statuses: Status[] = [];
  let waiter: { until: (text: string) => boolean; resolve: () => void } | null = null;
  const session = new BrowserSession({
    base,
    storage,
    transport,
    longPollWait: 2000,
    pollInterval: 20,
    onOutput(bytes) {
      output += decoder.decode(bytes);
      if (waiter?.until(output)) waiter.resolve();
    },
    onStatus(status) {
      statuses.push(status);
      if (waiter?.until(output)) waiter.resolve();
    },
  });
  return {
    session,
    statuses,
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
    await using gateway = serveGateway(proxy.port);
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
  const before = serveGateway(proxy.port);
  const port = before.port;
  const view = page(before.base, storage, "websocket");
  await view.session.start();
  using dest = new TestClient(await destination.accepted());
  await dest.write("one ");
  await view.wait((text) => text === "one ");
  await before[Symbol.asyncDispose](); // the gateway goes away: the socket drops
  await dest.write("two ");
  await using _after = serveGateway(proxy.port, port);
  await view.wait((text) => text === "one two ");
  assert.ok(view.statuses.includes("reconnecting"));
  view.session.stop();
  await view.session.stopped();
});

Deno.test("auto falls back to long-polling when WebSockets do not get through", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = serveGateway(proxy.port, 0, true);
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
  await using gateway = serveGateway(proxy.port);
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

Deno.test("the page learns when the destination closes the session", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = serveGateway(proxy.port);
  const storage = new MemoryStorage();
  const view = page(gateway.base, storage, "longpoll");
  await view.session.start();
  const dest = await destination.accepted();
  await dest.write(encoder.encode("bye"));
  dest.close();
  await view.wait((text) => text === "bye");
  await view.session.stopped();
  assert.equal(view.statuses.at(-1), "ended");
  assert.equal(storage.items.size, 0, "nothing left to resume");
  await proxy.logs.waitFor("session.closed");
});
