/**
 * Seeing the cluster: `socketproxy status --admin=A --admin=B ...` against
 * real `server --node=...` processes: the nodes side by side, the sessions
 * of all with their node, `--json` as an array, and a node that does not
 * answer as one line and exit status 1.
 */

import assert from "node:assert/strict";
import { adminTargets } from "../lib/commands/admin_client.ts";
import { STATUS_COMMAND } from "../lib/commands/status.ts";
import { environmentOf, resolveSettings } from "../lib/commands/settings.ts";
import {
  assertNoSecrets,
  echoDestination,
  runMain,
  ServerProcess,
  TestClient,
} from "./_helpers.ts";

/** A `server --node=NAME` process on loopback ports 0, and its admin address. */
interface Node extends AsyncDisposable {
  name: string;
  process: ServerProcess;
  port: number;
  /** The admin address, `127.0.0.1:PORT`. */
  admin: string;
}

async function startNode(name: string, destinationPort: number): Promise<Node> {
  const process = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=127.0.0.1:0",
    `--node=${name}`,
    `127.0.0.1:${destinationPort}`,
  ]);
  const [port, adminPort] = await Promise.all([process.port, process.adminPort]);
  return {
    name,
    process,
    port,
    admin: `127.0.0.1:${adminPort}`,
    [Symbol.asyncDispose]: () => process[Symbol.asyncDispose](),
  };
}

/** A loopback port nothing listens on: a node that is down. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return listener.addr.port;
}

/** The line of `text` that starts with `start` (a node's row, a session's). */
function lineStarting(text: string, start: RegExp): string {
  const line = text.split("\n").find((candidate) => start.test(candidate));
  assert.ok(line !== undefined, `no line matching ${start} in:\n${text}`);
  return line;
}

Deno.test("status with several --admin shows the nodes side by side, then every node's sessions with its NODE", async () => {
  await using destination = echoDestination();
  await using n1 = await startNode("n1", destination.port);
  await using n2 = await startNode("n2", destination.port);
  await using n3 = await startNode("n3", destination.port);
  // n1: one attached session that has echoed 3 bytes; n2: one detached, then
  // drained (it keeps it); n3: none.
  using attached = await TestClient.connect(n1.port);
  const live = await attached.hello("NEW");
  await attached.write("hi\n");
  assert.equal(await attached.readLine(), "hi");
  const gone = await TestClient.connect(n2.port);
  const idle = await gone.hello("NEW");
  gone.close();
  await n2.process.waitFor((line) => line.includes("session.detached") && line.includes(idle.id));
  const drained = await fetch(`http://${n2.admin}/drain`, { method: "POST" });
  assert.equal(drained.status, 202, await drained.text());

  const { code, stdout, stderr } = await runMain([
    "status",
    `--admin=${n1.admin}`,
    `--admin=${n2.admin}`,
    `--admin=${n3.admin}`,
  ]);
  assert.equal(code, 0, stderr);
  assertNoSecrets([stdout], "status output");
  const header = lineStarting(stdout, /^NODE +ADMIN/);
  assert.match(header, /^NODE +ADMIN +PROXY +STATE +VERSION +UP +OPEN +ATTACHED +IN +OUT$/);
  const row = (node: Node) => lineStarting(stdout, new RegExp(`^${node.name} `));
  const cells = (node: Node) => row(node).split(/ {2,}/);
  assert.deepEqual(
    [cells(n1)[1], cells(n1)[2]],
    [n1.admin, `127.0.0.1:${n1.port}`],
    "the address asked and the proxy's",
  );
  assert.deepEqual(cells(n1).slice(3, 4).concat(cells(n1).slice(6)), [
    "serving",
    "1",
    "1",
    "3 B",
    "3 B",
  ]);
  assert.deepEqual(cells(n2).slice(3, 4).concat(cells(n2).slice(6, 8)), ["draining", "1", "0"]);
  assert.deepEqual(cells(n3).slice(3, 4).concat(cells(n3).slice(6)), [
    "serving",
    "0",
    "0",
    "0 B",
    "0 B",
  ]);
  assert.deepEqual(lineStarting(stdout, /^all /).split(/ +/), [
    "all",
    "2",
    "1",
    "3",
    "B",
    "3",
    "B",
  ]);
  // Columns line up: every row's STATE starts where the header's does.
  for (const node of [n1, n2, n3]) {
    assert.equal(row(node).indexOf(cells(node)[3] ?? "?"), header.indexOf("STATE"));
  }

  const sessionHeader = lineStarting(stdout, /^ +NODE +ID +STATE/);
  const liveRow = lineStarting(stdout, new RegExp(`^\\* +n1 +${live.id} `));
  const idleRow = lineStarting(stdout, new RegExp(`^ +n2 +${idle.id} `));
  assert.match(liveRow, /^\* +n1 +\S+ +attached +127\.0\.0\.1:\d+ +streaming /);
  assert.match(idleRow, /^ +n2 +\S+ +detached +- +- /);
  assert.equal(liveRow.indexOf("attached"), sessionHeader.indexOf("STATE"));
  assert.ok(live.id.startsWith("n1_") && idle.id.startsWith("n2_"), "ids name their node");
  assert.ok(
    stdout.indexOf("NODE  ADMIN") < stdout.indexOf(live.id),
    "the nodes come first, then the sessions",
  );
});

Deno.test("status --json with several --admin prints an array of the reports, in the order asked", async () => {
  await using destination = echoDestination();
  await using a = await startNode("a", destination.port);
  await using b = await startNode("b", destination.port);
  using client = await TestClient.connect(b.port);
  const session = await client.hello("NEW");
  const { code, stdout, stderr } = await runMain(
    ["status", `--admin=${b.admin}`, `--admin=${a.admin}`, "--json"],
  );
  assert.equal(code, 0, stderr);
  const reports = JSON.parse(stdout);
  assert.ok(Array.isArray(reports), stdout);
  assert.deepEqual(reports.map((report: { node: string }) => report.node), ["b", "a"]);
  assert.deepEqual(reports[0].sessions.map((entry: { id: string }) => entry.id), [session.id]);
  const direct = await (await fetch(`http://${a.admin}/status`)).json();
  assert.deepEqual(Object.keys(reports[1]), Object.keys(direct), "each report as the API sends it");
  // The environment's list is comma-separated, as every list setting's.
  const fromEnv = await runMain(["status", "--json"], {
    env: { SOCKETPROXY_STATUS_ADMIN: `${a.admin},${b.admin}` },
  });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.deepEqual(JSON.parse(fromEnv.stdout).map((report: { node: string }) => report.node), [
    "a",
    "b",
  ]);
});

Deno.test("a node that does not answer is one line; the others are still shown, and the exit status is 1", async () => {
  await using destination = echoDestination();
  await using up = await startNode("up", destination.port);
  using client = await TestClient.connect(up.port);
  const session = await client.hello("NEW");
  const down = `127.0.0.1:${closedPort()}`;
  const text = await runMain(["status", `--admin=${down}`, `--admin=${up.admin}`]);
  assert.equal(text.code, 1);
  assert.equal(text.stderr, "");
  const missing = text.stdout.split("\n").filter((line) => line.includes(down));
  assert.equal(missing.length, 1, text.stdout);
  assert.match(
    missing[0] ?? "",
    new RegExp(`^- +${down} +no socketproxy admin port answering on ${down}: connection refused$`),
  );
  assert.match(lineStarting(text.stdout, /^up /), /^up +127\.0\.0\.1:\d+ +\S+ +serving /);
  assert.match(text.stdout, new RegExp(`^\\* +up +${session.id} +attached `, "m"));
  assert.ok(!/^all /m.test(text.stdout), "no sum of one node");

  const json = await runMain(["status", `--admin=${up.admin}`, `--admin=${down}`, "--json"]);
  assert.equal(json.code, 1);
  assert.deepEqual(JSON.parse(json.stdout).map((report: { node: string }) => report.node), ["up"]);
  assert.equal(
    json.stderr.trim(),
    `socketproxy status: no socketproxy admin port answering on ${down}: connection refused`,
    "stdout stays JSON; who did not answer goes to stderr",
  );
});

Deno.test("no node answering: a line for each, exit status 1", async () => {
  const [first, second] = [`127.0.0.1:${closedPort()}`, `127.0.0.1:${closedPort()}`];
  const { code, stdout } = await runMain(["status", `--admin=${first}`, `--admin=${second}`]);
  assert.equal(code, 1);
  const lines = stdout.trimEnd().split("\n");
  assert.equal(lines.length, 3, stdout);
  assert.match(lines[0] ?? "", /^NODE +ADMIN/);
  assert.match(lines[1] ?? "", new RegExp(`^- +${first} +no socketproxy admin port answering`));
  assert.match(lines[2] ?? "", new RegExp(`^- +${second} +no socketproxy admin port answering`));
});

Deno.test("status --admin is a list: from flags, a comma-separated variable or a file's array; one default", () => {
  const where = (args: string[], env: Record<string, string> = {}) =>
    adminTargets(resolveSettings(STATUS_COMMAND, args, { env: environmentOf(env) }))
      .map((target) => target.where);
  assert.deepEqual(where([]), ["localhost:9010"]);
  assert.deepEqual(where(["--admin=10.0.0.5:9010"]), ["10.0.0.5:9010"]);
  assert.deepEqual(where(["--admin=10.0.0.5", "--admin=:9011"]), [
    "10.0.0.5:9010",
    "localhost:9011",
  ]);
  assert.deepEqual(where([], { SOCKETPROXY_STATUS_ADMIN: "a:9021, b:9022" }), ["a:9021", "b:9022"]);
  const file = Deno.makeTempFileSync({ suffix: ".json" });
  try {
    Deno.writeTextFileSync(file, JSON.stringify({ status: { admin: ["c:9023", "d:9024"] } }));
    assert.deepEqual(where([`--config=${file}`]), ["c:9023", "d:9024"]);
    assert.deepEqual(
      where([`--config=${file}`, "--admin=e:9025"]),
      ["e:9025"],
      "a flag replaces the list",
    );
  } finally {
    Deno.removeSync(file);
  }
  assert.throws(
    () => where(["--admin=a:9021", "--admin=off"]),
    /--admin=off: no admin port to ask/,
  );
});
