/**
 * Brute force: wrong secrets are logged with the peer and counted; their
 * answers are held back, and attempts on a session that an address has
 * failed on wait before they are checked. Nothing is ever refused.
 */

import assert from "node:assert/strict";
import { AuthThrottle } from "../lib/throttle.ts";
import { echoDestination, startServer, TestClient } from "./_helpers.ts";

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

Deno.test("a failure on a real session also counts for that address and session", () => {
  const throttle = new AuthThrottle({ step: 100, max: 2000, now: () => 0 });
  throttle.failed("203.0.113.7", "sessionA");
  throttle.failed("203.0.113.7", "sessionA");
  throttle.failed("203.0.113.7"); // an unknown id: the address only
  assert.equal(throttle.delay("203.0.113.7"), 300, "every failure counts for the address");
  assert.equal(throttle.delay("203.0.113.7", "sessionA"), 200);
  assert.equal(throttle.delay("203.0.113.7", "sessionB"), 0, "other sessions are not slowed");
  assert.equal(throttle.delay("198.51.100.1", "sessionA"), 0, "nor other addresses");
});

Deno.test("a failure's answer is due a step after its address's delay, never before any wait", () => {
  const throttle = new AuthThrottle({ step: 100, max: 250, now: () => 0 });
  assert.equal(throttle.answerDelay("203.0.113.7"), 100, "a first failure is held a step");
  throttle.failed("203.0.113.7", "s");
  assert.equal(throttle.answerDelay("203.0.113.7"), 200);
  assert.ok(throttle.answerDelay("203.0.113.7") > throttle.delay("203.0.113.7", "s"));
  throttle.failed("203.0.113.7", "s");
  throttle.failed("203.0.113.7", "s");
  assert.equal(throttle.delay("203.0.113.7", "s"), 250, "capped");
  assert.equal(throttle.answerDelay("203.0.113.7"), 250, "capped, and never below the wait");
});

Deno.test("a failure's answer is timed from its start: an id's existence and other attempts do not show", async () => {
  await using destination = echoDestination();
  // Steps long enough that the made-up probe fails while the real one still waits.
  await using proxy = startServer(destination.port, { throttle: { step: 500, max: 5000 } });
  using owner = await TestClient.connect(proxy.port);
  const session = await owner.hello("NEW");
  owner.close();
  await proxy.logs.waitFor("session.detached");
  const wrong = "G".repeat(32);
  const failed = (count: number) =>
    proxy.logs.waitFor("auth.failed", () => proxy.logs.events("auth.failed").length === count);

  // One failure on the session: the address's next attempts on it wait before the check.
  using first = await TestClient.connect(proxy.port);
  await first.write(`RESUME ${session.id} ${wrong} 0\n`);
  await failed(1);
  // A probe on the real session and one on a made-up id start in the same state...
  using real = await TestClient.connect(proxy.port);
  await real.write(`RESUME ${session.id} ${wrong} 0\n`);
  await proxy.logs.waitFor("auth.waiting");
  using madeUp = await TestClient.connect(proxy.port);
  await madeUp.write(`RESUME ${"U".repeat(16)} ${wrong} 0\n`);
  await failed(2);
  // ...and more failures come from the address while the real probe still waits.
  const others: TestClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const other = await TestClient.connect(proxy.port);
      others.push(other);
      await other.write(`RESUME ${"V".repeat(16)}${i} ${wrong} 0\n`);
    }
    await failed(6);
    const [, madeUpFailure, ...rest] = proxy.logs.events("auth.failed");
    const realFailure = rest.find((record) => record.fields.id === session.id);
    assert.ok(madeUpFailure && realFailure);
    assert.equal(madeUpFailure.fields.id, undefined);
    // Both answers are due two steps from their start, whatever came meanwhile.
    assert.equal(realFailure.fields.answer_delay_ms, 1000);
    assert.equal(madeUpFailure.fields.answer_delay_ms, 1000);
    for (const client of [first, real, madeUp, ...others]) {
      assert.match(await client.readLine(), /^ERR auth /);
    }
  } finally {
    for (const other of others) other.close();
  }
});

Deno.test("after a wrong secret, only that session's attempts from that address wait", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { throttle: FOREVER });
  const sessions = [];
  for (let i = 0; i < 2; i++) {
    using owner = await TestClient.connect(proxy.port);
    sessions.push(await owner.hello("NEW"));
  }
  const [target, other] = sessions;
  assert.ok(target && other);
  await proxy.logs.waitFor(
    "session.detached",
    () => proxy.logs.events("session.detached").length === 2,
  );

  // A wrong secret, and an unknown id: both answers are held back.
  using guess = await TestClient.connect(proxy.port);
  await guess.write(`RESUME ${target.id} ${"G".repeat(32)} 0\n`);
  await proxy.logs.waitFor("auth.failed");
  using unknown = await TestClient.connect(proxy.port);
  await unknown.write(`RESUME ${"U".repeat(16)} ${"G".repeat(32)} 0\n`);
  await proxy.logs.waitFor("auth.failed", (fields) => fields.recent_failures === 2);
  const held = [guess.readToEnd(), unknown.readToEnd()];

  // The right secret for the guessed session, from the guesser's address,
  // waits before it is even checked: a guesser that gives up early learns nothing.
  using owner = await TestClient.connect(proxy.port);
  await owner.write(`RESUME ${target.id} ${target.secret} 0\n`);
  await proxy.logs.waitFor("auth.waiting", (fields) => fields.id === target.id);
  const waiting = watch(owner.readLine());

  // Another session from the same address, and NEW, are answered at once.
  using again = await TestClient.connect(proxy.port);
  assert.equal((await again.hello(`RESUME ${other.id} ${other.secret} 0`)).id, other.id);
  using fresh = await TestClient.connect(proxy.port);
  await fresh.hello("NEW");
  assert.equal(waiting.settled, false, "the guessed session's owner still waits");
  assert.equal(proxy.server.connections, 5, "two attached, two held, one waiting");

  // Stopping ends every wait at once: closed, with nothing learnt.
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
  assert.deepEqual(failures.map((record) => record.fields.answer_delay_ms), [20, 40, 60, 60, 60]);
  assert.ok(failures.every((record) => /^127\.0\.0\.1:\d+$/.test(String(record.fields.peer))));
  assert.equal(proxy.server.counters.authFailures, 5);
  // Not locked out: the right secret from the same address works, after a wait.
  using again = await TestClient.connect(proxy.port);
  const reply = await again.hello(`RESUME ${session.id} ${session.secret} 0`);
  assert.equal(reply.id, session.id);
  assert.deepEqual(proxy.logs.events("auth.waiting").map((record) => record.fields.wait_ms), [
    20,
    40,
    60,
    60,
    60,
  ], "the four later guesses, then the owner, waited before they were checked");
});
