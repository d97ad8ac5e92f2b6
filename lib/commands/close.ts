/**
 * `socketproxy close ID`: closes one session through a running server's
 * admin port: its destination connection, its buffer and any attached client.
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
import { CommandError, UsageError } from "../errors.ts";
import { ID_PATTERN } from "../protocol.ts";

/** The settings of `socketproxy close`: its flags, variables and file keys. */
export const CLOSE_COMMAND = defineCommand({
  command: "close",
  summary: "close one session of a running server",
  intro: `Closes session ID on a running server: its destination connection is
closed, its buffered output freed and any attached client disconnected.
Find ids with "socketproxy status".`,
  positional: { name: "id", value: "ID", help: "the session's id" },
  settings: ADMIN_CLIENT_SETTINGS,
});

/** The help text of `socketproxy close`. */
export const CLOSE_USAGE: string = formatUsage(CLOSE_COMMAND);

/**
 * Runs `socketproxy close`.
 *
 * @param args The arguments after `close`.
 * @returns The exit status.
 * @throws {CommandError} When the session is unknown or the admin port cannot be asked (exit 1), or the arguments are wrong (exit 2).
 */
export async function closeCommand(args: string[]): Promise<number> {
  const settings = resolveSettings(CLOSE_COMMAND, args);
  if (settings.help) {
    printOut(CLOSE_USAGE);
    return 0;
  }
  const [id] = settings.positionals;
  if (id === undefined) throw new UsageError("missing the session ID (see socketproxy status)");
  if (!ID_PATTERN.test(id)) {
    throw new UsageError(
      `"${id}" is not a session ID (1 to 64 of A-Z, a-z, 0-9, _ and -; see socketproxy status)`,
    );
  }
  const { admin, token, where } = adminTarget(settings);
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
