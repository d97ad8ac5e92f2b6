/**
 * Many ended sessions are followed by one garbage collection, so that an
 * idle server reuses their memory: once, a quiet while after the burst,
 * and never again sooner than the least interval.
 */

import assert from "node:assert/strict";
import { ClientSession } from "../lib/client/mod.ts";
import { EndedSessionsCollector, fullCollection } from "../lib/proxy/ended_sessions_collector.ts";
import { echoDestination, startServer } from "./_helpers.ts";

/** A stand-in collection that counts, and resolves `next` each time. */
function counting(): { collect: () => void; count: () => number; next: () => Promise<void> } {
  let count = 0;
  let wake = Promise.withResolvers<void>();
  return {
    collect() {
      count++;
      wake.resolve();
      wake = Promise.withResolvers<void>();
    },
    count: () => count,
    next: () => wake.promise,
  };
}

Deno.test("a burst of ended sessions is followed by one collection, none before it is enough", async () => {
  const stand = counting();
  using collector = new EndedSessionsCollector({
    afterEnded: 3,
    quietMs: 1,
    minIntervalMs: 0,
    collect: stand.collect,
  });
  collector.sessionEnded();
  collector.sessionEnded();
  assert.equal(collector.dueAt, null, "two ended: none due");
  const collected = stand.next();
  for (let i = 0; i < 5; i++) collector.sessionEnded();
  assert.notEqual(collector.dueAt, null, "three ended: one due");
  await collected;
  assert.equal(stand.count(), 1, "the burst made one collection");
  assert.equal(collector.dueAt, null);
  collector.sessionEnded();
  assert.equal(collector.dueAt, null, "the count starts again after a collection");
});

Deno.test("a collection is due no sooner than the least interval after the one before", async () => {
  const stand = counting();
  using collector = new EndedSessionsCollector({
    afterEnded: 1,
    quietMs: 1,
    minIntervalMs: 60_000,
    collect: stand.collect,
  });
  const first = stand.next();
  collector.sessionEnded();
  await first;
  const collectedAt = performance.now();
  collector.sessionEnded();
  assert.ok((collector.dueAt ?? 0) >= collectedAt + 59_000, `due at ${collector.dueAt}`);
  assert.equal(stand.count(), 1);
});

Deno.test("the default collection collects: an object only a WeakRef holds is gone", async () => {
  const collect = fullCollection();
  assert.ok(collect, "the runtime gives a full collection");
  let held: object | null = { big: new Uint8Array(1024) };
  const ref = new WeakRef(held);
  held = null;
  // A WeakRef keeps its target until the job that made it is over.
  await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
  collect();
  assert.equal(ref.deref(), undefined);
});

Deno.test("the server counts ended sessions towards a collection", async () => {
  await using destination = echoDestination();
  const stand = counting();
  await using server = startServer(destination.port, {
    collector: { afterEnded: 3, quietMs: 1, minIntervalMs: 0, collect: stand.collect },
  });
  const proxy = { hostname: "127.0.0.1", port: server.port };
  const collected = stand.next();
  for (let i = 0; i < 3; i++) {
    const session = await ClientSession.create({ proxy });
    await session.close();
  }
  await collected;
  assert.equal(stand.count(), 1);
});
