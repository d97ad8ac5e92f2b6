// A plain TCP relay on node:net that reads into one reused buffer per
// direction (the `onread` option) instead of a new buffer per `data`
// event: the fair way of reading sockets that keeps the throughput, a
// peer of the throughput and 1 000-session echo benchmarks.
//
//     deno run --allow-net bench/onread_relay.mjs PORT DESTINATION_PORT
//
// node:net has no `onread` for accepted sockets; this sets the two fields
// that option sets (kBuffer, kBufferCb, found by name) before the socket
// first reads. Internals of Deno 2.9's node:net: bench only.
import net from "node:net";

const [port, destination] = process.argv.slice(2).map(Number);
const SIZE = 64 * 1024;

/** An onread callback that writes each read to `to` and reads on once `to` has taken it. */
function forward(from, to) {
  let paused = false;
  const written = () => {
    if (!paused) return;
    paused = false;
    from().resume();
  };
  return (count, buffer) => {
    to.write(buffer.subarray(0, count), written);
    // Written at once: the buffer is free for the next read.
    if (to.writableLength === 0) return true;
    // Still queued, and the next read would land on it: wait for the write.
    paused = true;
    return false;
  };
}

net.createServer({ noDelay: true, pauseOnConnect: true }, (client) => {
  const upstream = net.connect({
    host: "127.0.0.1",
    port: destination,
    noDelay: true,
    onread: { buffer: Buffer.alloc(SIZE), callback: forward(() => upstream, client) },
  });
  const symbols = Object.getOwnPropertySymbols(client);
  const field = (name) => symbols.find((symbol) => symbol.description === name);
  client[field("kBuffer")] = Buffer.alloc(SIZE);
  client[field("kBufferCb")] = forward(() => client, upstream);
  client._handle.useUserBuffer(client[field("kBuffer")]);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", end).on("close", end);
  upstream.on("error", end).on("close", end);
  upstream.on("connect", () => client.resume());
}).listen(port, "127.0.0.1");
