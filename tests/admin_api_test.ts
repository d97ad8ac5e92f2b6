/**
 * The admin API: status, metrics, health, closing sessions, the token, and
 * bad requests, against a real service on loopback.
 */

import assert from "node:assert/strict";
import { adminHandler } from "../lib/admin/api.ts";
import { Logger } from "../lib/log.ts";
import { AuthThrottle } from "../lib/throttle.ts";
import type { StatusReport } from "../lib/proxy/status_report.ts";
import {
  assertNoSecrets,
  decoder,
  Destination,
  echoDestination,
  startService,
  TestClient,
} from "./_helpers.ts";

async function get(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

Deno.test("GET /status reports settings, totals and every session, never a secret", async () => {
  await using destination = echoDestination();
  await using service = await startService(destination.port, { bufferSize: 4096, maxSessions: 7 });
  using attached = await TestClient.connect(service.port);
  const first = await attached.hello("NEW");
  await attached.write("hello\n");
  await attached.readLine();
  const detached = await TestClient.connect(service.port);
  const second = await detached.hello("NEW");
  detached.close();
  await service.logs.waitFor("session.detached", (fields) => fields.id === second.id);

  const { status, text, headers } = await get(`${service.admin}/status`);
  assert.equal(status, 200);
  assert.match(headers.get("content-type") ?? "", /^application\/json/);
  assertNoSecrets([text], "/status");
  const report: StatusReport = JSON.parse(text);
  assert.equal(report.status, "serving");
  assert.equal(report.proxy, `127.0.0.1:${service.port}`);
  assert.equal(report.destination, `127.0.0.1:${destination.port}`);
  assert.ok(report.admin?.startsWith("127.0.0.1:"));
  assert.match(report.version, /^\d+\.\d+\.\d+/);
  assert.ok(report.uptimeSeconds >= 0);
  assert.deepEqual(report.limits, {
    bufferBytes: 4096,
    idleTimeoutMs: 3_600_000,
    handshakeTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
    maxSessions: 7,
  });
  assert.equal(report.totals.sessionsOpen, 2);
  assert.equal(report.totals.sessionsAttached, 1);
  assert.equal(report.totals.sessionsDetached, 1);
  assert.equal(report.totals.sessionsCreated, 2);
  assert.equal(report.totals.connectionsAccepted, 2);
  assert.equal(report.totals.bytesIn, 6);
  assert.equal(report.totals.bytesOut, 6);
  assert.equal(report.totals.connectionsOpen, 1);

  const entry = report.sessions.find((session) => session.id === first.id);
  assert.ok(entry);
  assert.equal(entry.state, "attached");
  assert.equal(entry.client, `127.0.0.1:${attached.conn.localAddr.port}`);
  assert.equal(entry.mode, "streaming");
  assert.equal(entry.destination, "open");
  assert.deepEqual([entry.bytesIn, entry.bytesOut, entry.sent, entry.ackFloor], [6, 6, 6, 0]);
  assert.equal(entry.buffered, 6);
  assert.equal(entry.idleSeconds, 0);
  assert.ok(Date.parse(entry.created) <= Date.parse(entry.lastAttached));
  const other = report.sessions.find((session) => session.id === second.id);
  assert.equal(other?.state, "detached");
  assert.equal(other?.client, null);
});

Deno.test("GET /status and /metrics count auth failures and gaps", async () => {
  await using destination = new Destination();
  await using service = await startService(destination.port, { bufferSize: 1024 });
  const client = await TestClient.connect(service.port);
  const session = await client.hello("NEW");
  using dest = new TestClient(await destination.accepted());
  await dest.write(new Uint8Array(4096));
  await client.readExactly(4096);
  client.close();
  await service.logs.waitFor("session.detached");
  for (
    const hello of [
      `RESUME ${session.id} ${"B".repeat(32)} 0`,
      `RESUME ${session.id} ${session.secret} 0`,
    ]
  ) {
    using probe = await TestClient.connect(service.port);
    await probe.write(hello + "\n");
    assert.match(await probe.readLine(), /^ERR (auth|gap) /);
  }
  const report: StatusReport = JSON.parse((await get(`${service.admin}/status`)).text);
  assert.equal(report.totals.authFailures, 1);
  assert.equal(report.totals.gaps, 1);
  const metrics = (await get(`${service.admin}/metrics`)).text.split("\n");
  assert.ok(metrics.includes("socketproxy_auth_failures_total 1"));
  assert.ok(metrics.includes("socketproxy_gaps_total 1"));
});

Deno.test("GET /metrics exposes the figures in Prometheus text format", async () => {
  await using destination = echoDestination();
  await using service = await startService(destination.port);
  using client = await TestClient.connect(service.port);
  await client.hello("NEW");
  await client.write("abc");
  await client.readExactly(3);
  const { status, text, headers } = await get(`${service.admin}/metrics`);
  assert.equal(status, 200);
  assert.equal(headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assertNoSecrets([text], "/metrics");
  const lines = text.trimEnd().split("\n");
  const types = new Map<string, string>();
  const names = new Set<string>();
  for (const line of lines) {
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
      assert.match(line, /^# (HELP|TYPE) (socketproxy|process)_[a-z_]+ \S/);
      const [, kind, name = "", type = ""] = line.split(" ");
      if (kind === "TYPE") types.set(name, type);
      continue;
    }
    const match =
      /^((?:socketproxy|process)_[a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+)$/
        .exec(line);
    assert.ok(match, `sample line: ${line}`);
    names.add(match[1] ?? "");
  }
  for (const name of names) {
    const histogram = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
    if (histogram !== undefined && types.get(histogram) === "histogram") continue;
    assert.equal(types.get(name), name.endsWith("_total") ? "counter" : "gauge", name);
  }
  assert.ok(lines.includes('socketproxy_sessions{state="attached"} 1'));
  assert.ok(lines.includes("socketproxy_sessions_created_total 1"));
  assert.ok(lines.includes("socketproxy_input_bytes_total 3"));
  assert.ok(lines.includes("socketproxy_output_bytes_total 3"));
});

Deno.test("GET /metrics times resumes, polls and destination connects, and has the process figures", async () => {
  await using destination = echoDestination();
  await using service = await startService(destination.port);
  const created = await (async () => {
    using client = await TestClient.connect(service.port);
    return await client.hello("NEW");
  })();
  await service.logs.waitFor("session.detached");
  {
    using poll = await TestClient.connect(service.port);
    await poll.hello(`RESUME ${created.id} ${created.secret} 0`);
  }
  await service.logs.waitFor(
    "session.detached",
    () => service.logs.events("session.detached").length === 2,
  );
  const { text } = await get(`${service.admin}/metrics`);
  const value = (line: string): number => {
    const found = text.split("\n").find((sample) => sample.startsWith(`${line} `));
    assert.ok(found, `no sample ${line}`);
    return Number(found.slice(line.length + 1));
  };
  for (
    const name of [
      "resume_duration_seconds",
      "poll_duration_seconds",
      "destination_connect_seconds",
    ]
  ) {
    const full = `socketproxy_${name}`;
    assert.ok(text.includes(`# TYPE ${full} histogram\n`), name);
    assert.equal(value(`${full}_count`), 1, `${name}: one observation`);
    assert.equal(value(`${full}_bucket{le="+Inf"}`), 1);
    assert.ok(value(`${full}_sum`) >= 0);
    // Cumulative: each bucket holds at least the one before it.
    const buckets = [
      ...text.matchAll(new RegExp(`^${full}_bucket\\{le="([^"]+)"\\} (\\d+)$`, "gm")),
    ]
      .map((match) => Number(match[2]));
    assert.equal(buckets.length, 12, "the 11 default buckets and +Inf");
    for (let i = 1; i < buckets.length; i++) assert.ok((buckets[i] ?? 0) >= (buckets[i - 1] ?? 0));
  }
  const now = Date.now() / 1000;
  const started = value("process_start_time_seconds");
  assert.ok(started > now - 24 * 3600 && started <= now, `start time ${started}`);
  assert.ok(value("process_resident_memory_bytes") > 1024 * 1024);
  assert.ok(value("process_open_fds") > 3);
  assert.ok(value("process_cpu_seconds_total") > 0);
  assert.ok(value("process_max_fds") >= value("process_open_fds"));
});

Deno.test("GET /health answers 200 while serving and 503 while stopping", async () => {
  let stopping = false;
  const handler = adminHandler({
    token: null,
    logger: new Logger({ sink: () => {} }),
    backend: {
      report: () => {
        throw new Error("not needed");
      },
      closeSession: () => false,
      stopping: () => stopping,
    },
  });
  const serving = await handler(new Request("http://admin/health"));
  assert.equal(serving.status, 200);
  assert.deepEqual(await serving.json(), { status: "serving" });
  stopping = true;
  const draining = await handler(new Request("http://admin/health"));
  assert.equal(draining.status, 503);
  assert.deepEqual(await draining.json(), { status: "stopping" });
});

Deno.test("a stopping service answers /health with 503 until its admin port closes", async () => {
  // A destination connection that is slow to give up holds the shutdown open.
  const connecting = Promise.withResolvers<void>();
  const release = Promise.withResolvers<Deno.Conn>();
  await using service = await startService(1, {
    connect: () => {
      connecting.resolve();
      return release.promise;
    },
  });
  assert.equal((await get(`${service.admin}/health`)).status, 200);
  using client = await TestClient.connect(service.port);
  await client.write("NEW\n");
  await connecting.promise;
  const stopped = service.service.stop();
  const health = await get(`${service.admin}/health`);
  assert.equal(health.status, 503);
  assert.deepEqual(JSON.parse(health.text), { status: "stopping" });
  release.reject(new Error("gave up"));
  await stopped;
  await assert.rejects(fetch(`${service.admin}/health`));
});

Deno.test("DELETE /sessions/{id} closes the session and disconnects its client", async () => {
  await using destination = new Destination();
  await using service = await startService(destination.port);
  using client = await TestClient.connect(service.port);
  const session = await client.hello("NEW");
  using dest = new TestClient(await destination.accepted());
  const { status, text } = await get(`${service.admin}/sessions/${session.id}`, {
    method: "DELETE",
  });
  assert.equal(status, 200);
  assert.deepEqual(JSON.parse(text), { closed: session.id });
  assert.equal((await client.readToEnd()).length, 0, "client disconnected");
  assert.equal((await dest.readToEnd()).length, 0, "destination closed");
  assert.equal(service.service.proxy.store.size, 0);
  await service.logs.waitFor("session.closed", (fields) => fields.reason === "closed by admin");
  const again = await get(`${service.admin}/sessions/${session.id}`, { method: "DELETE" });
  assert.equal(again.status, 404);
});

Deno.test("bad admin requests answer 4xx with a JSON error", async (t) => {
  await using destination = echoDestination();
  await using service = await startService(destination.port);
  const cases: [string, string, number, string][] = [
    ["GET", "/nope", 404, "not_found"],
    ["GET", "/", 404, "not_found"],
    ["POST", "/status", 405, "method_not_allowed"],
    ["DELETE", "/metrics", 405, "method_not_allowed"],
    ["GET", "/sessions/abc", 405, "method_not_allowed"],
    ["DELETE", "/sessions/not%20an%20id", 400, "bad_request"],
    ["DELETE", "/sessions/%ff", 400, "bad_request"],
    ["DELETE", `/sessions/${"a".repeat(65)}`, 400, "bad_request"],
    ["DELETE", "/sessions/", 400, "bad_request"],
    ["DELETE", "/sessions/unknownsession", 404, "not_found"],
  ];
  for (const [method, path, status, error] of cases) {
    await t.step(`${method} ${path.slice(0, 30)}`, async () => {
      const response = await get(`${service.admin}${path}`, { method });
      assert.equal(response.status, status);
      const body = JSON.parse(response.text);
      assert.equal(body.error, error);
      assert.equal(typeof body.message, "string");
      if (status === 405) assert.ok(response.headers.get("allow"));
    });
  }
});

Deno.test("with --admin-token every admin request but the probes needs the bearer token", async () => {
  await using destination = echoDestination();
  await using service = await startService(destination.port, { adminToken: "s3cret-token" });
  for (const path of ["/health", "/ready"]) {
    const probe = await get(`${service.admin}${path}`);
    assert.equal(probe.status, 200, `${path} answers a probe without the token`);
  }
  const draining = await get(`${service.admin}/drain`, { method: "POST" });
  assert.equal(draining.status, 401, "POST /drain needs it");
  for (const path of ["/status", "/metrics"]) {
    const missing = await get(`${service.admin}${path}`);
    assert.equal(missing.status, 401, path);
    assert.equal(JSON.parse(missing.text).error, "unauthorized");
    assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer/);
    const wrong = await get(`${service.admin}${path}`, {
      headers: { authorization: "Bearer nope" },
    });
    assert.equal(wrong.status, 401, path);
    const right = await get(`${service.admin}${path}`, {
      headers: { authorization: "Bearer s3cret-token" },
    });
    assert.equal(right.status, 200, path);
  }
  const deleting = await get(`${service.admin}/sessions/abc`, { method: "DELETE" });
  assert.equal(deleting.status, 401);
  await service.logs.waitFor("admin.unauthorized");
  assert.ok(
    !service.logs.lines.some((line) => line.includes("s3cret-token")),
    "token never logged",
  );
});

Deno.test("after a wrong admin token, its address waits before any answer; others do not", async () => {
  const logs: string[] = [];
  const stopping = new AbortController();
  const handler = adminHandler({
    token: "s3cret-token",
    logger: new Logger({ format: "json", sink: (line) => logs.push(line) }),
    backend: {
      report: () => {
        throw new Error("not needed");
      },
      closeSession: () => false,
      stopping: () => false,
    },
    // A wait long enough that only the abort below can end it.
    throttle: new AuthThrottle({ step: 60_000, max: 60_000 }),
    signal: stopping.signal,
  });
  const from = (hostname: string): Deno.ServeHandlerInfo<Deno.NetAddr> => ({
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
    completed: Promise.resolve(),
  });
  // Closing an unknown session: answered at once (404) with the right token.
  const status = (token: string): Request =>
    new Request("http://admin/sessions/none", {
      method: "DELETE",
      headers: { authorization: `Bearer ${token}` },
    });

  // The first wrong token is answered at once: nothing from its address failed before.
  const first = handler(status("nope"), from("203.0.113.7"));
  assert.ok(first instanceof Response && first.status === 401);
  const logged = JSON.parse(logs.at(-1) ?? "{}");
  assert.equal(logged.event, "admin.unauthorized");
  assert.equal(logged.peer, "203.0.113.7:40000");
  assert.equal(logged.failures, 1);

  // Now every request from that address waits before its token is checked,
  // so a guesser that gives up early learns nothing; the right token too.
  const waiting = [
    handler(status("nope-2"), from("203.0.113.7")),
    handler(status("s3cret-token"), from("203.0.113.7")),
  ];
  assert.ok(waiting.every((answer) => answer instanceof Promise), "both wait");
  let answered = 0;
  for (const answer of waiting) void Promise.resolve(answer).then(() => answered++);
  // Another address is answered at once.
  const other = handler(status("s3cret-token"), from("198.51.100.1"));
  assert.ok(other instanceof Response && other.status === 404);
  await Promise.resolve();
  assert.equal(answered, 0, "still waiting");
  assert.equal(logs.length, 1, "nothing checked yet");

  // Stopping ends the waits: checked, then answered, the owner not refused.
  stopping.abort();
  const statuses = (await Promise.all(waiting)).map((response) => response.status);
  assert.deepEqual(statuses, [401, 404]);
  assert.ok(!logs.some((line) => /s3cret-token|nope/.test(line)), "no token logged");
});

Deno.test("--admin=off serves no admin port", async () => {
  await using destination = echoDestination();
  await using service = await startService(destination.port, { admin: null });
  assert.equal(service.service.admin, null);
  using client = await TestClient.connect(service.port);
  await client.hello("NEW");
  await client.write("x");
  assert.equal(decoder.decode(await client.readExactly(1)), "x");
});
