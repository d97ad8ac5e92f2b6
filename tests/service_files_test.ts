/**
 * The service files: their command lines are valid socketproxy command
 * lines, the systemd unit passes `systemd-analyze verify` and keeps its
 * hardening, and the Upstart job has what Upstart needs.
 */

import assert from "node:assert/strict";
import { parseServerArgs } from "../lib/commands/server.ts";
import { installed } from "./_helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const unit = await Deno.readTextFile(`${ROOT}socketproxy.service`);
const upstart = await Deno.readTextFile(`${ROOT}upstart.conf.example`);

/** The socketproxy arguments of a service file's command line. */
function serverArguments(commandLine: string): string[] {
  const [binary, command, ...args] = commandLine.trim().split(/\s+/);
  assert.equal(binary, "/usr/local/bin/socketproxy");
  assert.equal(command, "server");
  return args;
}

Deno.test("the systemd unit's ExecStart is a valid server command line", () => {
  const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1];
  assert.ok(execStart);
  const config = parseServerArgs(serverArguments(execStart));
  assert.ok(config !== "help");
  assert.equal(config.logFormat, "json", "journald gets structured lines");
});

Deno.test("the systemd unit restarts on failure and is hardened", () => {
  for (
    const setting of [
      "Restart=on-failure",
      "DynamicUser=yes",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "CapabilityBoundingSet=",
      "KillSignal=SIGTERM",
      "WantedBy=multi-user.target",
    ]
  ) {
    assert.match(unit, new RegExp(`^${setting}$`, "m"), setting);
  }
  assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=yes/m, "V8 needs to write executable code");
});

const systemdAnalyze = await installed("systemd-analyze", ["--version"]);

/** Runs `systemd-analyze verify` on the unit, with a drop-in if given; returns its complaints. */
async function verifyUnit(dropIn?: string): Promise<{ success: boolean; messages: string }> {
  const dir = await Deno.makeTempDir({ prefix: "socketproxy-unit-" });
  try {
    // verify checks that the binary exists: point it at a stand-in.
    const binary = `${dir}/socketproxy`;
    await Deno.writeTextFile(binary, "#!/bin/sh\n");
    await Deno.chmod(binary, 0o755);
    const standIn = (text: string): string =>
      text.replaceAll(/^ExecStart=\/usr\/local\/bin\/socketproxy/gm, `ExecStart=${binary}`);
    await Deno.writeTextFile(`${dir}/socketproxy.service`, standIn(unit));
    if (dropIn !== undefined) {
      await Deno.mkdir(`${dir}/socketproxy.service.d`);
      await Deno.writeTextFile(`${dir}/socketproxy.service.d/override.conf`, standIn(dropIn));
    }
    const output = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${dir}/socketproxy.service`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const messages = new TextDecoder().decode(output.stderr);
    return { success: output.success && !/socketproxy\.service/.test(messages), messages };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const skipped = systemdAnalyze ? "" : " (skipped: systemd-analyze is not installed)";

Deno.test({
  name: `systemd-analyze verify accepts the unit${skipped}`,
  ignore: !systemdAnalyze,
  async fn() {
    const { success, messages } = await verifyUnit();
    assert.ok(success, messages);
  },
});

Deno.test("the unit's install steps edit it in full, or clear ExecStart in a drop-in", () => {
  // A drop-in cannot add a second ExecStart= to a Type=exec unit: the command
  // given edits the whole unit, and the note on drop-ins says to clear it.
  const commands = unit.split("\n").filter((line) => /^#\s+sudo systemctl edit/.test(line));
  assert.ok(commands.length > 0);
  for (const line of commands) assert.match(line, /systemctl edit --full socketproxy/);
  assert.match(unit, /empty "ExecStart=" line/);
});

Deno.test({
  name: `a drop-in that clears ExecStart first is accepted; one that does not is refused${skipped}`,
  ignore: !systemdAnalyze,
  async fn() {
    const exec =
      "ExecStart=/usr/local/bin/socketproxy server --log-format=json mud.example.org:4000";
    const cleared = await verifyUnit(`[Service]\nExecStart=\n${exec}\n`);
    assert.ok(cleared.success, cleared.messages);
    const added = await verifyUnit(`[Service]\n${exec}\n`);
    assert.ok(!added.success, "systemd refuses a second ExecStart=");
    assert.match(added.messages, /more than one ExecStart=/);
  },
});

Deno.test("the Upstart job starts on boot, respawns, and runs a valid command line", () => {
  assert.match(upstart, /^description "[^"]+"$/m);
  assert.match(upstart, /^start on .+$/m);
  assert.match(upstart, /^stop on runlevel \[!2345\]$/m);
  assert.match(upstart, /^respawn$/m);
  const exec = /^exec (.+)$/m.exec(upstart)?.[1];
  assert.ok(exec);
  assert.notEqual(parseServerArgs(serverArguments(exec)), "help");
});
