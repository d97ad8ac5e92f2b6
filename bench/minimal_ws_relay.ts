/**
 * The least a Deno WebSocket-to-TCP relay can do, speaking just enough of
 * the gateway's WebSocket protocol (docs/gateway.md) for the same client to
 * use it: each socket gets its own connection to the destination; the first
 * message's `input` and every binary frame go to it, `{"type":"in"}` is sent
 * per `maxInput` bytes written, and what the destination sends comes back
 * as binary frames, reading nothing more while over 1 MiB waits to go out.
 * Acknowledgements are ignored: nothing is kept to resume from.
 * No sessions, no resume. The WebSocket benchmark runs it as the baseline.
 *
 *     deno run --allow-net bench/minimal_ws_relay.ts PORT DESTINATION_PORT
 *
 * @module
 */

const port = Number(Deno.args[0]);
const destination = Number(Deno.args[1]);
const MAX_INPUT = 64 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  const connecting = Deno.connect({ hostname: "127.0.0.1", port: destination });
  let writes: Promise<unknown> = connecting;
  let written = 0;
  let told = 0;
  const write = (bytes: Uint8Array) => {
    writes = writes.then(async () => {
      const conn = await connecting;
      for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
      written += bytes.length;
      if (written - told >= MAX_INPUT && socket.readyState === WebSocket.OPEN) {
        told = written;
        socket.send(JSON.stringify({ type: "in", in: written }));
      }
    }).catch(() => socket.close());
  };
  let first = true;
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") return write(new Uint8Array(event.data));
    if (!first) return; // {"type":"ack"}
    first = false;
    const { input } = JSON.parse(event.data);
    const attached = { type: "attached", v: 2, from: 0, in: 0, state: "open" };
    socket.send(JSON.stringify({ ...attached, maxInput: MAX_INPUT, window: 2 * MAX_INPUT }));
    if (typeof input === "string" && input) write(Uint8Array.fromBase64(input));
  };
  socket.onclose = () => connecting.then((conn) => conn.close()).catch(() => {});
  socket.onopen = async () => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      const conn = await connecting;
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        if (socket.readyState !== WebSocket.OPEN) return;
        socket.send(buffer.slice(0, n));
        while (socket.bufferedAmount > 1024 * 1024) await sleep(1);
      }
      socket.close(1000, "destination closed");
    } catch {
      socket.close();
    }
  };
  return response;
});
