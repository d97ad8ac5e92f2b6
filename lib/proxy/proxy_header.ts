/**
 * The PROXY protocol header (HAProxy's specification, versions 1 and 2)
 * that `server --send-proxy` writes to a destination before any other
 * byte, so that the game or BBS sees the player's address, not the
 * proxy's. Only the `PROXY` command over TCP is ever sent.
 *
 * @module
 */

import { formatIp, type IpAddress, mapToIpv6, parseIp, unmapIpv4 } from "../ip.ts";

/** `v1` (a text line) or `v2` (binary). */
export type ProxyHeaderVersion = "v1" | "v2";

/** One end of the connection the header describes. */
export interface ProxyEndpoint {
  /** The IP address, IPv4 or IPv6 text. */
  ip: string;
  /** The port; 0 when not known (an end user's address from a gateway often has none). */
  port: number;
}

/** The 12 bytes every version 2 header starts with. */
const V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
/** Version 2, command PROXY. */
const V2_PROXY = 0x21;
/** TCP over IPv4, TCP over IPv6. */
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

const encoder = new TextEncoder();

/**
 * Builds the header for a connection from `source` (the client) to
 * `destination` (the address the client reached). Both ends are sent in
 * one family: IPv4 when both are IPv4 (IPv4-mapped IPv6 counts as IPv4),
 * otherwise IPv6, with an IPv4 address mapped into it.
 *
 * @param version `v1` or `v2`.
 * @param source The client's address.
 * @param destination The address the client connected to.
 * @returns The header's bytes.
 * @throws {TypeError} When an address is not an IP address.
 *
 * @example
 * ```ts
 * import { proxyHeader } from "./proxy_header.ts";
 *
 * const line = new TextDecoder().decode(
 *   proxyHeader("v1", { ip: "192.0.2.7", port: 51000 }, { ip: "127.0.0.1", port: 9009 }),
 * );
 * console.assert(line === "PROXY TCP4 192.0.2.7 127.0.0.1 51000 9009\r\n");
 * ```
 */
export function proxyHeader(
  version: ProxyHeaderVersion,
  source: ProxyEndpoint,
  destination: ProxyEndpoint,
): Uint8Array {
  let from = unmapIpv4(address(source.ip));
  let to = unmapIpv4(address(destination.ip));
  if (from.family !== to.family) [from, to] = [mapToIpv6(from), mapToIpv6(to)];
  if (version === "v1") {
    const family = from.family === 4 ? "TCP4" : "TCP6";
    return encoder.encode(
      `PROXY ${family} ${formatIp(from)} ${formatIp(to)} ${source.port} ${destination.port}\r\n`,
    );
  }
  const length = 2 * from.bytes.length + 4;
  const header = new Uint8Array(16 + length);
  header.set(V2_SIGNATURE);
  header[12] = V2_PROXY;
  header[13] = from.family === 4 ? V2_TCP4 : V2_TCP6;
  const view = new DataView(header.buffer);
  view.setUint16(14, length);
  header.set(from.bytes, 16);
  header.set(to.bytes, 16 + from.bytes.length);
  view.setUint16(16 + 2 * from.bytes.length, source.port);
  view.setUint16(18 + 2 * from.bytes.length, destination.port);
  return header;
}

function address(text: string): IpAddress {
  const parsed = parseIp(text);
  if (!parsed) throw new TypeError(`Not an IP address: ${text}`);
  return parsed;
}
