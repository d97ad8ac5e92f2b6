/**
 * A cluster on loopback for the multi-process tests (tests/cluster_test.ts,
 * tests/e2e/cluster_test.ts): an echo destination, `main.ts server
 * --node=nK` processes, `main.ts web --proxy=nK=...` gateways in front of
 * all of them, and Debian's nginx running nginx.conf.example with every
 * gateway in its upstream.
 */

import assert from "node:assert/strict";
import { NGINX, startNginx } from "./_nginx.ts";
import { BrowserSession, type Status } from "../web/session_client.ts";
import { Wakeup } from "../lib/_io.ts";
import {
  decoder,
  echoDestination,
  issuedSecrets,
  ServerProcess,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

/** Why the cluster tests are skipped, or "" when nginx is there. */
export const SKIP_CLUSTER = NGINX
  ? ""
  : " (skipped: nginx is not installed; apt-get install nginx-light)";

/** One `server --node` process. */
export interface ClusterNode {
  name: string;
  process: ServerProcess;
  proxyPort: number;
  adminPort: number;
}

/** One `web` process. */
export interface ClusterGateway {
  process: ServerProcess;
  /** Its own base URL (`http://127.0.0.1:PORT`). */
  url: string;
  /** Its `--metrics` base URL. */
  metricsUrl: string;
}

/** The running cluster; disposing stops everything. */
export interface Cluster extends AsyncDisposable {
  nodes: ClusterNode[];
  gateways: ClusterGateway[];
  /** nginx's base URL of the gateways (`http://127.0.0.1:PORT/terminal/`). */
  base: string;
  /** nginx's error log so far. */
  nginxLog(): string;
}

/** Starts `nodes` servers, `gateways` gateways and nginx in front of the gateways. */
export async function startCluster(
  options: { nodes?: number; gateways?: number; workerConnections?: number } = {},
): Promise<Cluster> {
  const stack = new AsyncDisposableStack();
  try {
    const destination = stack.use(echoDestination());
    const names = Array.from({ length: options.nodes ?? 3 }, (_, i) => `n${i + 1}`);
    const processes = names.map((name) =>
      stack.use(
        new ServerProcess([
          `--node=${name}`,
          "--proxy=127.0.0.1:0",
          "--admin=127.0.0.1:0",
          `127.0.0.1:${destination.port}`,
        ]),
      )
    );
    const nodes = await withDeadline(
      Promise.all(processes.map(async (process, i) => ({
        name: names[i] ?? "",
        process,
        proxyPort: await process.port,
        adminPort: await process.adminPort,
      }))),
      WAIT_MS,
      "the servers' start",
    );
    const proxies = nodes.map((node) => `--proxy=${node.name}=127.0.0.1:${node.proxyPort}`);
    const webs = Array.from({ length: options.gateways ?? 2 }, () =>
      stack.use(
        new ServerProcess(
          ["--listen=127.0.0.1:0", "--metrics=127.0.0.1:0", ...proxies],
          "web",
        ),
      ));
    const gateways = await withDeadline(
      Promise.all(webs.map(async (process) => {
        const line = await process.waitFor((text) => text.includes("web.listening"));
        const metrics = /\bmetrics[=":]+\S+?:(\d+)/.exec(line)?.[1];
        return {
          process,
          url: `http://127.0.0.1:${await process.port}`,
          metricsUrl: `http://127.0.0.1:${metrics}`,
        };
      })),
      WAIT_MS,
      "the gateways' start",
    );
    const nginx = await startNginx(
      gateways.map((gateway) => Number(new URL(gateway.url).port)),
      { workerConnections: options.workerConnections ?? 1024, fastStop: true },
    );
    stack.use(nginx);
    const moved = stack.move();
    return {
      nodes,
      gateways,
      base: nginx.base,
      nginxLog: nginx.log,
      [Symbol.asyncDispose]: () => moved.disposeAsync(),
    };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}

/** A JSON request to a gateway (its own URL or nginx's base); the answer's status and body. */
export async function api(
  base: string,
  path: string,
  body?: Record<string, unknown>,
  method = "POST",
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(path, base.endsWith("/") ? base : `${base}/`);
  const response = await fetch(url, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { text };
  }
  return { status: response.status, body: parsed };
}

/** A session as the gateway hands it out. */
export interface Created {
  id: string;
  secret: string;
}

/** Creates a session through `base`: asserts the 201. */
export async function create(base: string): Promise<Created> {
  const { status, body } = await api(base, "api/sessions");
  assert.equal(status, 201, JSON.stringify(body));
  issuedSecrets.add(String(body.secret));
  return { id: String(body.id), secret: String(body.secret) };
}

/** The node an id names. */
export function nodeOfId(id: string): string {
  return id.slice(0, id.indexOf("_"));
}

/** The input each session has been given so far, in bytes, by id. */
const inputCounts = new Map<string, number>();

/**
 * Sends `text` through `inputVia` and reads its echo back through
 * `outputVia` (long polls from `ack`, bounded): the session works through
 * both. As a page does, input the server has not confirmed (`in`) is sent
 * again, from its offset (`inputAt`), so that none is lost or repeated.
 * Returns the new `ack`.
 */
export async function echo(
  session: Created,
  text: string,
  inputVia: string,
  outputVia: string,
  ack: number,
): Promise<number> {
  const inputAt = inputCounts.get(session.id) ?? 0;
  const target = inputAt + new TextEncoder().encode(text).length;
  let confirmed = inputAt;
  let output = "";
  let at = ack;
  let last: Record<string, unknown> = {};
  for (let round = 0; round < 20 && (confirmed < target || output.length < text.length); round++) {
    const sending = confirmed < target;
    const { status, body } = await api(
      sending ? inputVia : outputVia,
      `api/sessions/${session.id}/poll`,
      {
        secret: session.secret,
        ack: at,
        // The first request only sends: the echo is read through the other way.
        wait: round === 0 ? 0 : 1000,
        ...(sending ? { inputAt, input: btoa(text) } : {}),
      },
    );
    assert.equal(status, 200, JSON.stringify(body));
    last = body;
    output += atob(String(body.data));
    at = Number(body.ack);
    confirmed = Math.max(confirmed, Number(body.in));
  }
  assert.equal(output, text, `${session.id}: the last answer ${JSON.stringify(last)}`);
  inputCounts.set(session.id, target);
  return at;
}

/** The node counts of a set of ids. */
export function spread(ids: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(nodeOfId(id), (counts.get(nodeOfId(id)) ?? 0) + 1);
  return counts;
}

/** A gateway's `socketproxy_web_websockets` now. */
export async function openWebSockets(gateway: ClusterGateway): Promise<number> {
  const text = await (await fetch(`${gateway.metricsUrl}/metrics`)).text();
  return Number(/^socketproxy_web_websockets (\d+)$/m.exec(text)?.[1] ?? NaN);
}

/** `count` items, `parallel` at a time, in order. */
export async function inBatches<T>(
  count: number,
  parallel: number,
  make: (i: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - start) }, (_, i) => start + i);
    results.push(...await Promise.all(batch.map(make)));
  }
  return results;
}

/** Storage for one page, in memory. */
export function memoryStorage(): Pick<Storage, "getItem" | "setItem" | "removeItem"> {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** A page's session through nginx, over the WebSocket, its output and statuses kept. */
export class Page {
  readonly session: BrowserSession;
  output = "";
  readonly statuses: Status[] = [];
  readonly #changed = new Wakeup();

  constructor(base: string) {
    this.session = new BrowserSession({
      base,
      storage: memoryStorage(),
      transport: "websocket",
      onOutput: (bytes) => {
        this.output += decoder.decode(bytes);
        this.#changed.wake();
      },
      onStatus: (status) => {
        this.statuses.push(status);
        this.#changed.wake();
      },
      onSession: () => {},
    });
  }

  /** Waits until `test` holds; bounded in rounds and time. */
  async until(test: () => boolean, what: string): Promise<void> {
    for (let round = 0; !test(); round++) {
      assert.ok(round < 100_000, `bounded: ${what}`);
      await withDeadline(this.#changed.wait(), WAIT_MS, what);
    }
  }
}
