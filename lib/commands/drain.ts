/**
 * `socketproxy drain`: asks a running server, through its admin port, to
 * drain for a rolling update: no new sessions, the open ones served until
 * they end (or the server's `--drain-timeout`), then the server exits.
 *
 * @module
 */

import {
  ADMIN_CLIENT_SETTINGS,
  adminRequest,
  adminTarget,
  AdminUnreachableError,
  answerError,
  readAnswer,
} from "./admin_client.ts";
import { printOut } from "./cli.ts";
import { CommandError } from "../errors.ts";
import type { HostPort } from "../address.ts";
import { defineCommand, resolveSettings } from "./settings.ts";
import { formatUsage } from "./usage.ts";

/** The settings of `socketproxy drain`: its flags, variables and file keys. */
export const DRAIN_COMMAND = defineCommand({
  command: "drain",
  summary: "drain a running server: no new sessions, then exit",
  intro: `Drains a running server, for a rolling update: it answers NEW with
ERR busy draining (its /ready answers 503, so a load balancer sends new
sessions elsewhere), keeps serving resumes until its sessions end, closes
the rest at its --drain-timeout (default 10m), and exits 0. Returns at
once ("socketproxy status" shows the state), or with --wait once the
server has stopped: what a Kubernetes preStop hook or a rolling-update
script needs before it stops the process.`,
  settings: [
    ...ADMIN_CLIENT_SETTINGS,
    {
      name: "wait",
      kind: "boolean",
      help: "return only once the server has stopped (its admin port no longer answers), " +
        "printing the sessions left as they end",
    },
  ],
});

/** How often `--wait` asks the server how many sessions are left, ms. */
const WAIT_POLL_MS = 1000;
/** How long past the server's drain timeout `--wait` waits before it gives up, ms. */
const WAIT_MARGIN_MS = 60_000;

/** The help text of `socketproxy drain`. */
export const DRAIN_USAGE: string = formatUsage(DRAIN_COMMAND);

/**
 * Runs `socketproxy drain`.
 *
 * @param args The arguments after `drain`.
 * @returns The exit status.
 * @throws {CommandError} When the admin port cannot be asked (exit 1), or the arguments are wrong (exit 2).
 */
export async function drainCommand(args: string[]): Promise<number> {
  const settings = resolveSettings(DRAIN_COMMAND, args);
  if (settings.help) {
    printOut(DRAIN_USAGE);
    return 0;
  }
  const { admin, token, where } = adminTarget(settings);
  const response = await adminRequest(admin, { method: "POST", path: "/drain", token });
  const answer = await readAnswer(response, where);
  if (!response.ok) throw answerError(answer, where);
  const body = answer.body as { sessions?: number; timeoutMs?: number };
  const minutes = (body.timeoutMs ?? 0) / 60_000;
  printOut(
    `${where} is draining: ${body.sessions ?? 0} sessions open; the rest close in at most ${
      minutes >= 1 ? `${minutes} min` : `${(body.timeoutMs ?? 0) / 1000} s`
    }, then it exits`,
  );
  if (!settings.boolean("wait")) return 0;
  return await waitForStop(admin, token, where, body.sessions ?? 0, body.timeoutMs ?? 0);
}

/** How {@linkcode waitForStop} paces itself; tests make it quick. */
export interface WaitPacing {
  /** How often it asks, ms. */
  pollMs: number;
  /** How long past the drain timeout it gives up, ms. */
  marginMs: number;
}

/**
 * Asks a draining server for its open sessions until its admin port no
 * longer answers (it has stopped), printing each change of the count.
 *
 * @returns Exit status 0 once it has stopped.
 * @throws {CommandError} Exit status 1 when it still answers a minute past its drain timeout.
 */
export async function waitForStop(
  admin: HostPort,
  token: string | undefined,
  where: string,
  sessions: number,
  timeoutMs: number,
  pacing: WaitPacing = { pollMs: WAIT_POLL_MS, marginMs: WAIT_MARGIN_MS },
): Promise<number> {
  const giveUpAt = Date.now() + timeoutMs + pacing.marginMs;
  let open = sessions;
  while (Date.now() < giveUpAt) {
    await new Promise((resolve) => setTimeout(resolve, pacing.pollMs));
    let answer;
    try {
      const response = await adminRequest(admin, { method: "GET", path: "/status", token });
      answer = await readAnswer(response, where);
    } catch (error) {
      if (!(error instanceof AdminUnreachableError)) throw error;
      // A port that is there but slow to answer has not stopped: ask again.
      if (error.timedOut) continue;
      printOut(`${where} has stopped`);
      return 0;
    }
    const now = (answer.body as { totals?: { sessionsOpen?: number } }).totals?.sessionsOpen;
    if (typeof now === "number" && now !== open) {
      open = now;
      printOut(`${where} is draining: ${open} sessions open`);
    }
  }
  throw new CommandError(
    `${where} still answers ${pacing.marginMs / 1000} s after its drain timeout: ` +
      `see "socketproxy status --admin=${where}"`,
    1,
  );
}
