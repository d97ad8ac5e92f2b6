/**
 * The gateway's own /health, and its Prometheus figures on the port apart
 * that `web --metrics` opens: what moves them, what they never show, and
 * the flag.
 */

import assert from "node:assert/strict";
import {
  gatewayHandler,
  GatewayMetrics,
  type GatewayOptions,
  MetricsServer,
  ROUTE_LABELS,
  WEB_ASSETS,
  WebGateway,
} from "../lib/gateway/mod.ts";
import { parseWebArgs, WEB_USAGE } from "../lib/commands/web.ts";
import { UsageError } from "../lib/errors.ts";
import { closeQuietly, writeAll } from "../lib/_io.ts";
import { VERSION } from "../lib/version.ts";
import { DEFAULT_BUCKETS } from "../lib/prometheus.ts";
import {
  assertNoSecrets,
  decoder,
  Destination,
  encoder,
  issuedSecrets,
  LogCapture,
  runMain,
  ServerProcess,
  startServer,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

const LOOPBACK = "127.0.0.1";

/** A gateway and its metrics port, in this process, on loopback ports 0. */
interface TestGateway extends AsyncDisposable {
  /** The gateway's base URL. */
  url: string;
  port: number;
  /** The metrics port's base URL. */
  metricsUrl: string;
  metricsPort: number;
  logs: LogCapture;
}

async function startGateway(
  proxyPort: number,
  options: Partial<GatewayOptions> = {},
): Promise<TestGateway> {
  const logs = new LogCapture();
  const metrics = new GatewayMetrics();
  const gateway = await WebGateway.listen({ hostname: LOOPBACK, port: 0 }, {
    proxy: { hostname: LOOPBACK, port: proxyPort },
    logger: logs.logger,
    assets: WEB_ASSETS,
    metrics,
    ...options,
  });
  const server = await MetricsServer.listen({ hostname: LOOPBACK, port: 0 }, {
    metrics,
    logger: logs.logger,
  });
  return {
    url: `http://${LOOPBACK}:${gateway.addr.port}`,
    port: gateway.addr.port,
    metricsUrl: `http://${LOOPBACK}:${server.addr.port}`,
    metricsPort: server.addr.port,
    logs,
    async [Symbol.asyncDispose]() {
      await Promise.all([gateway.close(), server.close()]);
      assertNoSecrets(logs.lines, "the gateway log");
    },
  };
}

/** The samples of a scrape of `/metrics`, by name and labels as written. */
async function scrape(
  gateway: TestGateway,
): Promise<{ text: string; samples: Map<string, number> }> {
  const response = await fetch(`${gateway.metricsUrl}/metrics`);
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return { text, samples };
}

/** A sample's value, 0 when it is not there yet (a label set not seen so far). */
async function sample(gateway: TestGateway, name: string): Promise<number> {
  return (await scrape(gateway)).samples.get(name) ?? 0;
}

/** One HTTP/1.1 request on its own connection, with exactly these headers (fetch sets its own Host). */
async function rawRequest(
  port: number,
  head: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  try {
    const lines = Object.entries({ ...headers, Connection: "close" })
      .map(([name, value]) => `${name}: ${value}\r\n`).join("");
    await writeAll(conn, encoder.encode(`${head} HTTP/1.1\r\n${lines}\r\n`));
    const parts: string[] = [];
    const buffer = new Uint8Array(16 * 1024);
    const read = async (): Promise<void> => {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        parts.push(decoder.decode(buffer.subarray(0, n), { stream: true }));
      }
    };
    await withDeadline(read(), WAIT_MS, `the answer to ${head}`);
    const answer = parts.join("");
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
    const json = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    return { status, body: json.startsWith("{") ? JSON.parse(json) : {} };
  } finally {
    closeQuietly(conn);
  }
}

/** A port nothing listens on: the proxy is down. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  listener.close();
  return listener.addr.port;
}

Deno.test("GET /health answers 200 {status: ok} on the gateway's own port, for any Host", async () => {
  await using gateway = await startGateway(closedPort());
  const response = await fetch(`${gateway.url}/health`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await response.json(), { status: "ok" });
  // A load balancer sends its own Host: /health is answered, every other route refused.
  const host = { Host: `lb-probe.internal:${gateway.port}` };
  const probe = await rawRequest(gateway.port, "GET /health", host);
  assert.deepEqual([probe.status, probe.body], [200, { status: "ok" }]);
  assert.equal((await rawRequest(gateway.port, "GET /", host)).status, 403);
  const post = await fetch(`${gateway.url}/health`, { method: "POST" });
  await post.body?.cancel();
  assert.deepEqual([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  assert.equal(
    await sample(gateway, 'socketproxy_web_requests_total{route="/health",status="200"}'),
    2,
  );
});

Deno.test("GET /health answers 503 {status: stopping} once the gateway is stopping", async () => {
  const stopping = new AbortController();
  const handler = gatewayHandler({
    proxy: { hostname: LOOPBACK, port: closedPort() },
    logger: new LogCapture().logger,
    signal: stopping.signal,
  });
  const serving = await handler(new Request("http://gateway/health"));
  assert.deepEqual([serving.status, await serving.json()], [200, { status: "ok" }]);
  stopping.abort();
  const draining = await handler(new Request("http://gateway/health"));
  assert.deepEqual([draining.status, await draining.json()], [503, { status: "stopping" }]);
});

Deno.test("a created session counts as a 201 of /api/sessions; labels are routes, never paths or ids", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const created = await fetch(`${gateway.url}/api/sessions`, { method: "POST" });
  const session = await created.json();
  issuedSecrets.add(session.secret);
  assert.equal(created.status, 201);
  const unknown = await fetch(`${gateway.url}/wp-login.php?id=${session.id}`);
  await unknown.body?.cancel();
  const poll = await fetch(`${gateway.url}/api/sessions/${session.id}/poll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret: session.secret, ack: 0 }),
  });
  await poll.body?.cancel();
  const { text, samples } = await scrape(gateway);
  assert.equal(
    samples.get('socketproxy_web_requests_total{route="/api/sessions",status="201"}'),
    1,
  );
  assert.equal(
    samples.get('socketproxy_web_requests_total{route="/api/sessions/{id}/poll",status="200"}'),
    1,
  );
  assert.equal(samples.get('socketproxy_web_requests_total{route="other",status="404"}'), 1);
  assert.ok(!text.includes(session.id), "no session id in the metrics");
  assert.ok(!text.includes("wp-login"), "no raw path in the metrics");
  assertNoSecrets([text], "/metrics");
});

Deno.test("a browser request from another site counts as a refused origin", async () => {
  await using gateway = await startGateway(closedPort());
  const before = await sample(gateway, "socketproxy_web_refused_origins_total");
  const refused = await rawRequest(gateway.port, "POST /api/sessions", {
    Host: `${LOOPBACK}:${gateway.port}`,
    Origin: "https://evil.example",
    "Content-Length": "0",
  });
  assert.deepEqual([refused.status, refused.body.error], [403, "origin_not_allowed"]);
  assert.equal(await sample(gateway, "socketproxy_web_refused_origins_total"), before + 1);
  assert.equal(
    await sample(gateway, 'socketproxy_web_requests_total{route="/api/sessions",status="403"}'),
    1,
  );
});

Deno.test("a request for a Host the gateway does not answer counts as a refused host", async () => {
  await using gateway = await startGateway(closedPort());
  const refused = await rawRequest(gateway.port, "GET /", { Host: `evil.example:${gateway.port}` });
  assert.deepEqual([refused.status, refused.body.error], [403, "host_not_allowed"]);
  assert.equal(await sample(gateway, "socketproxy_web_refused_hosts_total"), 1);
  assert.equal(await sample(gateway, "socketproxy_web_refused_origins_total"), 0);
});

Deno.test("a proxy that is down counts as a proxy error of its kind", async () => {
  await using gateway = await startGateway(closedPort());
  const response = await fetch(`${gateway.url}/api/sessions`, { method: "POST" });
  const body = await response.json();
  assert.deepEqual([response.status, body.error], [502, "proxy_unavailable"]);
  const { samples } = await scrape(gateway);
  assert.equal(samples.get('socketproxy_web_proxy_errors_total{kind="proxy_unavailable"}'), 1);
  assert.equal(
    samples.get('socketproxy_web_requests_total{route="/api/sessions",status="502"}'),
    1,
  );
});

Deno.test("the open WebSockets gauge goes up while a socket is open and back down when it closes", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const created = await fetch(`${gateway.url}/api/sessions`, { method: "POST" });
  const session = await created.json();
  issuedSecrets.add(session.secret);
  assert.equal(await sample(gateway, "socketproxy_web_websockets"), 0);
  // The create's own connection attached too: the socket's is another.
  const earlier = new Set(proxy.logs.events("session.attached").map(({ fields }) => fields.peer));
  const socket = new WebSocket(
    `${gateway.url.replace("http:", "ws:")}/api/sessions/${session.id}/ws`,
  );
  const closed = Promise.withResolvers<void>();
  const attached = Promise.withResolvers<Record<string, unknown>>();
  socket.onclose = () => closed.resolve();
  socket.onmessage = (event) => attached.resolve(JSON.parse(event.data));
  socket.onopen = () => socket.send(JSON.stringify({ v: 2, secret: session.secret, ack: 0 }));
  try {
    assert.equal((await withDeadline(attached.promise, WAIT_MS, "attached")).type, "attached");
    assert.equal(await sample(gateway, "socketproxy_web_websockets"), 1);
    const streaming = await proxy.logs.waitFor(
      "session.attached",
      (fields) => fields.mode === "framed" && !earlier.has(fields.peer),
    );
    socket.close();
    await withDeadline(closed.promise, WAIT_MS, "the socket closing");
    // The relay counts the socket closed before it ends its connection to the proxy.
    await proxy.logs.waitFor("session.detached", (fields) => fields.peer === streaming.fields.peer);
    assert.equal(await sample(gateway, "socketproxy_web_websockets"), 0);
  } finally {
    socket.close();
    await closed.promise;
  }
});

Deno.test("an upgraded WebSocket counts as a 101 of its route, and is logged as one", async () => {
  // The count is taken at the upgrade, before the proxy is asked anything.
  await using gateway = await startGateway(closedPort());
  const id = "y628R3CsuneQiYrH";
  const socket = new WebSocket(`${gateway.url.replace("http:", "ws:")}/api/sessions/${id}/ws`);
  const opened = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<void>();
  socket.onopen = () => opened.resolve();
  socket.onerror = () => opened.reject(new Error("the WebSocket failed to open"));
  socket.onclose = () => closed.resolve();
  try {
    await withDeadline(opened.promise, WAIT_MS, "the WebSocket opening");
    const { samples } = await scrape(gateway);
    const route = 'socketproxy_web_requests_total{route="/api/sessions/{id}/ws"';
    assert.equal(samples.get(`${route},status="101"}`), 1);
    assert.equal(samples.get(`${route},status="200"}`), undefined);
    const logged = gateway.logs.events("web.request")
      .filter((record) => record.fields.path === "/api/sessions/{id}/ws")
      .map((record) => record.fields.status);
    assert.deepEqual(logged, [101]);
  } finally {
    socket.close();
    await withDeadline(closed.promise, WAIT_MS, "the WebSocket closing");
  }
});

Deno.test("/metrics is served on the metrics port only; that port serves nothing else", async () => {
  await using gateway = await startGateway(closedPort());
  const onPublic = await fetch(`${gateway.url}/metrics`);
  assert.deepEqual([onPublic.status, (await onPublic.json()).error], [404, "not_found"]);
  const other = await fetch(`${gateway.metricsUrl}/health`);
  assert.deepEqual([other.status, (await other.json()).error], [404, "not_found"]);
  const post = await fetch(`${gateway.metricsUrl}/metrics`, { method: "POST" });
  await post.body?.cancel();
  assert.deepEqual([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  // Against DNS rebinding and other sites' pages, as the admin port.
  const rebound = await rawRequest(gateway.metricsPort, "GET /metrics", {
    Host: `evil.example:${gateway.metricsPort}`,
  });
  assert.deepEqual([rebound.status, rebound.body.error], [403, "host_not_allowed"]);
  const page = await rawRequest(gateway.metricsPort, "GET /metrics", {
    Host: `localhost:${gateway.metricsPort}`,
    Origin: "https://evil.example",
  });
  assert.deepEqual([page.status, page.body.error], [403, "origin_not_allowed"]);
  const { samples } = await scrape(gateway);
  assert.equal(samples.get(`socketproxy_web_info{version="${VERSION}"}`), 1);
  assert.equal(samples.get('socketproxy_web_requests_total{route="other",status="404"}'), 1);
  assert.equal(samples.get("socketproxy_web_refused_hosts_total"), 0, "the metrics port's own");
});

Deno.test("request durations are a histogram by route, with Prometheus' default buckets", () => {
  const metrics = new GatewayMetrics();
  metrics.answeredIn("/api/sessions/{id}/poll", 0.003);
  metrics.answeredIn("/api/sessions/{id}/poll", 0.2);
  metrics.answeredIn("/api/sessions/{id}/ws", 12);
  const lines = metrics.format().split("\n");
  const name = "socketproxy_web_request_duration_seconds";
  assert.ok(lines.includes(`# TYPE ${name} histogram`));
  const poll = lines.filter((line) => line.includes('route="/api/sessions/{id}/poll"'));
  assert.deepEqual(
    poll.filter((line) => line.startsWith(`${name}_bucket`)).map((line) =>
      /le="([^"]+)"/.exec(line)?.[1]
    ),
    [...DEFAULT_BUCKETS.map(String), "+Inf"],
  );
  const bucket = (route: string, le: string) =>
    Number(
      lines.find((line) => line.startsWith(`${name}_bucket{route="${route}",le="${le}"}`))?.split(
        " ",
      )[1],
    );
  assert.deepEqual(
    ["0.005", "0.1", "0.25", "10", "+Inf"].map((le) => bucket("/api/sessions/{id}/poll", le)),
    [1, 1, 2, 2, 2],
  );
  assert.deepEqual(["10", "+Inf"].map((le) => bucket("/api/sessions/{id}/ws", le)), [0, 1]);
  assert.ok(lines.includes(`${name}_count{route="/api/sessions/{id}/poll"} 2`));
  assert.ok(lines.includes(`${name}_sum{route="/api/sessions/{id}/ws"} 12`));
  assert.ok(
    !lines.some((line) => line.includes('route="/health"')),
    "no series for routes not seen",
  );
});

Deno.test("every request answered is timed under its route: a label from the fixed set, never a path", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const created = await fetch(`${gateway.url}/api/sessions`, { method: "POST" });
  const session = await created.json();
  issuedSecrets.add(session.secret);
  const poll = await fetch(`${gateway.url}/api/sessions/${session.id}/poll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret: session.secret, ack: 0 }),
  });
  await poll.body?.cancel();
  for (const path of ["/health", "/", `/wp-login.php?id=${session.id}`]) {
    await (await fetch(`${gateway.url}${path}`)).body?.cancel();
  }
  const ended = await fetch(`${gateway.url}/api/sessions/${session.id}`, {
    method: "DELETE",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret: session.secret }),
  });
  await ended.body?.cancel();
  const { text, samples } = await scrape(gateway);
  const counts = new Map<string, number>();
  for (const [series, value] of samples) {
    const route = /^socketproxy_web_request_duration_seconds_count\{route="([^"]+)"\}$/.exec(series)
      ?.[1];
    if (route !== undefined) counts.set(route, value);
  }
  assert.deepEqual(Object.fromEntries(counts), {
    "/api/sessions": 1,
    "/api/sessions/{id}": 1,
    "/api/sessions/{id}/poll": 1,
    "/health": 1,
    page: 1,
    other: 1,
  });
  for (const route of counts.keys()) {
    assert.ok((ROUTE_LABELS as readonly string[]).includes(route), route);
  }
  // As many timed as counted, route by route: the two join on route.
  for (const [route, count] of counts) {
    const answered = [...samples].filter(([series]) =>
      series.startsWith(`socketproxy_web_requests_total{route="${route}",`)
    ).reduce((sum, [, value]) => sum + value, 0);
    assert.equal(answered, count, route);
  }
  assert.ok(!text.includes(session.id) && !text.includes("wp-login"), "no id, no raw path");
});

Deno.test("web --metrics=[HOST:]PORT: a bare port is localhost; off when not given", () => {
  const metricsOf = (args: string[]) => {
    const config = parseWebArgs(args);
    assert.notEqual(config, "help");
    return config === "help" ? undefined : config.metrics;
  };
  assert.equal(metricsOf([]), null);
  assert.deepEqual(metricsOf(["--metrics=0"]), { hostname: "localhost", port: 0 });
  assert.deepEqual(metricsOf(["--metrics=9100"]), { hostname: "localhost", port: 9100 });
  assert.deepEqual(metricsOf(["--metrics=:9100"]), { hostname: "localhost", port: 9100 });
  assert.deepEqual(metricsOf(["--metrics=0.0.0.0:9100"]), { hostname: "0.0.0.0", port: 9100 });
  assert.deepEqual(metricsOf(["--metrics=[::1]:9100"]), { hostname: "::1", port: 9100 });
  const cases: [string, RegExp][] = [
    ["--metrics=localhost", /^--metrics: missing port in "localhost" \(expected \[HOST:\]PORT\)$/],
    ["--metrics=[::1]", /^--metrics: missing port in "\[::1\]"/],
    ["--metrics=99999", /^--metrics: invalid port "99999" \(expected 0 to 65535\)$/],
    ["--metrics=host:nine", /^--metrics: invalid port "nine"/],
    ["--metrics=", /^--metrics: empty address$/],
  ];
  for (const [arg, message] of cases) {
    assert.throws(() => parseWebArgs([arg]), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, message, arg);
      return true;
    });
  }
});

Deno.test("web --metrics with a bad value is one usage line and exit 2; web --help lists the flag", async () => {
  const bad = await runMain(["web", "--metrics=nope"]);
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr.trim(),
    'socketproxy web: --metrics: missing port in "nope" (expected [HOST:]PORT)',
  );
  const help = await runMain(["web", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^ +--metrics=\[HOST:\]PORT +serve Prometheus metrics/m);
  assert.equal(help.stdout.trim(), WEB_USAGE);
});

Deno.test("socketproxy web --metrics=0 serves /metrics on a loopback port apart", async () => {
  await using web = new ServerProcess(
    ["--listen=127.0.0.1:0", `--proxy=127.0.0.1:${closedPort()}`, "--metrics=0"],
    "web",
  );
  const line = await withDeadline(
    web.waitFor((line) => line.includes("web.listening")),
    WAIT_MS,
    "the gateway starting",
  );
  const match = /\bmetrics=127\.0\.0\.1:(\d+)/.exec(line);
  assert.ok(match, line);
  const response = await fetch(`http://127.0.0.1:${match[1]}/metrics`);
  assert.equal(response.status, 200);
  assert.match(await response.text(), /^socketproxy_web_websockets 0$/m);
});
