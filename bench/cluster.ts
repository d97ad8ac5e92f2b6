/**
 * `deno task bench cluster`: poll cycles through one gateway in front of one
 * server (unnamed, as before the cluster, and named), two and three named
 * nodes (`web --proxy=nK=...`), in one run: what the router costs, and
 * whether one gateway gains from more nodes behind it.
 *
 * @module
 */

import { Child, freePort, median, startServer } from "./workloads.ts";
import { nodeOf } from "../lib/proxy/credentials.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** One configuration's figures. */
export interface ClusterFigures {
  /** `1 unnamed`, `1 named`, `2 named`, `3 named`. */
  nodes: string;
  clients: number;
  /** Median polls per second over the rounds. */
  pollsPerSecond: number;
  /** Sessions made on each node, by name. */
  spread: Record<string, number>;
}

/** Waits until something accepts connections on `port` (bounded). */
async function listening(port: number): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  throw new Error(`the gateway did not start listening on ${port}`);
}

/** K clients polling (wait 0) in a loop through the gateway on `port`, for `seconds`. */
async function polls(
  port: number,
  clients: number,
  seconds: number,
): Promise<{ perSecond: number; spread: Record<string, number> }> {
  const base = `http://127.0.0.1:${port}`;
  const sessions = await Promise.all(Array.from({ length: clients }, async () => {
    const response = await fetch(`${base}/api/sessions`, { method: "POST" });
    const body = await response.json();
    if (response.status !== 201) throw new Error(JSON.stringify(body));
    return body as { id: string; secret: string };
  }));
  const spread: Record<string, number> = {};
  for (const { id } of sessions) {
    const node = nodeOf(id) ?? "unnamed";
    spread[node] = (spread[node] ?? 0) + 1;
  }
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(sessions.map(async (session) => {
    let ack = 0;
    while (performance.now() < deadline) {
      const response = await fetch(`${base}/api/sessions/${session.id}/poll`, {
        method: "POST",
        body: JSON.stringify({ secret: session.secret, ack }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(JSON.stringify(body));
      ack = body.ack;
      done++;
    }
  }));
  await Promise.all(sessions.map((session) =>
    fetch(`${base}/api/sessions/${session.id}`, {
      method: "DELETE",
      body: JSON.stringify({ secret: session.secret }),
    }).then((response) => response.body?.cancel())
  ));
  return { perSecond: done / seconds, spread };
}

/**
 * Poll cycles through one gateway with 1 (unnamed and named), 2 and 3
 * nodes, the configurations interleaved round by round.
 *
 * @param destinationPort The echo destination every server connects to.
 * @param options Clients, seconds a run, rounds.
 * @returns One row per configuration.
 */
export async function clusterPolls(
  destinationPort: number,
  options: { clients: number; seconds: number; rounds: number },
): Promise<ClusterFigures[]> {
  await using stack = new AsyncDisposableStack();
  const servers = await Promise.all(
    ["n1", "n2", "n3"].map(async (name) =>
      stack.use(await startServer(destinationPort, [`--node=${name}`]))
    ),
  );
  const unnamed = stack.use(await startServer(destinationPort));
  const configurations: { nodes: string; proxies: string[] }[] = [
    { nodes: "1 unnamed", proxies: [`--proxy=127.0.0.1:${unnamed.port}`] },
    ...[1, 2, 3].map((count) => ({
      nodes: `${count} named`,
      proxies: servers.slice(0, count).map((server, i) =>
        `--proxy=n${i + 1}=127.0.0.1:${server.port}`
      ),
    })),
  ];
  const runs = configurations.map(() => [] as number[]);
  const spreads: Record<string, number>[] = configurations.map(() => ({}));
  for (let round = 0; round < options.rounds; round++) {
    for (const [index, configuration] of configurations.entries()) {
      const port = freePort();
      await using _web = new Child(Deno.execPath(), [
        "run",
        "--allow-net",
        MAIN,
        "web",
        `--listen=127.0.0.1:${port}`,
        "--log-level=warn",
        ...configuration.proxies,
      ]);
      await listening(port);
      const { perSecond, spread } = await polls(port, options.clients, options.seconds);
      runs[index]?.push(perSecond);
      spreads[index] = spread;
    }
  }
  return configurations.map((configuration, index) => ({
    nodes: configuration.nodes,
    clients: options.clients,
    pollsPerSecond: median(runs[index] ?? []),
    spread: spreads[index] ?? {},
  }));
}
