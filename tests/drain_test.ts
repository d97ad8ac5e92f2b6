/**
 * For a cluster: node-tagged session ids (`server --node`), and draining
 * for rolling updates (`POST /drain`): `NEW` refused with `ERR busy`,
 * `/ready` 503 while `/health` stays 200, resumes served until the
 * sessions end, the rest closed at the drain timeout with
 * `E server-stopping`, then the server stops.
 */

import assert from "node:assert/strict";
import { newSessionId, nodeOf } from "../lib/proxy/credentials.ts";
import { FrameReader } from "../lib/frames.ts";
import { writeAll } from "../lib/_io.ts";
import { AdminUnreachableError, readAnswer } from "../lib/commands/admin_client.ts";
import { waitForStop } from "../lib/commands/drain.ts";
import { CommandError } from "../lib/errors.ts";
import {
  Destination,
  issuedSecrets,
  runMain,
  ServerProcess,
  startServer,
  startService,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

async function answer(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, init);
  return { status: response.status, body: await response.json() };
}

Deno.test("server --node makes every id NODE_<random>, and the node can be read back from it", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { node: "eu-1" });
  using client = await TestClient.connect(proxy.port);
  const reply = await client.hello("NEW");
  issuedSecrets.add(reply.secret);
  assert.match(reply.id, /^eu-1_[A-Za-z0-9_-]{16}$/);
  assert.equal(nodeOf(reply.id), "eu-1");
  assert.equal(nodeOf(newSessionId()), null, "an id without a node");
  const longest = newSessionId("n".repeat(24));
  assert.ok(longest.length <= 64 && nodeOf(longest) === "n".repeat(24));
});

Deno.test("a drain refuses NEW, keeps serving resumes, answers /ready 503 and /health 200, and stops once the sessions end", async () => {
  await using destination = new Destination();
  await using service = await startService(destination.port, { node: "a" });
  using first = await TestClient.connect(service.port);
  const session = await first.hello("NEW");
  issuedSecrets.add(session.secret);
  first.close();
  assert.equal((await answer(`${service.admin}/ready`)).status, 200);
  const drain = await answer(`${service.admin}/drain`, { method: "POST" });
  assert.deepEqual(drain, {
    status: 202,
    body: { status: "draining", sessions: 1, timeoutMs: 600_000 },
  });
  assert.deepEqual(await answer(`${service.admin}/ready`), {
    status: 503,
    body: { status: "draining" },
  });
  assert.deepEqual(await answer(`${service.admin}/health`), {
    status: 200,
    body: { status: "draining" },
  });
  const report = await answer(`${service.admin}/status`);
  assert.equal(report.body.status, "draining");
  assert.equal(report.body.node, "a");
  const metrics = await (await fetch(`${service.admin}/metrics`)).text();
  assert.ok(metrics.includes("socketproxy_draining 1\n"));
  assert.ok(metrics.includes('socketproxy_info{version="'));
  assert.ok(metrics.includes('node="a"'));
  using refused = await TestClient.connect(service.port);
  await refused.write("NEW\n");
  assert.match(await refused.readLine(), /^ERR busy draining/);
  {
    using resumed = await TestClient.connect(service.port);
    const again = await resumed.hello(`RESUME ${session.id} ${session.secret} 0`);
    assert.equal(again.id, session.id, "resumes are served while draining");
  }
  // The last session ends: the drain is over and the server stops.
  using closer = await TestClient.connect(service.port);
  await closer.write(`CLOSE ${session.id} ${session.secret}\n`);
  assert.equal(await closer.readLine(), `BYE ${session.id}`);
  await service.service.drain();
  assert.equal(service.service.stopping, true);
  await service.logs.waitFor("server.drained", (fields) => fields.reason === "all sessions ended");
  await assert.rejects(TestClient.connect(service.port), "the proxy port is closed");
});

Deno.test("at the drain timeout the sessions left are closed, a framed client told server-stopping", async () => {
  await using destination = new Destination();
  await using service = await startService(destination.port, { drainTimeout: 200 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: service.port });
  await writeAll(conn, new TextEncoder().encode("NEW framed\n"));
  // The reply line, then frames.
  const first = new Uint8Array(1024);
  let filled = 0;
  while (!first.subarray(0, filled).includes(10)) {
    const read = await conn.read(first.subarray(filled));
    if (read === null) throw new Error("no reply");
    filled += read;
  }
  const lf = first.indexOf(10);
  const reply = new TextDecoder().decode(first.subarray(0, lf));
  issuedSecrets.add(reply.split(" ")[2] ?? "");
  const reader = new FrameReader(conn, {
    direction: "to-client",
    leftover: first.slice(lf + 1, filled),
  });
  const stopped = service.service.drain();
  let end = null;
  for (let round = 0; round < 10 && end === null; round++) {
    const frame = await reader.next();
    if (frame === null) break;
    if (frame.type === "E") end = frame.reason;
  }
  conn.close();
  assert.equal(end, "server-stopping");
  await stopped;
  await service.logs.waitFor("server.drained", (fields) => fields.reason === "drain timeout");
});

Deno.test("POST /drain needs POST, and the admin token like everything else", async () => {
  await using destination = new Destination();
  await using service = await startService(destination.port, { adminToken: "t".repeat(32) });
  assert.equal((await answer(`${service.admin}/drain`)).status, 401);
  const get = await fetch(`${service.admin}/drain`, {
    headers: { authorization: `Bearer ${"t".repeat(32)}` },
  });
  assert.equal(get.status, 405);
  assert.match(await get.text(), /Use POST on \/drain/);
  assert.equal(service.service.draining, false);
});

Deno.test("socketproxy drain: the server stops taking sessions and, with none open, exits 0 by itself", async () => {
  await using destination = new Destination();
  await using server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=127.0.0.1:0",
    "--node=n1",
    "--drain-timeout=30s",
    `127.0.0.1:${destination.port}`,
  ]);
  const adminPort = await server.adminPort;
  const drained = await runMain(["drain", `--admin=127.0.0.1:${adminPort}`]);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(
    drained.stdout,
    /is draining: 0 sessions open; the rest close in at most 30 s, then it exits/,
  );
  const status = await withDeadline(server.child.status, WAIT_MS, "the server's exit");
  assert.equal(status.code, 0);
  await server.waitFor((line) => line.includes("server.drained"));
  assert.ok(server.lines.some((line) => line.includes("server.stopped")));
  const misuse = await runMain(["server", "--node=no_underscores", "h:1"]);
  assert.equal(misuse.code, 2);
  assert.match(misuse.stderr, /--node: 1 to 24 characters of A-Z a-z 0-9 -/);
});

Deno.test("socketproxy drain --wait returns only once the server has stopped, after its last session ended", async () => {
  await using destination = new Destination();
  await using server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=127.0.0.1:0",
    "--drain-timeout=30s",
    `127.0.0.1:${destination.port}`,
  ]);
  const [port, adminPort] = await Promise.all([server.port, server.adminPort]);
  using attached = await TestClient.connect(port);
  const session = await attached.hello("NEW");
  let stopped = false;
  const status = server.child.status.then((status) => {
    stopped = true;
    return status;
  });
  const waiting = runMain(["drain", "--wait", `--admin=127.0.0.1:${adminPort}`]).then(
    (result) => ({ ...result, stoppedFirst: stopped }),
  );
  await server.waitFor((line) => line.includes("server.draining"));
  // The session is still open: the server, and drain --wait, go on.
  using closer = await TestClient.connect(port);
  await closer.write(`CLOSE ${session.id} ${session.secret}\n`);
  assert.match(await closer.readLine(), /^BYE /);
  const drained = await withDeadline(waiting, WAIT_MS, "drain --wait");
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stdout, /is draining: 1 sessions open; the rest close in at most 30 s/);
  assert.match(drained.stdout, /has stopped\n$/);
  assert.ok(drained.stoppedFirst, "drain --wait returned before the server stopped");
  assert.equal((await status).code, 0);
});

Deno.test("an answer cut off part way is a port no longer answering, as drain --wait counts a stopped server; one that stalls has timed out", async () => {
  const answerOf = (error: Error) =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"totals":'));
          controller.error(error);
        },
      }),
    );
  const cases = [
    {
      failure: new TypeError("error reading a body from connection"),
      detail: "error reading a body from connection",
      timedOut: false,
      why: "a closed port has stopped",
    },
    {
      failure: new DOMException("Signal timed out.", "TimeoutError"),
      detail: "no answer within 10 s",
      timedOut: true,
      why: "a port that stalls may still be running",
    },
  ];
  for (const { failure, detail, timedOut, why } of cases) {
    await assert.rejects(readAnswer(answerOf(failure), "127.0.0.1:9010"), (error: unknown) => {
      assert.ok(error instanceof AdminUnreachableError, String(error));
      assert.equal(error.message, `127.0.0.1:9010 stopped part way through its answer (${detail})`);
      assert.equal(error.timedOut, timedOut, why);
      return true;
    });
  }
});

Deno.test("drain --wait asks again when the admin port is slow to answer, and reports a stop only once it is gone", async () => {
  // A stand-in admin port: /drain answers; the first /status sends its
  // headers and never its body (the client's 10 s timeout ends it): a
  // stuck server, not a stopped one; the next /status answers, then the
  // port closes.
  const statusAsked = Promise.withResolvers<void>();
  const stuck: ReadableStreamDefaultController<Uint8Array>[] = [];
  let statusRequests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (request.method === "POST") {
      return Response.json({ draining: true, sessions: 1, timeoutMs: 30_000 });
    }
    statusRequests++;
    if (statusRequests === 1) {
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => void stuck.push(controller),
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    statusAsked.resolve();
    return Response.json({ totals: { sessionsOpen: 1 } });
  });
  const waiting = runMain(["drain", "--wait", `--admin=127.0.0.1:${server.addr.port}`]);
  await withDeadline(statusAsked.promise, 30_000, "a second GET /status");
  for (const controller of stuck) {
    try {
      controller.close();
    } catch {
      // Its request was cancelled already.
    }
  }
  await server.shutdown();
  const drained = await withDeadline(waiting, 30_000, "drain --wait");
  assert.equal(drained.code, 0, drained.stderr);
  assert.ok(statusRequests >= 2, `asked ${statusRequests} times`);
  assert.match(drained.stdout, /has stopped\n$/);
});

Deno.test("drain --wait gives up with exit status 1 when the server still answers past its drain timeout", async () => {
  // A stand-in admin port that never stops: its /status always says one session is open.
  let asked = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    asked++;
    return Response.json({ totals: { sessionsOpen: 1 } });
  });
  try {
    const where = `127.0.0.1:${server.addr.port}`;
    const admin = { hostname: "127.0.0.1", port: server.addr.port };
    // A drain timeout of 0 and a margin of 200 ms past it, asked every 10 ms.
    const waiting = waitForStop(admin, undefined, where, 1, 0, { pollMs: 10, marginMs: 200 });
    await assert.rejects(
      withDeadline(waiting, WAIT_MS, "drain --wait giving up"),
      (error: unknown) => {
        assert.ok(error instanceof CommandError, String(error));
        assert.equal(error.exitCode, 1);
        assert.equal(
          error.message,
          `${where} still answers 0.2 s after its drain timeout: see "socketproxy status --admin=${where}"`,
        );
        return true;
      },
    );
    assert.ok(asked >= 2, `asked ${asked} times before giving up`);
  } finally {
    await server.shutdown();
  }
});
