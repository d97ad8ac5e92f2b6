/**
 * haproxy.cfg.example, run by Debian's haproxy on loopback in front of
 * three `main.ts server --node=nN` processes: NEW spreads over the nodes,
 * RESUME and CLOSE reach the node their id names every time (a hello sent
 * in pieces too), and a draining node gets no new sessions but keeps
 * serving its own.
 */

import assert from "node:assert/strict";
import {
  Destination,
  installed,
  issuedSecrets,
  runMain,
  ServerProcess,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

const EXAMPLE = new URL("../haproxy.cfg.example", import.meta.url);

const skip = await installed("haproxy", ["-v"])
  ? ""
  : " (skipped: haproxy is not installed; apt-get install haproxy)";

/** A free loopback port (bound, then let go: haproxy needs a number). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** The example with its addresses made the test's: node nK at the given proxy and admin ports. */
function rewrite(text: string, front: number, nodes: { proxy: number; admin: number }[]): string {
  let config = text.replace("bind 0.0.0.0:9000", `bind 127.0.0.1:${front}`)
    .replace(/inter 2s/, "inter 100ms");
  nodes.forEach((node, index) => {
    config = config.replaceAll(
      `10.0.0.1${index + 1}:9009 check port 9010`,
      `127.0.0.1:${node.proxy} check port ${node.admin} inter 100ms`,
    );
  });
  assert.doesNotMatch(config, /10\.0\.0\./, "every node's address rewritten");
  return config;
}

/** The node an id names. */
function nodeOfId(id: string): string {
  return id.slice(0, id.indexOf("_"));
}

Deno.test({
  name:
    `haproxy.cfg.example routes hellos by the node in the id, and NEW away from a draining node${skip}`,
  ignore: skip !== "",
  async fn() {
    await using destination = new Destination((conn) => {
      // Hold each destination connection open until the test ends.
      void conn.read(new Uint8Array(1)).catch(() => {});
    });
    await using stack = new AsyncDisposableStack();
    const servers = ["n1", "n2", "n3"].map((node) =>
      stack.use(
        new ServerProcess([
          `--node=${node}`,
          "--proxy=127.0.0.1:0",
          "--admin=127.0.0.1:0",
          "--drain-timeout=60s",
          `127.0.0.1:${destination.port}`,
        ]),
      )
    );
    const nodes = await Promise.all(
      servers.map(async (server) => ({ proxy: await server.port, admin: await server.adminPort })),
    );
    const front = freePort();
    const dir = await Deno.makeTempDir({ prefix: "socketproxy-haproxy-" });
    stack.defer(() => Deno.remove(dir, { recursive: true }));
    const file = `${dir}/haproxy.cfg`;
    await Deno.writeTextFile(file, rewrite(await Deno.readTextFile(EXAMPLE), front, nodes));
    const haproxy = new Deno.Command("haproxy", {
      args: ["-db", "-f", file],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    stack.defer(async () => {
      haproxy.kill("SIGTERM");
      await haproxy.status;
      await haproxy.stderr.cancel().catch(() => {});
    });

    // Up, and every node's health checks passed: NEW reaches all three.
    const sessions: { id: string; secret: string }[] = [];
    const seen = new Set<string>();
    await withDeadline(
      (async () => {
        for (let round = 0; round < 300 && seen.size < 3; round++) {
          try {
            using client = await TestClient.connect(front);
            const reply = await client.hello("NEW");
            issuedSecrets.add(reply.secret);
            sessions.push(reply);
            seen.add(nodeOfId(reply.id));
          } catch {
            // HAProxy still starting, or its checks not passed yet: try again.
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      })(),
      WAIT_MS,
      "sessions on all three nodes",
    );
    assert.deepEqual([...seen].sort(), ["n1", "n2", "n3"]);
    for (let i = 0; i < 12; i++) {
      using client = await TestClient.connect(front);
      const reply = await client.hello("NEW");
      issuedSecrets.add(reply.secret);
      sessions.push(reply);
    }

    // Every resume reaches its own node: another would answer ERR auth.
    for (const session of sessions) {
      using client = await TestClient.connect(front);
      const reply = await client.hello(`RESUME ${session.id} ${session.secret} 0`);
      assert.equal(reply.id, session.id);
    }
    // A hello in two pieces is routed once it is whole.
    {
      const session = sessions[0] ?? { id: "", secret: "" };
      using client = await TestClient.connect(front);
      await client.write(`RESUME ${session.id.slice(0, 2)}`);
      await client.write(`${session.id.slice(2)} ${session.secret} 0\n`);
      assert.match(await client.readLine(), new RegExp(`^OK ${session.id} `));
    }

    // Drain n1: once its /ready says 503, NEW goes to the others; its sessions stay served.
    const drained = await runMain(["drain", `--admin=127.0.0.1:${nodes[0]?.admin}`]);
    assert.equal(drained.code, 0, drained.stderr);
    let afterDrain = 0;
    await withDeadline(
      (async () => {
        // The check runs every 100 ms; once it has, no NEW reaches n1.
        for (let round = 0; round < 200 && afterDrain < 10; round++) {
          using client = await TestClient.connect(front);
          const line = await client.write("NEW\n").then(() => client.readLine());
          if (line.startsWith("ERR busy")) {
            afterDrain = 0; // n1, not yet marked down
            continue;
          }
          const id = line.split(" ")[1] ?? "";
          issuedSecrets.add(line.split(" ")[2] ?? "");
          assert.notEqual(nodeOfId(id), "n1", "a drained node takes no new session");
          afterDrain++;
        }
      })(),
      WAIT_MS,
      "new sessions on the other nodes",
    );
    assert.equal(afterDrain, 10);
    const onN1 = sessions.filter((session) => nodeOfId(session.id) === "n1");
    assert.ok(onN1.length > 0);
    for (const session of onN1) {
      using client = await TestClient.connect(front);
      const reply = await client.hello(`RESUME ${session.id} ${session.secret} 0`);
      assert.equal(reply.id, session.id, "a draining node serves its sessions");
    }
  },
});
