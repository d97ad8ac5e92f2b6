/**
 * `socketproxy client`, driven as a user would: through a pipe, and typed
 * at in a real terminal (tmux).
 */

import assert from "node:assert/strict";
import {
  decoder,
  Destination,
  echoDestination,
  encoder,
  installed,
  issuedSecrets,
  RUN_PERMISSIONS,
  ServerProcess,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { closeQuietly, writeAll } from "../lib/_io.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

/** Runs the client with `input` on stdin until it exits. */
async function runClient(
  args: string[],
  input: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, MAIN, "client", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  // Written while the output is read: a client that echoes must not wait on a full pipe.
  const writing = writer.write(encoder.encode(input)).then(() => writer.close()).catch(() => {});
  const output = await child.output();
  await writing;
  const stderr = decoder.decode(output.stderr);
  // The client prints the secret for the user to come back with: it is theirs.
  for (const match of stderr.matchAll(/--session=[^:\s]+:(\S+)/g)) {
    issuedSecrets.add(match[1] ?? "");
  }
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr };
}

/** The client running, its stdin held open until the test closes it. */
class ClientProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  readonly #stderr: Promise<string>;
  stdout = "";

  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_PERMISSIONS, MAIN, "client", ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.#stdout = this.child.stdout.getReader();
    this.#stderr = new Response(this.child.stderr).text();
  }

  /** Types into the client's stdin. */
  async type(text: string): Promise<void> {
    await this.#stdin.write(encoder.encode(text));
  }

  /** Reads stdout until it holds `text`. */
  async readUntil(text: string): Promise<void> {
    while (!this.stdout.includes(text)) {
      const { value, done } = await withDeadline(this.#stdout.read(), WAIT_MS, `"${text}"`);
      if (done) throw new Error(`stdout ended before "${text}": ${this.stdout}`);
      this.stdout += decoder.decode(value);
    }
  }

  /** Stops reading stdout, closing the pipe as `| head` does. */
  async closeStdout(): Promise<void> {
    await this.#stdout.cancel();
  }

  /** Waits for the exit; the rest of stdout (unless closed) and all of stderr. */
  async exit(): Promise<{ code: number; stdout: string; stderr: string }> {
    const status = await this.child.status;
    await this.#stdin.close().catch(() => {});
    for (let next = await this.#stdout.read().catch(() => null); next && !next.done;) {
      this.stdout += decoder.decode(next.value);
      next = await this.#stdout.read();
    }
    const stderr = await this.#stderr;
    for (const match of stderr.matchAll(/--session=[^:\s]+:(\S+)/g)) {
      issuedSecrets.add(match[1] ?? "");
    }
    return { code: status.code, stdout: this.stdout, stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.exit().catch(() => {});
  }
}

/** A session made with a raw NEW, for the client to resume: `--session=ID:SECRET`. */
async function rawSession(port: number): Promise<{ id: string; secret: string; flag: string }> {
  using client = await TestClient.connect(port);
  const { id, secret } = await client.hello("NEW");
  return { id, secret, flag: `--session=${id}:${secret}` };
}

/** A destination that answers the first input it reads with `answer`, then closes. */
function endingDestination(answer: string): Destination {
  return new Destination((conn) => {
    conn.read(new Uint8Array(1024)).then(async () => {
      await writeAll(conn, encoder.encode(answer));
      conn.close();
    }).catch(() => {});
  });
}

const DROPPED =
  "socketproxy client: the proxy closed the connection: the destination closed, another client took the session over, or the proxy stopped";

function resumeArgs(stderr: string): [session: string, ack: string] {
  const match = /to come back: socketproxy client (--session=\S+) (--ack=\d+)/.exec(stderr);
  assert.ok(match, `no resume hint in: ${stderr}`);
  return [match[1] ?? "", match[2] ?? ""];
}

Deno.test("piped lines: a connection each, output printed, a hint to come back", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const { code, stdout, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`],
    "hello\n\nworld\n",
  );
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "hello\nworld\n");
  assert.match(stderr, /^socketproxy client: opened session [A-Za-z0-9_-]+$/m);
  const [session, ack] = resumeArgs(stderr);
  assert.equal(ack, "--ack=12");
  assert.ok(session);
  // One connection for the NEW, one for the first poll, one per line, one to confirm the input.
  assert.equal(proxy.logs.events("session.attached").length, 6);
  assert.equal(proxy.server.store.size, 1, "the session is left open");
});

Deno.test("--session and --ack resume exactly; --close ends the session", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const proxyFlag = `--proxy=127.0.0.1:${proxy.port}`;
  const first = await runClient([proxyFlag], "one\n");
  const [session, ack] = resumeArgs(first.stderr);
  const second = await runClient([proxyFlag, session, ack], "two\n");
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, "two\n", "nothing repeated");
  const third = await runClient([proxyFlag, ...resumeArgs(second.stderr), "--close"], "");
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /closed session /);
  assert.equal(proxy.server.store.size, 0);
  const fourth = await runClient([proxyFlag, session], "");
  assert.equal(fourth.code, 1);
  assert.match(fourth.stderr, /knows no such session \(ended, expired, or a wrong secret\)/);
});

Deno.test("--stream pipes stdin to the destination and output to stdout", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const payload = "a\nbb\nccc\n".repeat(100);
  const { code, stdout, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`, "--stream", "--wait=2s"],
    payload,
  );
  assert.equal(code, 0, stderr);
  assert.equal(stdout, payload);
  assert.match(stderr, /session left open/);
});

Deno.test("a proxy that is not there, and protocol errors, are one line and exit 1", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closed.close();
  const missing = await runClient([`--proxy=127.0.0.1:${closed.addr.port}`], "");
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr.trim(),
    `socketproxy client: no socketproxy server answering on 127.0.0.1:${closed.addr.port}: connection refused`,
  );
  await using proxy = startServer(closed.addr.port); // its destination refuses
  const unreachable = await runClient([`--proxy=127.0.0.1:${proxy.port}`], "");
  assert.equal(unreachable.code, 1);
  assert.match(
    unreachable.stderr,
    /^socketproxy client: 127\.0\.0\.1:\d+ cannot reach its destination: /,
  );
  assert.equal(unreachable.stderr.trim().split("\n").length, 1);
  const bad = await runClient(["--session=nonsense"], "");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--session: expected ID:SECRET/);
});

const tmux = await installed("tmux", ["-V"]);

/** The shell command that starts the client against `port`, for typing into a terminal. */
function clientCommand(port: number, ...flags: string[]): string {
  return [Deno.execPath(), "run", ...RUN_PERMISSIONS, MAIN, "client", `--proxy=127.0.0.1:${port}`]
    .concat(flags).join(" ");
}

/** A tmux server of our own, with one shell pane to type into. */
class Terminal implements AsyncDisposable {
  readonly socket = `socketproxy-test-${Deno.pid}-${Math.random().toString(36).slice(2)}`;

  async tmux(...args: string[]): Promise<string> {
    const output = await new Deno.Command("tmux", {
      args: ["-L", this.socket, "-f", "/dev/null", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) throw new Error(`tmux ${args[0]}: ${decoder.decode(output.stderr)}`);
    return decoder.decode(output.stdout);
  }

  async start(): Promise<void> {
    await this.tmux("new-session", "-d", "-s", "test", "-x", "200", "-y", "50", "sh");
  }

  type(...keys: string[]): Promise<string> {
    return this.tmux("send-keys", "-t", "test", ...keys);
  }

  screen(): Promise<string> {
    return this.tmux("capture-pane", "-p", "-t", "test", "-S", "-100");
  }

  /** Waits until the screen matches: a terminal has no event to wait on, so look again. */
  async waitFor(pattern: RegExp): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    let screen = "";
    while (Date.now() < deadline) {
      screen = await this.screen();
      if (pattern.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no ${pattern} on the screen:\n${screen}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.tmux("kill-server").catch(() => {});
  }
}

Deno.test({
  name: tmux
    ? "typed at in a terminal: each line is answered, Ctrl-C detaches and keeps the session"
    : "typed at in a terminal: each line is answered, Ctrl-C detaches and keeps the session (skipped: tmux is not installed)",
  ignore: !tmux,
  async fn() {
    await using destination = echoDestination();
    await using proxy = startServer(destination.port);
    await using terminal = new Terminal();
    await terminal.start();
    await terminal.type(clientCommand(proxy.port), "Enter");
    await terminal.waitFor(/opened session/);
    await terminal.type("hello from tmux", "Enter");
    // Typed once by us (the terminal echoes it), printed once more from the destination.
    await terminal.waitFor(/hello from tmux\n(.*\n)*hello from tmux/);
    await terminal.type("C-c");
    const screen = await terminal.waitFor(
      /to come back: socketproxy client --session=\S+ --ack=16/,
    );
    for (const match of screen.matchAll(/--session=[^:\s]+:(\S+)/g)) {
      issuedSecrets.add(match[1] ?? "");
    }
    assert.equal(proxy.server.store.size, 1, "Ctrl-C left the session open");
    const [, id, secret] = /--session=([^:\s]+):(\S+)/.exec(screen) ?? [];
    using client = await TestClient.connect(proxy.port);
    const reply = await client.hello(`RESUME ${id} ${secret} 16`);
    assert.equal(reply.in, 16, "the line went through exactly once");
  },
});

Deno.test("Ctrl-C while a line's output is being collected prints it and leaves the session open", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_PERMISSIONS,
      MAIN,
      "client",
      `--proxy=127.0.0.1:${proxy.port}`,
      "--wait=60s",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode("precious output\n"));
  // The echo is printed while the client still waits out --wait.
  const stdout = child.stdout.getReader();
  let seen = "";
  while (!seen.includes("precious output\n")) {
    const { value, done } = await stdout.read();
    if (done) break;
    seen += decoder.decode(value);
  }
  child.kill("SIGINT");
  const status = await child.status;
  const stderr = decoder.decode(await new Response(child.stderr).arrayBuffer());
  for (const match of stderr.matchAll(/--session=[^:\s]+:(\S+)/g)) {
    issuedSecrets.add(match[1] ?? "");
  }
  await writer.close().catch(() => {});
  stdout.releaseLock();
  await child.stdout.cancel();
  assert.equal(status.code, 0, stderr);
  assert.equal(seen, "precious output\n");
  assert.match(stderr, /to come back: socketproxy client --session=\S+ --ack=16$/m);
  assert.equal(proxy.server.store.size, 1);
});

Deno.test("--stream pipes megabytes exactly over one framed connection", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/\n";
  const payload = line.repeat(Math.ceil(2 * 1024 * 1024 / line.length));
  const { code, stdout, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`, "--stream", "--wait=3s"],
    payload,
  );
  assert.equal(code, 0, stderr);
  assert.equal(stdout.length, payload.length);
  assert.ok(stdout === payload, "output differs from input");
  // NEW, then the stream: one framed connection, its input kept within the window.
  const attached = proxy.logs.events("session.attached");
  assert.deepEqual(attached.map((record) => record.fields.mode), ["streaming", "framed"]);
});

Deno.test("a line the destination ends the session with: told once, and the server forgets it", async () => {
  await using destination = endingDestination("bye\n");
  await using proxy = startServer(destination.port);
  const { code, stdout, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`],
    "quit\nnever sent\n",
  );
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "bye\n");
  assert.match(stderr, /^socketproxy client: the destination closed the session$/m);
  assert.doesNotMatch(stderr, /to come back|input/);
  await proxy.logs.waitFor("session.closed");
  assert.equal(proxy.server.store.size, 0);
  assert.equal(proxy.server.counters.authFailures, 0, "no hello after the end");
});

Deno.test("a destination that closes without a word during a line's wait: no hello, and coming back learns it", async () => {
  await using destination = endingDestination("");
  await using proxy = startServer(destination.port);
  const { code, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`, "--wait=10s"],
    "quit\n",
  );
  assert.equal(code, 0, stderr);
  assert.match(stderr, new RegExp(`^${DROPPED}$`, "m"));
  assert.match(stderr, /the session may still be open; to come back: /);
  // Kept, in state closed, until a hello is told so.
  assert.equal(proxy.server.store.list()[0]?.state, "closed");
  // Coming back as told learns that, and lets the server forget the session.
  const back = await runClient([`--proxy=127.0.0.1:${proxy.port}`, ...resumeArgs(stderr)], "");
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stderr, /^socketproxy client: the destination closed the session$/m);
  assert.doesNotMatch(back.stderr, /to come back/);
  await proxy.logs.waitFor("session.closed");
  assert.equal(proxy.server.counters.authFailures, 0);
});

Deno.test("input typed after the destination closed is reported as not delivered", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using client = new ClientProcess([`--proxy=127.0.0.1:${proxy.port}`]);
  const dest = await destination.accepted();
  // The NEW connection, then the first poll.
  await proxy.logs.waitFor(
    "session.detached",
    () => proxy.logs.events("session.detached").length === 2,
  );
  dest.close();
  await proxy.logs.waitFor("destination.closed");
  await client.type("x\n");
  const { code, stderr } = await client.exit();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^socketproxy client: the destination closed the session$/m);
  assert.match(
    stderr,
    /^socketproxy client: 2 bytes of input not delivered: the destination had closed$/m,
  );
  await proxy.logs.waitFor("session.closed");
  assert.equal(proxy.server.counters.authFailures, 0);
});

Deno.test("--stream, the destination ends: one line, no hello, no auth failure", async () => {
  await using destination = endingDestination("bye\n");
  await using proxy = startServer(destination.port);
  await using client = new ClientProcess([`--proxy=127.0.0.1:${proxy.port}`, "--stream"]);
  await client.type("quit\n");
  const { code, stdout, stderr } = await client.exit();
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "bye\n");
  // The proxy says why (E destination-closed), and the last acknowledgement ends the session.
  assert.match(stderr, /^socketproxy client: the destination closed the session$/m);
  assert.doesNotMatch(stderr, /to come back|may still be open/);
  await proxy.logs.waitFor("session.closed");
  assert.equal(proxy.server.store.size, 0);
  assert.equal(proxy.server.counters.authFailures, 0);
});

Deno.test("--stream taken over by another client: the client lets it have the session", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const session = await rawSession(proxy.port);
  await using client = new ClientProcess([
    `--proxy=127.0.0.1:${proxy.port}`,
    session.flag,
    "--stream",
  ]);
  await client.type("mine\n");
  await client.readUntil("mine\n");
  using thief = await TestClient.connect(proxy.port);
  await thief.hello(`RESUME ${session.id} ${session.secret}`);
  const { code, stderr } = await client.exit();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^socketproxy client: another client took the session over$/m);
  assert.match(
    stderr,
    /the other client has the session; to come back: socketproxy client --session=\S+ --ack=5$/m,
  );
  // NEW; the client's first attach (no --ack: it learns the offset), then
  // its framed one; the thief. The client did not take it back.
  assert.deepEqual(
    proxy.logs.events("session.attached").map((record) => record.fields.mode),
    ["streaming", "streaming", "framed", "streaming"],
  );
  assert.equal(
    proxy.server.store.get(session.id)?.stats().peer,
    `127.0.0.1:${thief.conn.localAddr.port}`,
  );
  await thief.write("still there\n");
  assert.equal(decoder.decode(await thief.readExactly(12)), "still there\n");
});

Deno.test("--stream | head: a closed stdout detaches quietly, counting only what was written", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using client = new ClientProcess([`--proxy=127.0.0.1:${proxy.port}`, "--stream"]);
  const dest = await destination.accepted();
  await writeAll(dest, encoder.encode("1\n2\n"));
  await client.readUntil("1\n2\n");
  await client.closeStdout();
  await writeAll(dest, encoder.encode("3\n"));
  const { code, stderr } = await client.exit();
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /unexpected|BrokenPipe/);
  assert.match(
    stderr,
    /session left open; to come back: socketproxy client --session=\S+ --ack=4$/m,
  );
  assert.equal(proxy.server.store.size, 1);
});

Deno.test("each line goes out in one write", async () => {
  const id = "onewrite";
  const secret = "S".repeat(32);
  const reads: string[] = [];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // A stand-in proxy: OK to every RESUME, with <in> all it has read; then it records each read.
  const serving = (async () => {
    let received = 0;
    for await (const conn of listener) {
      using client = new TestClient(conn);
      const hello = await client.readLine();
      const ack = hello.split(" ")[3] ?? "0";
      await client.write(`OK ${id} ${secret} ${received} ${ack} 0 open\n`);
      for (let chunk = await client.readSome(); chunk; chunk = await client.readSome()) {
        reads.push(decoder.decode(chunk));
        received += chunk.length;
      }
    }
  })().catch(() => {});
  try {
    const lines = Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join("");
    const { code, stderr } = await runClient(
      [
        `--proxy=127.0.0.1:${listener.addr.port}`,
        `--session=${id}:${secret}`,
        "--ack=0",
        "--wait=0s",
      ],
      lines,
    );
    assert.equal(code, 0, stderr);
    assert.equal(reads.join(""), lines);
    for (const read of reads) assert.match(read, /\n$/, `a read of "${read}"`);
  } finally {
    listener.close();
    await serving;
  }
});

Deno.test("a bad --ack is one line, without a hint that repeats it", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const session = await rawSession(proxy.port);
  const { code, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`, session.flag, "--ack=999"],
    "",
  );
  assert.equal(code, 1);
  assert.equal(
    stderr,
    "socketproxy client: --ack=999 is beyond the 0 bytes the session has sent\n",
  );
});

Deno.test("a gap is reported with what was lost, and the client goes on from there", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 1024 });
  using streaming = await TestClient.connect(proxy.port);
  const { id, secret } = await streaming.hello("NEW");
  const dest = await destination.accepted();
  await writeAll(dest, new Uint8Array(8192).fill(46));
  await streaming.readExactly(8192);
  streaming.close();
  await proxy.logs.waitFor("session.detached");
  const lowest = proxy.server.store.get(id)?.stats().floor ?? 0;
  assert.ok(lowest > 0);
  const { code, stdout, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`, `--session=${id}:${secret}`, "--ack=0"],
    "",
  );
  assert.equal(code, 0, stderr);
  assert.match(
    stderr,
    new RegExp(
      `^socketproxy client: ${lowest} bytes of output were lost before offset ${lowest}; continuing from there$`,
      "m",
    ),
  );
  assert.equal(stdout.length, 8192 - lowest);
  assert.match(stderr, /--ack=8192$/m);
});

Deno.test("a wrong secret on a live session: one line, one failure, the session untouched", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const session = await rawSession(proxy.port);
  const { code, stderr } = await runClient(
    [`--proxy=127.0.0.1:${proxy.port}`, `--session=${session.id}:${"W".repeat(32)}`],
    "hello\n",
  );
  assert.equal(code, 1);
  assert.equal(
    stderr,
    `socketproxy client: 127.0.0.1:${proxy.port} knows no such session (ended, expired, or a wrong secret)\n`,
  );
  assert.equal(proxy.server.counters.authFailures, 1);
  using owner = await TestClient.connect(proxy.port);
  const reply = await owner.hello(`RESUME ${session.id} ${session.secret} 0`);
  assert.equal(reply.in, 0, "nothing was sent in its name");
});

Deno.test("a proxy that goes away: the error first, then the input at risk and how to come back", async () => {
  await using destination = echoDestination();
  const server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=off",
    "--log-level=debug", // a poll's detach is logged at debug
    `127.0.0.1:${destination.port}`,
  ]);
  const port = await server.port;
  await using client = new ClientProcess([`--proxy=127.0.0.1:${port}`]);
  // The NEW connection and the first poll have come and gone.
  await withDeadline(
    server.waitFor((line) =>
      line.includes("session.detached") &&
      server.lines.filter((seen) => seen.includes("session.detached")).length === 2
    ),
    WAIT_MS,
    "the first poll's detach",
  );
  await server.stop();
  await client.type("lost?\n");
  const { code, stderr } = await client.exit();
  assert.equal(code, 1);
  const lines = stderr.trim().split("\n").slice(1); // after "opened session"
  assert.match(lines[0] ?? "", /^socketproxy client: no socketproxy server answering on /);
  assert.equal(
    lines[1],
    "socketproxy client: 6 bytes of input may not have reached the destination",
  );
  assert.match(
    lines[2] ?? "",
    /^socketproxy client: the session may still be open; to come back: /,
  );
  assert.equal(lines.length, 3);
});

Deno.test({
  name: tmux
    ? "--stream in a terminal: typed lines go through, Ctrl-C detaches and keeps the session"
    : "--stream in a terminal: typed lines go through, Ctrl-C detaches and keeps the session (skipped: tmux is not installed)",
  ignore: !tmux,
  async fn() {
    await using destination = echoDestination();
    await using proxy = startServer(destination.port);
    await using terminal = new Terminal();
    await terminal.start();
    await terminal.type(clientCommand(proxy.port, "--stream"), "Enter");
    await terminal.waitFor(/opened session/);
    // NEW, then the stream's framed attach.
    await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
    await terminal.type("streamed line", "Enter");
    // Echoed by the terminal as typed, then once more from the destination.
    await terminal.waitFor(/streamed line\n(.*\n)*streamed line/);
    await terminal.type("C-c");
    const screen = await terminal.waitFor(
      /session left open; to come back: socketproxy client --session=\S+ --ack=14/,
    );
    for (const match of screen.matchAll(/--session=[^:\s]+:(\S+)/g)) {
      issuedSecrets.add(match[1] ?? "");
    }
    assert.equal(proxy.server.store.size, 1, "Ctrl-C left the session open");
    const [, id, secret] = /--session=([^:\s]+):(\S+)/.exec(screen) ?? [];
    using client = await TestClient.connect(proxy.port);
    const reply = await client.hello(`RESUME ${id} ${secret} 14`);
    assert.equal(reply.in, 14, "the line went through exactly once");
  },
});

/**
 * A TCP relay in front of the proxy that holds the proxy's answers back
 * until released, so that a client waits for its reply as long as a test needs.
 */
class HoldingRelay implements AsyncDisposable {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #released = Promise.withResolvers<void>();
  readonly #conns: Deno.Conn[] = [];
  readonly #pumps: Promise<void>[] = [];
  readonly #loop: Promise<void>;

  constructor(target: number) {
    this.#loop = this.#accept(target);
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** Lets the proxy's answers through, those held and all that follow. */
  release(): void {
    this.#released.resolve();
  }

  async #accept(target: number): Promise<void> {
    try {
      for await (const client of this.#listener) {
        this.#conns.push(client);
        const upstream = await Deno.connect({ hostname: "127.0.0.1", port: target });
        this.#conns.push(upstream);
        this.#pumps.push(
          this.#pump(client, upstream),
          this.#released.promise.then(() => this.#pump(upstream, client)),
        );
      }
    } catch {
      // The listener closed.
    }
  }

  async #pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(16384);
    try {
      for (let count = await from.read(buffer); count !== null; count = await from.read(buffer)) {
        await writeAll(to, buffer.subarray(0, count));
      }
    } catch {
      // Either side closed.
    }
    closeQuietly(from);
    closeQuietly(to);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) closeQuietly(conn);
    this.release();
    await this.#loop;
    await Promise.all(this.#pumps);
  }
}

Deno.test({
  name: tmux
    ? "deno task start client: one Ctrl-C, though deno task passes it on again, detaches and keeps the session"
    : "deno task start client: one Ctrl-C, though deno task passes it on again, detaches and keeps the session (skipped: tmux is not installed)",
  ignore: !tmux,
  async fn() {
    await using destination = echoDestination();
    await using proxy = startServer(destination.port);
    // The NEW's reply is held back: the Ctrl-C comes while the client waits
    // for it, so every copy of it reaches a client that is still running.
    await using relay = new HoldingRelay(proxy.port);
    await using terminal = new Terminal();
    await terminal.start();
    // The README's own form: under deno task, in the terminal's foreground process group.
    await terminal.type(
      `cd ${ROOT} && ${Deno.execPath()} task start client --proxy=127.0.0.1:${relay.port}; echo EXIT=$?`,
      "Enter",
    );
    await proxy.logs.waitFor("session.created");
    await terminal.type("C-c");
    // The terminal shows ^C once it has signalled the process group; deno
    // task passes the signal on to the client as it gets it.
    await terminal.waitFor(/\^C/);
    relay.release();
    const screen = await terminal.waitFor(/EXIT=\d+/);
    for (const match of screen.matchAll(/--session=[^:\s]+:(\S+)/g)) {
      issuedSecrets.add(match[1] ?? "");
    }
    assert.match(screen, /opened session/);
    assert.match(screen, /session left open; to come back: socketproxy client --session=\S+/);
    assert.match(screen, /EXIT=0/);
    assert.equal(proxy.server.store.size, 1, "Ctrl-C left the session open");
  },
});

Deno.test("SIGINTs close behind the first are the same Ctrl-C; a later one means now", async () => {
  // In a process of its own: the test runner stops on SIGINT.
  const signals = new URL("../lib/commands/signals.ts", import.meta.url).href;
  const script = `
    import { SIGINT_ECHO_MS, watchStopSignals } from ${JSON.stringify(signals)};
    const seconds = [];
    using watch = watchStopSignals((signal) => seconds.push(signal));
    // Registered after the watch's own listener, so it runs after it.
    function interrupt() {
      const { promise, resolve } = Promise.withResolvers();
      Deno.addSignalListener("SIGINT", function seen() {
        Deno.removeSignalListener("SIGINT", seen);
        resolve();
      });
      Deno.kill(Deno.pid, "SIGINT");
      return promise;
    }
    const alive = setTimeout(() => {}, 10_000);
    await interrupt();
    const first = await watch.first;
    await interrupt(); // what deno task passes on
    const echoed = seconds.length;
    await new Promise((resolve) => setTimeout(resolve, SIGINT_ECHO_MS));
    await interrupt(); // a second press
    clearTimeout(alive);
    console.log(JSON.stringify({ first, echoed, seconds }));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", script],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, decoder.decode(output.stderr));
  assert.deepEqual(JSON.parse(decoder.decode(output.stdout)), {
    first: "SIGINT",
    echoed: 0,
    seconds: ["SIGINT"],
  });
});

Deno.test("client --to=NAME opens the session there; a name the server lacks is one line, exit 1", async () => {
  await using main = new Destination();
  await using mud = new Destination((conn) => {
    conn.write(encoder.encode("welcome to the mud\n")).catch(() => {});
  });
  await using proxy = startServer(main.port, {
    destinations: [{
      name: "mud",
      addr: { hostname: "127.0.0.1", port: mud.port },
      sendProxy: null,
    }],
  });
  const proxyFlag = `--proxy=127.0.0.1:${proxy.port}`;
  const served = await runClient([proxyFlag, "--to=mud", "--close"], "");
  assert.equal(served.code, 0, served.stderr);
  assert.equal(served.stdout, "welcome to the mud\n");
  assert.match(served.stderr, /^socketproxy client: closed session \S+$/m);
  const refused = await runClient([proxyFlag, "--to=tavern"], "");
  assert.equal(refused.code, 1);
  assert.equal(
    refused.stderr,
    `socketproxy client: 127.0.0.1:${proxy.port} has no destination named tavern\n`,
  );
  const misuse = await runClient([proxyFlag, "--to=no/such"], "");
  assert.equal(misuse.code, 2);
  assert.match(misuse.stderr, /^socketproxy client: --to: a destination name is/);
});
