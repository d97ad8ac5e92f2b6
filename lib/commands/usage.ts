/**
 * The `--help` text of a command, made from its settings table
 * (`settings.ts`), so that the options listed are the options parsed, and
 * every command's help says how the environment and `--config` set them.
 *
 * @module
 */

import {
  commandFlags,
  type CommandSpec,
  CONFIG_VARIABLE,
  type FlagInfo,
  variableName,
} from "./settings.ts";

/** The width help text is wrapped to. */
const WIDTH = 80;
/** Flags longer than this go on a line of their own, the description below. */
const LONGEST_INLINE = 28;

/**
 * Wraps text into lines of at most `width` characters (a longer word stays whole).
 *
 * @param text The text; its line breaks are kept as spaces, and a no-break
 * space (U+00A0) does not break.
 * @param width The width.
 * @returns The lines.
 */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/[ \t\n]+/).filter((part) => part !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** How a flag is written in the help: `-h, --help`, `--buffer=SIZE`. */
export function flagLabel(flag: FlagInfo): string {
  const long = `--${flag.name}${flag.value === undefined ? "" : `=${flag.value}`}`;
  return flag.short === undefined ? long : `-${flag.short}, ${long}`;
}

/**
 * The usage line of a command: `socketproxy server [options] [DEST_HOST:DEST_PORT]`.
 *
 * @param spec The command's table.
 * @returns The line, without `Usage: `.
 */
export function usageLine(spec: CommandSpec): string {
  const positional = spec.positional;
  const argument = positional === undefined
    ? ""
    : positional.optional
    ? ` [${positional.value}]`
    : ` ${positional.value}`;
  return `socketproxy ${spec.command} [options]${argument}`;
}

/**
 * The option list of a command's help, one flag after another, their
 * descriptions in a column.
 *
 * @param spec The command's table.
 * @returns The lines.
 */
export function optionLines(spec: CommandSpec): string[] {
  const flags = commandFlags(spec);
  const labels = flags.map(flagLabel);
  const inline = labels.filter((label) => label.length <= LONGEST_INLINE);
  const column = 2 + Math.max(...inline.map((label) => label.length)) + 2;
  const lines: string[] = [];
  flags.forEach((flag, index) => {
    const label = `  ${labels[index] ?? ""}`;
    // "(default 10s)" stays on one line.
    const text = wrap(flag.help.replace(/\(default /g, "(default\u00a0"), WIDTH - column)
      .map((line) => line.replaceAll("\u00a0", " "));
    if (label.length + 2 > column) lines.push(label);
    else lines.push(label.padEnd(column) + (text.shift() ?? ""));
    for (const more of text) lines.push(" ".repeat(column) + more);
  });
  return lines;
}

/**
 * The paragraph that says how the environment and the file give a
 * command's settings, with the command's own variable names.
 *
 * @param spec The command's table.
 * @returns The paragraph, wrapped; empty for a command that reads neither.
 */
export function environmentParagraph(spec: CommandSpec): string[] {
  if (spec.configurable === false) return [];
  const example = spec.settings.find((setting) => setting.name.includes("-")) ?? spec.settings[0];
  const switches = spec.settings.some((setting) => setting.kind === "boolean");
  const lists = spec.settings.some((setting) => setting.kind === "list");
  const positional = spec.positional?.configurable ? spec.positional : undefined;
  const sentences = [
    `Every option can also be set in the environment, as ${
      variableName(spec.command, "NAME")
    } with the option's name in capitals and _ for -${
      example ? ` (--${example.name}: ${variableName(spec.command, example.name)})` : ""
    }${lists ? ", a repeatable one as a comma-separated list" : ""}${
      switches ? ", a switch as true or false" : ""
    }; or in the "${spec.command}" section of a JSON file named by --config (or ${
      variableName(spec.command, "config")
    }, or ${CONFIG_VARIABLE}).`,
    positional
      ? `So can ${positional.value}: ${
        variableName(spec.command, positional.name)
      }, or "${positional.name}" in the file.`
      : "",
    `A flag wins over the environment, the environment over the file${
      switches ? "; --no-NAME turns a switch off" : ""
    }. Unknown variables ${
      variableName(spec.command, "*")
    } and unknown keys in the file are errors. See docs/configuration.md.`,
  ];
  return wrap(sentences.filter((sentence) => sentence !== "").join(" "), WIDTH - 2);
}

/**
 * The whole `--help` text of a command.
 *
 * @param spec The command's table.
 * @returns The text, without a final newline.
 *
 * @example
 * ```ts
 * import { defineCommand } from "./settings.ts";
 * import { formatUsage } from "./usage.ts";
 *
 * const help = formatUsage(defineCommand({
 *   command: "example",
 *   summary: "an example",
 *   intro: "Does nothing.",
 *   settings: [{ name: "buffer", kind: "string", value: "SIZE", help: "a size", default: "1m" }],
 * }));
 * console.assert(help.includes("--buffer=SIZE"));
 * console.assert(help.includes("SOCKETPROXY_EXAMPLE_BUFFER"));
 * ```
 */
export function formatUsage(spec: CommandSpec): string {
  const paragraphs = [
    `Usage: ${usageLine(spec)}`,
    spec.intro,
    ["Options:", ...optionLines(spec)].join("\n"),
    spec.notes ?? "",
    environmentParagraph(spec).join("\n"),
  ];
  return paragraphs.filter((paragraph) => paragraph !== "").join("\n\n");
}
