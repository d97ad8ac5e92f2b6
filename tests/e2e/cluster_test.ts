/**
 * The gateway as router at scale (`deno task e2e`; the short versions are
 * tests/cluster_test.ts): three `server --node` processes, two gateways
 * and Debian's nginx. 3 000 sessions through nginx spread within 10% of
 * evenly and each served by whichever gateway its next request reaches;
 * a gateway killed under 20 WebSocket streams loses and repeats nothing;
 * a drained node takes no new session while all its own keep working; a
 * killed node's sessions all get the 502 `node_unavailable`, and every
 * other session is untouched.
 */

import assert from "node:assert/strict";
import { encoder } from "../_helpers.ts";
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
} from "../_cluster.ts";

const SESSIONS = 3000;
const PARALLEL = 50;
const PAGES = 20;
const LINES = 200;

Deno.test({
  name: `${SESSIONS} sessions over three nodes and two gateways behind nginx${SKIP_CLUSTER}`,
  ignore: SKIP_CLUSTER !== "",
  async fn(t) {
    await using cluster = await startCluster({ workerConnections: 4096 });
    const [a, b] = cluster.gateways;
    const [n1, , n3] = cluster.nodes;
    assert.ok(a && b && n1 && n3);
    let sessions: Created[] = [];
    const acks = new Map<string, number>();

    await t.step(`${SESSIONS} sessions through nginx spread within 10% of evenly`, async () => {
      sessions = await inBatches(SESSIONS, PARALLEL, () => create(cluster.base));
      const counts = spread(sessions.map((session) => session.id));
      assert.deepEqual([...counts.keys()].sort(), ["n1", "n2", "n3"]);
      for (const [node, count] of counts) {
        assert.ok(Math.abs(count - SESSIONS / 3) <= SESSIONS / 30, `${node}: ${count}`);
      }
    });

    await t.step("each served through nginx, and through each gateway by name", async () => {
      await inBatches(sessions.length, PARALLEL, async (i) => {
        const session = sessions[i] ?? assert.fail();
        const [input, output] = i % 2 === 0 ? [a.url, cluster.base] : [cluster.base, b.url];
        acks.set(session.id, await echo(session, `session ${i}\n`, input, output, 0));
      });
    });

    await t.step(
      `a gateway killed under ${PAGES} WebSocket streams: nothing lost or repeated`,
      async () => {
        const pages = Array.from({ length: PAGES }, () => new Page(cluster.base));
        try {
          for (const page of pages) {
            await page.session.start();
            await page.until(() => page.statuses.includes("connected"), "the WebSocket attached");
          }
          const open = [await openWebSockets(a), await openWebSockets(b)];
          assert.equal((open[0] ?? 0) + (open[1] ?? 0), PAGES, `open: ${open}`);
          const victim = (open[0] ?? 0) >= (open[1] ?? 0) ? a : b;
          const lines = (page: number, from: number, to: number) =>
            Array.from({ length: to - from }, (_, i) => `page ${page} line ${from + i}\n`).join("");
          const half = LINES / 2;
          pages.forEach((page, i) => page.session.send(encoder.encode(lines(i, 0, half))));
          await Promise.all(
            pages.map((page) => page.until(() => page.output.length > 0, "output")),
          );
          await victim.process.stop("SIGKILL");
          pages.forEach((page, i) => page.session.send(encoder.encode(lines(i, half, LINES))));
          await Promise.all(pages.map((page, i) =>
            page.until(
              () => page.output.length >= lines(i, 0, LINES).length,
              `page ${i}'s ${LINES} lines back (have ${page.output.length})`,
            )
          ));
          pages.forEach((page, i) => assert.equal(page.output, lines(i, 0, LINES), `page ${i}`));
          assert.ok(pages.some((page) => page.statuses.includes("reconnecting")));
        } finally {
          for (const page of pages) {
            page.session.stop();
            await page.session.stopped();
          }
        }
      },
    );

    await t.step(
      "draining n1: 300 new sessions on n2 and n3; every n1 session keeps working",
      async () => {
        const drain = await fetch(`http://127.0.0.1:${n1.adminPort}/drain`, { method: "POST" });
        assert.equal(drain.status, 202, await drain.text());
        const after = await inBatches(300, PARALLEL, () => create(cluster.base));
        const counts = spread(after.map((session) => session.id));
        assert.equal(counts.get("n1"), undefined);
        for (const node of ["n2", "n3"]) {
          assert.ok(Math.abs((counts.get(node) ?? 0) - 150) <= 15, `${node}: ${counts.get(node)}`);
        }
        const onN1 = sessions.filter((session) => nodeOfId(session.id) === "n1");
        await inBatches(onN1.length, PARALLEL, async (i) => {
          const session = onN1[i] ?? assert.fail();
          const ack = acks.get(session.id) ?? 0;
          acks.set(session.id, await echo(session, "drained\n", cluster.base, cluster.base, ack));
        });
      },
    );

    await t.step(
      "killing n3: every n3 session gets the 502 node_unavailable, every other is served",
      async () => {
        await n3.process.stop("SIGKILL");
        const answers = await inBatches(sessions.length, PARALLEL, async (i) => {
          const session = sessions[i] ?? assert.fail();
          if (nodeOfId(session.id) !== "n3") {
            const ack = acks.get(session.id) ?? 0;
            await echo(session, "after\n", cluster.base, cluster.base, ack);
            return "served";
          }
          const answer = await api(cluster.base, `api/sessions/${session.id}/poll`, {
            secret: session.secret,
            ack: acks.get(session.id) ?? 0,
          });
          assert.equal(answer.status, 502, JSON.stringify(answer.body));
          assert.deepEqual([answer.body.error, answer.body.node], ["node_unavailable", "n3"]);
          return "502";
        });
        const onN3 = sessions.filter((session) => nodeOfId(session.id) === "n3").length;
        assert.equal(answers.filter((answer) => answer === "502").length, onN3);
        assert.equal(answers.filter((answer) => answer === "served").length, SESSIONS - onN3);
      },
    );
  },
});
