/**
 * What keeps hostile web pages out of socketproxy's two HTTP servers (the
 * admin port and the gateway), which a visitor's browser can reach.
 *
 * - {@linkcode HostCheck}, against DNS rebinding: a page on a name the
 *   attacker controls, re-pointed at 127.0.0.1, is same-origin with the
 *   server in the browser's eyes, but its requests carry the attacker's
 *   name as `Host`. Only loopback names, IP addresses, the name the server
 *   listens on and names the operator allows are answered.
 * - {@linkcode originAllowed}, against cross-site requests: a request a
 *   browser sends from another site carries that site's `Origin`.
 *
 * @module
 */

import type { HostPort } from "../address.ts";

/** Options for {@linkcode HostCheck.create}. */
export interface HostCheckOptions {
  /** Where the server listens. */
  listen: HostPort;
  /**
   * Host names answered besides loopback names and IP addresses: exact
   * names, or `.example.com` for every name under example.com.
   * @default {[]}
   */
  allowHosts?: readonly string[];
}

/**
 * Decides whether a request's `Host` is one this server answers.
 *
 * @example
 * ```ts
 * import { HostCheck } from "./browser_guard.ts";
 *
 * const check = HostCheck.create({ listen: { hostname: "localhost", port: 9010 } });
 * console.assert(check.allows("localhost:9010"));
 * console.assert(check.allows("127.0.0.1:9010"));
 * console.assert(!check.allows("evil.example:9010"));
 * ```
 */
export class HostCheck {
  /** Whether requests are checked at all: not on a public address with no names allowed. */
  readonly enabled: boolean;
  readonly #names: ReadonlySet<string>;
  readonly #suffixes: readonly string[];

  private constructor(enabled: boolean, names: readonly string[]) {
    this.enabled = enabled;
    const lower = names.map((name) => name.toLowerCase());
    this.#names = new Set(lower.filter((name) => !name.startsWith(".")));
    this.#suffixes = lower.filter((name) => name.startsWith("."));
  }

  /**
   * The check for a server listening at `options.listen`. On a loopback,
   * private or unspecified address (`0.0.0.0`, `::`), or a host name, it
   * is on; on a public IP address it is on once names are allowed.
   *
   * @param options Where the server listens and the names allowed.
   * @returns The check.
   */
  static create(options: HostCheckOptions): HostCheck {
    const allowHosts = options.allowHosts ?? [];
    const listen = options.listen.hostname.toLowerCase();
    const enabled = allowHosts.length > 0 || !isPublicAddress(listen);
    return new HostCheck(enabled, isIpAddress(listen) ? allowHosts : [listen, ...allowHosts]);
  }

  /**
   * Whether a request with this `Host` header is answered.
   *
   * @param host The header, with or without a port; `null` when missing.
   * @returns `true` when the check is off or the host is allowed.
   */
  allows(host: string | null): boolean {
    if (!this.enabled) return true;
    if (host === null) return false;
    const name = hostnameOf(host);
    if (name === null) return false;
    if (isIpAddress(name) || name === "localhost" || name.endsWith(".localhost")) return true;
    return this.#names.has(name) || this.#suffixes.some((suffix) => name.endsWith(suffix));
  }
}

/**
 * Whether a browser request from `origin` may change state on this server:
 * its origin's host and port are the request's own `Host`, or it is listed.
 *
 * @param origin The request's `Origin` header.
 * @param host The request's `Host` header, as the browser (or a reverse proxy on this machine) sent it.
 * @param allowOrigins Origins allowed besides the server's own (`https://play.example.com`), or `*` for any.
 * @returns Whether the request may go on.
 *
 * @example
 * ```ts
 * import { originAllowed } from "./browser_guard.ts";
 *
 * console.assert(originAllowed("http://localhost:8080", "localhost:8080", []));
 * console.assert(!originAllowed("https://evil.example", "localhost:8080", []));
 * ```
 */
export function originAllowed(
  origin: string,
  host: string | null,
  allowOrigins: readonly string[],
): boolean {
  if (allowOrigins.includes("*")) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file: pages) and junk
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (allowOrigins.some((allowed) => sameOrigin(allowed, url))) return true;
  if (host === null) return false;
  // Host as the browser sent it for that scheme: the default port left out.
  let own: URL;
  try {
    own = new URL(`${url.protocol}//${host}`);
  } catch {
    return false;
  }
  return own.host === url.host;
}

function sameOrigin(allowed: string, url: URL): boolean {
  try {
    return new URL(allowed).origin === url.origin;
  } catch {
    return false;
  }
}

/** The host name of a `Host` header, lower case, IPv6 without brackets; `null` when malformed. */
function hostnameOf(host: string): string | null {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::\d{1,5})?$/.exec(host);
  if (bracketed) return (bracketed[1] ?? "").toLowerCase();
  const plain = /^([A-Za-z0-9.-]+)(?::\d{1,5})?$/.exec(host);
  return plain ? (plain[1] ?? "").toLowerCase().replace(/\.$/, "") : null;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpAddress(name: string): boolean {
  return IPV4.test(name) || name.includes(":");
}

/** Whether an address is a public IP address: not loopback, private, link-local or unspecified. */
function isPublicAddress(name: string): boolean {
  const v4 = IPV4.exec(name.replace(/^::ffff:/, ""));
  if (v4) {
    const [a = 0, b = 0] = v4.slice(1).map(Number);
    return !(a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127));
  }
  if (name.includes(":")) {
    return !(name === "::" || name === "::1" || /^f[cd]/.test(name) || /^fe[89ab]/.test(name));
  }
  return false; // a host name: checked, as it may resolve to anything
}
