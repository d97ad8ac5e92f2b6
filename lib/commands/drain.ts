/**
 * `socketproxy drain`: asks a running server, through its admin port, to
 * drain for a rolling update: no new sessions, the open ones served until
 * they end (or the server's `--drain-timeout`), then the server exits.
 *
 * @module
 */

import {
  ADMIN_CLIENT_FLAGS,
  adminRequest,
  adminTarget,
  answerError,
  readAnswer,
} from "./admin_client.ts";
import { parseFlags, printOut } from "./cli.ts";
import { UsageError } from "../errors.ts";

/** The help text of `socketproxy drain`. */
export const DRAIN_USAGE = `Usage: socketproxy drain [options]

Drains a running server, for a rolling update: it answers NEW with
ERR busy draining (its /ready answers 503, so a load balancer sends new
sessions elsewhere), keeps serving resumes until its sessions end, closes
the rest at its --drain-timeout (default 10m), and exits 0. Returns at
once; "socketproxy status" shows the state.

Options:
  --admin=[HOST][:PORT]   the server's admin port (default localhost:9010)
  --admin-token=TOKEN     the admin token, if the server requires one
                          (default: $SOCKETPROXY_ADMIN_TOKEN)
  -h, --help              show this help`;

/**
 * Runs `socketproxy drain`.
 *
 * @param args The arguments after `drain`.
 * @returns The exit status.
 * @throws {CommandError} When the admin port cannot be asked (exit 1), or the arguments are wrong (exit 2).
 */
export async function drainCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, ADMIN_CLIENT_FLAGS);
  if (flags.values.help) {
    printOut(DRAIN_USAGE);
    return 0;
  }
  if (flags.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
  }
  const { admin, token, where } = adminTarget(flags);
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
