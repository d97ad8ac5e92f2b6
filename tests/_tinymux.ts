/**
 * TinyMUX (Debian's `tinymux` package), a real MUD server nobody on this
 * project wrote, started in a temporary directory for a test: it negotiates
 * EOR, SGA, TTYPE, NAWS, NEW-ENVIRON and CHARSET as players' clients meet
 * them. Its fresh database has the wizard `connect wizard potrzebie`.
 *
 * @module
 */

/** Where Debian installs the game's installer and server. */
const INSTALLER = "/usr/games/tinymux-install";
const NETMUX = "/usr/lib/tinymux/game/bin/netmux";

/** Why TinyMUX cannot run here, or `undefined` when it can. */
export const TINYMUX_MISSING: string | undefined = (() => {
  for (const path of [INSTALLER, NETMUX]) {
    try {
      Deno.statSync(path);
    } catch {
      return `${path} is missing (apt-get install tinymux)`;
    }
  }
  return undefined;
})();

/** A running TinyMUX on loopback. */
export interface TinyMux extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  port: number;
}

/** A port that was free a moment ago: TinyMUX takes a fixed port, not port 0. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Connects until TinyMUX answers, within `waitMs`; it has no readiness signal but its port. */
async function untilListening(port: number, waitMs: number, exited: Promise<unknown>) {
  const deadline = Date.now() + waitMs;
  let gone = false;
  exited.then(() => gone = true);
  for (let attempt = 0; attempt < 200; attempt++) {
    if (gone) throw new Error("TinyMUX exited at start");
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionRefused) || Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`TinyMUX did not listen on ${port} within ${waitMs} ms`);
}

/**
 * Installs a game in a temporary directory and runs it, listening on
 * loopback only (`ip_address 127.0.0.1`).
 *
 * @param waitMs How long it may take to listen.
 * @returns The game; disposing of it stops it and removes the directory.
 */
export async function startTinyMux(waitMs = 10_000): Promise<TinyMux> {
  if (TINYMUX_MISSING) throw new Error(TINYMUX_MISSING);
  const root = await Deno.makeTempDir({ prefix: "socketproxy-tinymux-" });
  const install = await new Deno.Command(INSTALLER, { cwd: root, stdout: "null", stderr: "piped" })
    .output();
  if (!install.success) {
    throw new Error(`tinymux-install: ${new TextDecoder().decode(install.stderr)}`);
  }
  const game = `${root}/tinymux/game`;
  const port = freePort();
  const config = await Deno.readTextFile(`${game}/netmux.conf`);
  await Deno.writeTextFile(
    `${game}/netmux.conf`,
    `${config.replace(/^port \d+$/m, `port ${port}`)}\nip_address 127.0.0.1\n`,
  );
  // In a session of its own (setsid), so that its helper processes (slave,
  // stubslave) go with it: killing the group stops them all.
  const child = new Deno.Command("setsid", {
    args: [`${game}/bin/netmux`, "-c", "netmux.conf", "-p", "netmux.pid", "-e", "."],
    cwd: game,
    env: { LD_LIBRARY_PATH: `${game}/bin` },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stopped = async () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    await Deno.remove(root, { recursive: true });
  };
  try {
    await untilListening(port, waitMs, child.status);
  } catch (error) {
    await stopped();
    throw error;
  }
  return { port, [Symbol.asyncDispose]: stopped };
}
