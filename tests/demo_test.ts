/**
 * `socketproxy demo`: the demo destination service in-process, and the
 * whole command (demo service, proxy, admin API and gateway) as a real
 * process run with the permissions of `deno task start`.
 */

import assert from "node:assert/strict";
import { DemoService } from "../lib/demo/mod.ts";
import {
  assertNoSecrets,
  decoder,
  encoder,
  issuedSecrets,
  LogCapture,
  RUN_PERMISSIONS,
  runMain,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const SE = 240;
const NOP = 241;
const ECHO = 1;
const SGA = 3;
const NAWS = 31;

/** Most reads a test makes while waiting for one piece of text. */
const MAX_READS = 1000;

/** An ANSI colour or style sequence (SGR): ESC [ parameters m. */
// deno-lint-ignore no-control-regex -- the sequences begin with ESC
const SGR = /\x1b\[[0-9;]*m/g;

/** Text without its ANSI colour and style sequences. */
function plain(text: string): string {
  return text.replace(SGR, "");
}

/** Reads until the text received contains `marker`; returns all of it, raw. Bounded. */
async function readUntil(client: TestClient, marker: string): Promise<string> {
  let text = "";
  for (let reads = 0; reads < MAX_READS; reads++) {
    if (plain(text).includes(marker)) return text;
    const bytes = await client.readSome();
    if (bytes === null) throw new Error(`EOF before "${marker}"; got "${text}"`);
    text += decoder.decode(bytes, { stream: true });
  }
  throw new Error(`no "${marker}" in ${MAX_READS} reads; got "${text}"`);
}

/** Sends a line and reads the answer up to the next prompt, colours removed. */
async function ask(client: TestClient, line: string | Uint8Array): Promise<string> {
  await client.write(line);
  return plain(await readUntil(client, "demo> "));
}

/** A connection straight to a demo service, past its banner and first prompt. */
async function connectToDemo(demo: DemoService): Promise<{ client: TestClient; banner: string }> {
  const client = await TestClient.connect(demo.addr.port);
  return { client, banner: await readUntil(client, "demo> ") };
}

Deno.test("the demo service offers SGA, then greets with a coloured banner and a prompt", async () => {
  const logs = new LogCapture();
  await using demo = DemoService.listen(undefined, { logger: logs.logger });
  using client = await TestClient.connect(demo.addr.port);
  assert.deepEqual([...await client.readExactly(3)], [IAC, WILL, SGA]);
  const banner = await readUntil(client, "demo> ");
  assert.notEqual(plain(banner), banner, "ANSI colours");
  assert.match(plain(banner), /socketproxy demo/);
  assert.match(plain(banner), /Type help for the commands/);
  assert.match(banner, /\r\n/, "lines end in CR LF");
  assert.doesNotMatch(banner.replaceAll("\r\n", ""), /\n/, "no bare LF");
});

Deno.test("the demo service echoes a line back", async () => {
  await using demo = DemoService.listen();
  const { client } = await connectToDemo(demo);
  using _ = client;
  assert.match(await ask(client, "hello\r\n"), /^you said: hello\r\ndemo> $/);
  assert.match(await ask(client, "  two words  \n"), /^you said: two words\r\n/, "bare LF too");
  assert.equal(await ask(client, "\r\n"), "demo> ", "an empty line: just the prompt");
});

Deno.test("the demo service answers help, colours and time", async () => {
  await using demo = DemoService.listen();
  const { client } = await connectToDemo(demo);
  using _ = client;
  const help = await ask(client, "help\r\n");
  for (const command of ["help", "colours", "time", "quit"]) {
    assert.match(help, new RegExp(`^  ${command} `, "m"), command);
  }
  await client.write("COLOURS\r\n");
  const chart = await readUntil(client, "demo> ");
  for (const code of [31, 92, 44]) {
    assert.ok(chart.includes(`\x1b[${code}m`) || chart.includes(`;${code}m`), `${code}`);
  }
  assert.match(plain(chart), /normal\s+black\s+red/);
  assert.match(
    await ask(client, "time\r\n"),
    /^It is \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z here\./,
  );
});

Deno.test("quit closes that connection and no other", async () => {
  await using demo = DemoService.listen();
  const first = await connectToDemo(demo);
  using one = first.client;
  const second = await connectToDemo(demo);
  using two = second.client;
  await one.write("quit\r\n");
  assert.equal(plain(decoder.decode(await one.readToEnd())), "Bye.\r\n");
  assert.match(await ask(two, "still here\r\n"), /you said: still here/);
});

Deno.test("an over-long line is refused and the connection keeps working", async () => {
  const maxLineBytes = 4096;
  await using demo = DemoService.listen(undefined, { maxLineBytes });
  const { client } = await connectToDemo(demo);
  using _ = client;
  const longest = "x".repeat(maxLineBytes);
  assert.equal(await ask(client, `${longest}\r\n`), `you said: ${longest}\r\ndemo> `);
  // Sent in pieces larger than any read, so the excess must be dropped as it comes.
  const refused = await ask(client, `${"y".repeat(maxLineBytes * 8 + 1)}\r\n`);
  assert.equal(refused, `That line is over ${maxLineBytes} bytes: ignored\r\ndemo> `);
  assert.equal(await ask(client, "hello\r\n"), "you said: hello\r\ndemo> ");
});

Deno.test("telnet commands are taken out of the input, and options other than SGA refused once", async () => {
  await using demo = DemoService.listen();
  const { client } = await connectToDemo(demo);
  using _ = client;
  const input = new Uint8Array([
    ...encoder.encode("he"),
    IAC,
    NOP,
    ...encoder.encode("l"),
    IAC,
    SB,
    NAWS,
    0,
    80,
    0,
    24,
    IAC,
    SE,
    ...encoder.encode("l"),
    IAC,
    WILL,
    NAWS, // the client offers NAWS: refused
    IAC,
    DO,
    SGA, // the client agrees to our SGA: no answer
    IAC,
    DO,
    ECHO, // the client asks us to echo: refused
    IAC,
    WILL,
    NAWS, // asked again: refused once only
    ...encoder.encode("o\r\n"),
  ]);
  await client.write(input);
  // Every answer to a negotiation goes out before the answer to the line it was in.
  assert.deepEqual([...await client.readExactly(6)], [IAC, DONT, NAWS, IAC, WONT, ECHO]);
  assert.equal(plain(await readUntil(client, "demo> ")), "you said: hello\r\ndemo> ");
});

Deno.test("backspace erases a character, CR NUL ends a line, and IAC IAC is a data byte", async () => {
  await using demo = DemoService.listen();
  const { client } = await connectToDemo(demo);
  using _ = client;
  assert.match(await ask(client, "hellp\x7fo\r\0"), /^you said: hello\r\n/);
  assert.match(
    await ask(client, "caf\u00e9\be\r\n"),
    /^you said: cafe\r\n/,
    "a whole UTF-8 character",
  );
  const escaped = await ask(client, new Uint8Array([0x61, IAC, IAC, 0x62, 13, 10]));
  assert.equal(escaped, "you said: a\ufffdb\r\ndemo> ");
});

Deno.test("closing the demo service closes its connections", async () => {
  const demo = DemoService.listen();
  const { client } = await connectToDemo(demo);
  using _ = client;
  assert.equal(demo.connections, 1);
  await demo.close();
  assert.equal((await client.readToEnd()).length, 0);
  await assert.rejects(
    () => Deno.connect({ hostname: "127.0.0.1", port: demo.addr.port }),
    Deno.errors.ConnectionRefused,
  );
  await demo.close(); // idempotent
});

/** A `main.ts demo` child process, its stdout and stderr read line by line. */
class DemoProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly #reading: Promise<void>;
  readonly #started = Promise.withResolvers<void>();
  #logWaiters: { match: (line: string) => boolean; resolve: () => void }[] = [];

  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_PERMISSIONS, MAIN, "demo", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = Promise.all([
      this.#read(this.child.stdout, this.stdout, (line) => {
        if (line.startsWith("Ctrl-C stops all three.")) this.#started.resolve();
      }),
      this.#read(this.child.stderr, this.stderr, (line) => {
        this.#logWaiters = this.#logWaiters.filter((waiter) => {
          if (!waiter.match(line)) return true;
          waiter.resolve();
          return false;
        });
      }),
    ]).then(() => this.#started.reject(new Error(`exited before starting: ${this.stderr}`)));
    this.#started.promise.catch(() => {});
  }

  async #read(
    stream: ReadableStream<Uint8Array<ArrayBuffer>>,
    lines: string[],
    onLine: (line: string) => void,
  ): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      partial += text;
      let lf;
      while ((lf = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, lf);
        partial = partial.slice(lf + 1);
        lines.push(line);
        if (Deno.env.get("TEST_LOG")) console.error(line);
        onLine(line);
      }
    }
    if (partial) lines.push(partial);
  }

  /** Resolves at the first log line (past or future) that matches; fails after a while. */
  waitForLog(match: (line: string) => boolean): Promise<void> {
    if (this.stderr.some(match)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const waiter = { match, resolve };
    this.#logWaiters.push(waiter);
    return withDeadline(promise, WAIT_MS, "a log line").finally(() => {
      this.#logWaiters = this.#logWaiters.filter((other) => other !== waiter);
    });
  }

  /** The ports of the printed start lines, once they are all printed. */
  async ports(): Promise<{ demo: number; proxy: number; admin: number; web: number }> {
    await withDeadline(this.#started.promise, WAIT_MS, "start lines");
    const text = this.stdout.join("\n");
    const port = (pattern: RegExp): number => {
      const match = pattern.exec(text);
      if (!match) throw new Error(`${pattern} not in "${text}"`);
      return Number(match[1]);
    };
    return {
      demo: port(/a demo service on 127\.0\.0\.1:(\d+)/),
      proxy: port(/the proxy on 127\.0\.0\.1:(\d+)/),
      admin: port(/the admin API on 127\.0\.0\.1:(\d+)/),
      web: port(/the gateway on 127\.0\.0\.1:(\d+)/),
    };
  }

  /** Sends a signal and waits for the exit status and the last output. */
  async stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await withDeadline(this.child.status, WAIT_MS, "exit");
    await this.#reading;
    assertNoSecrets(this.stderr, "the demo's log");
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }
}

const ANY_PORTS = ["--proxy=127.0.0.1:0", "--admin=127.0.0.1:0", "--web=127.0.0.1:0"];

Deno.test("main.ts demo runs the demo service, proxy and gateway; SIGINT stops all three", async () => {
  await using demo = new DemoProcess(ANY_PORTS);
  const ports = await demo.ports();
  assert.match(demo.stdout[1] ?? "", new RegExp(`open http://127\\.0\\.0\\.1:${ports.web}/`));
  assert.match(demo.stdout[2] ?? "", new RegExp(`nc 127\\.0\\.0\\.1 ${ports.proxy} .*NEW`));
  assert.match(demo.stdout[3] ?? "", new RegExp(`client --proxy=127\\.0\\.0\\.1:${ports.proxy}$`));

  // By hand, as nc would: a session of the proxy, its destination the demo.
  {
    using client = await TestClient.connect(ports.proxy);
    await client.write("NEW\n");
    const reply = await client.readLine();
    const [ok, id, secret, ...counts] = reply.split(" ");
    assert.equal(ok, "OK", reply);
    assert.match(id ?? "", /^[A-Za-z0-9_-]+$/);
    issuedSecrets.add(secret ?? "");
    assert.deepEqual(counts, ["0", "0", "0", "open"]);
    assert.deepEqual([...await client.readExactly(3)], [IAC, WILL, SGA]);
    assert.match(plain(await readUntil(client, "demo> ")), /socketproxy demo/);
    assert.match(await ask(client, "hello\r\n"), /you said: hello\r\n/);
  }

  // The page, and a session through the gateway that gets the banner.
  const base = `http://127.0.0.1:${ports.web}`;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(await page.text(), /<html/i);
  const created = await fetch(`${base}/api/sessions`, { method: "POST" });
  assert.equal(created.status, 201);
  const { id, secret } = await created.json();
  issuedSecrets.add(secret);
  let output = "";
  for (let polls = 0; polls < 100 && !plain(output).includes("demo> "); polls++) {
    const poll = await fetch(`${base}/api/sessions/${id}/poll`, {
      method: "POST",
      body: JSON.stringify({ secret, ack: encoder.encode(output).length, wait: 5_000 }),
    });
    output += decoder.decode(Uint8Array.fromBase64((await poll.json()).data));
  }
  assert.match(plain(output), /socketproxy demo/);

  // The admin API answers for the proxy.
  const health = await fetch(`http://127.0.0.1:${ports.admin}/health`);
  await health.body?.cancel();
  assert.equal(health.status, 200);

  const status = await demo.stop("SIGINT");
  assert.equal(status.code, 0, demo.stderr.join("\n"));
  assert.match(demo.stderr.join("\n"), / demo\.stopped/);
  for (const [name, port] of Object.entries(ports)) {
    await assert.rejects(
      () => Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
      name,
    );
  }
});

Deno.test("main.ts demo stops at once even with a long poll waiting in the gateway", async () => {
  // Debug: a poll's attach is logged at that level.
  await using demo = new DemoProcess([...ANY_PORTS, "--log-level=debug"]);
  const ports = await demo.ports();
  const base = `http://127.0.0.1:${ports.web}`;
  const created = await fetch(`${base}/api/sessions`, { method: "POST" });
  const { id, secret } = await created.json();
  issuedSecrets.add(secret);
  const banner = await fetch(`${base}/api/sessions/${id}/poll`, {
    method: "POST",
    body: JSON.stringify({ secret, ack: 0, wait: 5_000 }),
  });
  const { ack } = await banner.json();
  // Nothing more will come: this poll waits until the demo stops.
  const waiting = fetch(`${base}/api/sessions/${id}/poll`, {
    method: "POST",
    body: JSON.stringify({ secret, ack, wait: 30_000 }),
  }).then((response) => response.body?.cancel(), () => {});
  await demo.waitForLog((line) =>
    line.includes("session.attached") && line.includes(`from=${ack} `)
  );
  const status = await demo.stop("SIGTERM");
  assert.equal(status.code, 0);
  // Had the stop waited on the poll, the deadline would have cut it short, and said so.
  assert.doesNotMatch(demo.stderr.join("\n"), /demo\.stop_deadline/);
  assert.match(demo.stderr.join("\n"), / demo\.stopped/);
  await waiting;
});

Deno.test("main.ts demo --help prints its options and exits 0", async () => {
  const { code, stdout } = await runMain(["demo", "--help"]);
  assert.equal(code, 0);
  for (const flag of ["--proxy=", "--admin=", "--web=", "--log-level=", "--log-format="]) {
    assert.ok(stdout.includes(flag), flag);
  }
  const top = await runMain(["--help"]);
  assert.match(
    top.stdout,
    /^ {2}demo {2,}a demo service, the proxy and the gateway in one process$/m,
  );
});

Deno.test("main.ts demo usage errors are one line and exit 2", async (t) => {
  const cases: [string[], string][] = [
    [["--bogus"], 'unknown option "--bogus"'],
    [["extra"], 'unexpected argument "extra"'],
    [["--web=:99999"], '--web: invalid port "99999" (expected 0 to 65535)'],
    [
      ["--web=127.0.0.1:6000"],
      "--web: port 6000 is one that fetch refuses (a browser-blocked port); choose another",
    ],
    [["--log-level=loud"], '--log-level: unknown level "loud" (expected debug, info, warn, error)'],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const { code, stderr } = await runMain(["demo", ...args]);
      assert.equal(code, 2);
      assert.equal(stderr, `socketproxy demo: ${message}\n`);
    });
  }
});

Deno.test("main.ts demo: a port in use is one clear line and exit 2, the parts started stopped", async (t) => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const where = `127.0.0.1:${taken.addr.port}`;
  for (const flag of ["--proxy", "--admin", "--web"]) {
    await t.step(flag, async () => {
      const args = ANY_PORTS.map((arg) => arg.startsWith(`${flag}=`) ? `${flag}=${where}` : arg);
      const { code, stdout, stderr } = await runMain(["demo", ...args]);
      assert.equal(code, 2);
      assert.equal(
        stderr,
        `socketproxy demo: ${flag}: cannot listen on ${where}: address already in use\n`,
      );
      assert.equal(stdout, "", "no start lines");
    });
  }
});
