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
  issuedSecrets,
  RUN_PERMISSIONS,
  startServer,
  TestClient,
  WAIT_MS,
} from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

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
  await writer.write(encoder.encode(input));
  await writer.close();
  const output = await child.output();
  const stderr = decoder.decode(output.stderr);
  // The client prints the secret for the user to come back with: it is theirs.
  for (const match of stderr.matchAll(/--session=[^:\s]+:(\S+)/g)) {
    issuedSecrets.add(match[1] ?? "");
  }
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr };
}

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

Deno.test("the client says when the destination closes, and the server forgets the session", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_PERMISSIONS,
      MAIN,
      "client",
      `--proxy=127.0.0.1:${proxy.port}`,
      "--stream",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const dest = await destination.accepted();
  await dest.write(encoder.encode("bye\n"));
  dest.close();
  const output = await child.output().finally(() => child.stdin.close().catch(() => {}));
  assert.equal(decoder.decode(output.stdout), "bye\n");
  assert.match(decoder.decode(output.stderr), /the destination closed the session/);
  await proxy.logs.waitFor("session.closed");
  assert.equal(proxy.server.store.size, 0);
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

const tmux = await new Deno.Command("tmux", { args: ["-V"] }).output().then(
  (output) => output.success,
  () => false,
);

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
    const command = [
      Deno.execPath(),
      "run",
      ...RUN_PERMISSIONS,
      MAIN,
      "client",
      `--proxy=127.0.0.1:${proxy.port}`,
    ];
    await terminal.type(command.join(" "), "Enter");
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
