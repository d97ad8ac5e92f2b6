/**
 * Many destinations, one server (`NEW to=<name>`), the end user's address
 * from a trusted gateway (`NEW from=<address>`, `--trust-from`), and the
 * PROXY protocol header (`--send-proxy=v1|v2`) checked by a destination
 * that parses both versions strictly, as HAProxy's specification has them.
 */

import assert from "node:assert/strict";
import { formatMetrics } from "../lib/admin/metrics.ts";
import { collectStatus } from "../lib/proxy/status_report.ts";
import { VERSION } from "../lib/version.ts";
import {
  decoder,
  Destination,
  encoder,
  issuedSecrets,
  ServerProcess,
  startServer,
  TestClient,
} from "./_helpers.ts";
import { parseServerArgs } from "../lib/commands/server.ts";
import { UsageError } from "../lib/errors.ts";

/** Reads `count` bytes from `conn`, or throws when it ends first. */
async function readExactly(conn: Deno.Conn, count: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(count);
  for (let got = 0; got < count;) {
    const read = await conn.read(bytes.subarray(got));
    if (read === null) throw new Error(`the connection ended after ${got} of ${count} bytes`);
    got += read;
  }
  return bytes;
}

/** What a PROXY header said. */
interface ProxyInfo {
  version: 1 | 2;
  family: "TCP4" | "TCP6";
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
}

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/**
 * Reads a PROXY header strictly: version 1 (`PROXY TCP4|TCP6 src dst sport
 * dport\r\n`, at most 107 bytes, single spaces, ports without leading
 * zeros) or version 2 (the 12-byte signature, version 2 command PROXY,
 * TCP over IPv4 or IPv6, the address block of exactly its length).
 */
async function readProxyHeader(conn: Deno.Conn): Promise<ProxyInfo> {
  const first = await readExactly(conn, 12);
  if (V2_SIGNATURE.every((byte, i) => first[i] === byte)) {
    const rest = await readExactly(conn, 4);
    assert.equal(rest[0], 0x21, "version 2, command PROXY");
    const family = rest[1];
    const length = ((rest[2] ?? 0) << 8) | (rest[3] ?? 0);
    assert.ok(family === 0x11 || family === 0x21, `TCP over IPv4 or IPv6, not 0x${family}`);
    const size = family === 0x11 ? 4 : 16;
    assert.equal(length, 2 * size + 4, "the address block's exact length");
    const block = await readExactly(conn, length);
    const view = new DataView(block.buffer);
    const ip = (bytes: Uint8Array): string => size === 4 ? [...bytes].join(".") : ipv6Text(bytes);
    return {
      version: 2,
      family: family === 0x11 ? "TCP4" : "TCP6",
      source: ip(block.subarray(0, size)),
      destination: ip(block.subarray(size, 2 * size)),
      sourcePort: view.getUint16(2 * size),
      destinationPort: view.getUint16(2 * size + 2),
    };
  }
  // Version 1: the rest of the line, CR LF, 107 bytes at most.
  let line = decoder.decode(first);
  while (!line.endsWith("\r\n")) {
    assert.ok(line.length < 107, "a version 1 header is at most 107 bytes");
    line += decoder.decode(await readExactly(conn, 1));
  }
  const match = /^PROXY (TCP4|TCP6) (\S+) (\S+) (0|[1-9]\d{0,4}) (0|[1-9]\d{0,4})\r\n$/.exec(line);
  assert.ok(match, `a strict version 1 header: ${JSON.stringify(line)}`);
  const [, family = "", source = "", destination = "", sourcePort = "", destinationPort = ""] =
    match;
  if (family === "TCP4") {
    for (const address of [source, destination]) {
      assert.match(address, /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, "IPv4 for TCP4");
    }
  } else {
    for (const address of [source, destination]) {
      assert.ok(address.includes(":"), "IPv6 for TCP6");
      new URL(`http://[${address}]/`); // throws for one that is not IPv6
    }
  }
  return {
    version: 1,
    family: family as "TCP4" | "TCP6",
    source,
    destination,
    sourcePort: Number(sourcePort),
    destinationPort: Number(destinationPort),
  };
}

function ipv6Text(bytes: Uint8Array): string {
  const groups = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  }
  // Through the URL parser: the canonical compressed form.
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** A NEW with `options`, and the reply. */
async function newSession(port: number, options = ""): Promise<{ id: string; secret: string }> {
  using client = await TestClient.connect(port);
  const reply = await client.hello(`NEW${options}`);
  issuedSecrets.add(reply.secret);
  return reply;
}

Deno.test("NEW to=<name> reaches that destination; NEW alone the default; an unknown name is refused", async () => {
  await using main = new Destination();
  await using mud = new Destination();
  await using bbs = new Destination();
  await using proxy = startServer(main.port, {
    destinations: [
      { name: "mud", addr: { hostname: "127.0.0.1", port: mud.port }, sendProxy: null },
      { name: "bbs.old", addr: { hostname: "127.0.0.1", port: bbs.port }, sendProxy: null },
    ],
  });
  for (
    const [options, destination, name] of [["", main, "default"], [" to=mud", mud, "mud"], [
      " to=bbs.old",
      bbs,
      "bbs.old",
    ]] as const
  ) {
    using client = await TestClient.connect(proxy.port);
    const reply = await client.hello(`NEW${options}`);
    issuedSecrets.add(reply.secret);
    const conn = await destination.accepted();
    await conn.write(encoder.encode(name));
    assert.equal(decoder.decode(await client.readExactly(name.length)), name);
    assert.equal(proxy.server.store.get(reply.id)?.destinationName, name);
  }
  using stranger = await TestClient.connect(proxy.port);
  await stranger.write("NEW to=tavern\n");
  assert.match(await stranger.readLine(), /^ERR unknown-destination tavern \S/);
  assert.equal(proxy.server.store.size, 3, "no session for the unknown name");
  await proxy.logs.waitFor("session.unknown_destination", (fields) => fields.to === "tavern");
  const report = collectStatus(proxy.server, {
    version: VERSION,
    startedAt: Date.now(),
    admin: null,
    limits: {
      bufferBytes: 1,
      idleTimeoutMs: 1,
      handshakeTimeoutMs: 1,
      connectTimeoutMs: 1,
      maxSessions: 1,
    },
  });
  assert.deepEqual(
    report.destinations.map((target) => [target.name, target.sessionsOpen, target.sessionsCreated]),
    [["default", 1, 1], ["mud", 1, 1], ["bbs.old", 1, 1]],
  );
  assert.deepEqual(
    report.sessions.map((session) => session.destinationName).sort(),
    ["bbs.old", "default", "mud"],
  );
  const metrics = formatMetrics(report);
  assert.ok(metrics.includes('socketproxy_destination_sessions{destination="mud"} 1\n'));
  assert.ok(
    metrics.includes('socketproxy_destination_sessions_created_total{destination="bbs.old"} 1\n'),
  );
});

Deno.test("NEW from=<address> from a trusted peer names the player in status and logs", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port); // trusts loopback by default
  const reply = await newSession(proxy.port, " from=[2001:db8::7]:4000");
  await destination.accepted();
  const session = proxy.server.store.get(reply.id);
  assert.equal(session?.client, "[2001:db8::7]:4000");
  const created = await proxy.logs.waitFor("session.created");
  assert.equal(created.fields.peer, "[2001:db8::7]:4000");
  assert.match(String(created.fields.via), /^127\.0\.0\.1:\d+$/);
});

Deno.test("NEW from= from a peer not in --trust-from is ERR untrusted, and no destination is dialled", async () => {
  for (const trustFrom of [[], ["10.0.0.0/8", "2001:db8::/32"]]) {
    await using destination = new Destination();
    await using proxy = startServer(destination.port, { trustFrom });
    using client = await TestClient.connect(proxy.port);
    await client.write("NEW from=192.0.2.7\n");
    assert.match(await client.readLine(), /^ERR untrusted \S/);
    assert.equal(proxy.server.store.size, 0);
    assert.equal(destination.conns.length, 0, "no connection to the destination");
    // The same peer without from= is served.
    await newSession(proxy.port);
    assert.equal(proxy.server.store.size, 1);
  }
});

Deno.test("--send-proxy=v1 and v2: the header comes first, with the player's address, then the input exactly", async (t) => {
  for (const version of ["v1", "v2"] as const) {
    await t.step(`${version}, the client's own address`, async () => {
      await using destination = new Destination();
      await using proxy = startServer(destination.port, { sendProxy: version });
      using client = await TestClient.connect(proxy.port);
      const reply = await client.hello("NEW");
      issuedSecrets.add(reply.secret);
      const conn = await destination.accepted();
      await client.write("look\n");
      const header = await readProxyHeader(conn);
      assert.deepEqual(header, {
        version: version === "v1" ? 1 : 2,
        family: "TCP4",
        source: "127.0.0.1",
        destination: "127.0.0.1",
        sourcePort: (client.conn.localAddr as Deno.NetAddr).port,
        destinationPort: proxy.port,
      });
      assert.equal(decoder.decode(await readExactly(conn, 5)), "look\n", "nothing between");
    });
    await t.step(`${version}, a gateway's from= without a port: port 0`, async () => {
      await using destination = new Destination();
      await using proxy = startServer(destination.port, { sendProxy: version });
      await newSession(proxy.port, " from=192.0.2.7");
      const header = await readProxyHeader(await destination.accepted());
      assert.equal(header.source, "192.0.2.7");
      assert.equal(header.sourcePort, 0);
      assert.equal(header.family, "TCP4");
    });
    await t.step(`${version}, an IPv6 player: both ends in IPv6`, async () => {
      await using destination = new Destination();
      await using proxy = startServer(destination.port, { sendProxy: version });
      await newSession(proxy.port, " from=[2001:db8::7]:4000");
      const header = await readProxyHeader(await destination.accepted());
      assert.deepEqual(
        [header.family, header.source, header.sourcePort, header.destination],
        // The mapped IPv4 end as inet_ntop writes it in the text line; the
        // binary header's 16 bytes, read here through the URL parser.
        ["TCP6", "2001:db8::7", 4000, version === "v1" ? "::ffff:127.0.0.1" : "::ffff:7f00:1"],
      );
    });
  }
});

Deno.test("the PROXY header is chosen per destination", async () => {
  await using plain = new Destination();
  await using mud = new Destination();
  await using proxy = startServer(plain.port, {
    destinations: [{
      name: "mud",
      addr: { hostname: "127.0.0.1", port: mud.port },
      sendProxy: "v2",
    }],
  });
  using toPlain = await TestClient.connect(proxy.port);
  issuedSecrets.add((await toPlain.hello("NEW")).secret);
  await toPlain.write("hi");
  assert.equal(decoder.decode(await readExactly(await plain.accepted(), 2)), "hi", "no header");
  await newSession(proxy.port, " to=mud");
  assert.equal((await readProxyHeader(await mud.accepted())).version, 2);
});

Deno.test("server --destination, --send-proxy and --trust-from parse, and bad ones are one clear line", () => {
  const config = parseServerArgs([
    "--destination=mud=127.0.0.1:4000",
    "--destination=bbs=bbs.example:23,send-proxy=v2",
    "--send-proxy=v1",
    "--trust-from=10.0.0.0/8,2001:db8::/32",
    "--trust-from=192.0.2.7",
  ]);
  assert.ok(config !== "help");
  assert.equal(config.destination, null, "named destinations only");
  assert.deepEqual(config.destinations, [
    { name: "mud", addr: { hostname: "127.0.0.1", port: 4000 }, sendProxy: "v1" },
    { name: "bbs", addr: { hostname: "bbs.example", port: 23 }, sendProxy: "v2" },
  ]);
  assert.equal(config.sendProxy, "v1");
  assert.deepEqual(config.trustFrom, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
  const none = parseServerArgs(["--trust-from=none", "localhost:23"]);
  assert.ok(none !== "help" && none.trustFrom.length === 0);
  const defaults = parseServerArgs(["localhost:23"]);
  assert.ok(defaults !== "help");
  assert.deepEqual(defaults.trustFrom, ["127.0.0.0/8", "::1/128"]);
  assert.equal(defaults.sendProxy, null);
  for (
    const [args, message] of [
      [[], /missing DEST_HOST:DEST_PORT \(or --destination=NAME=HOST:PORT\)/],
      [["--destination=mud"], /expected NAME=HOST:PORT/],
      [["--destination=m/d=h:1"], /expected NAME=HOST:PORT/],
      [["--destination=default=h:1"], /the positional DEST's name/],
      [["--destination=a=h:1", "--destination=a=h:2"], /a is given twice/],
      [["--destination=a=h:1,proxy=v1"], /unknown option "proxy=v1"/],
      [["--destination=a=h:1,send-proxy=v3"], /expected v1 or v2, not "v3"/],
      [["--send-proxy=yes", "h:1"], /--send-proxy: expected v1 or v2/],
      [["--trust-from=10.0.0.0/33", "h:1"], /not an address or CIDR range/],
      [["--trust-from=none,10.0.0.0/8", "h:1"], /none cannot go with ranges/],
    ] as const
  ) {
    assert.throws(
      () => parseServerArgs([...args]),
      (error: unknown) => error instanceof UsageError && message.test(error.message),
      args.join(" "),
    );
  }
});

Deno.test("main.ts server with a named destination and --send-proxy=v2 serves NEW to=NAME end to end", async () => {
  await using mud = new Destination();
  await using server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=off",
    `--destination=mud=127.0.0.1:${mud.port},send-proxy=v2`,
  ]);
  const port = await server.port;
  using client = await TestClient.connect(port);
  await client.write("NEW\n");
  assert.match(await client.readLine(), /^ERR unknown-destination default \S/);
  const reply = await newSession(port, " to=mud");
  const conn = await mud.accepted();
  const header = await readProxyHeader(conn);
  assert.equal(header.version, 2);
  assert.equal(header.destinationPort, port);
  assert.ok(reply.id);
  await server.waitFor((line) =>
    line.includes("session.created") && line.includes("destination=mud")
  );
});
