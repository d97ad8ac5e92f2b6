/**
 * `socketproxy close ID`: closes one session through a running server's
 * admin port: its destination connection, its buffer and any attached client.
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
import { CommandError, UsageError } from "../errors.ts";
import { ID_PATTERN } from "../protocol.ts";

/** The help text of `socketproxy close`. */
export const CLOSE_USAGE = `Usage: socketproxy close [options] ID

Closes session ID on a running server: its destination connection is
closed, its buffered output freed and any attached client disconnected.
Find ids with "socketproxy status".

Options:
  --admin=[HOST][:PORT]   the server's admin port (default localhost:9010)
  --admin-token=TOKEN     the admin token, if the server requires one
                          (default: $SOCKETPROXY_ADMIN_TOKEN)
  -h, --help              show this help`;

/**
 * Runs `socketproxy close`.
 *
 * @param args The arguments after `close`.
 * @returns The exit status.
 * @throws {CommandError} When the session is unknown or the admin port cannot be asked (exit 1), or the arguments are wrong (exit 2).
 */
export async function closeCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, ADMIN_CLIENT_FLAGS);
  if (flags.values.help) {
    printOut(CLOSE_USAGE);
    return 0;
  }
  const [id, ...extra] = flags.positionals;
  if (id === undefined) throw new UsageError("missing the session ID (see socketproxy status)");
  if (extra.length > 0) {
    throw new UsageError(`expected one session ID, got also "${extra.join(" ")}"`);
  }
  if (!ID_PATTERN.test(id)) {
    throw new UsageError(
      `"${id}" is not a session ID (1 to 64 of A-Z, a-z, 0-9, _ and -; see socketproxy status)`,
    );
  }
  const { admin, token, where } = adminTarget(flags);
  const response = await adminRequest(admin, {
    method: "DELETE",
    path: `/sessions/${id}`,
    token,
  });
  const answer = await readAnswer(response, where);
  if (response.status === 404) throw new CommandError(`no session "${id}" on ${where}`, 1);
  if (!response.ok) throw answerError(answer, where);
  printOut(`closed session ${id}`);
  return 0;
}
