/**
 * The gateway as a router: which socketproxy server (node) a request goes
 * to. `NEW` goes to a node that accepts it, spread evenly over the nodes,
 * the next node tried on `ERR busy` (a full or draining node) or a failed
 * connection; every other request goes to the node its session id names
 * (`NODE_<random>`, see `nodeOf`), and a session whose node is unknown or
 * down is answered 502 `node_unavailable` with the node's name, never
 * with another node's `401`.
 *
 *     browser --> gateway --NodeRouter--> node n1 | n2 | n3
 *
 * A gateway with one unnamed proxy (`web --proxy=HOST:PORT`) routes every
 * request to it, as before the cluster: no id is read, no error rewritten.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../address.ts";
import { BusyError, ConnectionLostError, ProxyUnavailableError } from "../client/mod.ts";
import { NODE_PATTERN, nodeOf } from "../proxy/credentials.ts";
import { HttpError } from "./requests.ts";

/** One socketproxy server the gateway sends requests to. */
export interface GatewayNode {
  /** Its node name (`server --node`); `null` for a gateway's one unnamed proxy. */
  readonly name: string | null;
  /** Where it takes protocol connections. */
  readonly address: HostPort;
}

/** What became of one node's try at a `NEW`: for the gateway's metrics. */
export type CreateOutcome = "created" | "busy" | "unavailable" | "failed";

/** Options of {@linkcode NodeRouter}. */
export interface NodeRouterOptions {
  /**
   * For how long a node that refused a `NEW` (busy, draining, or not
   * answering) is tried after the others, in ms: the others take its share
   * meanwhile, and it is asked again once this has passed.
   * @default {1000}
   */
  recheckAfter?: number;
}

/**
 * Chooses the node for each request of a gateway.
 *
 * @example
 * ```ts
 * import { NodeRouter } from "./router.ts";
 *
 * const router = new NodeRouter([
 *   { name: "n1", address: { hostname: "10.0.0.11", port: 9009 } },
 *   { name: "n2", address: { hostname: "10.0.0.12", port: 9009 } },
 * ]);
 * console.assert(router.nodeFor("n2_q3Zx0b9XkP2Lm7Rt").address.hostname === "10.0.0.12");
 * console.assert(router.knownNode("n9_q3Zx0b9XkP2Lm7Rt") === undefined);
 * ```
 */
export class NodeRouter {
  #nodes: readonly GatewayNode[] = [];
  #byName = new Map<string, GatewayNode>();
  /** Where the next `NEW` starts looking: the node after the last one chosen. */
  #cursor = 0;
  /** When each node last refused a `NEW` (`performance.now()`). */
  readonly #refusedAt = new Map<GatewayNode, number>();
  readonly #recheckAfter: number;

  /**
   * Makes a router over the nodes.
   *
   * @param nodes Every node named, or one unnamed proxy.
   * @param options How long a refusing node goes to the back.
   * @throws {TypeError} For no node, a mix of named and unnamed, a bad or a repeated name.
   */
  constructor(nodes: readonly GatewayNode[], options: NodeRouterOptions = {}) {
    this.#recheckAfter = options.recheckAfter ?? 1000;
    this.replace(nodes);
  }

  /**
   * A router for one unnamed proxy: every request goes there.
   *
   * @param address The proxy.
   * @returns The router.
   */
  static single(address: HostPort): NodeRouter {
    return new NodeRouter([{ name: null, address }]);
  }

  /** The nodes, in the order they were given. */
  get nodes(): readonly GatewayNode[] {
    return this.#nodes;
  }

  /** Whether the nodes have names, so that requests are routed by the node in the id. */
  get named(): boolean {
    return this.#byName.size > 0;
  }

  /**
   * Replaces the nodes (the `--proxies` file re-read): requests from now on
   * go to the new list; those under way finish where they are.
   *
   * @param nodes Every node named, or one unnamed proxy.
   * @throws {TypeError} As the constructor; then the old list stays.
   */
  replace(nodes: readonly GatewayNode[]): void {
    if (nodes.length === 0) throw new TypeError("Cannot route to no node: give at least one");
    const byName = new Map<string, GatewayNode>();
    for (const node of nodes) {
      if (node.name === null) {
        if (nodes.length > 1) {
          throw new TypeError(
            `Cannot route to "${
              formatHostPort(node.address)
            }" without a name beside other nodes: ` +
              "name every node (NAME=HOST:PORT)",
          );
        }
        continue;
      }
      if (!NODE_PATTERN.test(node.name)) {
        throw new TypeError(
          `Cannot route to node "${node.name.slice(0, 64)}": a name is 1 to 24 of A-Z a-z 0-9 -`,
        );
      }
      if (byName.has(node.name)) {
        throw new TypeError(`Cannot route to node "${node.name}" twice: names must differ`);
      }
      byName.set(node.name, node);
    }
    this.#nodes = [...nodes];
    this.#byName = byName;
    this.#cursor %= nodes.length;
    this.#refusedAt.clear();
  }

  /**
   * The node a session id names, when this router knows it: for labels.
   *
   * @param id A session id.
   * @returns The node's name; `undefined` for an unnamed router, an id without a node or an unknown node.
   */
  knownNode(id: string): string | undefined {
    if (!this.named) return undefined;
    const name = nodeOf(id);
    return name !== null && this.#byName.has(name) ? name : undefined;
  }

  /**
   * The node that holds a session.
   *
   * @param id The session id (checked against the protocol's pattern by the caller).
   * @returns The one unnamed proxy, or the node the id names.
   * @throws {HttpError} 502 `node_unavailable` for an id naming no node or one not in the list.
   */
  nodeFor(id: string): GatewayNode {
    const only = this.#nodes[0];
    if (!this.named && only) return only;
    const name = nodeOf(id);
    if (name === null) {
      throw new HttpError(
        502,
        "node_unavailable",
        "The session id names no node, and this gateway routes by node (NODE_<random>)",
        { node: null },
      );
    }
    const node = this.#byName.get(name);
    if (!node) {
      throw new HttpError(
        502,
        "node_unavailable",
        `The session's node "${name}" is unknown to this gateway`,
        { node: name },
      );
    }
    return node;
  }

  /**
   * Runs a request of an existing session on its node. A named node that
   * cannot be reached (or fails before its reply) is a 502
   * `node_unavailable` naming it; any other error passes as it is.
   *
   * @param id The session id.
   * @param attempt The request, given the node.
   * @returns What `attempt` returns.
   * @throws {HttpError} 502 `node_unavailable`, and whatever `attempt` throws.
   */
  async onNode<T>(id: string, attempt: (node: GatewayNode) => Promise<T>): Promise<T> {
    const node = this.nodeFor(id);
    try {
      return await attempt(node);
    } catch (error) {
      throw this.explain(error, node);
    }
  }

  /**
   * Says an error of a named node's request as the browser gets it: a node
   * not answering is `node_unavailable` with its name (the WebSocket relay
   * and {@linkcode NodeRouter.onNode} use it).
   *
   * @param error What the request threw.
   * @param node The node it went to.
   * @returns The error to answer with.
   */
  explain(error: unknown, node: GatewayNode): unknown {
    if (node.name === null) return error;
    if (!(error instanceof ProxyUnavailableError || error instanceof ConnectionLostError)) {
      return error;
    }
    return new HttpError(
      502,
      "node_unavailable",
      `The session's node "${node.name}" is not answering: ${error.message}`,
      { node: node.name },
    );
  }

  /**
   * Creates a session on a node that accepts it: starting with the node
   * after the last one chosen, skipping to the next on `ERR busy` or a
   * failed connection, each node at most once. Nodes that refused lately
   * are tried last, so the others share the load evenly meanwhile.
   *
   * @param attempt The `NEW`, given a node.
   * @param observe Told each node's outcome (for metrics).
   * @returns What the first accepting node's `attempt` returns.
   * @throws The busy error when every node refused and one was busy, else
   * the last node's error; any other error of `attempt` at once.
   */
  async create<T>(
    attempt: (node: GatewayNode) => Promise<T>,
    observe?: (node: GatewayNode, outcome: CreateOutcome) => void,
  ): Promise<T> {
    const order = this.#order();
    let busy: unknown = undefined;
    let last: unknown = undefined;
    for (const node of order) {
      try {
        const value = await attempt(node);
        observe?.(node, "created");
        this.#refusedAt.delete(node);
        return value;
      } catch (error) {
        const outcome: CreateOutcome = error instanceof BusyError
          ? "busy"
          : error instanceof ProxyUnavailableError || error instanceof ConnectionLostError
          ? "unavailable"
          : "failed";
        observe?.(node, outcome);
        if (outcome === "failed") throw error;
        this.#refusedAt.set(node, performance.now());
        if (outcome === "busy") busy ??= error;
        last = error;
      }
    }
    throw busy ?? last;
  }

  /** The nodes a `NEW` tries, in order; moves the cursor past the first. */
  #order(): GatewayNode[] {
    const nodes = this.#nodes;
    if (nodes.length === 1) return [...nodes];
    const now = performance.now();
    const ready: GatewayNode[] = [];
    const refused: GatewayNode[] = [];
    for (let i = 0; i < nodes.length; i++) {
      const index = (this.#cursor + i) % nodes.length;
      const node = nodes[index];
      if (node === undefined) continue;
      const refusedAt = this.#refusedAt.get(node);
      if (refusedAt !== undefined && now - refusedAt < this.#recheckAfter) refused.push(node);
      else ready.push(node);
    }
    const first = ready[0] ?? refused[0];
    if (first !== undefined) this.#cursor = (nodes.indexOf(first) + 1) % nodes.length;
    return [...ready, ...refused];
  }
}
