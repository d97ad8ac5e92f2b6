/**
 * The gateway as router (lib/gateway/router.ts, lib/gateway/proxies_file.ts):
 * NEW spread evenly over the nodes and moved on past busy, draining or
 * refusing ones, every other request to the node in the id, a clear 502
 * `node_unavailable` for a node unknown or down; the node list from flags
 * and a file re-read on SIGHUP; and a gateway in this process in front of
 * two named servers.
 */

import assert from "node:assert/strict";
import { hello, TestSocket, wsUrl } from "./_gateway_socket.ts";
import {
  BusyError,
  ConnectionLostError,
  ProxyUnavailableError,
  UnknownDestinationError,
} from "../lib/client/mod.ts";
import { type GatewayNode, NodeRouter } from "../lib/gateway/router.ts";
import {
  formatNodes,
  parseNode,
  parseProxies,
  reloadOnHangup,
} from "../lib/gateway/proxies_file.ts";
import { HttpError } from "../lib/gateway/requests.ts";
import { GatewayMetrics, WebGateway } from "../lib/gateway/mod.ts";
import { parseWebArgs } from "../lib/commands/web.ts";
import { environmentOf } from "../lib/commands/settings.ts";
import { UsageError } from "../lib/errors.ts";
import { echoDestination, issuedSecrets, LogCapture, startServer } from "./_helpers.ts";

const DEFAULTS = { hostname: "localhost", port: 9009 };

function nodes(...names: string[]): GatewayNode[] {
  return names.map((name, index) => ({
    name,
    address: { hostname: "127.0.0.1", port: 9001 + index },
  }));
}

/** A NEW that every node in `refusing` answers with `error`; the rest create "NAME_<n>". */
function fakeCreate(
  refusing: Record<string, () => Error>,
  tried: string[],
): (node: GatewayNode) => Promise<string> {
  let count = 0;
  return (node) => {
    tried.push(node.name ?? "");
    const refusal = refusing[node.name ?? ""];
    if (refusal) return Promise.reject(refusal());
    return Promise.resolve(`${node.name}_${count++}`);
  };
}

function tally(created: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of created) {
    const node = id.slice(0, id.indexOf("_"));
    counts[node] = (counts[node] ?? 0) + 1;
  }
  return counts;
}

Deno.test("NEW goes round the nodes in turn: 300 over three are 100 each", async () => {
  const router = new NodeRouter(nodes("n1", "n2", "n3"));
  const tried: string[] = [];
  const attempt = fakeCreate({}, tried);
  const created = await Promise.all(
    Array.from({ length: 300 }, () => router.create(attempt)),
  );
  assert.deepEqual(tally(created), { n1: 100, n2: 100, n3: 100 });
  assert.equal(tried.length, 300, "one try each");
});

Deno.test("a busy or draining node passes NEW to the next, and the others share its part evenly", async () => {
  const router = new NodeRouter(nodes("n1", "n2", "n3"), { recheckAfter: 60_000 });
  const tried: string[] = [];
  const outcomes: string[] = [];
  const attempt = fakeCreate({ n2: () => new BusyError("draining: no new sessions") }, tried);
  const created: string[] = [];
  for (let i = 0; i < 100; i++) {
    created.push(
      await router.create(attempt, (node, outcome) => {
        outcomes.push(`${node.name}:${outcome}`);
      }),
    );
  }
  assert.deepEqual(tally(created), { n1: 50, n3: 50 });
  assert.equal(tried.filter((name) => name === "n2").length, 1, "asked once, then tried last");
  assert.ok(outcomes.includes("n2:busy") && outcomes.includes("n1:created"));
});

Deno.test("a node that refuses connections (or drops them) is skipped, each node tried at most once", async () => {
  const router = new NodeRouter(nodes("n1", "n2", "n3"), { recheckAfter: 0 });
  const tried: string[] = [];
  const attempt = fakeCreate({
    n1: () => new ProxyUnavailableError("connection refused"),
    n3: () => new ConnectionLostError("closed without a reply"),
  }, tried);
  for (let i = 0; i < 30; i++) {
    tried.length = 0;
    assert.match(await router.create(attempt), /^n2_/);
    assert.equal(new Set(tried).size, tried.length, `no node twice: ${tried}`);
  }
});

Deno.test("with every node refusing, NEW fails with busy if one was busy, else with the last failure", async () => {
  const busy = new NodeRouter(nodes("n1", "n2"));
  await assert.rejects(
    busy.create(fakeCreate({
      n1: () => new BusyError("full"),
      n2: () => new ProxyUnavailableError("refused"),
    }, [])),
    BusyError,
  );
  const down = new NodeRouter(nodes("n1", "n2"));
  const tried: string[] = [];
  await assert.rejects(
    down.create(fakeCreate({
      n1: () => new ProxyUnavailableError("refused"),
      n2: () => new ProxyUnavailableError("refused"),
    }, tried)),
    ProxyUnavailableError,
  );
  assert.deepEqual(tried.sort(), ["n1", "n2"]);
});

Deno.test("any other refusal of NEW (an unknown destination) is the answer: no other node is asked", async () => {
  const router = new NodeRouter(nodes("n1", "n2"));
  const tried: string[] = [];
  await assert.rejects(
    router.create(fakeCreate({
      n1: () => new UnknownDestinationError("no such destination", "bbs"),
      n2: () => new UnknownDestinationError("no such destination", "bbs"),
    }, tried)),
    UnknownDestinationError,
  );
  assert.equal(tried.length, 1);
});

Deno.test("every other request goes to the node its id names", async () => {
  const router = new NodeRouter(nodes("n1", "n2", "eu-west-3"));
  assert.equal(router.nodeFor("n2_q3Zx0b9XkP2Lm7Rt").address.port, 9002);
  assert.equal(router.nodeFor("eu-west-3_q3Zx0b9XkP2Lm7Rt").name, "eu-west-3");
  const reached: string[] = [];
  await router.onNode("n1_q3Zx0b9XkP2Lm7Rt", (node) => {
    reached.push(node.name ?? "");
    return Promise.resolve();
  });
  assert.deepEqual(reached, ["n1"]);
  assert.equal(router.knownNode("n1_q3Zx0b9XkP2Lm7Rt"), "n1");
  assert.equal(router.knownNode("zz_q3Zx0b9XkP2Lm7Rt"), undefined, "no label from a guess");
});

Deno.test("a session whose node is unknown, or names none, is a 502 node_unavailable saying so", () => {
  const router = new NodeRouter(nodes("n1", "n2"));
  assert.throws(() => router.nodeFor("n9_q3Zx0b9XkP2Lm7Rt"), (error: unknown) => {
    assert.ok(error instanceof HttpError);
    assert.equal(error.status, 502);
    assert.equal(error.code, "node_unavailable");
    assert.deepEqual(error.extra, { node: "n9" });
    assert.match(error.message, /unknown/);
    return true;
  });
  assert.throws(() => router.nodeFor("q3Zx0b9XkP2Lm7Rt"), (error: unknown) => {
    assert.ok(error instanceof HttpError && error.code === "node_unavailable");
    assert.deepEqual(error.extra, { node: null });
    return true;
  });
});

Deno.test("a session whose node is down is a 502 node_unavailable naming it; other errors pass as they are", async () => {
  const router = new NodeRouter(nodes("n1", "n2"));
  await assert.rejects(
    router.onNode(
      "n2_q3Zx0b9XkP2Lm7Rt",
      () => Promise.reject(new ProxyUnavailableError("refused")),
    ),
    (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 502);
      assert.equal(error.code, "node_unavailable");
      assert.deepEqual(error.extra, { node: "n2" });
      return true;
    },
  );
  await assert.rejects(
    router.onNode("n2_q3Zx0b9XkP2Lm7Rt", () => Promise.reject(new BusyError("full"))),
    BusyError,
  );
});

Deno.test("one unnamed proxy takes every request and its errors as they are", async () => {
  const router = NodeRouter.single({ hostname: "127.0.0.1", port: 9009 });
  assert.equal(router.named, false);
  assert.equal(router.nodeFor("q3Zx0b9XkP2Lm7Rt").address.port, 9009);
  assert.equal(router.nodeFor("n1_q3Zx0b9XkP2Lm7Rt").address.port, 9009);
  assert.equal(router.knownNode("n1_q3Zx0b9XkP2Lm7Rt"), undefined);
  await assert.rejects(
    router.onNode("n1_q3Zx0b9XkP2Lm7Rt", () => Promise.reject(new ProxyUnavailableError("x"))),
    ProxyUnavailableError,
  );
});

Deno.test("a node list is every node named, each once, or one unnamed proxy", () => {
  const address = { hostname: "127.0.0.1", port: 1 };
  assert.throws(() => new NodeRouter([]), TypeError);
  assert.throws(() => new NodeRouter([{ name: null, address }, ...nodes("n1")]), TypeError);
  assert.throws(() => new NodeRouter(nodes("n1", "n1")), TypeError);
  assert.throws(() => new NodeRouter(nodes("bad_name")), TypeError);
  const router = new NodeRouter(nodes("n1"));
  assert.throws(() => router.replace(nodes("a", "a")), TypeError);
  assert.deepEqual(router.nodes.map((node) => node.name), ["n1"], "the old list stays");
  router.replace(nodes("n2", "n3"));
  assert.throws(() => router.nodeFor("n1_q3Zx0b9XkP2Lm7Rt"), HttpError);
  assert.equal(router.nodeFor("n3_q3Zx0b9XkP2Lm7Rt").name, "n3");
});

Deno.test("a --proxies file: NAME=HOST:PORT a line, # comments, errors naming the line", () => {
  const list = parseProxies(
    "# the nodes\nn1=10.0.0.11:9009\n\n  n2 = ignored\n".replace("n2 = ignored", "n2=10.0.0.12"),
    "nodes.txt",
    DEFAULTS,
  );
  assert.equal(formatNodes(list), "n1=10.0.0.11:9009,n2=10.0.0.12:9009");
  assert.deepEqual(parseNode("n3=:7000", "--proxy", DEFAULTS).address, {
    hostname: "localhost",
    port: 7000,
  });
  const refused = (text: string, pattern: RegExp) =>
    assert.throws(() => parseProxies(text, "nodes.txt", DEFAULTS), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, pattern);
      return true;
    });
  refused("n1=10.0.0.11:9009\n10.0.0.12:9009\n", /^nodes\.txt:2: expected NAME=HOST:PORT/);
  refused("n1=10.0.0.11:99999\n", /^nodes\.txt:1: invalid port "99999"/);
  refused("n1=a:1\nn1=b:2\n", /^nodes\.txt:2: node "n1" is listed twice/);
  refused("# nothing yet\n", /^nodes\.txt: lists no node/);
});

Deno.test("web --proxy: one unnamed proxy as before, or repeated NAME=HOST:PORT; --proxies instead", async () => {
  const single = parseWebArgs(["--proxy=127.0.0.1:7000"]);
  assert.ok(single !== "help");
  assert.deepEqual(single.nodes, [{ name: null, address: { hostname: "127.0.0.1", port: 7000 } }]);
  const named = parseWebArgs(["--proxy=n1=127.0.0.1:7001", "--proxy=n2=127.0.0.1:7002"]);
  assert.ok(named !== "help");
  assert.equal(formatNodes(named.nodes), "n1=127.0.0.1:7001,n2=127.0.0.1:7002");
  const fromEnv = parseWebArgs([], {
    env: environmentOf({ SOCKETPROXY_WEB_PROXY: "n1=127.0.0.1:7001,n2=127.0.0.1:7002" }),
  });
  assert.ok(fromEnv !== "help" && fromEnv.nodes.length === 2);
  assert.throws(() => parseWebArgs(["--proxy=n1=a:1", "--proxy=b:2"]), /--proxy: expected NAME=/);
  assert.throws(() => parseWebArgs(["--proxy=n1=a:1", "--proxy=n1=b:2"]), /given twice/);
  const file = await Deno.makeTempFile({ prefix: "socketproxy-proxies-" });
  try {
    await Deno.writeTextFile(file, "n1=127.0.0.1:7001 # first\nn2=127.0.0.1:7002\n");
    const listed = parseWebArgs([`--proxies=${file}`]);
    assert.ok(listed !== "help");
    assert.equal(listed.proxiesFile, file);
    assert.deepEqual(listed.nodes.map((node) => node.name), ["n1", "n2"]);
    assert.throws(() => parseWebArgs([`--proxies=${file}`, "--proxy=a:1"]), /give one, not both/);
  } finally {
    await Deno.remove(file);
  }
  assert.throws(() => parseWebArgs(["--proxies=/nonexistent/nodes"]), /no such file/);
});

Deno.test("SIGHUP re-reads the --proxies file; a bad file keeps the old list and logs one error", async () => {
  const file = await Deno.makeTempFile({ prefix: "socketproxy-proxies-" });
  const logs = new LogCapture();
  const router = new NodeRouter(nodes("n1"));
  try {
    using _watch = reloadOnHangup(router, { path: file, defaults: DEFAULTS, logger: logs.logger });
    await Deno.writeTextFile(file, "n1=127.0.0.1:1\nn2=127.0.0.1:2\n");
    Deno.kill(Deno.pid, "SIGHUP");
    await logs.waitFor("web.proxies_reloaded");
    assert.deepEqual(router.nodes.map((node) => node.name), ["n1", "n2"]);
    await Deno.writeTextFile(file, "n1=127.0.0.1:1\nbroken\n");
    Deno.kill(Deno.pid, "SIGHUP");
    const error = await logs.waitFor("web.proxies_error");
    assert.match(String(error.fields.error), /:2: expected NAME=HOST:PORT/);
    assert.deepEqual(router.nodes.map((node) => node.name), ["n1", "n2"], "the old list kept");
    assert.equal(logs.events("web.proxies_error").length, 1);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("a gateway in front of two named servers: NEW on both, requests on their node, the 502 for a node gone", async () => {
  await using destination = echoDestination();
  await using one = startServer(destination.port, { node: "n1" });
  const two = startServer(destination.port, { node: "n2" });
  let twoClosed = false;
  try {
    const logs = new LogCapture();
    const metrics = new GatewayMetrics();
    const router = new NodeRouter([
      { name: "n1", address: { hostname: "127.0.0.1", port: one.port } },
      { name: "n2", address: { hostname: "127.0.0.1", port: two.port } },
    ], { recheckAfter: 60_000 });
    await using gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
      router,
      logger: logs.logger,
      metrics,
    });
    const url = `http://127.0.0.1:${gateway.addr.port}`;
    const sessions: { id: string; secret: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${url}/api/sessions`, { method: "POST" });
      const body = await response.json();
      assert.equal(response.status, 201, JSON.stringify(body));
      issuedSecrets.add(body.secret);
      sessions.push(body);
    }
    assert.deepEqual(tally(sessions.map((session) => session.id)), { n1: 3, n2: 3 });
    const poll = async (id: string, secret: string) => {
      const response = await fetch(`${url}/api/sessions/${id}/poll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ secret, ack: 0, input: btoa("hi") }),
      });
      return { status: response.status, body: await response.json() };
    };
    for (const session of sessions) {
      assert.equal((await poll(session.id, session.secret)).status, 200, "served by its node");
    }
    const unknown = await poll("n9_q3Zx0b9XkP2Lm7Rt", sessions[0]?.secret ?? "");
    assert.equal(unknown.status, 502);
    assert.equal(unknown.body.error, "node_unavailable");
    assert.equal(unknown.body.node, "n9");

    await two[Symbol.asyncDispose]();
    twoClosed = true;
    for (const session of sessions) {
      const answer = await poll(session.id, session.secret);
      if (session.id.startsWith("n2_")) {
        assert.equal(answer.status, 502, JSON.stringify(answer.body));
        assert.deepEqual([answer.body.error, answer.body.node], ["node_unavailable", "n2"]);
      } else {
        assert.equal(answer.status, 200, "the other node's sessions are untouched");
      }
    }
    // A WebSocket to a session of the dead node is told the same, naming it.
    const dead = sessions.find((session) => session.id.startsWith("n2_"));
    assert.ok(dead);
    {
      await using socket = new TestSocket(wsUrl(url, dead.id));
      await socket.opened;
      socket.socket.send(hello(dead.secret, 0));
      const failure = await socket.nextControl();
      assert.deepEqual(
        [failure.type, failure.error, failure.node],
        ["error", "node_unavailable", "n2"],
        JSON.stringify(failure),
      );
    }
    // NEW now goes to the node left.
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${url}/api/sessions`, { method: "POST" });
      const body = await response.json();
      assert.equal(response.status, 201);
      issuedSecrets.add(body.secret);
      assert.match(body.id, /^n1_/);
    }
    const text = metrics.format();
    assert.match(
      text,
      /socketproxy_web_requests_total\{route="\/api\/sessions",status="201",node="n1"\} 7/,
    );
    assert.match(
      text,
      /socketproxy_web_requests_total\{route="\/api\/sessions\/\{id\}\/poll",status="502",node="n2"\} 3/,
    );
    assert.match(text, /socketproxy_web_new_sessions_total\{node="n2",outcome="unavailable"\} 1/);
    assert.doesNotMatch(text, /node="n9"/, "no label from an id's guess");
  } finally {
    if (!twoClosed) await two[Symbol.asyncDispose]();
  }
});
