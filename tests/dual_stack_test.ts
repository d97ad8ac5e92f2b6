/**
 * `localhost` is both loopbacks: the proxy port, the admin port and the web
 * gateway listen on 127.0.0.1 and on ::1 with the same port, and go on with
 * 127.0.0.1 alone, saying so in one line, where ::1 cannot be had.
 */

import assert from "node:assert/strict";
import { AdminServer } from "../lib/admin/mod.ts";
import { formatHostPort, type HostPort } from "../lib/address.ts";
import { WebGateway } from "../lib/gateway/mod.ts";
import { HttpServer } from "../lib/http/server.ts";
import { SERVER_DEFAULTS } from "../lib/proxy/config.ts";
import { listenLoopbacks } from "../lib/listen.ts";
import { ProxyServer } from "../lib/proxy/server.ts";
import { echoDestination, LogCapture, ServerProcess, TestClient } from "./_helpers.ts";

/** Whether this machine has an IPv6 loopback to listen on. */
function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

const ipv6 = hasIpv6Loopback();
const skip = ipv6 ? "" : " (::1 skipped: this machine has no IPv6 loopback)";
const LOCALHOST: HostPort = { hostname: "localhost", port: 0 };

/** The addresses `localhost` on `port` should be served on here. */
function loopbacks(port: number): string[] {
  return ipv6 ? [`127.0.0.1:${port}`, `[::1]:${port}`] : [`127.0.0.1:${port}`];
}

/** A URL on one loopback, the host bracketed as IPv6 needs. */
function url(hostname: string, port: number, path: string): string {
  return `http://${formatHostPort({ hostname, port })}${path}`;
}

/** The loopbacks to connect to, as hostnames. */
const HOSTS = ipv6 ? ["127.0.0.1", "::1"] : ["127.0.0.1"];

/** Asserts that nothing listens on `port` on either loopback. */
async function assertClosed(port: number): Promise<void> {
  for (const hostname of HOSTS) {
    await assert.rejects(Deno.connect({ hostname, port }), Deno.errors.ConnectionRefused);
  }
}

/** The log lines that say a loopback was left out. */
function ipv4Only(logs: LogCapture): string[] {
  return logs.lines.filter((line) => line.includes("listen.ipv4_only"));
}

/** A proxy server in front of `destinationPort` on `localhost`. */
function localProxy(destinationPort: number, port: number, logs: LogCapture): ProxyServer {
  return ProxyServer.listen({
    ...SERVER_DEFAULTS,
    proxy: { hostname: "localhost", port },
    destination: { hostname: "127.0.0.1", port: destinationPort },
    logger: logs.logger,
  });
}

Deno.test(`the proxy port on localhost:0 serves 127.0.0.1 and ::1 on one port${skip}`, async () => {
  await using destination = echoDestination();
  const logs = new LogCapture();
  const server = localProxy(destination.port, 0, logs);
  try {
    const { port } = server.addr;
    assert.equal(server.addr.hostname, "127.0.0.1", "what the log and status show, as before");
    assert.deepEqual(server.addrs.map(formatHostPort), loopbacks(port));
    for (const hostname of HOSTS) {
      using client = new TestClient(await Deno.connect({ hostname, port }));
      await client.hello("NEW");
      await client.write(`hello over ${hostname}\n`);
      assert.equal(await client.readLine(), `hello over ${hostname}`);
    }
    assert.equal(server.store.size, HOSTS.length);
    assert.equal(ipv4Only(logs).length, ipv6 ? 0 : 1);
  } finally {
    await server.close();
  }
  await assertClosed(server.addr.port);
});

Deno.test(`the admin port on localhost:0 serves 127.0.0.1 and ::1 on one port${skip}`, async () => {
  const logs = new LogCapture();
  const admin = await AdminServer.listen(LOCALHOST, {
    backend: {
      report: () => {
        throw new Error("not asked for");
      },
      closeSession: () => false,
      stopping: () => false,
    },
    token: null,
    logger: logs.logger,
  });
  try {
    assert.equal(admin.addr.hostname, "127.0.0.1");
    for (const hostname of HOSTS) {
      const response = await fetch(url(hostname, admin.addr.port, "/health"));
      assert.deepEqual([response.status, await response.json()], [200, { status: "serving" }]);
    }
  } finally {
    await admin.close();
  }
  await assertClosed(admin.addr.port);
});

Deno.test(`the web gateway on localhost:0 serves 127.0.0.1 and ::1 on one port${skip}`, async () => {
  const logs = new LogCapture();
  const gateway = await WebGateway.listen(LOCALHOST, {
    proxy: { hostname: "127.0.0.1", port: 1 },
    logger: logs.logger,
    assets: { "/": { type: "text/plain", body: "the page" } },
  });
  try {
    assert.equal(gateway.addr.hostname, "127.0.0.1");
    for (const hostname of HOSTS) {
      const response = await fetch(url(hostname, gateway.addr.port, "/"));
      assert.deepEqual([response.status, await response.text()], [200, "the page"]);
    }
  } finally {
    await gateway.close();
  }
  await assertClosed(gateway.addr.port);
});

Deno.test(`main.ts server and web on localhost:0 log 127.0.0.1 and answer on ::1 too${skip}`, async () => {
  await using destination = echoDestination();
  await using server = new ServerProcess([
    "--proxy=localhost:0",
    "--admin=localhost:0",
    `127.0.0.1:${destination.port}`,
  ]);
  const listening = await server.waitFor((line) => line.includes("server.listening"));
  assert.match(listening, / proxy=127\.0\.0\.1:\d+ admin=127\.0\.0\.1:\d+ /);
  const port = await server.port;
  const adminPort = await server.adminPort;
  await using web = new ServerProcess(["--listen=localhost:0", `--proxy=127.0.0.1:${port}`], "web");
  const webPort = await web.port;
  assert.ok(
    web.lines.some((line) =>
      line.includes(`web.listening`) && line.includes(`127.0.0.1:${webPort}`)
    ),
  );
  for (const hostname of HOSTS) {
    using client = new TestClient(await Deno.connect({ hostname, port }));
    await client.hello("NEW");
    const health = await fetch(url(hostname, adminPort, "/health"));
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const page = await fetch(url(hostname, webPort, "/"));
    assert.equal(page.status, 200);
    await page.body?.cancel();
  }
  // Without IPv6, one line for each of the proxy, admin and web ports.
  for (const [process, ports] of [[server, 2], [web, 1]] as const) {
    const lines = process.lines.filter((line) => line.includes("listen.ipv4_only"));
    assert.equal(lines.length, ipv6 ? 0 : ports);
  }
});

/**
 * Runs `start` on a port taken on ::1 by another program, found by trying:
 * such a port may be taken on 127.0.0.1 too, which `start` then throws for.
 */
async function withIpv6PortTaken(start: (port: number) => Promise<void>): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    using squatter = Deno.listen({ hostname: "::1", port: 0 });
    try {
      await start(squatter.addr.port);
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error("no port taken on ::1 was free on 127.0.0.1 in 20 tries");
}

Deno.test({
  name: "the proxy port on localhost with ::1's port taken: 127.0.0.1 alone, and one line says why",
  ignore: !ipv6,
  async fn() {
    await using destination = echoDestination();
    await withIpv6PortTaken(async (port) => {
      const logs = new LogCapture();
      await using server = localProxy(destination.port, port, logs);
      assert.deepEqual(server.addrs.map(formatHostPort), [`127.0.0.1:${port}`]);
      const lines = ipv4Only(logs);
      assert.equal(lines.length, 1);
      assert.match(
        lines[0] ?? "",
        new RegExp(
          ` WARN listen\\.ipv4_only name=proxy skipped=\\[::1\\]:${port} reason=port_taken error="AddrInUse: `,
        ),
      );
      using client = await TestClient.connect(port);
      await client.hello("NEW");
    });
  },
});

Deno.test({
  name: "an HTTP server on localhost with ::1's port taken: 127.0.0.1 alone, and one line says why",
  ignore: !ipv6,
  async fn() {
    await withIpv6PortTaken(async (port) => {
      const logs = new LogCapture();
      await using server = await HttpServer.listen({ hostname: "localhost", port }, {
        handler: () => () => new Response("served"),
        logger: logs.logger,
        name: "admin",
      });
      assert.deepEqual(server.addrs.map(formatHostPort), [`127.0.0.1:${port}`]);
      const lines = ipv4Only(logs);
      assert.equal(lines.length, 1);
      assert.match(lines[0] ?? "", / WARN listen\.ipv4_only name=admin skipped=\[::1\]:\d+ /);
      assert.match(lines[0] ?? "", / reason=port_taken /);
      const response = await fetch(url("127.0.0.1", port, "/"));
      assert.equal(await response.text(), "served");
    });
  },
});

Deno.test("without an IPv6 loopback, localhost is 127.0.0.1 alone, said in one info line", () => {
  const logs = new LogCapture();
  const listeners = listenLoopbacks(LOCALHOST, {
    listen(addr) {
      // What Linux answers where IPv6 is switched off.
      if (addr.hostname === "::1") {
        throw new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)");
      }
      return Deno.listen(addr);
    },
    logger: logs.logger,
    name: "proxy",
  });
  try {
    assert.deepEqual(listeners.map((listener) => listener.addr.hostname), ["127.0.0.1"]);
    const lines = ipv4Only(logs);
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? "", / INFO listen\.ipv4_only name=proxy skipped=\[::1\]:\d+ /);
    assert.match(lines[0] ?? "", / reason=ipv6_unavailable /);
  } finally {
    for (const listener of listeners) listener.close();
  }
});

Deno.test("any other host is listened on as given, once", () => {
  const logs = new LogCapture();
  const opened: string[] = [];
  const listeners = listenLoopbacks({ hostname: "127.0.0.1", port: 0 }, {
    listen(addr) {
      opened.push(addr.hostname);
      return Deno.listen(addr);
    },
    logger: logs.logger,
    name: "proxy",
  });
  for (const listener of listeners) listener.close();
  assert.deepEqual(opened, ["127.0.0.1"]);
  assert.deepEqual(logs.lines, []);
});
