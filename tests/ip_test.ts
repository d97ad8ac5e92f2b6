/**
 * IP address text as the PROXY header and the trust checks need it:
 * parsed strictly, formatted as RFC 5952 says, mapped IPv4 in mixed form.
 */

import assert from "node:assert/strict";
import { formatIp, mapToIpv6, parseIp, unmapIpv4 } from "../lib/ip.ts";
import { proxyHeader } from "../lib/proxy/proxy_header.ts";

function format(text: string): string {
  const address = parseIp(text);
  assert.ok(address, text);
  return formatIp(address);
}

Deno.test("addresses are formatted as RFC 5952 says: lower case, the longest zero run as ::", () => {
  assert.equal(format("192.0.2.7"), "192.0.2.7");
  assert.equal(format("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(format("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(format("::1"), "::1");
  assert.equal(format("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2:3:4:5:6");
});

Deno.test("an IPv4-mapped IPv6 address is written ::ffff:a.b.c.d (RFC 5952 section 5)", () => {
  const address = parseIp("127.0.0.1");
  assert.ok(address);
  assert.equal(formatIp(mapToIpv6(address)), "::ffff:127.0.0.1");
  assert.equal(format("::ffff:7f00:1"), "::ffff:127.0.0.1");
  assert.equal(formatIp(unmapIpv4(mapToIpv6(address))), "127.0.0.1");
  // Not mapped: a zero prefix without ffff stays hexadecimal.
  assert.equal(format("::7f00:1"), "::7f00:1");
});

Deno.test("a PROXY v1 line with one IPv6 end writes the IPv4 end mapped, in mixed form", () => {
  const line = new TextDecoder().decode(
    proxyHeader("v1", { ip: "2001:db8::7", port: 4000 }, { ip: "127.0.0.1", port: 9009 }),
  );
  assert.equal(line, "PROXY TCP6 2001:db8::7 ::ffff:127.0.0.1 4000 9009\r\n");
});
