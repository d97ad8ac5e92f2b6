/**
 * The protocol's tables and the code agree: every error code, frame type
 * and end reason in docs/protocol.md and in the contract is one the code
 * has, and the code has no other. The contract is ../shared/PROTOCOL.md;
 * tests/contract/PROTOCOL.md is a copy of it, so that a clean checkout
 * (CI's) checks it too, and where the contract is beside this checkout
 * the copy must be it.
 */

import assert from "node:assert/strict";
import { END_REASONS, frameSize } from "../lib/frames.ts";
import { ProtocolError, protocolError } from "../lib/protocol.ts";

const DOCS = new URL("../docs/protocol.md", import.meta.url);
const CONTRACT = new URL("../../shared/PROTOCOL.md", import.meta.url);
const COPY = new URL("./contract/PROTOCOL.md", import.meta.url);
const contract = await Deno.readTextFile(CONTRACT).catch(() => null);

/** The first-column words of every table whose header's first cell is `header`. */
function firstColumn(markdown: string, header: string): string[] {
  const words: string[] = [];
  let inTable = false;
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) {
      inTable = false;
      continue;
    }
    const first = line.split("|")[1]?.trim() ?? "";
    if (first === header) {
      inTable = true;
      continue;
    }
    if (!inTable || /^-+$/.test(first)) continue;
    // `gap <lowest>` -> gap
    const word = /^`([^` ]+)/.exec(first)?.[1];
    if (word) words.push(word);
  }
  return words;
}

function check(markdown: string, where: string): void {
  const codes = firstColumn(markdown, "code");
  assert.ok(codes.length >= 9, `${where}: the error table`);
  for (const code of codes) {
    // protocolError builds the typed error of every code the parser knows.
    const error = protocolError(code as never, "text", code === "unknown-destination" ? "x" : 1);
    assert.ok(error instanceof ProtocolError && error.code === code, `${where}: ERR ${code}`);
  }
  assert.deepEqual(
    new Set(codes),
    new Set([
      "auth",
      "bad-request",
      "timeout",
      "unreachable",
      "busy",
      "untrusted",
      "unknown-destination",
      "gap",
      "ack",
    ]),
    `${where}: the error codes are the code's`,
  );
  const types = firstColumn(markdown, "type");
  assert.deepEqual(types.sort(), ["A", "C", "D", "E", "I"], `${where}: the frame types`);
  // frameSize knows each type's encoding.
  assert.ok(frameSize({ type: "C" }) === 5 && frameSize({ type: "A", offset: 1 }) === 13);
  const reasons = firstColumn(markdown, "reason");
  assert.deepEqual(reasons, [...END_REASONS], `${where}: the end reasons, in order`);
}

Deno.test("docs/protocol.md's error codes, frame types and end reasons are the code's", async () => {
  check(await Deno.readTextFile(DOCS), "docs/protocol.md");
});

Deno.test("the contract's error codes, frame types and end reasons are the code's", async () => {
  check(await Deno.readTextFile(COPY), "tests/contract/PROTOCOL.md");
});

Deno.test({
  name: contract
    ? "tests/contract/PROTOCOL.md is the contract, ../shared/PROTOCOL.md"
    : "tests/contract/PROTOCOL.md is the contract (skipped: ../shared/PROTOCOL.md is not beside this checkout)",
  ignore: contract === null,
  async fn() {
    assert.ok(
      (await Deno.readTextFile(COPY)) === contract,
      "the contract changed: copy ../shared/PROTOCOL.md to tests/contract/PROTOCOL.md, and follow it",
    );
  },
});
