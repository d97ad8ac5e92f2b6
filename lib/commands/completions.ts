/**
 * `socketproxy completions bash|zsh|fish`: prints a shell completion
 * script, made from the commands' settings tables (`settings.ts`), the
 * same tables their command lines are parsed with, so the completions
 * offer exactly the flags each command takes.
 *
 * @module
 */

import { printOut } from "./cli.ts";
import { commandFlags, type CommandSpec, defineCommand, resolveSettings } from "./settings.ts";
import { formatUsage, usageLine } from "./usage.ts";
import { UsageError } from "../errors.ts";

/** The shells a completion script is made for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** A shell a completion script is made for. */
export type Shell = (typeof SHELLS)[number];

/** The table of `socketproxy completions`: no settings, no environment, no file. */
export const COMPLETIONS_COMMAND = defineCommand({
  command: "completions",
  summary: "print a shell completion script",
  intro: `Prints a completion script for socketproxy's commands and options.
Load it in bash with: source <(socketproxy completions bash), or save it as
/etc/bash_completion.d/socketproxy; in zsh, save "socketproxy completions zsh"
as _socketproxy in a directory of $fpath; in fish, save "socketproxy
completions fish" as ~/.config/fish/completions/socketproxy.fish.`,
  positional: { name: "shell", value: "bash|zsh|fish", help: "the shell", complete: SHELLS },
  configurable: false,
  settings: [],
});

/** The help text of `socketproxy completions`. */
export const COMPLETIONS_USAGE: string = formatUsage(COMPLETIONS_COMMAND);

/** Options every command line takes before or after the command. */
const GLOBAL_OPTIONS = ["-h", "--help", "-V", "--version"];

/** A flag's description for a completion menu: its help up to the first `;`, without asides. */
function brief(help: string): string {
  return (help.split(";")[0] ?? help).replace(/\s*\([^)]*\)/g, "").trim();
}

/**
 * The bash completion script: a `_socketproxy` function for `complete -F`.
 *
 * @param commands Every command's table.
 * @returns The script.
 */
export function bashScript(commands: readonly CommandSpec[]): string {
  const cases = commands.map((spec) => {
    const flags = commandFlags(spec);
    const words = flags.flatMap((flag) => [
      ...flag.short === undefined ? [] : [`-${flag.short}`],
      `--${flag.name}${flag.kind === "boolean" ? "" : "="}`,
    ]);
    const values = flags
      .filter((flag) => flag.kind !== "boolean" && flag.complete !== undefined)
      .map((flag) => {
        return flag.complete === "file"
          ? `        --${flag.name}) files=1 ;;`
          : `        --${flag.name}) values="${(flag.complete ?? []).join(" ")}" ;;`;
      });
    const positionals = spec.positional?.complete?.join(" ") ?? "";
    return [
      `    ${spec.command})`,
      `      flags="${words.join(" ")}"`,
      ...positionals === "" ? [] : [`      positionals="${positionals}"`],
      ...values.length === 0 ? [] : [`      case $flag in`, ...values, `      esac`],
      `      ;;`,
    ].join("\n");
  });
  return `# bash completion for socketproxy, made by "socketproxy completions bash".
# Load it with: source <(socketproxy completions bash)
_socketproxy() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=
  ((COMP_CWORD > 0)) && prev=\${COMP_WORDS[COMP_CWORD - 1]}
  local flag= spaced=
  # bash splits --flag=value at the = (COMP_WORDBREAKS): see through it.
  if [[ $cur == "=" ]]; then
    flag=$prev cur=
  elif [[ $prev == "=" ]] && ((COMP_CWORD > 1)); then
    flag=\${COMP_WORDS[COMP_CWORD - 2]}
  elif [[ $cur == --*=* ]]; then
    flag=\${cur%%=*} cur=\${cur#*=}
  elif [[ $prev == --* ]]; then
    flag=$prev spaced=1
  fi
  COMPREPLY=()
  if ((COMP_CWORD <= 1)); then
    COMPREPLY=($(compgen -W "${
    [...commands.map((spec) => spec.command), ...GLOBAL_OPTIONS].join(" ")
  }" -- "$cur"))
    return 0
  fi
  local flags= values= files= positionals=
  case \${COMP_WORDS[1]} in
${cases.join("\n")}
  esac
  # A value after "--flag " counts only for a flag that takes one.
  if [[ -n $spaced && " $flags " != *" $flag= "* ]]; then flag=; fi
  if [[ -n $flag ]]; then
    if [[ -n $files ]]; then
      COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ -n $values ]]; then
      COMPREPLY=($(compgen -W "$values" -- "$cur"))
    fi
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags -V --version" -- "$cur"))
    # A flag that takes a value: no space after its =.
    if [[ \${#COMPREPLY[@]} -eq 1 && \${COMPREPLY[0]} == *= ]]; then
      compopt -o nospace 2>/dev/null
    fi
    return 0
  fi
  [[ -n $positionals ]] && COMPREPLY=($(compgen -W "$positionals" -- "$cur"))
  return 0
}
complete -F _socketproxy socketproxy
`;
}

/** Quotes text for a single-quoted shell word. */
function singleQuoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Escapes text for the [description] of a zsh `_arguments` spec. */
function zshDescription(text: string): string {
  return `[${text.replace(/[\]\\]/g, (char) => `\\${char}`)}]`;
}

/** Escapes text for the message of a zsh `_arguments` spec, which ends at a colon. */
function zshMessage(text: string): string {
  return text.replace(/[:\\]/g, (char) => `\\${char}`);
}

/**
 * The zsh completion script: an `_socketproxy` function for `compdef`,
 * with `_arguments` specs per command.
 *
 * @param commands Every command's table.
 * @returns The script.
 */
export function zshScript(commands: readonly CommandSpec[]): string {
  const described = commands.map((spec) =>
    `    ${singleQuoted(`${spec.command}:${spec.summary}`)}`
  );
  const cases = commands.map((spec) => {
    const specs = commandFlags(spec).map((flag) => {
      const description = zshDescription(brief(flag.help));
      if (flag.kind === "boolean") {
        const names = flag.short === undefined
          ? `--${flag.name}`
          : `{-${flag.short},--${flag.name}}`;
        return flag.short === undefined
          ? singleQuoted(`${names}${description}`)
          : `'(-${flag.short} --${flag.name})'${names}${singleQuoted(description)}`;
      }
      const action = flag.complete === "file"
        ? "_files"
        : flag.complete === undefined
        ? " "
        : `(${flag.complete.join(" ")})`;
      const repeat = flag.kind === "list" ? "*" : "";
      return singleQuoted(
        `${repeat}--${flag.name}=${description}:${zshMessage(flag.value ?? "VALUE")}:${action}`,
      );
    });
    const positional = spec.positional;
    if (positional) {
      const action = positional.complete ? `(${positional.complete.join(" ")})` : " ";
      specs.push(
        singleQuoted(
          `${positional.optional ? "::" : ":"}${zshMessage(positional.value)}:${action}`,
        ),
      );
    }
    return [
      `    ${spec.command})`,
      `      _arguments -s \\`,
      ...specs.map((text, index) => `        ${text}${index < specs.length - 1 ? " \\" : ""}`),
      "      ;;",
    ].join("\n");
  });
  return `#compdef socketproxy
# zsh completion for socketproxy, made by "socketproxy completions zsh".
# Save it as _socketproxy in a directory of $fpath, or source it.
_socketproxy() {
  local -a commands
  commands=(
${described.join("\n")}
  )
  if ((CURRENT == 2)); then
    _describe -t commands 'socketproxy command' commands
    return
  fi
  local command=$words[2]
  # The command's own arguments, as if it were the command name.
  shift words
  ((CURRENT--))
  case $command in
${cases.join("\n")}
  esac
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _socketproxy "$@"
else
  compdef _socketproxy socketproxy
fi
`;
}

/**
 * The fish completion script: `complete` lines per command and flag.
 *
 * @param commands Every command's table.
 * @returns The script.
 */
export function fishScript(commands: readonly CommandSpec[]): string {
  const lines = [
    `# fish completion for socketproxy, made by "socketproxy completions fish".`,
    "# Save it as ~/.config/fish/completions/socketproxy.fish.",
    "complete -c socketproxy -f",
    ...commands.map((spec) =>
      `complete -c socketproxy -n __fish_use_subcommand -a ${spec.command} -d ${
        singleQuoted(spec.summary)
      }`
    ),
    "complete -c socketproxy -n __fish_use_subcommand -s h -l help -d 'show the help'",
    "complete -c socketproxy -s V -l version -d 'print the version'",
  ];
  for (const spec of commands) {
    const when = `-n ${singleQuoted(`__fish_seen_subcommand_from ${spec.command}`)}`;
    for (const flag of commandFlags(spec)) {
      const short = flag.short === undefined ? "" : ` -s ${flag.short}`;
      const value = flag.kind === "boolean"
        ? ""
        : flag.complete === "file"
        ? " -r -F"
        : flag.complete === undefined
        ? " -x"
        : ` -x -a ${singleQuoted(flag.complete.join(" "))}`;
      lines.push(
        `complete -c socketproxy ${when}${short} -l ${flag.name}${value} -d ${
          singleQuoted(brief(flag.help))
        }`,
      );
    }
    if (spec.positional?.complete) {
      lines.push(
        `complete -c socketproxy ${when} -a ${singleQuoted(spec.positional.complete.join(" "))}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * The completion script for a shell.
 *
 * @param shell The shell.
 * @param commands Every command's table.
 * @returns The script.
 *
 * @example
 * ```ts
 * import { completionScript } from "./completions.ts";
 * import { WEB_COMMAND } from "./web.ts";
 *
 * console.assert(completionScript("bash", [WEB_COMMAND]).includes("--allow-origin="));
 * ```
 */
export function completionScript(shell: Shell, commands: readonly CommandSpec[]): string {
  switch (shell) {
    case "bash":
      return bashScript(commands);
    case "zsh":
      return zshScript(commands);
    case "fish":
      return fishScript(commands);
  }
}

/**
 * Runs `socketproxy completions SHELL`.
 *
 * @param args The arguments after `completions`.
 * @param commands Every command's table, this one's included.
 * @returns The exit status.
 * @throws {UsageError} For a missing or unknown shell.
 */
export function completionsCommand(args: string[], commands: readonly CommandSpec[]): number {
  const settings = resolveSettings(COMPLETIONS_COMMAND, args);
  if (settings.help) {
    printOut(COMPLETIONS_USAGE);
    return 0;
  }
  const [shell] = settings.positionals;
  if (shell === undefined) {
    throw new UsageError(`missing the shell (${usageLine(COMPLETIONS_COMMAND)})`);
  }
  const known = SHELLS.find((candidate) => candidate === shell);
  if (!known) {
    throw new UsageError(`unknown shell "${shell}" (expected ${SHELLS.join(", ")})`);
  }
  printOut(completionScript(known, commands).trimEnd());
  return 0;
}
