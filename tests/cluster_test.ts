/**
 * The gateway as router, for real (short versions; the long ones are in
 * tests/e2e/cluster_test.ts): three `server --node` processes, two `web
 * --proxy=NAME=...` gateways in front of all three, and Debian's nginx in
 * front of both gateways. Sessions made through either gateway are served
 * through the other; a gateway killed in the middle of a WebSocket stream
 * loses and repeats nothing; a drained node gets no new session and keeps
 * serving its own; a killed node's sessions get the 502 `node_unavailable`
 * and the others' are untouched.
 */

import assert from "node:assert/strict";
import { encoder } from "./_helpers.ts";
import {
  api,
  create,
  type Created,
  echo,
  inBatches,
  nodeOfId,
  openWebSockets,
  Page,
  SKIP_CLUSTER,
  spread,
  startCluster,
} from "./_cluster.ts";

const SESSIONS = 60;

Deno.test({
  name:
    `through two gateways and nginx: served by either, a gateway killed mid-stream loses nothing${SKIP_CLUSTER}`,
  ignore: SKIP_CLUSTER !== "",
  async fn(t) {
    await using cluster = await startCluster();
    const [a, b] = cluster.gateways;
    assert.ok(a && b);

    await t.step(
      `${SESSIONS} sessions made through either gateway, served through the other and nginx`,
      async () => {
        const sessions = await inBatches(
          SESSIONS,
          10,
          (i) => create(i % 2 === 0 ? a.url : b.url).then((session) => ({ session, made: i % 2 })),
        );
        const counts = spread(sessions.map(({ session }) => session.id));
        assert.deepEqual([...counts.keys()].sort(), ["n1", "n2", "n3"]);
        for (const [node, count] of counts) {
          assert.ok(Math.abs(count - SESSIONS / 3) <= SESSIONS / 30, `${node}: ${count}`);
        }
        await inBatches(sessions.length, 10, async (i) => {
          const { session, made } = sessions[i] ?? assert.fail();
          const other = made === 0 ? b.url : a.url;
          const ack = await echo(session, `hello ${i}\n`, other, cluster.base, 0);
          // And once more the other way round, nginx choosing for the input.
          await echo(session, `again ${i}\n`, cluster.base, made === 0 ? a.url : b.url, ack);
        });
        // Ended through nginx, whichever gateway takes it.
        for (const { session } of sessions.slice(0, 6)) {
          const ended = await api(cluster.base, `api/sessions/${session.id}`, {
            secret: session.secret,
          }, "DELETE");
          assert.equal(ended.status, 200, JSON.stringify(ended.body));
        }
      },
    );

    await t.step(
      "a gateway killed in the middle of WebSocket streams: the pages reconnect through nginx to the other, nothing lost or repeated",
      async () => {
        const pages = Array.from({ length: 4 }, () => new Page(cluster.base));
        try {
          for (const page of pages) {
            await page.session.start();
            const id = page.session.current?.id ?? "";
            assert.match(id, /^n\d_/);
            await page.until(() => page.statuses.includes("connected"), "the WebSocket attached");
          }
          // nginx spreads the sockets over both gateways: kill the one holding more.
          const open = [await openWebSockets(a), await openWebSockets(b)];
          assert.equal((open[0] ?? 0) + (open[1] ?? 0), pages.length, `open: ${open}`);
          const victim = (open[0] ?? 0) >= (open[1] ?? 0) ? a : b;
          const lines = (page: number, from: number, to: number) =>
            Array.from({ length: to - from }, (_, i) => `page ${page} line ${from + i}\n`).join("");
          pages.forEach((page, i) => page.session.send(encoder.encode(lines(i, 0, 50))));
          await Promise.all(
            pages.map((page) => page.until(() => page.output.length > 0, "output")),
          );
          await victim.process.stop("SIGKILL");
          pages.forEach((page, i) => page.session.send(encoder.encode(lines(i, 50, 100))));
          await Promise.all(pages.map((page, i) => {
            const expected = lines(i, 0, 100);
            return page.until(
              () => page.output.length >= expected.length,
              `page ${i}'s 100 lines back (have ${page.output.length})`,
            );
          }));
          pages.forEach((page, i) => assert.equal(page.output, lines(i, 0, 100), `page ${i}`));
          assert.ok(
            pages.some((page) => page.statuses.includes("reconnecting")),
            "the killed gateway's pages reconnected",
          );
        } finally {
          for (const page of pages) {
            page.session.stop();
            await page.session.stopped();
          }
        }
      },
    );
  },
});

Deno.test({
  name:
    `a drained node takes no new session but serves its own; a killed node's sessions get the 502, the rest go on${SKIP_CLUSTER}`,
  ignore: SKIP_CLUSTER !== "",
  async fn(t) {
    await using cluster = await startCluster();
    const [n1, , n3] = cluster.nodes;
    assert.ok(n1 && n3);
    const before = await inBatches(12, 6, () => create(cluster.base));
    assert.equal(spread(before.map((session) => session.id)).size, 3, "every node has some");
    const acks = new Map<string, number>();
    const check = async (session: Created, text: string) => {
      acks.set(
        session.id,
        await echo(session, text, cluster.base, cluster.base, acks.get(session.id) ?? 0),
      );
    };

    await t.step("draining n1: NEW goes to n2 and n3; n1's sessions keep working", async () => {
      const drain = await fetch(`http://127.0.0.1:${n1.adminPort}/drain`, { method: "POST" });
      assert.equal(drain.status, 202, await drain.text());
      const after = await inBatches(12, 6, () => create(cluster.base));
      const counts = spread(after.map((session) => session.id));
      assert.equal(counts.get("n1"), undefined, "no new session on a draining node");
      assert.ok((counts.get("n2") ?? 0) > 0 && (counts.get("n3") ?? 0) > 0, `${[...counts]}`);
      for (const session of before) await check(session, `still here ${session.id}\n`);
      // Each gateway asked n1 at least once and was told busy.
      let busy = 0;
      for (const gateway of cluster.gateways) {
        const text = await (await fetch(`${gateway.metricsUrl}/metrics`)).text();
        busy += Number(
          /^socketproxy_web_new_sessions_total\{node="n1",outcome="busy"\} (\d+)$/m.exec(text)
            ?.[1] ?? 0,
        );
      }
      assert.ok(busy >= 1, "NEW moved on past the draining node");
    });

    await t.step(
      "killing n3: its sessions get 502 node_unavailable, n1's and n2's are untouched, NEW goes to n2",
      async () => {
        await n3.process.stop("SIGKILL");
        for (const session of before) {
          if (nodeOfId(session.id) !== "n3") {
            await check(session, `after the kill ${session.id}\n`);
            continue;
          }
          const answer = await api(cluster.base, `api/sessions/${session.id}/poll`, {
            secret: session.secret,
            ack: acks.get(session.id) ?? 0,
          });
          assert.equal(answer.status, 502, JSON.stringify(answer.body));
          assert.equal(answer.body.error, "node_unavailable");
          assert.equal(answer.body.node, "n3");
        }
        const after = await inBatches(6, 3, () => create(cluster.base));
        assert.deepEqual([...spread(after.map((session) => session.id)).keys()], ["n2"]);
      },
    );
  },
});
