import assert from "node:assert/strict";
import { newSecret, newSessionId, secretsEqual } from "../lib/proxy/credentials.ts";
import { parseHello } from "../lib/protocol.ts";

const URL_SAFE = /^[A-Za-z0-9_-]+$/;

/** Draws `count` values and asserts they are all different. */
function assertUnique(draw: () => string, count: number): void {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) seen.add(draw());
  assert.equal(seen.size, count);
}

Deno.test("newSessionId returns 16 characters of [A-Za-z0-9_-]", () => {
  for (let i = 0; i < 1000; i++) {
    const id = newSessionId();
    assert.equal(id.length, 16);
    assert.match(id, URL_SAFE);
  }
});

Deno.test("newSessionId never repeats over 1000 draws", () => {
  assertUnique(newSessionId, 1000);
});

Deno.test("newSecret returns 32 characters of [A-Za-z0-9_-]", () => {
  for (let i = 0; i < 1000; i++) {
    const secret = newSecret();
    assert.equal(secret.length, 32);
    assert.match(secret, URL_SAFE);
  }
});

Deno.test("newSecret fits the protocol's 22 to 64 character secrets", () => {
  const secret = newSecret();
  assert.ok(secret.length >= 22 && secret.length <= 64);
  assert.equal(parseHello(`CLOSE ${newSessionId()} ${secret}`).verb, "CLOSE");
});

Deno.test("newSecret never repeats over 1000 draws", () => {
  assertUnique(newSecret, 1000);
});

Deno.test("secretsEqual is true for equal secrets", () => {
  const secret = newSecret();
  assert.equal(secretsEqual(secret, secret), true);
  assert.equal(secretsEqual(secret, secret.slice()), true);
  assert.equal(secretsEqual("abc", "abc"), true);
});

Deno.test("secretsEqual is false when one character differs, wherever it is", () => {
  const secret = "0123456789abcdefghijklmnopqrstuv";
  for (const index of [0, 15, secret.length - 1]) {
    const other = secret.slice(0, index) + "_" + secret.slice(index + 1);
    assert.equal(other.length, secret.length);
    assert.equal(secretsEqual(secret, other), false, `differs at ${index}`);
    assert.equal(secretsEqual(other, secret), false, `differs at ${index}, swapped`);
  }
});

Deno.test("secretsEqual is false for secrets of different lengths", () => {
  const secret = newSecret();
  assert.equal(secretsEqual(secret, secret.slice(0, -1)), false);
  assert.equal(secretsEqual(secret.slice(0, -1), secret), false);
  assert.equal(secretsEqual(secret, secret + secret), false);
  assert.equal(secretsEqual("ab", "abab"), false);
});

Deno.test("secretsEqual treats the empty string as equal only to itself", () => {
  assert.equal(secretsEqual("", ""), true);
  assert.equal(secretsEqual("", "a"), false);
  assert.equal(secretsEqual("a", ""), false);
  assert.equal(secretsEqual(newSecret(), ""), false);
});

Deno.test("session ids never start with a dash, so they never read as options", () => {
  for (let i = 0; i < 2000; i++) assert.ok(!newSessionId().startsWith("-"));
});
