/**
 * A plain TCP relay on `Deno.Conn`, the peer of the 1 000-session echo
 * benchmark: each connection gets its own destination connection, and a
 * read loop over one reused buffer per direction copies the bytes. No
 * sessions.
 *
 *     deno run --allow-net bench/deno_conn_relay.ts PORT DESTINATION_PORT [BUFFER_BYTES]
 *
 * @module
 */

const port = Number(Deno.args[0]);
const destination = Number(Deno.args[1]);
const size = Number(Deno.args[2] ?? 64 * 1024);

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(size);
  for (let n = await from.read(buffer); n !== null; n = await from.read(buffer)) {
    for (let at = 0; at < n;) at += await to.write(buffer.subarray(at, n));
  }
}

for await (const client of Deno.listen({ hostname: "127.0.0.1", port })) {
  client.setNoDelay(true);
  Deno.connect({ hostname: "127.0.0.1", port: destination }).then((upstream) => {
    upstream.setNoDelay(true);
    const end = () => {
      for (const conn of [client, upstream]) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
    };
    Promise.race([pump(client, upstream), pump(upstream, client)]).catch(() => {}).finally(end);
  });
}
