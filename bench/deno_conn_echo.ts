/**
 * The smallest reproduction of `Deno.Conn`'s unfairness under many busy
 * connections: an echo server, one read loop per connection over one
 * buffer. With 1 000 clients each echoing 64 bytes in a loop, most are
 * answered within 2 ms while hundreds wait over a second, and which
 * connections wait changes over the run; `node:net` (Node, or the same code
 * run by Deno) answers every client within about 150 ms.
 *
 *     cc -O2 -o /tmp/loadgen bench/loadgen.c
 *     deno run --allow-net bench/deno_conn_echo.ts 7002 &
 *     yes "id secret" | head -1000 | /tmp/loadgen echo 7002 3 1000
 *
 * `starved` in the load generator's line counts the clients that waited
 * over 1 000 ms for one echo. See docs/performance.md.
 *
 * @module
 */

for await (const conn of Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0]) })) {
  conn.setNoDelay(true);
  (async () => {
    const buffer = new Uint8Array(64 * 1024);
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      for (let at = 0; at < n;) at += await conn.write(buffer.subarray(at, n));
    }
  })().catch(() => {}).finally(() => conn.close());
}
