/**
 * IP addresses and CIDR ranges: parsing IPv4 and IPv6 text strictly into
 * bytes, and matching addresses against ranges. The server's `--trust-from`
 * and the PROXY protocol header it sends destinations are built on it, and
 * so is the `from=` hello option's address.
 *
 * @module
 */

/** An IP address as bytes: 4 for IPv4, 16 for IPv6. */
export interface IpAddress {
  /** 4 or 6. */
  family: 4 | 6;
  /** The address, network byte order. */
  bytes: Uint8Array;
}

/** An address range: a network address and how many leading bits are fixed. */
export interface IpRange {
  /** The network. */
  address: IpAddress;
  /** The prefix length, 0 to 32 (IPv4) or 128 (IPv6). */
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Parses an IPv4 (dotted quad, no leading zeros) or IPv6 address, without
 * brackets, port or zone.
 *
 * @param text The address.
 * @returns The address, or `null` when `text` is not one.
 *
 * @example
 * ```ts
 * import { parseIp } from "./ip.ts";
 *
 * console.assert(parseIp("192.0.2.7")?.family === 4);
 * console.assert(parseIp("2001:db8::1")?.bytes[15] === 1);
 * console.assert(parseIp("192.0.2.256") === null);
 * ```
 */
export function parseIp(text: string): IpAddress | null {
  const v4 = parseIpv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6(text);
  return v6 ? { family: 6, bytes: v6 } : null;
}

function parseIpv4(text: string): Uint8Array | null {
  const match = IPV4.exec(text);
  if (!match) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = match[i + 1] ?? "";
    if (part.length > 1 && part.startsWith("0")) return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | null {
  if (text.length > 45 || !text.includes(":")) return null;
  let head = text;
  let tail4: Uint8Array | null = null;
  // An IPv4 tail, as in ::ffff:192.0.2.7.
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (!tail4) return null;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): string[] | null => {
    if (half === "") return [];
    const parts = half.split(":");
    return parts.every((part) => HEX_GROUP.test(part)) ? parts : null;
  };
  const left = groups(halves[0] ?? "");
  const right = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (!left || !right) return null;
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...left, ...new Array(halves.length === 2 ? missing : 0).fill("0"), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 0xff;
  });
  if (tail4) bytes.set(tail4, 12);
  return bytes;
}

/**
 * The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands
 * for; any other address as it is.
 *
 * @param address The address.
 * @returns The address, IPv4 where it is one in disguise.
 */
export function unmapIpv4(address: IpAddress): IpAddress {
  const { bytes } = address;
  if (
    address.family === 6 && bytes.subarray(0, 10).every((byte) => byte === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff
  ) {
    return { family: 4, bytes: bytes.slice(12) };
  }
  return address;
}

/**
 * The IPv4-mapped IPv6 form of an IPv4 address; an IPv6 address as it is.
 *
 * @param address The address.
 * @returns 16 bytes.
 */
export function mapToIpv6(address: IpAddress): IpAddress {
  if (address.family === 6) return address;
  const bytes = new Uint8Array(16);
  bytes[10] = bytes[11] = 0xff;
  bytes.set(address.bytes, 12);
  return { family: 6, bytes };
}

/**
 * Formats an address: dotted quad, or RFC 5952 IPv6 (lower case, the
 * longest run of zero groups as `::`, an IPv4-mapped address as
 * `::ffff:192.0.2.7`, as RFC 5952 section 5 recommends and `inet_ntop`
 * writes it).
 *
 * @param address The address.
 * @returns The text.
 */
export function formatIp(address: IpAddress): string {
  const { bytes } = address;
  if (address.family === 4) return [...bytes].join(".");
  if (
    bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff
  ) {
    return `::ffff:${[...bytes.subarray(12)].join(".")}`;
  }
  const groups = [...Array(8)].map((_, i) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/**
 * Parses a CIDR range (`10.0.0.0/8`, `::1/128`), or a single address (a
 * full-length prefix).
 *
 * @param text The range.
 * @returns The range, or `null` when `text` is not one.
 *
 * @example
 * ```ts
 * import { inRange, parseIp, parseRange } from "./ip.ts";
 *
 * const range = parseRange("10.0.0.0/8");
 * console.assert(range !== null && inRange(parseIp("10.1.2.3")!, range));
 * ```
 */
export function parseRange(text: string): IpRange | null {
  const slash = text.indexOf("/");
  const address = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!address) return null;
  const bits = address.family === 4 ? 32 : 128;
  if (slash < 0) return { address, prefix: bits };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  return prefix <= bits ? { address, prefix } : null;
}

/**
 * Whether `address` is in `range`. An IPv4-mapped IPv6 address counts as
 * the IPv4 address it stands for.
 *
 * @param address The address.
 * @param range The range.
 * @returns Whether the first `prefix` bits agree.
 */
export function inRange(address: IpAddress, range: IpRange): boolean {
  const candidate = unmapIpv4(address);
  const network = unmapIpv4(range.address);
  const prefix = range.address.family === 6 && network.family === 4
    ? Math.max(0, range.prefix - 96)
    : range.prefix;
  if (candidate.family !== network.family) return false;
  for (let bit = 0; bit < prefix; bit += 8) {
    const mask = prefix - bit >= 8 ? 0xff : (0xff << (8 - (prefix - bit))) & 0xff;
    const index = bit / 8;
    if (((candidate.bytes[index] ?? 0) & mask) !== ((network.bytes[index] ?? 0) & mask)) {
      return false;
    }
  }
  return true;
}
