/**
 * The admin API fuzz target: `adminHandler` (lib/admin/api.ts) fed mutated
 * requests over every route, with and without a token, serving and
 * stopping, and judged against its route table.
 *
 * @module
 */

import { adminHandler } from "../lib/admin/api.ts";
import { Logger } from "../lib/log.ts";
import type { StatusReport } from "../lib/proxy/status_report.ts";
import {
  escapeInput,
  FUZZ_ID,
  FUZZ_ID_LONG,
  FUZZ_SECRET,
  FUZZ_SECRET_LONG,
  FUZZ_TOKEN,
  type FuzzOptions,
  type FuzzReport,
  type FuzzRequest,
  ID_SYNTAX,
  runTarget,
  toRequest,
} from "./_fuzz.ts";
import {
  answerOf,
  describeRequest,
  fuzzPeer,
  fuzzRequest,
  fuzzThrottle,
  headerTexts,
  jsonErrorProblem,
  leakProblem,
} from "./_fuzz_http.ts";

const encoder = new TextEncoder();

function auth(token: string): [string, string] {
  return ["authorization", `Bearer ${token}`];
}

/** Valid admin API requests: every route, with and without a token. */
export const ADMIN_CORPUS: readonly FuzzRequest[] = [
  { method: "GET", path: "/status", headers: [], body: null },
  { method: "GET", path: "/status", headers: [auth(FUZZ_TOKEN)], body: null },
  { method: "HEAD", path: "/status", headers: [auth(FUZZ_TOKEN)], body: null },
  {
    method: "GET",
    path: "/metrics",
    headers: [auth(FUZZ_TOKEN), ["accept", "text/plain"]],
    body: null,
  },
  { method: "GET", path: "/health", headers: [], body: null },
  {
    method: "GET",
    path: "/health?verbose=1",
    headers: [["authorization", "bearer x"]],
    body: null,
  },
  { method: "DELETE", path: `/sessions/${FUZZ_ID}`, headers: [auth(FUZZ_TOKEN)], body: null },
  { method: "DELETE", path: `/sessions/${FUZZ_ID_LONG}`, headers: [], body: null },
  {
    method: "DELETE",
    path: `/sessions/${FUZZ_ID}?secret=${FUZZ_SECRET}`,
    headers: [auth(FUZZ_SECRET)],
    body: encoder.encode(`{"secret":"${FUZZ_SECRET_LONG}"}`),
  },
  {
    method: "GET",
    path: "/status",
    headers: [["cookie", `session=${FUZZ_SECRET_LONG}`], ["x-forwarded-for", "10.0.0.1"]],
    body: null,
  },
];

const ADMIN_STATUSES = new Set([200, 400, 401, 404, 405, 503]);
const ADMIN_SESSIONS = new Set([FUZZ_ID, FUZZ_ID_LONG]);

function fakeReport(stopping: boolean): StatusReport {
  const session = (id: string): StatusReport["sessions"][number] => ({
    id,
    state: "detached",
    client: null,
    mode: null,
    created: "2026-01-01T00:00:00.000Z",
    lastAttached: "2026-01-01T00:00:00.000Z",
    idleSeconds: 12.5,
    bytesIn: 10,
    bytesOut: 20,
    buffered: 20,
    ackFloor: 0,
    sent: 20,
    destination: "open",
    destinationName: "default",
    endUser: null,
  });
  return {
    version: "0.0.0-fuzz",
    started: "2026-01-01T00:00:00.000Z",
    uptimeSeconds: 60,
    status: stopping ? "stopping" : "serving",
    node: null,
    proxy: "127.0.0.1:1",
    admin: "127.0.0.1:2",
    destination: "127.0.0.1:3",
    destinations: [{
      name: "default",
      address: "127.0.0.1:3",
      sendProxy: null,
      sessionsOpen: 2,
      sessionsCreated: 2,
    }],
    limits: {
      bufferBytes: 4096,
      idleTimeoutMs: 1000,
      handshakeTimeoutMs: 1000,
      connectTimeoutMs: 1000,
      maxSessions: 10,
    },
    totals: {
      sessionsOpen: 2,
      sessionsAttached: 0,
      sessionsDetached: 2,
      sessionsDestinationClosed: 0,
      connectionsOpen: 0,
      connectionsAccepted: 2,
      bytesIn: 20,
      bytesOut: 40,
      bufferedBytes: 40,
      sessionsCreated: 2,
      sessionsEnded: 0,
      sessionsExpired: 0,
      gaps: 0,
      authFailures: 0,
    },
    sessions: [...ADMIN_SESSIONS].map(session),
  };
}

/** The status the admin API's route table (lib/admin/api.ts) gives `request`. */
function expectedAdminStatus(request: Request, token: string | null, stopping: boolean): number {
  const probePath = new URL(request.url).pathname;
  const probe = (probePath === "/health" || probePath === "/ready") &&
    (request.method === "GET" || request.method === "HEAD");
  if (token !== null && !probe) {
    const header = request.headers.get("authorization") ?? "";
    if (header.slice(0, 7).toLowerCase() !== "bearer " || header.slice(7) !== token) return 401;
  }
  const path = new URL(request.url).pathname;
  const method = request.method;
  if (path.startsWith("/sessions/") && !path.slice(10).includes("/")) {
    if (method !== "DELETE") return 405;
    let id: string;
    try {
      id = decodeURIComponent(path.slice(10));
    } catch {
      return 400;
    }
    if (!ID_SYNTAX.test(id)) return 400;
    return ADMIN_SESSIONS.has(id) ? 200 : 404;
  }
  if (path !== "/status" && path !== "/metrics" && path !== "/health") return 404;
  if (method !== "GET" && method !== "HEAD") return 405;
  return path === "/health" && stopping ? 503 : 200;
}

/**
 * Fuzzes the admin API handler with mutated requests, a token half the
 * time and a server stopping a fifth of the time: it must return a
 * Response (never throw) with the status the route table gives, a JSON
 * body for every non-2xx, and never show the token or a session secret.
 *
 * @param count Number of inputs.
 * @param seed The seed.
 * @param options Where to start, to replay one input.
 * @returns The run.
 * @throws {FuzzError} When any input failed.
 */
export function fuzzAdmin(
  count: number,
  seed: number,
  options: FuzzOptions = {},
): Promise<FuzzReport> {
  // One handler per configuration for the whole run, so that state kept inside one builds up.
  const logs: string[] = [];
  let stopping = false;
  const shared = {
    logger: new Logger({ level: "debug", sink: (line) => logs.push(line) }),
    throttle: fuzzThrottle(),
    backend: {
      report: () => fakeReport(stopping),
      closeSession: (id: string) => ADMIN_SESSIONS.has(id),
      stopping: () => stopping,
    },
  };
  const withToken = adminHandler({ ...shared, token: FUZZ_TOKEN });
  const withoutToken = adminHandler({ ...shared, token: null });
  return runTarget({ target: "admin", count, seed, ...options }, async (fuzzer) => {
    const spec = fuzzRequest(fuzzer, ADMIN_CORPUS);
    const token = fuzzer.chance(0.5) ? FUZZ_TOKEN : null;
    stopping = fuzzer.chance(0.2);
    const info = fuzzPeer(fuzzer);
    const request = toRequest(spec, "http://admin.test");
    const input = (): string =>
      `${describeRequest(spec, request)} (token ${token ? "set" : "none"}, ${
        stopping ? "stopping" : "serving"
      }, from ${info.remoteAddr.hostname})`;
    if (request === null) return { input, skipped: true, problem: null };
    logs.length = 0;
    const handler = token === null ? withoutToken : withToken;
    const answered = await answerOf(request, () => handler(request, info));
    if ("problem" in answered) return { input, problem: answered.problem };
    const { response, text } = answered;
    const problem = adminProblem(request, response, text, logs, token, stopping);
    return { input, problem, outcome: String(response.status) };
  });
}

function adminProblem(
  request: Request,
  response: Response,
  text: string,
  logs: string[],
  token: string | null,
  stopping: boolean,
): string | null {
  const status = response.status;
  if (!ADMIN_STATUSES.has(status)) return `status ${status}: ${escapeInput(text, 200)}`;
  const expected = expectedAdminStatus(request, token, stopping);
  if (status !== expected) {
    return `status ${status}, expected ${expected}: ${escapeInput(text, 200)}`;
  }
  if (status === 401 && !response.headers.has("www-authenticate")) {
    return "401 without WWW-Authenticate";
  }
  if (status >= 300) {
    const problem = jsonErrorProblem(response, text, status === 503 ? "any" : "error");
    if (problem !== null) return problem;
  }
  return leakProblem(request, [text, ...headerTexts(response), ...logs]);
}
