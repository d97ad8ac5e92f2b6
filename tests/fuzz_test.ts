/**
 * Short fuzz runs in the regular suite: seeded inputs to the hello parser
 * (`_fuzz_hello.ts`), the admin API (`_fuzz_admin.ts`) and the gateway in
 * front of a stub proxy (`_fuzz_gateway.ts`), a few seconds in all; the
 * test sanitizers check for leaked resources. `FUZZ_SEED=n` replays another
 * run; `deno task fuzz` runs longer and watches the heap and open files
 * itself (see `_fuzz.ts`).
 */

import assert from "node:assert/strict";
import {
  escapeInput,
  Fuzzer,
  FuzzError,
  LeakWatch,
  openFiles,
  parseSeed,
  toRequest,
} from "./_fuzz.ts";
import { fuzzAdmin } from "./_fuzz_admin.ts";
import { fuzzGateway, GATEWAY_CORPUS } from "./_fuzz_gateway.ts";
import { fuzzHello } from "./_fuzz_hello.ts";

const seedText = Deno.env.get("FUZZ_SEED");
const SEED = seedText === undefined ? undefined : parseSeed(seedText);

Deno.test("fuzzed hellos parse as well-formed hellos or fail with bad-request, read whole", async () => {
  const report = await fuzzHello(20_000, SEED ?? 20261125);
  assert.equal(report.inputs, 20_000);
  // The corpus keeps enough inputs valid to reach every verb.
  for (const outcome of ["NEW", "RESUME", "CLOSE", "bad-request", "overlong", "peer gone"]) {
    assert.ok((report.outcomes[outcome] ?? 0) > 0, `no input ended as ${outcome}`);
  }
});

Deno.test("the admin API answers fuzzed requests with the right status, JSON errors, no secret", async () => {
  const report = await fuzzAdmin(5_000, SEED ?? 7001);
  for (const status of ["200", "400", "401", "404", "405", "503"]) {
    assert.ok((report.outcomes[status] ?? 0) > 0, `no request answered ${status}`);
  }
});

Deno.test("the gateway answers fuzzed requests and proxy replies with the right status and body", async () => {
  const report = await fuzzGateway(5_000, SEED ?? 7002);
  // The stub proxy's answers reach every status of the API table.
  for (const status of ["200", "201", "400", "401", "404", "405", "409", "413", "502", "503"]) {
    assert.ok((report.outcomes[status] ?? 0) > 0, `no request answered ${status}`);
  }
});

Deno.test("the leak watch fails a run that keeps memory or a file open per input", () => {
  const run = (leak: (i: number) => void) => {
    const watch = new LeakWatch(1_000, { every: 100, bound: 256 * 1024 });
    for (let done = 1; done <= 1_000; done++) {
      leak(done);
      if (done % watch.every === 0) watch.at(done);
    }
    return watch.verdict();
  };
  const clean = run(() => {});
  assert.equal(clean.problem, null, clean.summary);
  assert.match(clean.summary, /heap .* after warm-up/);

  const kept: number[][] = [];
  const memory = run(() => kept.push(new Array(200).fill(1)));
  assert.match(memory.problem ?? "", /the heap grew by .* after warm-up, over the bound/);

  const files: Deno.FsFile[] = [];
  try {
    const opened = run((i) => {
      if (i > 500 && i % 100 === 0) files.push(Deno.openSync(Deno.execPath()));
    });
    if (openFiles() !== null) assert.match(opened.problem ?? "", /more files open/);
  } finally {
    for (const file of files) file.close();
  }
});

Deno.test("fuzz inputs are reproducible from the seed and input number alone", () => {
  const draw = (seed: number, index: number) => {
    const fuzzer = Fuzzer.forInput(seed, index);
    const request = fuzzer.mutateRequest(fuzzer.pick(GATEWAY_CORPUS), GATEWAY_CORPUS);
    return JSON.stringify({ ...request, body: request.body && Array.from(request.body) });
  };
  assert.equal(draw(1, 17), draw(1, 17));
  assert.notEqual(draw(1, 17), draw(1, 18));
  assert.notEqual(draw(1, 17), draw(2, 17));
});

Deno.test("a failing input is reported with its seed, escaped, and a replay command", () => {
  const error = new FuzzError({
    target: "admin",
    seed: 42,
    first: 0,
    inputs: 10,
    skipped: 1,
    failures: 1,
    examples: [{ index: 7, input: escapeInput("GET /\r\n\0\xff"), problem: "status 500" }],
    outcomes: {},
    elapsedMs: 1,
  });
  assert.match(error.message, /1 of 10 inputs failed \(seed 42\)/);
  assert.ok(error.message.includes(String.raw`"GET /\r\n\0\xff"`), error.message);
  assert.ok(error.message.includes("--only=admin --seed=42 --first=7 --count=1"), error.message);
});

Deno.test("a request the Fetch API refuses is skipped, not fed to a handler", () => {
  const bad = { method: "GET", path: "/", headers: [["x", "a\r\nb"]] as [string, string][] };
  assert.equal(toRequest({ ...bad, body: null }, "http://gateway.test"), null);
  assert.equal(
    toRequest({ ...bad, method: "G ET", headers: [], body: null }, "http://x.test"),
    null,
  );
  assert.ok(toRequest({ ...bad, headers: [], body: new Uint8Array(3) }, "http://x.test"));
});
