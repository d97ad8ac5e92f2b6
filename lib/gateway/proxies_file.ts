/**
 * The gateway's node list as people write it: `NAME=HOST:PORT`, in a
 * `web --proxy` flag or one a line in a `web --proxies` file (`#` starts a
 * comment, blank lines are skipped), and the file re-read on SIGHUP into
 * the gateway's {@linkcode NodeRouter}. A file that no longer reads keeps
 * the old list, with one error line in the log.
 *
 * @module
 */

import { formatHostPort, type HostPort, parseHostPort } from "../address.ts";
import { UsageError } from "../errors.ts";
import { describeError, type Logger } from "../log.ts";
import type { GatewayNode, NodeRouter } from "./router.ts";
import { NODE_PATTERN } from "../proxy/credentials.ts";

/**
 * Reads one named node: `NAME=[HOST][:PORT]`, the host and port defaulting
 * as `--proxy`'s do.
 *
 * @param text The node as written.
 * @param what Where it came from, for messages (`--proxy`, `nodes.txt:3`).
 * @param defaults The host and port a node leaves out.
 * @returns The node.
 * @throws {UsageError} For a missing or bad name, or a bad address.
 *
 * @example
 * ```ts
 * import { parseNode } from "./proxies_file.ts";
 *
 * const node = parseNode("n1=10.0.0.11:9009", "--proxy", { hostname: "localhost", port: 9009 });
 * console.assert(node.name === "n1" && node.address.port === 9009);
 * ```
 */
export function parseNode(text: string, what: string, defaults: HostPort): GatewayNode {
  const equals = text.indexOf("=");
  const name = text.slice(0, Math.max(equals, 0));
  if (equals < 0 || !NODE_PATTERN.test(name)) {
    throw new UsageError(
      `${what}: expected NAME=HOST:PORT, the name 1 to 24 of A-Z a-z 0-9 -, not "${
        text.slice(0, 100)
      }"`,
    );
  }
  return { name, address: parseHostPort(text.slice(equals + 1), what, { defaults }) };
}

/**
 * Reads a node list: one `NAME=HOST:PORT` a line; `#` starts a comment.
 *
 * @param text The list.
 * @param path Its file's name, for messages (`nodes.txt:3: ...`).
 * @param defaults The host and port a node leaves out.
 * @returns The nodes, in order.
 * @throws {UsageError} For a bad line, a name given twice, or no node at all.
 */
export function parseProxies(text: string, path: string, defaults: HostPort): GatewayNode[] {
  const nodes: GatewayNode[] = [];
  const seen = new Set<string>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    const node = parseNode(line, `${path}:${index + 1}`, defaults);
    if (seen.has(node.name ?? "")) {
      throw new UsageError(`${path}:${index + 1}: node "${node.name}" is listed twice`);
    }
    seen.add(node.name ?? "");
    nodes.push(node);
  });
  if (nodes.length === 0) throw new UsageError(`${path}: lists no node (NAME=HOST:PORT a line)`);
  return nodes;
}

/**
 * Reads a `--proxies` file.
 *
 * @param path The file.
 * @param defaults The host and port a node leaves out.
 * @returns The nodes, in order.
 * @throws {UsageError} When it cannot be read, or for what {@linkcode parseProxies} refuses.
 */
export function readProxiesFile(path: string, defaults: HostPort): GatewayNode[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound ? "no such file" : describeError(error);
    throw new UsageError(`--proxies: cannot read "${path}": ${reason}`);
  }
  return parseProxies(text, path, defaults);
}

/**
 * The node list as logged: `n1=10.0.0.11:9009,n2=10.0.0.12:9009`, or the
 * one unnamed proxy's address.
 *
 * @param nodes The nodes.
 * @returns The text.
 */
export function formatNodes(nodes: readonly GatewayNode[]): string {
  return nodes.map((node) =>
    node.name === null
      ? formatHostPort(node.address)
      : `${node.name}=${formatHostPort(node.address)}`
  ).join(",");
}

/** Options of {@linkcode reloadOnHangup}. */
export interface ReloadOptions {
  /** The `--proxies` file. */
  path: string;
  /** The host and port a node leaves out. */
  defaults: HostPort;
  /** Where the reload, or why it failed, is logged. */
  logger: Logger;
}

/**
 * Re-reads the `--proxies` file into `router` on every SIGHUP, until
 * disposed: `web.proxies_reloaded` with the new list, or one
 * `web.proxies_error` line and the old list kept.
 *
 * @param router The gateway's router.
 * @param options The file, the defaults and the logger.
 * @returns The watch; dispose it to stop listening.
 */
export function reloadOnHangup(router: NodeRouter, options: ReloadOptions): Disposable {
  const { path, defaults, logger } = options;
  function reload(): void {
    try {
      const nodes = readProxiesFile(path, defaults);
      router.replace(nodes);
      logger.info("web.proxies_reloaded", { file: path, proxies: formatNodes(nodes) });
    } catch (error) {
      logger.error("web.proxies_error", {
        file: path,
        error: error instanceof Error ? error.message : describeError(error),
        kept: formatNodes(router.nodes),
      });
    }
  }
  Deno.addSignalListener("SIGHUP", reload);
  return { [Symbol.dispose]: () => Deno.removeSignalListener("SIGHUP", reload) };
}
