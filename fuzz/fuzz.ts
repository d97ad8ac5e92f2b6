/**
 * `deno task fuzz`: the long fuzz run. Feeds seeded inputs to each target
 * (`tests/_fuzz_hello.ts`: the hello parser and `readHello`;
 * `tests/_fuzz_admin.ts`: the admin API handler; `tests/_fuzz_gateway.ts`:
 * the gateway handler in front of a stub proxy) and prints, per target,
 * the inputs, the skipped ones, the failures and the time. Each target
 * keeps one handler for the whole run; every so many inputs the heap is
 * sampled after a garbage collection and open files are counted, and
 * neither may grow after a warm-up (see `LeakWatch` in `tests/_fuzz.ts`),
 * nor may a file stay open after the run. Exits with 1 on any failing
 * input or leak, printing the failing inputs and how to replay each.
 * `tests/fuzz_test.ts` runs the same targets briefly in the regular suite,
 * where the test sanitizers check for leaked resources.
 *
 *     deno task fuzz                        # a new seed, 100 000 inputs per target
 *     deno task fuzz --seed=1234            # the same run again
 *     deno task fuzz --only=admin --seed=1234 --first=5678 --count=1   # one input
 *
 * @module
 */

import { parseFlags, printOut, stringFlag } from "../lib/commands/cli.ts";
import { UsageError } from "../lib/errors.ts";
import {
  describeFailures,
  FuzzError,
  type FuzzOptions,
  type FuzzReport,
  LeakWatch,
  parseSeed,
} from "../tests/_fuzz.ts";
import { fuzzAdmin } from "../tests/_fuzz_admin.ts";
import { fuzzGateway } from "../tests/_fuzz_gateway.ts";
import { fuzzHello } from "../tests/_fuzz_hello.ts";

const USAGE = `Usage: deno task fuzz [options]

Feeds seeded random and mutated inputs to the hello parser, the admin API
and the gateway, and checks every answer, and that the heap stays flat and
no file is left open. Exits with 1 on any failure or leak. Needs
--v8-flags=--expose-gc, which deno task fuzz passes.

Options:
  --count=N      inputs per target (default 100000)
  --seed=S       seed, 0 to 4294967295 (default: a new one, printed)
  --only=LIST    targets, comma-separated: hello, admin, gateway (default all)
  --first=N      number of the first input, to replay one (default 0)
  -h, --help     this help`;

const TARGETS: Record<
  string,
  (count: number, seed: number, options: FuzzOptions) => Promise<FuzzReport>
> = {
  hello: fuzzHello,
  admin: fuzzAdmin,
  gateway: fuzzGateway,
};

/** A count or input number from the command line. */
function wholeNumber(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new UsageError(`${flag} must be a whole number: "${text}"`);
  }
  return value;
}

/** A number with spaces between thousands, as the README writes figures. */
function figure(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+$)/g, " ");
}

function row(cells: string[]): string {
  const widths = [8, 9, 9, 9, 10];
  return cells.map((cell, i) =>
    i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)
  )
    .join(" ");
}

/**
 * Runs the fuzz targets the arguments ask for.
 *
 * @param args The command-line arguments.
 * @returns The exit status: 0 without failures, 1 with, 2 for a usage error.
 */
export async function main(args: string[]): Promise<number> {
  let count: number;
  let seed: number;
  let first: number;
  let only: string[];
  try {
    const flags = parseFlags(args, {
      count: { type: "string" },
      seed: { type: "string" },
      only: { type: "string" },
      first: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (flags.values.help) {
      printOut(USAGE);
      return 0;
    }
    if (flags.positionals.length > 0) {
      throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
    }
    count = wholeNumber(stringFlag(flags, "count"), "--count", 100_000);
    first = wholeNumber(stringFlag(flags, "first"), "--first", 0);
    const seedText = stringFlag(flags, "seed");
    try {
      seed = seedText === undefined
        ? crypto.getRandomValues(new Uint32Array(1))[0] ?? 0
        : parseSeed(seedText);
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error));
    }
    only = (stringFlag(flags, "only") ?? Object.keys(TARGETS).join(",")).split(",");
    const unknown = only.find((name) => !Object.hasOwn(TARGETS, name));
    if (unknown !== undefined) {
      throw new UsageError(`unknown target "${unknown}" (expected hello, admin or gateway)`);
    }
    if (typeof (globalThis as { gc?: unknown }).gc !== "function") {
      throw new UsageError("leak checks need --v8-flags=--expose-gc: run it as deno task fuzz");
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`fuzz: ${error.message} (try --help)`);
    return 2;
  }

  printOut(
    `socketproxy fuzz: seed ${seed}, ${figure(count)} input${count === 1 ? "" : "s"} per target` +
      (first > 0 ? ` from #${first}` : ""),
  );
  printOut(row(["target", "inputs", "skipped", "failures", "elapsed"]));
  const failed: FuzzReport[] = [];
  const reports: FuzzReport[] = [];
  const leaks: string[] = [];
  const watched: string[] = [];
  for (const name of only) {
    const target = TARGETS[name];
    if (!target) continue;
    let report: FuzzReport;
    const watch = new LeakWatch(count);
    try {
      report = await target(count, seed, { first, checkpoint: watch });
    } catch (error) {
      if (!(error instanceof FuzzError)) throw error;
      report = error.report;
      failed.push(report);
    }
    const leak = watch.verdict();
    watched.push(`  ${name}: ${leak.summary}`);
    if (leak.problem !== null) {
      leaks.push(
        `${name}: leak: ${leak.problem} (seed ${seed})\n` +
          `  replay: deno task fuzz --only=${name} --seed=${seed} --count=${count}` +
          (first > 0 ? ` --first=${first}` : ""),
      );
    }
    reports.push(report);
    printOut(row([
      name,
      figure(report.inputs),
      figure(report.skipped),
      figure(report.failures),
      `${(report.elapsedMs / 1000).toFixed(1)} s`,
    ]));
  }
  printOut("\nwhere the inputs ended (verb or error, HTTP status):");
  for (const report of reports) {
    const outcomes = Object.entries(report.outcomes).sort(([a], [b]) => a.localeCompare(b));
    printOut(`  ${report.target}: ${outcomes.map(([o, n]) => `${o} ${figure(n)}`).join(", ")}`);
  }
  printOut("\nleaks (JS heap after garbage collection; open files):");
  for (const line of watched) printOut(line);
  for (const report of failed) printOut("\n" + describeFailures(report));
  for (const leak of leaks) printOut("\n" + leak);
  return failed.length > 0 || leaks.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
