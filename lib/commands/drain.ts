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
  answerError,
  readAnswer,
} from "./admin_client.ts";
import { printOut } from "./cli.ts";
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
once; "socketproxy status" shows the state.`,
  settings: ADMIN_CLIENT_SETTINGS,
});

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
  return 0;
}
