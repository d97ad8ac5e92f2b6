/**
 * The gateway's own TLS (`web --tls-cert --tls-key`): HTTPS and WSS as
 * `main.ts server` and `main.ts web` run them, in front of an echo
 * destination, with a certificate the test makes with openssl; plain HTTP
 * to that port; and the flag errors of `web`.
 */

import assert from "node:assert/strict";
import {
  decoder,
  echoDestination,
  encoder,
  issuedSecrets,
  ServerProcess,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { rawExchange } from "./_stack.ts";
import { Wakeup } from "../lib/_io.ts";
import { makeTestCertificates, SKIPPED_WITHOUT_OPENSSL, type TestCertificates } from "./_tls.ts";

const files = await makeTestCertificates();
const skip = files ? "" : SKIPPED_WITHOUT_OPENSSL;

/** An echo destination, a `main.ts server` in front of it, a `main.ts web` over HTTPS in front of that. */
interface TlsStack extends AsyncDisposable {
  web: ServerProcess;
  /** The gateway's port. */
  port: number;
  /** `https://127.0.0.1:PORT`. */
  url: string;
  /** Trusts the test CA. */
  client: Deno.HttpClient;
}

async function startTlsStack(files: TestCertificates, webArgs: string[] = []): Promise<TlsStack> {
  // Whatever started is stopped, in reverse order, if a later part fails to start.
  await using started = new AsyncDisposableStack();
  const destination = echoDestination();
  started.defer(() => destination.settled());
  started.use(destination);
  const server = started.use(
    new ServerProcess([`127.0.0.1:${destination.port}`, "--proxy=127.0.0.1:0", "--admin=off"]),
  );
  const web = started.use(
    new ServerProcess(
      [
        `--proxy=127.0.0.1:${await withDeadline(server.port, WAIT_MS, "server start")}`,
        "--listen=127.0.0.1:0",
        `--tls-cert=${files.cert}`,
        `--tls-key=${files.key}`,
        ...webArgs,
      ],
      "web",
    ),
  );
  const port = await withDeadline(web.port, WAIT_MS, "gateway start");
  const client = started.adopt(
    Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(files.ca)] }),
    (client) => client.close(),
  );
  const stack = started.move();
  return {
    web,
    port,
    url: `https://127.0.0.1:${port}`,
    client,
    [Symbol.asyncDispose]: () => stack.disposeAsync(),
  };
}

/** Opens a session through the gateway. */
async function newSession(stack: TlsStack): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${stack.url}/api/sessions`, {
    method: "POST",
    client: stack.client,
  });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  issuedSecrets.add(body.secret);
  return { id: body.id, secret: body.secret };
}

Deno.test({
  name: `web --tls-cert --tls-key serves the page and /health over HTTPS${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using stack = await startTlsStack(files);
    assert.ok(
      stack.web.lines.some((line) =>
        line.includes("web.listening") && line.includes("scheme=https")
      ),
      stack.web.lines.join("\n"),
    );
    const health = await fetch(`${stack.url}/health`, { client: stack.client });
    assert.deepEqual([health.status, await health.json()], [200, { status: "ok" }]);
    // By the other name the certificate carries, as a browser on this machine would.
    const page = await fetch(`https://localhost:${stack.port}/`, { client: stack.client });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /<html/i);
    // Without the test CA the certificate is not trusted: it really is the one given.
    await assert.rejects(fetch(`${stack.url}/health`), TypeError);
  },
});

Deno.test({
  name: `a session made and polled over HTTPS reaches the destination${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using stack = await startTlsStack(files);
    const session = await newSession(stack);
    const sent = "over https\n";
    let ack = 0;
    let output = "";
    let input: string | undefined = encoder.encode(sent).toBase64();
    // The echo may come back in pieces: a poll for each, at most one per byte.
    for (let attempt = 0; attempt < sent.length && output.length < sent.length; attempt++) {
      const response: Response = await fetch(`${stack.url}/api/sessions/${session.id}/poll`, {
        method: "POST",
        client: stack.client,
        body: JSON.stringify({
          secret: session.secret,
          ack,
          ...(input === undefined ? {} : { input }),
          wait: WAIT_MS,
        }),
      });
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      input = undefined;
      output += decoder.decode(Uint8Array.fromBase64(body.data));
      ack = body.ack;
    }
    assert.equal(output, sent);
    assert.equal(ack, sent.length);
  },
});

/**
 * Deno's WebSocket, typed with its `client` option (the DOM library's
 * declaration, which the project's type check also loads, lacks it).
 */
const TlsWebSocket = WebSocket as unknown as new (
  url: string,
  options: { client: Deno.HttpClient },
) => WebSocket;

/** A WSS client trusting the test CA: JSON control messages and binary output, in order. */
class TlsSocket implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  readonly #messages: (string | Uint8Array)[] = [];
  readonly #arrived = new Wakeup();

  constructor(url: string, client: Deno.HttpClient) {
    this.socket = new TlsWebSocket(url, { client });
    this.socket.binaryType = "arraybuffer";
    const opened = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<CloseEvent>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    this.opened.catch(() => {});
    this.socket.onopen = () => opened.resolve();
    this.socket.onerror = (event) =>
      opened.reject(new Error(`WebSocket failed: ${(event as ErrorEvent).message}`));
    this.socket.onclose = (event) => {
      closed.resolve(event);
      this.#arrived.wake();
    };
    this.socket.onmessage = (event) => {
      this.#messages.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      this.#arrived.wake();
    };
  }

  async #next(): Promise<string | Uint8Array> {
    while (this.#messages.length === 0) {
      assert.notEqual(this.socket.readyState, WebSocket.CLOSED, "the socket closed");
      await withDeadline(this.#arrived.wait(), WAIT_MS, "a WebSocket message");
    }
    return this.#messages.shift() as string | Uint8Array;
  }

  async control(): Promise<Record<string, unknown>> {
    const message = await this.#next();
    assert.equal(typeof message, "string", `expected a control message, got ${message}`);
    return JSON.parse(message as string);
  }

  /** Reads exactly `count` bytes of output, over as many frames as they come in. */
  async text(count: number): Promise<string> {
    const out = new Uint8Array(count);
    let have = 0;
    while (have < count) {
      const message = await this.#next();
      // Input counts ({"type":"in"}) come between output frames.
      if (typeof message === "string" && JSON.parse(message).type === "in") continue;
      assert.ok(message instanceof Uint8Array, `expected output, got ${message}`);
      assert.ok(have + message.length <= count, "more output than sent");
      out.set(message, have);
      have += message.length;
    }
    return decoder.decode(out);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }
}

Deno.test({
  name: `a WSS WebSocket attaches to a session and relays input and output${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using stack = await startTlsStack(files);
    const session = await newSession(stack);
    await using socket = new TlsSocket(
      `wss://127.0.0.1:${stack.port}/api/sessions/${session.id}/ws`,
      stack.client,
    );
    await withDeadline(socket.opened, WAIT_MS, "the WebSocket opening");
    socket.socket.send(JSON.stringify({
      v: 2,
      secret: session.secret,
      ack: 0,
      inputAt: 0,
      input: encoder.encode("first, ").toBase64(),
    }));
    const attached = await socket.control();
    assert.deepEqual([attached.type, attached.from, attached.in, attached.state], [
      "attached",
      0,
      0,
      "open",
    ]);
    assert.equal(await socket.text(7), "first, ");
    socket.socket.send(encoder.encode("then a frame\n"));
    assert.equal(await socket.text(13), "then a frame\n");
  },
});

Deno.test({
  name:
    `plain HTTP to the HTTPS port gets a TLS alert and a close; the gateway keeps serving${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    // Far beyond the wait below: a close within it is the server's answer, not its timeout.
    await using stack = await startTlsStack(files, ["--header-timeout=60s"]);
    await assert.rejects(fetch(`http://127.0.0.1:${stack.port}/health`), TypeError);
    const answer = await withDeadline(
      rawExchange(stack.port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\n\r\n`),
      WAIT_MS,
      "the plain connection closing",
    );
    assert.doesNotMatch(answer, /^HTTP\//, "no HTTP answer in the clear");
    assert.equal(answer.charCodeAt(0), 0x15, `a TLS alert record, got ${JSON.stringify(answer)}`);
    const health = await fetch(`${stack.url}/health`, { client: stack.client });
    assert.deepEqual([health.status, await health.json()], [200, { status: "ok" }]);
    await newSession(stack);
    assert.ok(
      !stack.web.lines.some((line) => / (WARN|ERROR) |^\s+at /.test(line)),
      stack.web.lines.join("\n"),
    );
  },
});

Deno.test({
  name: `web --tls-cert and --tls-key that cannot be used are one clear line, exit 2${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    // PEM armour around what is not base64, and around base64 that is not a certificate.
    const garbled = `${files.dir}/garbled.pem`;
    const notDer = `${files.dir}/not_der.pem`;
    const armoured = (body: string) =>
      `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
    await Deno.writeTextFile(garbled, armoured("not base64!"));
    await Deno.writeTextFile(notDer, armoured(encoder.encode("not a certificate").toBase64()));
    const cases: [string[], RegExp][] = [
      [[`--tls-cert=${files.cert}`], /--tls-cert and --tls-key go together/],
      [[`--tls-key=${files.key}`], /--tls-cert and --tls-key go together/],
      [
        ["--tls-cert=/nonexistent.pem", `--tls-key=${files.key}`],
        /--tls-cert: cannot read "\/nonexistent\.pem": no such file$/,
      ],
      [[`--tls-cert=${files.cert}`, `--tls-key=${files.dir}`], /--tls-key: cannot read ".*": /],
      [[`--tls-cert=${files.dir}/san.cnf`, `--tls-key=${files.key}`], /holds no PEM data$/],
      // Read, but no use to TLS: refused before listening, as the server's port refuses them.
      [[`--tls-cert=${garbled}`, `--tls-key=${files.key}`], /Unable to decode certificate$/],
      [[`--tls-cert=${notDer}`, `--tls-key=${files.key}`], /invalid .*certificate: BadEncoding$/],
      [[`--tls-cert=${files.key}`, `--tls-key=${files.key}`], /No certificates found/],
      [[`--tls-cert=${files.cert}`, `--tls-key=${files.cert}`], /No keys found/],
      [[`--tls-cert=${files.cert}`, `--tls-key=${files.leaf.key}`], /KeyMismatch$/],
    ];
    for (const [args, message] of cases) {
      // As a process that would serve if it started, so that a regression fails instead of hanging.
      await using web = new ServerProcess(["--listen=127.0.0.1:0", ...args], "web");
      const status = await withDeadline(web.child.status, WAIT_MS, `web ${args.join(" ")} exiting`);
      await web.stop();
      const stderr = web.lines.join("\n");
      assert.equal(status.code, 2, stderr);
      assert.equal(web.lines.length, 1, stderr);
      assert.match(stderr, /^socketproxy web: /);
      assert.match(stderr, message);
    }
  },
});

Deno.test({
  name: `clean up the web TLS test certificates${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await Deno.remove(files.dir, { recursive: true });
  },
});
