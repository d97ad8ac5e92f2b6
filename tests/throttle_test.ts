/**
 * Brute force: wrong secrets are logged with the peer, counted, and their
 * answers held back, while the right secret is answered at once.
 */

import assert from "node:assert/strict";
import { AuthThrottle } from "../lib/throttle.ts";
import { echoDestination, startServer, TestClient, WAIT_MS, withDeadline } from "./_helpers.ts";

/** A step so long that only a stop can end a wait within the test. */
const FOREVER = { step: 60_000, max: 60_000 };

/** Tells whether `promise` has settled, without waiting for it. */
function watch(promise: Promise<unknown>): { settled: boolean } {
  const state = { settled: false };
  promise.finally(() => state.settled = true).catch(() => {});
  return state;
}

Deno.test("each recent failure from an address adds a step of delay, up to the cap", () => {
  const throttle = new AuthThrottle({ step: 100, max: 350, now: () => 0 });
  assert.equal(throttle.delay("203.0.113.7"), 0);
  assert.equal(throttle.failed("203.0.113.7"), 1);
  assert.equal(throttle.delay("203.0.113.7"), 100);
  throttle.failed("203.0.113.7");
  throttle.failed("203.0.113.7");
  assert.equal(throttle.delay("203.0.113.7"), 300);
  throttle.failed("203.0.113.7");
  assert.equal(throttle.delay("203.0.113.7"), 350, "capped");
});

Deno.test("other addresses are not slowed down", () => {
  const throttle = new AuthThrottle({ now: () => 0 });
  for (let i = 0; i < 50; i++) throttle.failed("203.0.113.7");
  assert.equal(throttle.delay("198.51.100.1"), 0);
  assert.equal(throttle.delay("::1"), 0);
});

Deno.test("exempt addresses (web gateways) are counted but never slowed", () => {
  const throttle = new AuthThrottle({ now: () => 0, exempt: ["127.0.0.1", "2001:DB8::5"] });
  for (let i = 0; i < 5; i++) throttle.failed("127.0.0.1");
  assert.equal(throttle.failed("127.0.0.1"), 6, "still counted, for the log");
  assert.equal(throttle.delay("127.0.0.1"), 0);
  throttle.failed("::ffff:127.0.0.1");
  assert.equal(throttle.delay("::ffff:127.0.0.1"), 0, "the same address, IPv4-mapped");
  throttle.failed("2001:db8::5");
  assert.equal(throttle.delay("2001:db8::5"), 0, "IPv6, whatever its case");
  throttle.failed("127.0.0.2");
  assert.equal(throttle.delay("127.0.0.2"), 100, "only the addresses named");
});

Deno.test("failures are forgotten after a quiet period", () => {
  let now = 0;
  const throttle = new AuthThrottle({ forgetAfter: 60_000, now: () => now });
  throttle.failed("203.0.113.7");
  throttle.failed("203.0.113.7");
  now = 59_000;
  assert.equal(throttle.delay("203.0.113.7"), 200);
  now = 119_001;
  assert.equal(throttle.delay("203.0.113.7"), 0);
  assert.equal(throttle.failed("203.0.113.7"), 1, "counting starts again");
});

Deno.test("the throttle remembers a bounded number of addresses", () => {
  const throttle = new AuthThrottle({ capacity: 3, now: () => 0 });
  for (const address of ["a", "b", "c", "d"]) throttle.failed(address);
  assert.equal(throttle.delay("a"), 0, "the least recent was dropped");
  assert.equal(throttle.delay("d"), 100);
});

Deno.test("a failure's answer is held for its address's delay, at most maxHeld at once", async () => {
  const stop = new AbortController();
  const throttle = new AuthThrottle({ ...FOREVER, maxHeld: 2 });
  await withDeadline(throttle.hold("203.0.113.7", stop.signal), WAIT_MS, "no failures, no wait");
  throttle.failed("203.0.113.7");
  const held = [
    throttle.hold("203.0.113.7", stop.signal),
    throttle.hold("203.0.113.7", stop.signal),
  ];
  const watched = held.map(watch);
  await withDeadline(throttle.hold("203.0.113.7", stop.signal), WAIT_MS, "a third, over maxHeld");
  await withDeadline(throttle.hold("198.51.100.1", stop.signal), WAIT_MS, "another address");
  assert.deepEqual(watched.map((state) => state.settled), [false, false], "both still held");
  stop.abort();
  await withDeadline(Promise.all(held), WAIT_MS, "held answers, at the stop");
  // Released: the address may hold answers again.
  const again = new AbortController();
  const third = watch(throttle.hold("203.0.113.7", again.signal));
  await withDeadline(throttle.hold("198.51.100.1", again.signal), WAIT_MS, "another address");
  assert.equal(third.settled, false, "held again after the stop released the others");
  again.abort();
});

Deno.test("a wrong secret's ERR auth is held; the right one and NEW from its address are not", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { throttle: FOREVER });
  using owner = await TestClient.connect(proxy.port);
  const session = await owner.hello("NEW");
  owner.close();
  await proxy.logs.waitFor("session.detached");
  using resume = await TestClient.connect(proxy.port);
  await resume.write(`RESUME ${session.id} ${"G".repeat(32)} 0\n`);
  await proxy.logs.waitFor("auth.failed");
  using close = await TestClient.connect(proxy.port);
  await close.write(`CLOSE ${session.id} ${"G".repeat(32)}\n`);
  await proxy.logs.waitFor("auth.failed", (fields) => fields.recent_failures === 2);
  const held = [resume.readToEnd(), close.readToEnd()];

  // The owner, on the guesser's address, is answered at once: a held answer takes 60 s.
  using again = await TestClient.connect(proxy.port);
  assert.equal((await again.hello(`RESUME ${session.id} ${session.secret} 0`)).id, session.id);
  using fresh = await TestClient.connect(proxy.port);
  await fresh.hello("NEW");
  assert.equal(proxy.server.connections, 4, "two attached, two held");

  // Stopping ends the held answers at once: closed, with nothing learnt.
  await proxy.server.close();
  assert.deepEqual((await Promise.all(held)).map((bytes) => bytes.length), [0, 0]);
  assert.equal(proxy.server.connections, 0);
  assert.equal(proxy.server.counters.authFailures, 2);
});

Deno.test("wrong secrets are logged and counted; the owner still gets in", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { throttle: { step: 20, max: 60 } });
  using owner = await TestClient.connect(proxy.port);
  const session = await owner.hello("NEW");
  owner.close();
  for (let i = 0; i < 5; i++) {
    using guess = await TestClient.connect(proxy.port);
    await guess.write(`RESUME ${session.id} ${"G".repeat(32)} 0\n`);
    assert.match(await guess.readLine(), /^ERR auth /);
  }
  const failures = proxy.logs.events("auth.failed");
  assert.equal(failures.length, 5);
  assert.deepEqual(failures.map((record) => record.fields.next_delay_ms), [20, 40, 60, 60, 60]);
  assert.ok(failures.every((record) => /^127\.0\.0\.1:\d+$/.test(String(record.fields.peer))));
  assert.equal(proxy.server.counters.authFailures, 5);
  // Not locked out: the right secret from the same address works.
  using again = await TestClient.connect(proxy.port);
  const reply = await again.hello(`RESUME ${session.id} ${session.secret} 0`);
  assert.equal(reply.id, session.id);
});

Deno.test("wrong secrets from a --gateways address are logged and counted, not slowed", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { gateways: ["127.0.0.1"], throttle: FOREVER });
  using owner = await TestClient.connect(proxy.port);
  const session = await owner.hello("NEW");
  owner.close();
  for (let i = 0; i < 3; i++) {
    using guess = await TestClient.connect(proxy.port);
    await guess.write(`RESUME ${session.id} ${"G".repeat(32)} 0\n`);
    assert.match(await guess.readLine(), /^ERR auth /);
  }
  const failures = proxy.logs.events("auth.failed");
  assert.deepEqual(failures.map((record) => record.fields.recent_failures), [1, 2, 3]);
  assert.deepEqual(failures.map((record) => record.fields.next_delay_ms), [0, 0, 0]);
  assert.equal(proxy.server.counters.authFailures, 3);
  using again = await TestClient.connect(proxy.port);
  assert.equal((await again.hello(`RESUME ${session.id} ${session.secret} 0`)).id, session.id);
});
