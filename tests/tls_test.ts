/**
 * TLS on the proxy port (--tls-cert, --tls-key) and on the client and the
 * gateway (--tls, --ca), with a certificate authority and a server
 * certificate the test makes with openssl.
 */

import assert from "node:assert/strict";
import { ClientSession, ConnectionLostError, ProxyUnavailableError } from "../lib/client.ts";
import { WebGateway } from "../lib/web_gateway.ts";
import {
  decoder,
  echoDestination,
  encoder,
  issuedSecrets,
  LogCapture,
  RUN_PERMISSIONS,
  runMain,
  ServerProcess,
  startServer,
} from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

const openssl = await new Deno.Command("openssl", { args: ["version"] }).output().then(
  (output) => output.success,
  () => false,
);

/** A CA, a server certificate for 127.0.0.1 and localhost signed by it, and a stranger CA. */
async function makeCertificates(
  dir: string,
): Promise<{ ca: string; cert: string; key: string; otherCa: string }> {
  const run = async (...args: string[]) => {
    const output = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) throw new Error(`openssl ${args[0]}: ${decoder.decode(output.stderr)}`);
  };
  for (const name of ["ca", "other"]) {
    await run(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=socketproxy test ${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
    );
  }
  await Deno.writeTextFile(`${dir}/san.cnf`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await run(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  );
  await run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "san.cnf",
    "-out",
    "server.pem",
  );
  return {
    ca: `${dir}/ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    otherCa: `${dir}/other.pem`,
  };
}

const skip = openssl ? "" : " (skipped: openssl is not installed)";
const dir = openssl ? await Deno.makeTempDir({ prefix: "socketproxy-tls-" }) : "";
const files = openssl ? await makeCertificates(dir) : null;
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
    await assert.rejects(ClientSession.create({ proxy: at, timeout: 2000 }), ConnectionLostError);
    await proxy.logs.waitFor("handshake.aborted");
    // TLS with a CA that did not sign the server's certificate.
    await assert.rejects(
      ClientSession.create({ proxy: at, tls: { caCerts: [read(files.otherCa)] } }),
      (error: unknown) => error instanceof ProxyUnavailableError && /over TLS/.test(error.message),
    );
    assert.equal(proxy.server.store.size, 0);
  },
});

Deno.test({
  name: `main.ts server --tls-cert --tls-key with main.ts client --ca and web --ca${skip}`,
  ignore: !files,
  async fn() {
    if (!files) return;
    await using destination = echoDestination();
    await using server = new ServerProcess([
      "--proxy=127.0.0.1:0",
      "--admin=off",
      `--tls-cert=${files.cert}`,
      `--tls-key=${files.key}`,
      `127.0.0.1:${destination.port}`,
    ]);
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
    // The gateway, speaking TLS to the proxy.
    await using gateway = WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
      proxy: { hostname: "127.0.0.1", port },
      logger: new LogCapture().logger,
      proxyTls: { caCerts: [read(files.ca)] },
    });
    const created = await fetch(`http://127.0.0.1:${gateway.addr.port}/api/sessions`, {
      method: "POST",
    });
    assert.equal(created.status, 201);
    const { id, secret } = await created.json();
    issuedSecrets.add(secret);
    const poll = await fetch(`http://127.0.0.1:${gateway.addr.port}/api/sessions/${id}/poll`, {
      method: "POST",
      body: JSON.stringify({
        secret,
        ack: 0,
        input: encoder.encode("via gateway").toBase64(),
        wait: 10_000,
      }),
    });
    const body = await poll.json();
    assert.equal(decoder.decode(Uint8Array.fromBase64(body.data)), "via gateway");
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
        ["server", `--tls-cert=${dir}/san.cnf`, `--tls-key=${files.key}`, "127.0.0.1:1"],
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
    await Deno.remove(dir, { recursive: true });
  },
});
