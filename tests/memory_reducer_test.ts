/**
 * A burst of sessions created or ended is followed by one memory-reducing
 * garbage collection, so that an idle server gives back what the burst
 * grew: once, a quiet while after the burst's last session, and never
 * again sooner than the least interval.
 */

import assert from "node:assert/strict";
import v8 from "node:v8";
import { ClientSession } from "../lib/client/mod.ts";
import { MemoryReducer, memoryReducingCollection } from "../lib/proxy/memory_reducer.ts";
import { echoDestination, startServer } from "./_helpers.ts";

/** The default collection, made once, as the server makes it. */
const defaultCollection = memoryReducingCollection();

/** A stand-in collection that counts, notes when it ran, and resolves `next` each time. */
function counting(): {
  collect: () => void;
  count: () => number;
  at: () => number;
  next: () => Promise<void>;
} {
  let count = 0;
  let at = NaN;
  let wake = Promise.withResolvers<void>();
  return {
    collect() {
      count++;
      at = performance.now();
      wake.resolve();
      wake = Promise.withResolvers<void>();
    },
    count: () => count,
    at: () => at,
    next: () => wake.promise,
  };
}

Deno.test("a burst of sessions changing is followed by one collection, none before it is enough", async () => {
  const stand = counting();
  using reducer = new MemoryReducer({
    afterChanges: 3,
    quietMs: 1,
    minIntervalMs: 0,
    collect: stand.collect,
  });
  reducer.sessionChanged();
  reducer.sessionChanged();
  assert.equal(reducer.dueAt, null, "two changes: none due");
  const collected = stand.next();
  for (let i = 0; i < 5; i++) reducer.sessionChanged();
  assert.notEqual(reducer.dueAt, null, "three changes: one due");
  await collected;
  assert.equal(stand.count(), 1, "the burst made one collection");
  assert.equal(reducer.dueAt, null);
  reducer.sessionChanged();
  assert.equal(reducer.dueAt, null, "the count starts again after a collection");
});

Deno.test("a session changing while a collection waits moves it on to a quiet while after", async () => {
  const stand = counting();
  using reducer = new MemoryReducer({
    afterChanges: 1,
    quietMs: 30,
    minIntervalMs: 0,
    collect: stand.collect,
  });
  const collected = stand.next();
  reducer.sessionChanged();
  const first = reducer.dueAt ?? NaN;
  await new Promise((resolve) => setTimeout(resolve, 10));
  reducer.sessionChanged();
  const moved = reducer.dueAt ?? NaN;
  assert.ok(moved > first, `due at ${moved}, was ${first}`);
  await collected;
  assert.ok(stand.at() >= moved, `collected at ${stand.at()}, due at ${moved}`);
  assert.equal(stand.count(), 1);
});

Deno.test("a collection is due no sooner than the least interval after the one before", async () => {
  const stand = counting();
  using reducer = new MemoryReducer({
    afterChanges: 1,
    quietMs: 1,
    minIntervalMs: 60_000,
    collect: stand.collect,
  });
  const first = stand.next();
  reducer.sessionChanged();
  await first;
  const collectedAt = performance.now();
  reducer.sessionChanged();
  assert.ok((reducer.dueAt ?? 0) >= collectedAt + 59_000, `due at ${reducer.dueAt}`);
  assert.equal(stand.count(), 1);
});

Deno.test("once disposed, sessions changing arm no collection (the test's timer check fails if one does)", () => {
  const stand = counting();
  const reducer = new MemoryReducer({
    afterChanges: 1,
    quietMs: 60_000,
    minIntervalMs: 0,
    collect: stand.collect,
  });
  reducer[Symbol.dispose]();
  // Sessions that end after the server stopped still report it.
  for (let i = 0; i < 3; i++) reducer.sessionChanged();
  assert.equal(reducer.dueAt, null, "nothing is due");
  assert.equal(stand.count(), 0);
});

Deno.test("the default collection collects: an object only a WeakRef holds is gone", async () => {
  const collect = defaultCollection;
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

Deno.test("the default collection shrinks the young generation a burst grew", () => {
  const collect = defaultCollection;
  assert.ok(collect, "the runtime gives a full collection");
  const youngMiB = () =>
    (v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.space_size ??
      NaN) / 2 ** 20;
  // Many objects that survive young collections (as sessions created at
  // full speed do) grow the young generation.
  let kept: object[] | null = [];
  for (let i = 0; i < 2_000_000; i++) kept.push({ i });
  const grown = youngMiB();
  assert.ok(grown >= 8, `the young generation grew to ${grown} MiB`);
  kept = null;
  collect();
  const after = youngMiB();
  assert.ok(after <= 2, `the young generation is ${after} MiB after the collection`);
});

Deno.test("the server counts sessions created, and ended, towards a collection", async () => {
  await using destination = echoDestination();
  const stand = counting();
  await using server = startServer(destination.port, {
    memoryReducer: { afterChanges: 2, quietMs: 1, minIntervalMs: 0, collect: stand.collect },
  });
  const proxy = { hostname: "127.0.0.1", port: server.port };
  const created = stand.next();
  const sessions = [await ClientSession.create({ proxy }), await ClientSession.create({ proxy })];
  await created;
  assert.equal(stand.count(), 1, "two sessions created: one collection");
  const ended = stand.next();
  for (const session of sessions) await session.close();
  await ended;
  assert.equal(stand.count(), 2, "the two ended: another");
});
