/**
 * `socketproxy status`: asks a running server's admin port for its status
 * and prints a summary and a table of sessions, or the JSON as is. Given
 * several admin ports (`--admin=A --admin=B`), it asks them all at once and
 * prints the nodes side by side, then the sessions of all of them.
 *
 * @module
 */

import {
  ADMIN_LIST_SETTING,
  ADMIN_TOKEN_SETTING,
  adminRequest,
  type AdminTarget,
  adminTargets,
  answerError,
  readAnswer,
} from "./admin_client.ts";
import { printOut } from "./cli.ts";
import { defineCommand, resolveSettings } from "./settings.ts";
import { formatUsage } from "./usage.ts";
import { CommandError } from "../errors.ts";
import type { StatusReport } from "../proxy/status_report.ts";

/** The settings of `socketproxy status`: its flags, variables and file keys. */
export const STATUS_COMMAND = defineCommand({
  command: "status",
  summary: "show a running server's sessions and totals",
  intro: `Shows a running server's settings, totals and sessions, from its admin port.
With several --admin, shows each server's totals side by side, then the
sessions of all of them; a server that does not answer is one line, and
the exit status is then 1.`,
  settings: [
    ADMIN_LIST_SETTING,
    ADMIN_TOKEN_SETTING,
    {
      name: "json",
      kind: "boolean",
      help: "print the admin API's JSON as is, for scripts (with several --admin, an array)",
    },
  ],
});

/** The help text of `socketproxy status`. */
export const STATUS_USAGE: string = formatUsage(STATUS_COMMAND);

/**
 * Formats a byte count for people: `512 B`, `1.5 KiB`, `35.4 MiB`.
 *
 * @param bytes The count.
 * @returns The text.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  const text = value < 10 ? value.toFixed(1).replace(/\.0$/, "") : String(Math.round(value));
  return `${text} ${units[unit]}`;
}

/**
 * Formats a duration for people: `45s`, `3m12s`, `2h05m`, `3d04h`.
 *
 * @param seconds The duration.
 * @returns The text.
 */
export function formatAge(seconds: number): string {
  const s = Math.floor(seconds);
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

/**
 * Lays out rows as columns, left-aligned, two spaces apart. A row shorter
 * than the first (a node that did not answer) runs its last cell on
 * without widening that column.
 */
function table(rows: string[][]): string[] {
  const columns = rows[0]?.length ?? 0;
  const widths = Array.from({ length: columns }, (_, column) =>
    Math.max(
      ...rows.map((row) =>
        column < row.length - 1 || row.length === columns ? (row[column] ?? "").length : 0
      ),
    ));
  return rows.map((row) =>
    row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd()
  );
}

/** The header of the sessions table; with `node`, a NODE column after the mark. */
function sessionHeader(node: boolean): string[] {
  return [
    "",
    ...node ? ["NODE"] : [],
    "ID",
    "STATE",
    "CLIENT",
    "MODE",
    "AGE",
    "IDLE",
    "IN",
    "OUT",
    "BUFFERED",
  ];
}

/** One row per session of a report, attached ones marked; `node` fills a NODE column. */
function sessionRows(report: StatusReport, node?: string): string[][] {
  const now = Date.parse(report.started) + report.uptimeSeconds * 1000;
  return report.sessions.map((session) => [
    session.state === "attached" ? "*" : "",
    ...node === undefined ? [] : [node],
    session.id,
    session.state,
    session.client ?? "-",
    session.mode ?? "-",
    formatAge((now - Date.parse(session.created)) / 1000),
    session.state === "attached" ? "-" : formatAge(session.idleSeconds),
    formatBytes(session.bytesIn),
    formatBytes(session.bytesOut),
    formatBytes(session.buffered),
  ]);
}

/**
 * Renders a status report for people: a summary, then one row per session,
 * attached ones marked with `*`.
 *
 * @param report The report.
 * @returns The lines, joined.
 */
export function formatStatus(report: StatusReport): string {
  const { totals, limits } = report;
  // A server before named destinations sends no `destinations`.
  const named = (report.destinations ?? []).filter((target) => target.name !== "default");
  const where = [
    ...report.destination === null ? [] : [report.destination],
    ...named.map((target) => `${target.name}=${target.address}`),
  ].join(", ");
  const lines = [
    `socketproxy ${report.version} ${report.status} on ${report.proxy} for ${where}, up ${
      formatAge(report.uptimeSeconds)
    }${report.node ? `, node ${report.node}` : ""}`,
    `sessions:    ${totals.sessionsOpen} open of ${limits.maxSessions} (${totals.sessionsAttached} attached, ${totals.sessionsDetached} detached, ${totals.sessionsDestinationClosed} destination closed); ${totals.sessionsCreated} created, ${totals.sessionsEnded} ended, ${totals.sessionsExpired} expired`,
    `traffic:     ${formatBytes(totals.bytesIn)} in, ${formatBytes(totals.bytesOut)} out, ${
      formatBytes(totals.bufferedBytes)
    } buffered (limit ${formatBytes(limits.bufferBytes)} a session)`,
    `connections: ${totals.connectionsOpen} open, ${totals.connectionsAccepted} accepted; ${totals.authFailures} auth failures, ${totals.gaps} gaps`,
    "",
  ];
  if (report.sessions.length === 0) {
    lines.push("no sessions");
    return lines.join("\n");
  }
  lines.push(...table([sessionHeader(false), ...sessionRows(report)]));
  return lines.join("\n");
}

/** What one admin port answered to `status`: its report, or why there is none. */
export type NodeStatus =
  | { readonly where: string; readonly report: StatusReport; readonly text: string }
  | { readonly where: string; readonly error: string };

/**
 * Renders several servers' reports for people: a table of the nodes (name,
 * admin and proxy addresses, state, version, uptime, sessions open and
 * attached, bytes in and out), a line for each that did not answer, and
 * the sessions of all in one table with a NODE column.
 *
 * @param nodes What each admin port answered, in the order asked.
 * @returns The lines, joined.
 */
export function formatCluster(nodes: readonly NodeStatus[]): string {
  const rows = [[
    "NODE",
    "ADMIN",
    "PROXY",
    "STATE",
    "VERSION",
    "UP",
    "OPEN",
    "ATTACHED",
    "IN",
    "OUT",
  ]];
  const sum = { open: 0, attached: 0, bytesIn: 0, bytesOut: 0 };
  const sessions: string[][] = [];
  let answered = 0;
  for (const node of nodes) {
    if ("error" in node) {
      rows.push(["-", node.where, node.error]);
      continue;
    }
    const { report } = node;
    const { totals } = report;
    answered++;
    sum.open += totals.sessionsOpen;
    sum.attached += totals.sessionsAttached;
    sum.bytesIn += totals.bytesIn;
    sum.bytesOut += totals.bytesOut;
    rows.push([
      report.node ?? "-",
      node.where,
      report.proxy,
      report.status,
      report.version,
      formatAge(report.uptimeSeconds),
      String(totals.sessionsOpen),
      String(totals.sessionsAttached),
      formatBytes(totals.bytesIn),
      formatBytes(totals.bytesOut),
    ]);
    // Servers without --node are told apart by their admin address.
    sessions.push(...sessionRows(report, report.node ?? node.where));
  }
  if (answered > 1) {
    rows.push([
      "all",
      "",
      "",
      "",
      "",
      "",
      String(sum.open),
      String(sum.attached),
      formatBytes(sum.bytesIn),
      formatBytes(sum.bytesOut),
    ]);
  }
  const lines = [...table(rows), ""];
  if (answered === 0) lines.pop();
  else if (sessions.length === 0) lines.push("no sessions");
  else lines.push(...table([sessionHeader(true), ...sessions]));
  return lines.join("\n");
}

/**
 * Asks one admin port for its status report.
 *
 * @throws {CommandError} When it cannot be asked, or what answers is not socketproxy's admin port.
 */
async function fetchStatus(target: AdminTarget): Promise<{ report: StatusReport; text: string }> {
  const { admin, token, where } = target;
  const response = await adminRequest(admin, { method: "GET", path: "/status", token });
  const answer = await readAnswer(response, where);
  if (!response.ok) throw answerError(answer, where);
  const { totals, sessions } = answer.body;
  if (typeof totals !== "object" || totals === null || !Array.isArray(sessions)) {
    throw new CommandError(
      `${where} answered without a socketproxy status: is it a socketproxy admin port?`,
      1,
    );
  }
  return { report: answer.body as unknown as StatusReport, text: answer.text };
}

/** Asks every admin port at once; a missing permission (exit 2) ends it all. */
async function fetchAll(targets: readonly AdminTarget[]): Promise<NodeStatus[]> {
  const settled = await Promise.allSettled(targets.map(fetchStatus));
  return settled.map((result, index) => {
    const where = targets[index]?.where ?? "";
    if (result.status === "fulfilled") return { where, ...result.value };
    const error: unknown = result.reason;
    if (!(error instanceof CommandError) || error.exitCode !== 1) throw error;
    return { where, error: error.message };
  });
}

/**
 * Runs `socketproxy status`.
 *
 * @param args The arguments after `status`.
 * @returns The exit status.
 * @throws {CommandError} When the admin port cannot be asked (exit 1) or the arguments are wrong (exit 2).
 */
export async function statusCommand(args: string[]): Promise<number> {
  const settings = resolveSettings(STATUS_COMMAND, args);
  if (settings.help) {
    printOut(STATUS_USAGE);
    return 0;
  }
  const targets = adminTargets(settings);
  const json = settings.boolean("json");
  const [only] = targets;
  if (only !== undefined && targets.length === 1) {
    const { report, text } = await fetchStatus(only);
    printOut(json ? text.trimEnd() : formatStatus(report));
    return 0;
  }
  const nodes = await fetchAll(targets);
  if (json) {
    const reports = nodes.flatMap((node) => "report" in node ? [node.report] : []);
    printOut(JSON.stringify(reports, null, 2));
    // stdout stays JSON: who did not answer goes to stderr, one line each.
    for (const node of nodes) {
      if ("error" in node) console.error(`socketproxy status: ${node.error}`);
    }
  } else {
    printOut(formatCluster(nodes));
  }
  return nodes.some((node) => "error" in node) ? 1 : 0;
}
