/**
 * TLS on the proxy port (--tls-cert, --tls-key) and on the client and the
 * gateway (--tls, --ca), in process and as `main.ts server`, `client` and
 * `web` run them, with a certificate authority, server certificates and
 * self-signed ones the test makes with openssl.
 */

import assert from "node:assert/strict";
import { ClientSession, ConnectionLostError, ProxyUnavailableError } from "../lib/client/mod.ts";
import {
  decoder,
  echoDestination,
  encoder,
  issuedSecrets,
  RUN_PERMISSIONS,
  runMain,
  ServerProcess,
  startServer,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { CLIENT_USAGE, parseClientArgs } from "../lib/commands/client.ts";
import { parseWebArgs, WEB_USAGE } from "../lib/commands/web.ts";
import { makeTestCertificates, SKIPPED_WITHOUT_OPENSSL } from "./_tls.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs `main.ts client` with no input to completion, with extra environment variables. */
async function runClient(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, MAIN, "client", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = decoder.decode(output.stdout);
  const stderr = decoder.decode(output.stderr);
  // A client that detaches prints its secret, for its user: not a leak.
  for (const match of stderr.matchAll(/--session=[\w-]+:([\w-]+)/g)) {
    issuedSecrets.add(match[1] ?? "");
  }
  return { code: output.code, stdout, stderr };
}

/** Asserts that a failure was told in one line, without a stack trace. */
function assertOneLine(stderr: string, message: RegExp): void {
  assert.match(stderr, message);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.doesNotMatch(stderr, /^\s+at /m, "a stack trace");
}

const files = await makeTestCertificates();
const skip = files ? "" : SKIPPED_WITHOUT_OPENSSL;
const read = (path: string) => Deno.readTextFileSync(path);

Deno.test({
  name: `a TLS proxy port serves sessions to clients that trust its CA${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    await using proxy = startServer(destination.port, {
      tls: { cert: read(files.cert), key: read(files.key) },
    });
    const tls = { caCerts: [read(files.ca)] };
    const session = await ClientSession.create({
      proxy: { hostname: "127.0.0.1", port: proxy.port },
      tls,
    });
    issuedSecrets.add(session.secret);
    session.send("over TLS\n");
    assert.equal(decoder.decode(await session.poll({ wait: 10_000 })), "over TLS\n");
    const again = ClientSession.resume(session, {
      proxy: { hostname: "localhost", port: proxy.port },
      tls,
      ack: 9,
    });
    again.send("again\n");
    assert.equal(decoder.decode(await again.poll({ wait: 10_000 })), "again\n");
  },
});

Deno.test({
  name: `TLS refusals are clear: plain TCP to a TLS port, an untrusted certificate${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    await using proxy = startServer(destination.port, {
      tls: { cert: read(files.cert), key: read(files.key) },
    });
    const at = { hostname: "127.0.0.1", port: proxy.port };
    // Plain TCP: the server sees no TLS hello and drops it; no reply line comes.
    await assert.rejects(
      ClientSession.create({ proxy: at, timeout: 2000 }),
      (error: unknown) =>
        error instanceof ConnectionLostError &&
        /closed the connection without a reply \(a TLS port\? then use --tls\)$/.test(
          error.message,
        ),
    );
    await proxy.logs.waitFor("handshake.aborted");
    // TLS with a CA that did not sign the server's certificate.
    await assert.rejects(
      ClientSession.create({ proxy: at, tls: { caCerts: [read(files.otherCa)] } }),
      (error: unknown) =>
        error instanceof ProxyUnavailableError &&
        /over TLS: invalid peer certificate: UnknownIssuer: not trusted \(give its CA with --ca\)$/
          .test(error.message),
    );
    assert.equal(proxy.server.store.size, 0);
  },
});

/** Starts `main.ts server` with the test certificate in front of `destination`. */
function tlsServerProcess(destination: { port: number }, files: { cert: string; key: string }) {
  return new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=off",
    `--tls-cert=${files.cert}`,
    `--tls-key=${files.key}`,
    `127.0.0.1:${destination.port}`,
  ]);
}

Deno.test({
  name: `main.ts server --tls-cert --tls-key with main.ts client --ca and main.ts web --ca${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    await using server = tlsServerProcess(destination, files);
    const port = await server.port;
    assert.ok(
      server.lines.some((line) => line.includes("tls=on") && line.includes("file_reads=off")),
      "the certificate read, then file access given up",
    );
    // The command-line client.
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...RUN_PERMISSIONS,
        MAIN,
        "client",
        `--proxy=127.0.0.1:${port}`,
        `--ca=${files.ca}`,
        "--close",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode("hello tls\n"));
    await writer.close();
    const output = await child.output();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.equal(decoder.decode(output.stdout), "hello tls\n");
    // The gateway, as `socketproxy web` runs it: --ca read, then TLS to the
    // proxy, without --tls (--ca implies it; plain TCP would get no reply).
    await using web = new ServerProcess(
      ["--listen=127.0.0.1:0", `--proxy=127.0.0.1:${port}`, `--ca=${files.ca}`],
      "web",
    );
    const gateway = `http://127.0.0.1:${await web.port}`;
    assert.ok(
      web.lines.some((line) => line.includes("web.listening") && line.includes("file_reads=off")),
      "the CA read, then file access given up",
    );
    const created = await fetch(`${gateway}/api/sessions`, { method: "POST" });
    assert.equal(created.status, 201);
    const { id, secret } = await created.json();
    issuedSecrets.add(secret);
    const poll = await fetch(`${gateway}/api/sessions/${id}/poll`, {
      method: "POST",
      body: JSON.stringify({
        secret,
        ack: 0,
        input: encoder.encode("via gateway").toBase64(),
        wait: 10_000,
      }),
    });
    assert.equal(poll.status, 200);
    const body = await poll.json();
    assert.equal(decoder.decode(Uint8Array.fromBase64(body.data)), "via gateway");
    assert.equal(body.ack, 11);
  },
});

Deno.test({
  name: `--tls without --ca refuses a certificate no known CA signed: one line, no hang${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    await using server = tlsServerProcess(destination, files);
    const port = await server.port;
    // The client: one line on stderr, exit 1.
    const client = await withDeadline(
      runClient(["--tls", `--proxy=127.0.0.1:${port}`, "--close"]),
      WAIT_MS,
      "client exit",
    );
    assert.equal(client.code, 1, client.stderr);
    assertOneLine(
      client.stderr,
      new RegExp(
        `: 127\\.0\\.0\\.1:${port} over TLS: invalid peer certificate: UnknownIssuer: not trusted`,
      ),
    );
    // The gateway: it starts (the proxy may be fixed later), and answers each request 502 at once.
    await using web = new ServerProcess(
      ["--listen=127.0.0.1:0", `--proxy=127.0.0.1:${port}`, "--tls"],
      "web",
    );
    const created = await withDeadline(
      fetch(`http://127.0.0.1:${await web.port}/api/sessions`, { method: "POST" }),
      WAIT_MS,
      "gateway answer",
    );
    assert.equal(created.status, 502);
    assert.equal((await created.json()).error, "proxy_unavailable");
    const line = await web.waitFor((line) => line.includes("web.proxy_error"));
    assert.match(line, /WARN web\.proxy_error path=\/api\/sessions error=proxy_unavailable/);
    await web.stop();
    assert.ok(!web.lines.some((line) => /^\s+at /.test(line)), "a stack trace in the log");
  },
});

Deno.test({
  name:
    `--ca trusts a self-signed certificate marked CA:FALSE; one marked CA:TRUE is refused${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    // openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE, as the README shows.
    {
      await using proxy = startServer(destination.port, {
        tls: { cert: read(files.leaf.cert), key: read(files.leaf.key) },
      });
      const client = await runClient([
        `--proxy=127.0.0.1:${proxy.port}`,
        `--ca=${files.leaf.cert}`,
        "--close",
      ]);
      assert.equal(client.code, 0, client.stderr);
      assert.match(client.stderr, /closed session/);
    }
    // Plain openssl req -x509 marks the certificate a CA, which rustls refuses as a server's.
    {
      await using proxy = startServer(destination.port, {
        tls: { cert: read(files.selfCa.cert), key: read(files.selfCa.key) },
      });
      const client = await runClient([
        `--proxy=127.0.0.1:${proxy.port}`,
        `--ca=${files.selfCa.cert}`,
        "--close",
      ]);
      assert.equal(client.code, 1, client.stderr);
      assertOneLine(
        client.stderr,
        /over TLS: invalid peer certificate: .*CaUsedAsEndEntity.*: a self-signed certificate must be made with basicConstraints=critical,CA:FALSE\n$/,
      );
      assert.equal(proxy.server.store.size, 0);
    }
  },
});

Deno.test({
  name: `--ca implies --tls for the client and the gateway alike, as their help says${skip}`,
  ignore: !files,
  fn() {
    if (!files) return;
    const client = parseClientArgs([`--ca=${files.ca}`]);
    const web = parseWebArgs([`--ca=${files.ca}`]);
    assert.ok(client !== "help" && web !== "help");
    const trusted = { caCerts: [read(files.ca)] };
    assert.deepEqual(client.tls, trusted);
    assert.deepEqual(web.proxyTls, trusted);
    for (const usage of [CLIENT_USAGE, WEB_USAGE]) {
      assert.match(usage, /^ +--ca=FILE +also trust this PEM certificate; implies --tls$/m);
    }
  },
});

Deno.test({
  name: `--tls trusts Deno's bundled roots, and the system's only with DENO_TLS_CA_STORE${skip}`,
  // SSL_CERT_FILE stands in for the system store where rustls-native-certs reads it: Linux.
  ignore: !files || Deno.build.os !== "linux",
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    await using proxy = startServer(destination.port, {
      tls: { cert: read(files.cert), key: read(files.key) },
    });
    const args = ["--tls", `--proxy=127.0.0.1:${proxy.port}`, "--close"];
    const system = { SSL_CERT_FILE: files.ca };
    // What a run without DENO_TLS_CA_STORE trusts, even where this test's own environment sets it.
    const unset = Deno.env.has("DENO_TLS_CA_STORE") ? { DENO_TLS_CA_STORE: "mozilla" } : {};
    const bundled = await runClient(args, { ...system, ...unset });
    assert.equal(bundled.code, 1, "the system store is not read by default");
    assertOneLine(bundled.stderr, /invalid peer certificate: UnknownIssuer/);
    const trusted = await runClient(args, { ...system, DENO_TLS_CA_STORE: "mozilla,system" });
    assert.equal(trusted.code, 0, trusted.stderr);
  },
});

Deno.test({
  name: `TLS flags that cannot be used are one clear line, exit 2${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    const cases: [string[], RegExp][] = [
      [
        ["server", `--tls-cert=${files.cert}`, "127.0.0.1:1"],
        /--tls-cert and --tls-key go together/,
      ],
      [
        ["server", "--tls-cert=/nonexistent.pem", "--tls-key=/nonexistent.key", "127.0.0.1:1"],
        /--tls-cert: cannot read "\/nonexistent.pem": no such file/,
      ],
      [
        ["server", `--tls-cert=${files.dir}/san.cnf`, `--tls-key=${files.key}`, "127.0.0.1:1"],
        /holds no PEM data/,
      ],
      [["client", "--ca=/nonexistent.pem"], /--ca: cannot read/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await runMain(args);
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.equal(stderr.trim().split("\n").length, 1);
    }
  },
});

Deno.test({
  name: `clean up the test certificates${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await Deno.remove(files.dir, { recursive: true });
  },
});
