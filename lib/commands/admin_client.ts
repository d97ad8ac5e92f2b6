/**
 * The client side of the admin API, for `socketproxy status` and
 * `socketproxy close`: one request, with the token when there is one, and
 * every failure turned into one line a person can act on.
 *
 * @module
 */

import type { Settings, SettingSpec } from "./settings.ts";
import {
  canReadTokenVariable,
  fetchBlockedPort,
  parseAdminToken,
  TOKEN_UNREADABLE_HINT,
  TOKEN_VARIABLE,
} from "./config.ts";
import { CommandError, missingPermission, UsageError } from "../errors.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../address.ts";
import { SERVER_DEFAULTS } from "../proxy/config.ts";

/** The admin token setting every admin client has. */
export const ADMIN_TOKEN_SETTING = {
  name: "admin-token",
  kind: "string",
  value: "TOKEN",
  help: `the admin token, if the server requires one; also ${TOKEN_VARIABLE}`,
  secret: true,
  aliases: [TOKEN_VARIABLE],
} as const satisfies SettingSpec;

/** The settings of the commands that talk to one admin port: `close`, `drain`. */
export const ADMIN_CLIENT_SETTINGS = [
  {
    name: "admin",
    kind: "string",
    value: "[HOST][:PORT]",
    help: "the server's admin port",
    default: "localhost:9010",
  },
  ADMIN_TOKEN_SETTING,
] as const satisfies readonly SettingSpec[];

/**
 * `--admin` as a list, for `status`: several servers' admin ports, their
 * reports side by side (the environment's is comma-separated, the file's
 * a string or an array).
 */
export const ADMIN_LIST_SETTING = {
  name: "admin",
  kind: "list",
  value: "[HOST][:PORT]",
  help: "a server's admin port; repeat it to see several servers side by side",
  default: "localhost:9010",
} as const satisfies SettingSpec;

/** The name of a setting every admin client has. */
export type AdminClientSetting = (typeof ADMIN_CLIENT_SETTINGS)[number]["name"];

const DEFAULT_ADMIN: HostPort = SERVER_DEFAULTS.admin ?? { hostname: "localhost", port: 9010 };

/** Where and how to reach the admin port. */
export interface AdminTarget {
  /** The admin port. */
  admin: HostPort;
  /** The bearer token, if any. */
  token: string | undefined;
  /** The admin port as text, for messages. */
  where: string;
}

/**
 * Reads `--admin` and `--admin-token` (or `--admin-token-file`, or the
 * environment's token), from the command line, the environment or the file.
 *
 * @param settings Resolved settings including {@linkcode ADMIN_CLIENT_SETTINGS}.
 * @returns The target: the first, where `--admin` is a list.
 * @throws {UsageError} When `--admin` is not an address, is `off`, or is a
 * port `fetch` refuses.
 */
export function adminTarget<Name extends string>(
  settings: Settings<Name | AdminClientSetting>,
): AdminTarget {
  const [first] = adminTargets(settings);
  // adminTargets gives at least the default.
  return first as AdminTarget;
}

/**
 * Reads every `--admin` (`status` takes several, the others one; none is
 * `localhost:9010`) and the token, the same for all of them.
 *
 * @param settings Resolved settings including {@linkcode ADMIN_CLIENT_SETTINGS},
 * or {@linkcode ADMIN_LIST_SETTING} in place of its `admin`.
 * @returns The targets, in the order given; at least one.
 * @throws {UsageError} When an `--admin` is not an address, is `off`, or
 * is a port `fetch` refuses.
 */
export function adminTargets<Name extends string>(
  settings: Settings<Name | AdminClientSetting>,
): AdminTarget[] {
  const what = settings.label("admin");
  const texts = settings.strings("admin");
  const admins = texts.length === 0
    ? [DEFAULT_ADMIN]
    : texts.map((text) => adminAddress(text, what));
  const given = settings.string("admin-token");
  const token = given === undefined
    ? undefined
    : parseAdminToken(given, settings.label("admin-token"));
  return admins.map((admin) => ({ admin, token, where: formatHostPort(admin) }));
}

/** One `--admin` value as an address to ask, or a usage error naming `what`. */
function adminAddress(text: string, what: string): HostPort {
  if (text === "off") {
    throw new UsageError(
      `${what}=off: no admin port to ask; give the server's admin address (default localhost:9010)`,
    );
  }
  const admin = parseHostPort(text, what, { defaults: DEFAULT_ADMIN });
  const blocked = fetchBlockedPort(admin.port);
  if (blocked !== undefined) {
    throw new UsageError(
      `${what}: ${blocked}, so no admin port can be asked there (a server refuses it)`,
    );
  }
  return admin;
}

/** How long an admin request may take, in ms. */
const REQUEST_TIMEOUT_MS = 10_000;

/** Describes why a request never got an answer, in a few words. */
function describeFetchError(error: unknown): string {
  if (isTimeout(error)) {
    return `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
  }
  const detail = error instanceof Error ? `${error.message} ${String(error.cause ?? "")}` : "";
  if (/connection refused/i.test(detail)) return "connection refused";
  if (/dns error|lookup address/i.test(detail)) return "host not found";
  if (/connection reset/i.test(detail)) return "connection reset";
  if (/timed out/i.test(detail)) return "timed out";
  return error instanceof Error ? error.message : String(error);
}

/** No admin port answered (refused, timed out, not found): exit status 1. */
export class AdminUnreachableError extends CommandError {
  /** It was there but gave no (whole) answer in time: it may still be running. */
  readonly timedOut: boolean;

  /**
   * @param message The one line saying where and why.
   * @param cause What failed, to tell a timeout from a closed port.
   */
  constructor(message: string, cause?: unknown) {
    super(message, 1);
    this.name = "AdminUnreachableError";
    this.timedOut = isTimeout(cause);
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof DOMException && error.name === "TimeoutError";
}

/** Options for {@linkcode adminRequest}. */
export interface AdminRequestOptions {
  /** The HTTP method. */
  method: "GET" | "DELETE" | "POST";
  /** The path, such as `/status`. */
  path: string;
  /** The bearer token, if any. */
  token: string | undefined;
}

/**
 * Sends one request to the admin API.
 *
 * @param addr The admin port.
 * @param options Method, path and token.
 * @returns The response; a 401 is already turned into an error.
 * @throws {AdminUnreachableError} When no admin port answers (exit status 1).
 * @throws {CommandError} Exit status 1 when the token is refused.
 */
export async function adminRequest(
  addr: HostPort,
  options: AdminRequestOptions,
): Promise<Response> {
  const where = formatHostPort(addr);
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let response: Response;
  try {
    response = await fetch(`http://${where}${options.path}`, {
      method: options.method,
      headers,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const missing = missingPermission(error);
    if (missing !== undefined) throw new CommandError(`cannot ask ${where}: ${missing}`, 2);
    throw new AdminUnreachableError(
      `no socketproxy admin port answering on ${where}: ${describeFetchError(error)}`,
      error,
    );
  }
  if (response.status === 401) {
    await response.body?.cancel();
    throw new CommandError(
      options.token !== undefined
        ? `the admin port on ${where} refused the token`
        : canReadTokenVariable()
        ? `the admin port on ${where} needs a token: use --admin-token or ${TOKEN_VARIABLE}`
        : `the admin port on ${where} needs a token, and ${TOKEN_VARIABLE} cannot be read: ${TOKEN_UNREADABLE_HINT}`,
      1,
    );
  }
  return response;
}

/** An answer of the admin API, read in full. */
export interface AdminAnswer {
  /** The HTTP status. */
  status: number;
  /** The body as sent. */
  text: string;
  /** The body's JSON object. */
  body: Record<string, unknown>;
}

/**
 * Reads an answer's JSON body, or fails with one line when it is not ours.
 *
 * @param response The response.
 * @param where The admin address, for the message.
 * @returns The answer, whatever its status.
 * @throws {AdminUnreachableError} When the connection ends before the body does.
 * @throws {CommandError} Exit status 1 when the body is not a JSON object.
 */
export async function readAnswer(response: Response, where: string): Promise<AdminAnswer> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    // The port stopped answering part way through (a server stopping, or stuck).
    throw new AdminUnreachableError(
      `${where} stopped part way through its answer (${describeFetchError(error)})`,
      error,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Not ours: said below.
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new CommandError(
      `${where} answered HTTP ${response.status} without JSON: is it a socketproxy admin port?`,
      1,
    );
  }
  return { status: response.status, text, body: body as Record<string, unknown> };
}

/**
 * The one-line error for an answer that is not a success: its status and
 * the API's message.
 *
 * @param answer The answer.
 * @param where The admin address, for the message.
 * @returns The error to throw, exit status 1.
 */
export function answerError(answer: AdminAnswer, where: string): CommandError {
  const { message } = answer.body;
  const text = typeof message === "string" && message.trim() !== ""
    ? message.replace(/\s+/g, " ").trim().slice(0, 200)
    : "no message: is it a socketproxy admin port?";
  return new CommandError(`${where} answered HTTP ${answer.status}: ${text}`, 1);
}
