/**
 * Brute force: wrong secrets are logged with the peer, counted, and slow
 * their sender down, without locking anyone out.
 */

import assert from "node:assert/strict";
import { AuthThrottle } from "../lib/throttle.ts";
import { echoDestination, startServer, TestClient } from "./_helpers.ts";

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

Deno.test("wrong secrets are logged, counted and slowed; the owner still gets in", async () => {
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
  // Not locked out: the right secret from the same address works, after the capped wait.
  using again = await TestClient.connect(proxy.port);
  const reply = await again.hello(`RESUME ${session.id} ${session.secret} 0`);
  assert.equal(reply.id, session.id);
});

Deno.test("wrong secrets from a --gateways address are logged and counted, not slowed", async () => {
  await using destination = echoDestination();
  // A step so long that a single wait would outlast the test.
  await using proxy = startServer(destination.port, {
    gateways: ["127.0.0.1"],
    throttle: { step: 60_000, max: 60_000 },
  });
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
