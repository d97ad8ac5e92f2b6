/**
 * The least a Deno server can do per poll cycle: accept, read the hello,
 * write a fixed reply, wait for the client to close, close. The poll
 * benchmark runs it as the ceiling socketproxy is measured against.
 *
 *     deno run --allow-net bench/minimal_server.ts PORT
 *
 * @module
 */

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0]) });
const answer = new TextEncoder().encode(
  `OK abcdefghijklmnop ${"A".repeat(32)} 0 0 16 open\n0123456789abcdef`,
);
for await (const conn of listener) {
  (async () => {
    conn.setNoDelay(true);
    const buffer = new Uint8Array(512);
    try {
      await conn.read(buffer);
      await conn.write(answer);
      await conn.read(buffer);
    } catch {
      // The client left.
    }
    conn.close();
  })();
}
