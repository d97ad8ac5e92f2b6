// A plain TCP relay on node:net, the peer of the 1 000-session echo
// benchmark: run by Node (`node bench/node_relay.mjs PORT DESTINATION_PORT`)
// and, the same file, by Deno (`deno run --allow-net bench/node_relay.mjs ...`).
// Each connection gets its own destination connection; bytes are piped
// both ways, no sessions.
import net from "node:net";

const [port, destination] = process.argv.slice(2).map(Number);
net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: "127.0.0.1", port: destination });
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", end).on("close", end);
  upstream.on("error", end).on("close", end);
}).listen(port, "127.0.0.1");
