/**
 * Running it on a server: `status` and `close` against a real server
 * process, the stop signals, and the log formats.
 */

import assert from "node:assert/strict";
import { formatAge, formatBytes } from "../lib/commands/status.ts";
import { watchStopSignals } from "../lib/commands/signals.ts";
import { writeAll } from "../lib/_io.ts";
import {
  assertNoSecrets,
  decoder,
  Destination,
  echoDestination,
  encoder,
  RUN_PERMISSIONS,
  runMain,
  ServerProcess,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function serverArgs(destinationPort: number, ...extra: string[]): string[] {
  return ["--proxy=127.0.0.1:0", "--admin=127.0.0.1:0", ...extra, `127.0.0.1:${destinationPort}`];
}

Deno.test("status prints a summary and a table with attached sessions marked", async () => {
  await using destination = echoDestination();
  await using server = new ServerProcess(serverArgs(destination.port));
  const port = await server.port;
  const admin = `--admin=127.0.0.1:${await server.adminPort}`;
  using attached = await TestClient.connect(port);
  const live = await attached.hello("NEW");
  const gone = await TestClient.connect(port);
  const idle = await gone.hello("NEW");
  gone.close();
  await server.waitFor((line) => line.includes("session.detached") && line.includes(idle.id));

  const { code, stdout, stderr } = await runMain(["status", admin]);
  assert.equal(code, 0, stderr);
  assertNoSecrets([stdout], "status output");
  assert.match(
    stdout,
    /^socketproxy \S+ serving on 127\.0\.0\.1:\d+ for 127\.0\.0\.1:\d+, up \d+s$/m,
  );
  assert.match(
    stdout,
    /^sessions: +2 open of 10000 \(1 attached, 1 detached, 0 destination closed\)/m,
  );
  const lines = stdout.split("\n");
  const header = lines.find((line) => line.includes("ID") && line.includes("STATE"));
  assert.ok(header, stdout);
  const liveRow = lines.find((line) => line.includes(live.id));
  const idleRow = lines.find((line) => line.includes(idle.id));
  assert.match(liveRow ?? "", /^\* +\S+ +attached +127\.0\.0\.1:\d+ +streaming /);
  assert.match(idleRow ?? "", /^ +\S+ +detached +- +- /);
  // Columns line up: every row's STATE starts where the header's does.
  const column = header.indexOf("STATE");
  assert.equal(liveRow?.indexOf("attached"), column);
  assert.equal(idleRow?.indexOf("detached"), column);
});

Deno.test("status --json prints the admin API's JSON as is", async () => {
  await using destination = echoDestination();
  await using server = new ServerProcess(serverArgs(destination.port));
  await server.port;
  const adminPort = await server.adminPort;
  const { code, stdout } = await runMain(["status", `--admin=127.0.0.1:${adminPort}`, "--json"]);
  assert.equal(code, 0);
  const report = JSON.parse(stdout);
  assert.equal(report.status, "serving");
  assert.deepEqual(report.sessions, []);
  const direct = await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json();
  assert.deepEqual(Object.keys(report), Object.keys(direct));
});

Deno.test("close ID closes an attached session; an unknown id is one clear line", async () => {
  await using destination = echoDestination();
  await using server = new ServerProcess(serverArgs(destination.port));
  const port = await server.port;
  const admin = `--admin=127.0.0.1:${await server.adminPort}`;
  using client = await TestClient.connect(port);
  const session = await client.hello("NEW");
  const closed = await runMain(["close", admin, session.id]);
  assert.equal(closed.code, 0, closed.stderr);
  assert.equal(closed.stdout.trim(), `closed session ${session.id}`);
  assert.equal((await client.readToEnd()).length, 0, "the attached client was disconnected");
  const again = await runMain(["close", admin, session.id]);
  assert.equal(again.code, 1);
  assert.match(
    again.stderr.trim(),
    new RegExp(`^socketproxy close: no session "${session.id}" on 127\\.0\\.0\\.1:\\d+$`),
  );
});

Deno.test("status and close with no server answering: one line, exit status 1", async () => {
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  for (const args of [["status"], ["close", "abc"]]) {
    const { code, stderr } = await runMain([...args, `--admin=127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assert.equal(
      stderr.trim(),
      `socketproxy ${
        args[0]
      }: no socketproxy admin port answering on 127.0.0.1:${port}: connection refused`,
    );
  }
});

Deno.test("status and close take the token from the flag or SOCKETPROXY_ADMIN_TOKEN", async () => {
  await using destination = echoDestination();
  const token = "correct-horse-battery";
  await using server = new ServerProcess(serverArgs(destination.port, `--admin-token=${token}`));
  await server.port;
  const admin = `--admin=127.0.0.1:${await server.adminPort}`;
  const without = await runMain(["status", admin]);
  assert.equal(without.code, 1);
  assert.match(without.stderr, /needs a token: use --admin-token or SOCKETPROXY_ADMIN_TOKEN/);
  const wrong = await runMain(["status", admin, "--admin-token=wrong"]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /refused the token/);
  const withFlag = await runMain(["status", admin, `--admin-token=${token}`]);
  assert.equal(withFlag.code, 0, withFlag.stderr);
  const withEnv = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, MAIN, "status", admin],
    env: { SOCKETPROXY_ADMIN_TOKEN: token },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(withEnv.code, 0, decoder.decode(withEnv.stderr));
  assert.match(decoder.decode(withEnv.stdout), /no sessions/);
  assert.ok(!server.lines.some((line) => line.includes(token)), "the token is never logged");
});

Deno.test("the server takes its admin token from SOCKETPROXY_ADMIN_TOKEN", async () => {
  await using destination = echoDestination();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, MAIN, "server", ...serverArgs(destination.port)],
    env: { SOCKETPROXY_ADMIN_TOKEN: "from-the-environment" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).values();
  let log = "";
  try {
    while (!/admin_token=required/.test(log)) {
      const next = await lines.next();
      if (next.done) break;
      log += next.value;
    }
    const adminPort = Number(/admin=127\.0\.0\.1:(\d+)/.exec(log)?.[1]);
    const refused = await fetch(`http://127.0.0.1:${adminPort}/status`);
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
    const allowed = await fetch(`http://127.0.0.1:${adminPort}/status`, {
      headers: { authorization: "Bearer from-the-environment" },
    });
    await allowed.body?.cancel();
    assert.equal(allowed.status, 200);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    for await (const rest of lines) log += rest;
  }
  assert.ok(!log.includes("from-the-environment"), "the token is never logged");
});

Deno.test("SIGTERM and SIGINT stop the server cleanly: exit 0 within 2 s, clients closed", async (t) => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    await t.step(signal, async () => {
      await using destination = echoDestination();
      const server = new ServerProcess(serverArgs(destination.port));
      const port = await server.port;
      using client = await TestClient.connect(port);
      await client.hello("NEW");
      using halfway = await TestClient.connect(port);
      await halfway.write("RESU");
      const started = performance.now();
      const status = await server.stop(signal);
      // The shutdown deadline is part of the contract (2 s), not a speed goal.
      assert.ok(performance.now() - started < 2000, "exited within 2 s");
      assert.equal(status.code, 0);
      assert.ok(await closedByServer(client), "attached client disconnected");
      assert.ok(await closedByServer(halfway), "client in its handshake disconnected");
      const log = server.lines.join("\n");
      assert.match(log, new RegExp(`server\\.stopping signal=${signal} sessions=1`));
      assert.match(log, /server\.stopped sessions_created=1 /);
    });
  }
});

/** Whether the server closed the connection (EOF, or a reset when it exited). */
async function closedByServer(client: TestClient): Promise<boolean> {
  try {
    return (await client.readToEnd()).length === 0;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionReset;
  }
}

Deno.test("a second stop signal is handled at once, the first only begins a clean stop", async () => {
  const seconds: Deno.Signal[] = [];
  const secondSeen = Promise.withResolvers<void>();
  using signals = watchStopSignals((signal) => {
    seconds.push(signal);
    secondSeen.resolve();
  });
  // Signal listeners do not keep the event loop alive: the deadline's timer does.
  Deno.kill(Deno.pid, "SIGTERM");
  assert.equal(await withDeadline(signals.first, WAIT_MS, "the first signal"), "SIGTERM");
  assert.deepEqual(seconds, []);
  // SIGTERM again: the test runner itself stops on SIGINT.
  Deno.kill(Deno.pid, "SIGTERM");
  await withDeadline(secondSeen.promise, WAIT_MS, "the second signal");
  assert.deepEqual(seconds, ["SIGTERM"]);
});

/** Resolves once process `pid` is stopped (SIGSTOP): Linux's /proc says so; fails after WAIT_MS. */
async function stopped(pid: number): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  // No event says a process has stopped: look, at most every millisecond.
  while (!/\) T /.test(await Deno.readTextFile(`/proc/${pid}/stat`))) {
    if (performance.now() > deadline) throw new Error(`process ${pid} did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

Deno.test({
  name: "a second stop signal during the shutdown exits at once: server.killed, 128 + signal",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using destination = echoDestination();
    const server = new ServerProcess(serverArgs(destination.port));
    using client = await TestClient.connect(await server.port);
    await client.hello("NEW");
    // The server holds both signals unseen while stopped, so the second
    // reaches it with the first one's shutdown under way, however slow
    // this machine is. (Nothing in the shutdown itself can be held open
    // from outside: it aborts connects and delays, and waits for the admin
    // port 300 ms at most.)
    const { pid } = server.child;
    Deno.kill(pid, "SIGSTOP");
    await stopped(pid);
    Deno.kill(pid, "SIGTERM");
    Deno.kill(pid, "SIGINT");
    Deno.kill(pid, "SIGCONT");
    const status = await withDeadline(server.child.status, WAIT_MS, "the exit");
    await server.stop(); // already exited: reads the rest of the log
    const killed = server.lines.find((line) => line.includes("server.killed")) ?? "";
    const signal = /server\.killed signal=(SIGINT|SIGTERM)\b/.exec(killed)?.[1];
    assert.ok(signal, server.lines.join("\n"));
    assert.equal(status.code, signal === "SIGINT" ? 130 : 143);
    assert.match(killed, / WARN /);
    const log = server.lines.join("\n");
    assert.doesNotMatch(log, /server\.stopped/, "the clean stop was cut short");
    const first = /server\.stopping signal=(\w+)/.exec(log)?.[1];
    if (first !== undefined) assert.notEqual(first, signal, "the first signal began the stop");
  },
});

Deno.test("--log-format=json writes one JSON object a line", async () => {
  await using destination = echoDestination();
  const server = new ServerProcess(serverArgs(destination.port, "--log-format=json"));
  const port = await server.port;
  const client = await TestClient.connect(port);
  const session = await client.hello("NEW");
  client.close();
  await server.waitFor((line) => line.includes("session.detached"));
  assert.equal((await server.stop()).code, 0);
  const records = server.lines.map((line) => JSON.parse(line));
  for (const record of records) {
    assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["debug", "info", "warn", "error"].includes(record.level));
    assert.equal(typeof record.event, "string");
  }
  const attached = records.find((record) => record.event === "session.attached");
  assert.equal(attached?.id, session.id);
  assert.equal(attached?.mode, "streaming");
  assert.match(attached?.peer, /^127\.0\.0\.1:\d+$/);
});

Deno.test("formatBytes and formatAge read well", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(1024 * 1024), "1 MiB");
  assert.equal(formatBytes(35.4 * 1024 * 1024), "35 MiB");
  assert.equal(formatAge(0), "0s");
  assert.equal(formatAge(59.9), "59s");
  assert.equal(formatAge(192), "3m12s");
  assert.equal(formatAge(7500), "2h05m");
  assert.equal(formatAge(3 * 86400 + 4 * 3600), "3d04h");
});

Deno.test("a server that cannot read SOCKETPROXY_ADMIN_TOKEN says so", async () => {
  await using destination = echoDestination();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", MAIN, "server", ...serverArgs(destination.port)],
    env: { SOCKETPROXY_ADMIN_TOKEN: "would-be-ignored" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).values();
  let log = "";
  try {
    while (!log.includes("server.listening")) {
      const next = await lines.next();
      if (next.done) break;
      log += next.value;
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    for await (const rest of lines) log += rest;
  }
  assert.match(log, /WARN admin\.token_unreadable variable=SOCKETPROXY_ADMIN_TOKEN /);
  assert.ok(!log.includes("would-be-ignored"));
});

Deno.test("a token that could not go in a header is one clear line", async () => {
  const { code, stderr } = await runMain(["status", "--admin=127.0.0.1:2", "--admin-token=a b"]);
  assert.equal(code, 2);
  assert.equal(
    stderr.trim(),
    "socketproxy status: --admin-token: the token must be printable ASCII without spaces",
  );
});

Deno.test("an admin client that never finishes its request does not hold the shutdown", async () => {
  await using destination = echoDestination();
  const server = new ServerProcess(serverArgs(destination.port));
  await server.port;
  const admin = await Deno.connect({ hostname: "127.0.0.1", port: await server.adminPort });
  try {
    await admin.write(
      encoder.encode("DELETE /sessions/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"),
    );
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0);
    assert.match(server.lines.join("\n"), /server\.stopped /, "the summary was logged");
    assert.doesNotMatch(server.lines.join("\n"), /stop_deadline/);
  } finally {
    admin.close();
  }
});

/** An HTTP server that is not socketproxy's admin port, answering every request with `answer`. */
function foreignServer(answer: () => Response): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, answer);
}

Deno.test("status against an HTTP server that is not socketproxy: one line, exit 1", async (t) => {
  const html = "<!DOCTYPE html>\n<html>\n<body>\n<h1>Not Found</h1>\n</body>\n</html>\n";
  const answers: [string, () => Response, RegExp][] = [
    [
      "an HTML 404",
      () => new Response(html, { status: 404, headers: { "content-type": "text/html" } }),
      /answered HTTP 404 without JSON: is it a socketproxy admin port\?$/,
    ],
    [
      "an HTML 200",
      () => new Response(html, { headers: { "content-type": "text/html" } }),
      /answered HTTP 200 without JSON: is it a socketproxy admin port\?$/,
    ],
    [
      "other JSON",
      () => Response.json({ hello: "world" }),
      /answered without a socketproxy status: is it a socketproxy admin port\?$/,
    ],
    [
      "a JSON 500 without a message",
      () => Response.json({ detail: "x" }, { status: 500 }),
      /answered HTTP 500: no message: is it a socketproxy admin port\?$/,
    ],
  ];
  for (const [name, answer, message] of answers) {
    await t.step(name, async () => {
      await using server = foreignServer(answer);
      for (const json of [[], ["--json"]]) {
        const { code, stdout, stderr } = await runMain([
          "status",
          `--admin=127.0.0.1:${server.addr.port}`,
          ...json,
        ]);
        assert.equal(code, 1);
        assert.equal(stdout, "");
        assert.equal(stderr.trim().split("\n").length, 1, `one line: ${stderr}`);
        assert.match(stderr.trim(), message);
      }
    });
  }
});

Deno.test("status and close without --allow-net say which permission is missing", async () => {
  for (const args of [["status"], ["close", "abc"]]) {
    const { code, stderr } = await runMain([...args, "--admin=127.0.0.1:9010"], {
      permissions: [],
    });
    assert.equal(code, 2);
    assert.equal(
      stderr.trim(),
      `socketproxy ${args[0]}: cannot ask 127.0.0.1:9010: Deno's net permission is missing: ` +
        "run with --allow-net (deno task start does)",
    );
  }
});

Deno.test("status that cannot read SOCKETPROXY_ADMIN_TOKEN says so when a token is needed", async () => {
  await using destination = echoDestination();
  const token = "set-but-unreadable";
  await using server = new ServerProcess(serverArgs(destination.port, `--admin-token=${token}`));
  await server.port;
  const { code, stderr } = await runMain(
    ["status", `--admin=127.0.0.1:${await server.adminPort}`],
    {
      permissions: ["--allow-net"],
      env: { SOCKETPROXY_ADMIN_TOKEN: token },
    },
  );
  assert.equal(code, 1);
  assert.match(
    stderr.trim(),
    /^socketproxy status: the admin port on 127\.0\.0\.1:\d+ needs a token, and SOCKETPROXY_ADMIN_TOKEN cannot be read: run with --allow-env=SOCKETPROXY_ADMIN_TOKEN \(deno task start does\), or pass --admin-token$/,
  );
  assert.ok(!stderr.includes(token));
});

Deno.test("status tells what is open now from running totals; the metrics agree", async () => {
  await using destination = new Destination();
  await using server = new ServerProcess(serverArgs(destination.port));
  const port = await server.port;
  const adminPort = await server.adminPort;
  const admin = `--admin=127.0.0.1:${adminPort}`;
  // A session closed (by the admin): counted in the running total of ended ones.
  using first = await TestClient.connect(port);
  const gone = await first.hello("NEW");
  await destination.accepted();
  assert.equal((await runMain(["close", admin, gone.id])).code, 0);
  // A detached session whose destination then closed, its output not yet
  // collected: open now, in the state "closed".
  const second = await TestClient.connect(port);
  const waiting = await second.hello("NEW");
  const dest = await destination.accepted();
  second.close();
  await server.waitFor((line) => line.includes("session.detached") && line.includes(waiting.id));
  await writeAll(dest, encoder.encode("bye\n"));
  dest.close();
  await server.waitFor((line) => line.includes("destination.closed") && line.includes(waiting.id));

  const json = await runMain(["status", admin, "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const { totals } = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(totals), [
    "sessionsOpen",
    "sessionsAttached",
    "sessionsDetached",
    "sessionsDestinationClosed",
    "connectionsOpen",
    "bufferedBytes",
    "sessionsCreated",
    "sessionsEnded",
    "sessionsExpired",
    "connectionsAccepted",
    "bytesIn",
    "bytesOut",
    "gaps",
    "authFailures",
  ]);
  assert.deepEqual(
    [totals.sessionsOpen, totals.sessionsDestinationClosed, totals.sessionsDetached],
    [1, 1, 0],
  );
  assert.deepEqual([totals.sessionsCreated, totals.sessionsEnded], [2, 1]);
  const text = await runMain(["status", admin]);
  assert.match(
    text.stdout,
    /^sessions: +1 open of 10000 \(0 attached, 0 detached, 1 destination closed\); 2 created, 1 ended, 0 expired$/m,
  );
  const metrics = (await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).split("\n");
  assert.ok(metrics.includes('socketproxy_sessions{state="closed"} 1'));
  assert.ok(metrics.includes('socketproxy_sessions{state="detached"} 0'));
  assert.ok(metrics.includes("socketproxy_sessions_created_total 2"));
  assert.ok(metrics.includes("socketproxy_sessions_ended_total 1"));
});
