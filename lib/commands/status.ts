/**
 * `socketproxy status`: asks a running server's admin port for its status
 * and prints a summary and a table of sessions, or the JSON as is.
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
import { CommandError } from "../errors.ts";
import type { StatusReport } from "../proxy/status_report.ts";

/** The settings of `socketproxy status`: its flags, variables and file keys. */
export const STATUS_COMMAND = defineCommand({
  command: "status",
  summary: "show a running server's sessions and totals",
  intro: "Shows a running server's settings, totals and sessions, from its admin port.",
  settings: [
    ...ADMIN_CLIENT_SETTINGS,
    { name: "json", kind: "boolean", help: "print the admin API's JSON as is, for scripts" },
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

/** Lays out rows as columns, left-aligned, two spaces apart. */
function table(rows: string[][]): string[] {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length))) ?? [];
  return rows.map((row) =>
    row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd()
  );
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
    }`,
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
  const rows = [["", "ID", "STATE", "CLIENT", "MODE", "AGE", "IDLE", "IN", "OUT", "BUFFERED"]];
  const now = Date.parse(report.started) + report.uptimeSeconds * 1000;
  for (const session of report.sessions) {
    rows.push([
      session.state === "attached" ? "*" : "",
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
  lines.push(...table(rows));
  return lines.join("\n");
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
  const { admin, token, where } = adminTarget(settings);
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
  printOut(
    settings.boolean("json")
      ? answer.text.trimEnd()
      : formatStatus(answer.body as unknown as StatusReport),
  );
  return 0;
}
