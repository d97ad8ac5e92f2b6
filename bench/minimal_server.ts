/**
 * The least a Deno server can do per poll cycle: accept, read the hello
 * line and the 16 bytes of input after it, write a fixed reply, read until
 * the client closes, close. Everything the client sends is read, so its
 * close is a FIN, never a reset (closing with unread bytes resets). The
 * poll benchmark runs it as the ceiling socketproxy is measured against.
 *
 *     deno run --allow-net bench/minimal_server.ts PORT
 *
 * @module
 */

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0]) });
const answer = new TextEncoder().encode(
  `OK abcdefghijklmnop ${"A".repeat(32)} 0 0 16 open\n0123456789abcdef`,
);
const INPUT = 16;
for await (const conn of listener) {
  (async () => {
    conn.setNoDelay(true);
    const buffer = new Uint8Array(512);
    try {
      // The hello and its input: a line, then 16 bytes.
      let filled = 0;
      let lf = -1;
      while (lf < 0 || filled < lf + 1 + INPUT) {
        const count = await conn.read(buffer.subarray(filled));
        if (count === null) break;
        filled += count;
        lf = buffer.subarray(0, filled).indexOf(10);
      }
      await conn.write(answer);
      while (await conn.read(buffer) !== null);
    } catch {
      // The client left.
    }
    conn.close();
  })();
}
