/**
 * The command line: `main.ts` run as a real process, as a user would.
 */

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import {
  decoder,
  echoDestination,
  encoder,
  issuedSecrets,
  runMain,
  ServerProcess,
  TestClient,
} from "./_helpers.ts";

Deno.test("--version prints the version from deno.json, after any command too", async () => {
  for (
    const args of [
      ["--version"],
      ["-V"],
      ["server", "--version"],
      ["status", "-V"],
      [
        "close",
        "--version",
      ],
      ["client", "--version"],
      ["web", "--version"],
    ]
  ) {
    const { code, stdout } = await runMain(args);
    assert.equal(code, 0, args.join(" "));
    assert.equal(stdout.trim(), `socketproxy ${denoJson.version}`);
  }
});

Deno.test("--help lists the commands, server --help every flag", async () => {
  const top = await runMain(["--help"]);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /server \[DEST_HOST:DEST_PORT\]/);
  assert.match(top.stdout, /^ {2}drain /m);
  const server = await runMain(["server", "--help"]);
  assert.equal(server.code, 0);
  for (
    const flag of [
      "--proxy",
      "--admin",
      "--buffer",
      "--idle-timeout",
      "--handshake-timeout",
      "--connect-timeout",
      "--max-sessions",
      "--log-level",
      "--destination",
      "--send-proxy",
      "--trust-from",
      "--node",
      "--drain-timeout",
    ]
  ) {
    assert.match(server.stdout, new RegExp(`${flag}=`), flag);
  }
});

Deno.test("usage errors print one line naming the problem and exit 2", async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /missing command/],
    [["serve"], /unknown command "serve"/],
    [["server"], /missing DEST_HOST:DEST_PORT/],
    [["server", "example.com"], /missing port in "example.com"/],
    [["server", "example.com:http"], /invalid port "http"/],
    [["server", "a:1", "b:2"], /expected one DEST_HOST:DEST_PORT/],
    [["server", "--bogus", "a:1"], /unknown option "--bogus"/],
    [["server", "--buffer=1x", "a:1"], /--buffer: cannot parse size "1x"/],
    [["server", "--idle-timeout=soon", "a:1"], /--idle-timeout: cannot parse duration "soon"/],
    [
      ["server", "--max-sessions=0", "a:1"],
      /--max-sessions: expected a whole number of at least 1/,
    ],
    [["server", "--log-level=loud", "a:1"], /--log-level: unknown level "loud"/],
    [["server", "--proxy=:99999", "a:1"], /--proxy: invalid port "99999"/],
    [["server", "--admin=a b", "a:1"], /--admin: invalid host "a b"/],
    [["server", "--admin=127.0.0.1:6000", "a:1"], /--admin: port 6000 is one that fetch refuses/],
    [["server", "--buffer", "h:1"], /--buffer: cannot parse size "h:1"/],
    [["status", "--admin=127.0.0.1:6000"], /--admin: port 6000 is one that fetch refuses/],
    [["status", "--admin=off"], /--admin=off: no admin port to ask/],
    [["close", "--admin=off", "abc"], /--admin=off: no admin port to ask/],
    [["close", ""], /"" is not a session ID/],
    [["close", "a/b"], /"a\/b" is not a session ID/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      const { code, stderr } = await runMain(args);
      assert.equal(code, 2);
      assert.equal(stderr.trim().split("\n").length, 1, `one line: ${stderr}`);
      assert.match(stderr, message);
      assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
    });
  }
});

Deno.test("a port already in use is one clear line naming the flag, exit 2", async (t) => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const where = `127.0.0.1:${taken.addr.port}`;
  const cases: [string, string[]][] = [
    ["--proxy", ["server", `--proxy=${where}`, "--admin=127.0.0.1:0", "127.0.0.1:1"]],
    // The two ports of one server given the same address: the admin port comes second.
    ["--admin", ["server", "--proxy=127.0.0.1:0", `--admin=${where}`, "127.0.0.1:1"]],
    ["--listen", ["web", `--listen=${where}`, "--proxy=127.0.0.1:1"]],
  ];
  for (const [flag, args] of cases) {
    await t.step(flag, async () => {
      const { code, stderr } = await runMain(args);
      assert.equal(code, 2);
      assert.equal(
        stderr.trim(),
        `socketproxy ${args[0]}: ${flag}: cannot listen on ${where}: address already in use`,
      );
    });
  }
});

Deno.test("deno run without --allow-net says which permission is missing", async () => {
  const { code, stderr } = await runMain(
    ["server", "--proxy=127.0.0.1:0", "--admin=off", "127.0.0.1:1"],
    { permissions: [] },
  );
  assert.equal(code, 2);
  assert.equal(
    stderr.trim(),
    "socketproxy server: --proxy: cannot listen on 127.0.0.1:0: Deno's net permission is missing: " +
      "run with --allow-net (deno task start does)",
  );
});

Deno.test("main.ts server serves sessions over TCP and exits 0 on SIGTERM", async () => {
  await using destination = echoDestination();
  const server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=127.0.0.1:0",
    `127.0.0.1:${destination.port}`,
  ]);
  try {
    const port = await server.port;
    const first = await TestClient.connect(port);
    const session = await first.hello("NEW");
    await first.write("over the wire\n");
    assert.equal(await first.readLine(), "over the wire");
    first.close();
    await server.waitFor((line) => line.includes("session.detached"));
    using again = await TestClient.connect(port);
    const reply = await again.hello(`RESUME ${session.id} ${session.secret} 14`);
    assert.deepEqual([reply.in, reply.from, reply.pending], [14, 14, 0]);
    await again.write("again\n");
    assert.equal(decoder.decode(await again.readExactly(6)), "again\n");
    again.close();
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0);
    const log = server.lines.join("\n");
    for (
      const event of ["server.listening", "session.created", "session.attached", "server.stopped"]
    ) {
      assert.match(log, new RegExp(` ${event.replace(".", "\\.")} `), event);
    }
    assert.ok(!log.includes(session.secret), "the secret never appears in the log");
    assert.match(log, / server\.listening .*file_reads=off/, "file access given up once running");
  } finally {
    await server.stop();
  }
});

Deno.test("main.ts web serves its page and sessions with file access given up", async () => {
  await using destination = echoDestination();
  await using server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=off",
    `127.0.0.1:${destination.port}`,
  ]);
  await using web = new ServerProcess([
    "--listen=127.0.0.1:0",
    `--proxy=127.0.0.1:${await server.port}`,
  ], "web");
  const base = `http://127.0.0.1:${await web.port}`;
  assert.match(await web.waitFor((line) => line.includes("web.listening")), /file_reads=off/);
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
  const created = await fetch(`${base}/api/sessions`, { method: "POST" });
  assert.equal(created.status, 201);
  const { id, secret } = await created.json();
  issuedSecrets.add(secret);
  const poll = await fetch(`${base}/api/sessions/${id}/poll`, {
    method: "POST",
    body: JSON.stringify({
      secret,
      ack: 0,
      input: encoder.encode("ping").toBase64(),
      wait: 10_000,
    }),
  });
  assert.equal(decoder.decode(Uint8Array.fromBase64((await poll.json()).data)), "ping");
  assert.equal((await web.stop("SIGTERM")).code, 0);
});
