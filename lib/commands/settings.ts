/**
 * Settings: one table per command lists its flags, and everything else
 * about them comes from that table: the `parseArgs` options, the
 * environment variables (`SOCKETPROXY_SERVER_BUFFER` for `server
 * --buffer`), the keys of the command's section in a `--config` JSON file,
 * the option list of `--help`, the completion scripts
 * (`completions.ts`) and the report of `--check`.
 *
 * {@linkcode resolveSettings} takes each value from the first of the
 * command line, the environment, the file and the default, remembers where
 * it came from, and turns every typo (an unknown flag, an unknown
 * `SOCKETPROXY_<COMMAND>_*` variable, an unknown key or section in the
 * file) into one {@linkcode UsageError}. The commands then read the values
 * by name and parse them with `config.ts`, naming the value's origin in
 * their messages ({@linkcode Settings.label}).
 *
 * @module
 */

import { type FlagSpec, parseFlags } from "./cli.ts";
import { readTextFile } from "./config.ts";
import { UsageError } from "../errors.ts";

/**
 * How a setting takes its value: a string, an on/off switch, or a list (a
 * repeatable flag; a comma-separated list in the environment, an array in
 * the file).
 */
export type SettingKind = "string" | "boolean" | "list";

/** One setting of a command: a flag, and the variable and file key named after it. */
export interface SettingSpec<Name extends string = string> {
  /** The flag's long name (`buffer` is `--buffer`), also the file key. */
  readonly name: Name;
  /** How it takes its value. */
  readonly kind: SettingKind;
  /** The value's placeholder in the help (`SIZE`); none for a switch. */
  readonly value?: string;
  /** What it does, for the help; the default is added after it. */
  readonly help: string;
  /** The default as people write it (`1m`), for the help and `--check`; none when absent. */
  readonly default?: string;
  /**
   * A secret: masked by `--check`, and also read from a file named by
   * `--NAME-file` (a flag's value shows in `ps`; a file's does not).
   */
  readonly secret?: boolean;
  /** What a completion offers as the value: file names, or these words. */
  readonly complete?: "file" | readonly string[];
  /** Variables also read, after the command's own, such as `SOCKETPROXY_ADMIN_TOKEN`. */
  readonly aliases?: readonly string[];
  /**
   * In a comma-separated list from the environment, an item this matches
   * belongs to the item before it (`--destination=a=h:1,send-proxy=v1`).
   */
  readonly continues?: RegExp;
}

/** The positional argument of a command that can also come from the environment or the file. */
export interface PositionalSpec {
  /** Its name as a variable suffix and file key (`dest`). */
  readonly name: string;
  /** Its placeholder (`DEST_HOST:DEST_PORT`). */
  readonly value: string;
  /** What it is, for the help. */
  readonly help: string;
  /** Whether it may be left out. */
  readonly optional?: boolean;
  /** Whether the environment and the file may give it too. */
  readonly configurable?: boolean;
  /** What a completion offers for it. */
  readonly complete?: readonly string[];
}

/** A command's table: its usage, its settings and what it does. */
export interface CommandSpec<Name extends string = string> {
  /** The command's name (`server`), the variables' infix and the file's section. */
  readonly command: string;
  /** One line for `socketproxy --help` and the completions. */
  readonly summary: string;
  /** The paragraph after the usage line. */
  readonly intro: string;
  /** The settings, in the order of the help. */
  readonly settings: readonly SettingSpec<Name>[];
  /** Its positional argument, if any. */
  readonly positional?: PositionalSpec;
  /** A paragraph after the options. */
  readonly notes?: string;
  /** Whether it takes `--check`. */
  readonly check?: boolean;
  /** Whether the environment and `--config` apply (not to `completions`). @default {true} */
  readonly configurable?: boolean;
}

/**
 * Declares a command's table, keeping its setting names as a type, so that
 * reading an unknown name is a type error.
 *
 * @param spec The table.
 * @returns The same table.
 *
 * @example
 * ```ts
 * import { defineCommand, resolveSettings, environmentOf } from "./settings.ts";
 *
 * const spec = defineCommand({
 *   command: "example",
 *   summary: "an example",
 *   intro: "Does nothing.",
 *   settings: [{ name: "buffer", kind: "string", value: "SIZE", help: "a size" }],
 * });
 * const settings = resolveSettings(spec, [], {
 *   env: environmentOf({ SOCKETPROXY_EXAMPLE_BUFFER: "64k" }),
 * });
 * console.assert(settings.string("buffer") === "64k");
 * console.assert(settings.label("buffer") === "SOCKETPROXY_EXAMPLE_BUFFER");
 * ```
 */
export function defineCommand<const Name extends string>(
  spec: CommandSpec<Name>,
): CommandSpec<Name> {
  return spec;
}

/** The commands whose sections a `--config` file may have. */
export const COMMAND_SECTIONS: readonly string[] = [
  "server",
  "status",
  "close",
  "drain",
  "client",
  "web",
  "demo",
];

/** The variable every command also reads its `--config` from. */
export const CONFIG_VARIABLE = "SOCKETPROXY_CONFIG";

/** What a flag of the command line is for. */
export type FlagRole = "setting" | "secret-file" | "config" | "check" | "help";

/** A flag as the command line, the help and the completions see it. */
export interface FlagInfo {
  /** The long name, without `--`. */
  readonly name: string;
  /** How it takes its value. */
  readonly kind: SettingKind;
  /** The value's placeholder. */
  readonly value?: string;
  /** The help text, the default included. */
  readonly help: string;
  /** Its one-letter form. */
  readonly short?: string;
  /** What a completion offers as the value. */
  readonly complete?: "file" | readonly string[];
  /** What it is for. */
  readonly role: FlagRole;
}

/**
 * Every flag a command takes: its settings (a secret's `--NAME-file` right
 * after it), then `--config`, `--check` and `--help`.
 *
 * @param spec The command's table.
 * @returns The flags, in the order of the help.
 */
export function commandFlags(spec: CommandSpec): FlagInfo[] {
  const flags: FlagInfo[] = [];
  for (const setting of spec.settings) {
    flags.push({
      name: setting.name,
      kind: setting.kind,
      ...(setting.value === undefined ? {} : { value: setting.value }),
      help: setting.default === undefined
        ? setting.help
        : `${setting.help} (default ${setting.default})`,
      ...(setting.complete === undefined ? {} : { complete: setting.complete }),
      role: "setting",
    });
    if (setting.secret) {
      flags.push({
        name: `${setting.name}-file`,
        kind: "string",
        value: "FILE",
        help: `read ${setting.value ?? setting.name} from this file (white space at its end ` +
          `dropped): unlike --${setting.name}, ps does not show it`,
        complete: "file",
        role: "secret-file",
      });
    }
  }
  if (spec.configurable !== false) {
    flags.push({
      name: "config",
      kind: "string",
      value: "FILE",
      help: `read settings from the "${spec.command}" section of this JSON file`,
      complete: "file",
      role: "config",
    });
  }
  if (spec.check) {
    flags.push({
      name: "check",
      kind: "boolean",
      help: "check the settings, print each with where it came from (secrets masked), and exit",
      role: "check",
    });
  }
  flags.push({ name: "help", kind: "boolean", short: "h", help: "show this help", role: "help" });
  return flags;
}

/**
 * The variable that sets a command's setting: `SOCKETPROXY_`, the command
 * and the name in capitals, `-` as `_`.
 *
 * @param command The command (`server`).
 * @param name The setting (`idle-timeout`).
 * @returns The variable's name (`SOCKETPROXY_SERVER_IDLE_TIMEOUT`).
 *
 * @example
 * ```ts
 * import { variableName } from "./settings.ts";
 *
 * console.assert(variableName("web", "allow-origin") === "SOCKETPROXY_WEB_ALLOW_ORIGIN");
 * ```
 */
export function variableName(command: string, name: string): string {
  return `${variablePrefix(command)}${name.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * The prefix of a command's variables.
 *
 * @param command The command (`server`).
 * @returns `SOCKETPROXY_SERVER_`.
 */
export function variablePrefix(command: string): string {
  return `SOCKETPROXY_${command.toUpperCase()}_`;
}

/** Where the settings' variables are read from: the process's environment, or a test's. */
export interface Environment {
  /**
   * Reads a variable.
   *
   * @param name The variable.
   * @returns Its value; `undefined` when unset or not readable.
   */
  get(name: string): string | undefined;
  /**
   * Lists the variables, where that is allowed.
   *
   * @returns Every variable's name, or `undefined` when this process may
   * not list them (Deno's `--allow-env=SOCKETPROXY_*` lets it read those
   * variables, not list them).
   */
  names(): readonly string[] | undefined;
  /**
   * Says whether every variable starting with `prefix` may be read.
   *
   * @param prefix The prefix, such as `SOCKETPROXY_SERVER_`.
   * @returns `true` when they may.
   */
  readable(prefix: string): boolean;
}

/**
 * The process's environment, read only where Deno's permissions allow, so
 * that a missing permission never prompts: a variable this process may not
 * read counts as unset.
 *
 * @returns The environment.
 */
export function processEnvironment(): Environment {
  const state = (variable?: string): Deno.PermissionState =>
    Deno.permissions.querySync(variable === undefined ? { name: "env" } : { name: "env", variable })
      .state;
  const everything = state() === "granted";
  const prefixes = new Map<string, boolean>();
  const readable = (prefix: string): boolean => {
    let granted = prefixes.get(prefix);
    if (granted === undefined) {
      granted = everything || state(`${prefix}*`) === "granted";
      prefixes.set(prefix, granted);
    }
    return granted;
  };
  return {
    get(name) {
      const prefix = /^SOCKETPROXY_[A-Z]+_/.exec(name)?.[0];
      if (!everything && !(prefix && readable(prefix)) && state(name) !== "granted") {
        return undefined;
      }
      return Deno.env.get(name);
    },
    names: () => everything ? Object.keys(Deno.env.toObject()) : undefined,
    readable,
  };
}

/**
 * An environment of fixed variables, for tests and for embedding.
 *
 * @param variables The variables.
 * @param options `listable: false` makes it behave as the process's
 * environment under `--allow-env=SOCKETPROXY_*`: readable, not listable.
 * @returns The environment.
 */
export function environmentOf(
  variables: Readonly<Record<string, string>>,
  options: { listable?: boolean } = {},
): Environment {
  return {
    get: (name) => Object.hasOwn(variables, name) ? variables[name] : undefined,
    names: () => options.listable === false ? undefined : Object.keys(variables),
    readable: () => true,
  };
}

/** Where a value came from. */
export interface Source {
  /** The command line, the environment, the `--config` file, or the default. */
  readonly from: "argument" | "flag" | "env" | "file" | "default";
  /**
   * The flag (`--buffer`), the variable (`SOCKETPROXY_SERVER_BUFFER`) or
   * the file and key (`socketproxy.json: server.buffer`), as error
   * messages name it.
   */
  readonly where: string;
}

/** A value and where it came from. */
interface Chosen {
  readonly value: string | boolean | readonly string[];
  readonly source: Source;
}

/** Options of {@linkcode resolveSettings}. */
export interface ResolveOptions {
  /** Where variables are read. @default {processEnvironment()} */
  env?: Environment;
}

/**
 * A command's settings, resolved: each value from the first of the command
 * line, the environment, the file and the default, with where it came from.
 */
export class Settings<Name extends string = string> {
  /** Whether `--help` was given. */
  readonly help: boolean;
  /** Whether `--check` was given. */
  readonly check: boolean;
  /** The positional arguments; the configured positional when none was given. */
  readonly positionals: readonly string[];
  readonly #spec: CommandSpec<Name>;
  readonly #chosen: ReadonlyMap<string, Chosen>;
  readonly #notes: readonly string[];

  /**
   * Holds resolved settings; made by {@linkcode resolveSettings}.
   *
   * @param spec The command's table.
   * @param resolved What {@linkcode resolveSettings} found.
   */
  constructor(
    spec: CommandSpec<Name>,
    resolved: {
      help: boolean;
      check: boolean;
      positionals: readonly string[];
      chosen: ReadonlyMap<string, Chosen>;
      notes: readonly string[];
    },
  ) {
    this.#spec = spec;
    this.help = resolved.help;
    this.check = resolved.check;
    this.positionals = resolved.positionals;
    this.#chosen = resolved.chosen;
    this.#notes = resolved.notes;
  }

  #setting(name: string, kind: SettingKind): void {
    const setting = this.#spec.settings.find((candidate) => candidate.name === name);
    if (setting?.kind !== kind) {
      throw new TypeError(`Cannot read "${name}" as a ${kind}: not such a setting`);
    }
  }

  /**
   * Reads a string setting.
   *
   * @param name The setting.
   * @returns Its value, or `undefined` when nothing gave one.
   */
  string(name: Name): string | undefined {
    this.#setting(name, "string");
    const value = this.#chosen.get(name)?.value;
    return typeof value === "string" ? value : undefined;
  }

  /**
   * Reads a list setting.
   *
   * @param name The setting.
   * @returns Its items, in order; empty when nothing gave any.
   */
  list(name: Name): string[] {
    this.#setting(name, "list");
    const value = this.#chosen.get(name)?.value;
    return Array.isArray(value) ? [...value] : [];
  }

  /**
   * Reads a string or list setting as a list: a list's items, a string's
   * value alone, nothing when nothing gave one. For code shared by commands
   * that declare one setting differently (`status --admin` is repeatable,
   * `close --admin` is not).
   *
   * @param name The setting.
   * @returns The values, in order.
   */
  strings(name: Name): string[] {
    const setting = this.#spec.settings.find((candidate) => candidate.name === name);
    if (setting?.kind === "list") return this.list(name);
    const value = this.string(name);
    return value === undefined ? [] : [value];
  }

  /**
   * Reads a switch.
   *
   * @param name The setting.
   * @returns Whether it is on.
   */
  boolean(name: Name): boolean {
    this.#setting(name, "boolean");
    return this.#chosen.get(name)?.value === true;
  }

  /**
   * Where a setting's value came from.
   *
   * @param name The setting.
   * @returns The source; `default` when nothing gave a value.
   */
  source(name: Name): Source {
    return this.#chosen.get(name)?.source ?? { from: "default", where: `--${name}` };
  }

  /**
   * Names a setting's value for an error message: the flag, the variable,
   * or the file and key it came from.
   *
   * @param name The setting.
   * @returns For example `--buffer` or `SOCKETPROXY_SERVER_BUFFER`.
   */
  label(name: Name): string {
    return this.source(name).where;
  }

  /**
   * Names the positional argument's value for an error message.
   *
   * @returns Its placeholder when it was given as an argument, else its variable or key.
   */
  positionalLabel(): string {
    const positional = this.#spec.positional;
    return this.#chosen.get(positional?.name ?? "")?.source.where ?? positional?.value ?? "";
  }

  /**
   * The report of `--check`: every setting with its value (secrets masked)
   * and where it came from, one a line.
   *
   * @returns The lines, joined.
   */
  report(): string {
    const rows: string[][] = [["SETTING", "VALUE", "FROM"]];
    const add = (name: string, kind: SettingKind, secret: boolean, fallback?: string): void => {
      const chosen = this.#chosen.get(name);
      const shown = chosen === undefined
        ? fallback ?? (kind === "boolean" ? "false" : "none")
        : secret
        ? "********"
        : Array.isArray(chosen.value)
        ? chosen.value.join(",")
        : String(chosen.value);
      rows.push([name, shown, describeSource(chosen?.source)]);
    };
    const positional = this.#spec.positional;
    if (positional) add(positional.name, "string", false);
    for (const setting of this.#spec.settings) {
      add(setting.name, setting.kind, setting.secret === true, setting.default);
      if (setting.secret) add(`${setting.name}-file`, "string", false);
    }
    if (this.#spec.configurable !== false) add("config", "string", false);
    const widths = rows[0]?.map((_, column) =>
      Math.max(...rows.map((row) => (row[column] ?? "").length))
    );
    const lines = rows.map((row) =>
      row.map((cell, column) => cell.padEnd(widths?.[column] ?? 0)).join("  ").trimEnd()
    );
    return [...lines, ...this.#notes.map((note) => `note: ${note}`)].join("\n");
  }
}

function describeSource(source: Source | undefined): string {
  if (source === undefined || source.from === "default") return "default";
  return `${source.from} ${source.where}`;
}

/** The candidates for one value, from the command line down to the file. */
interface Tiers {
  flag?: Chosen;
  env?: Chosen;
  aliases: Chosen[];
  file?: Chosen;
}

/**
 * Resolves a command's settings from its command line, the environment
 * and the `--config` file, in that order of precedence.
 *
 * A repeatable flag given once replaces the whole list of the environment
 * or the file; `--no-NAME` turns a switch off. With `--help`, nothing but
 * the command line is read, so a broken file does not hide the help.
 *
 * @param spec The command's table.
 * @param args The arguments after the command.
 * @param options Where the variables are read.
 * @returns The settings.
 * @throws {UsageError} For an unknown flag, variable, section or key, an
 * argument the command does not take, a value of the wrong type, or a file that cannot be read or is not JSON.
 */
export function resolveSettings<Name extends string>(
  spec: CommandSpec<Name>,
  args: string[],
  options: ResolveOptions = {},
): Settings<Name> {
  const flags = commandFlags(spec);
  const parseOptions: FlagSpec = {};
  for (const flag of flags) {
    parseOptions[flag.name] = {
      type: flag.kind === "boolean" ? "boolean" : "string",
      ...(flag.kind === "list" ? { multiple: true } : {}),
      ...(flag.short === undefined ? {} : { short: flag.short }),
    };
  }
  const parsed = parseFlags(args, parseOptions, { allowNegative: true });
  for (const flag of flags) {
    if (flag.role !== "setting" && parsed.values[flag.name] === false) {
      throw new UsageError(`unknown option "--no-${flag.name}"`);
    }
  }
  const help = parsed.values.help === true;
  const check = parsed.values.check === true;
  const empty = { chosen: new Map<string, Chosen>(), notes: [] };
  if (help) return new Settings(spec, { help, check, positionals: parsed.positionals, ...empty });
  const [first, ...extra] = parsed.positionals;
  if (spec.positional === undefined && first !== undefined) {
    throw new UsageError(`unexpected argument "${first}"`);
  }
  if (extra.length > 0) {
    throw new UsageError(`expected one ${spec.positional?.value}, got also "${extra.join(" ")}"`);
  }
  if (spec.configurable === false) {
    const chosen = new Map<string, Chosen>();
    for (const flag of flags.filter((flag) => flag.role === "setting")) {
      const value = parsed.values[flag.name];
      if (value !== undefined) {
        chosen.set(flag.name, { value, source: { from: "flag", where: `--${flag.name}` } });
      }
    }
    return new Settings(spec, { help, check, positionals: parsed.positionals, chosen, notes: [] });
  }

  const env = options.env ?? processEnvironment();
  const prefix = variablePrefix(spec.command);
  const notes: string[] = [];
  if (!env.readable(prefix)) {
    notes.push(
      `the ${prefix}* variables cannot be read: run with --allow-env=SOCKETPROXY_* (deno task start does)`,
    );
  }
  checkVariables(spec, env);

  const tiers = new Map<string, Tiers>();
  const tiersOf = (name: string): Tiers => {
    let found = tiers.get(name);
    if (!found) tiers.set(name, found = { aliases: [] });
    return found;
  };
  // The command line.
  for (const flag of flags) {
    const value = parsed.values[flag.name];
    if (value === undefined || flag.role === "help" || flag.role === "check") continue;
    tiersOf(flag.name).flag = { value, source: { from: "flag", where: `--${flag.name}` } };
  }
  // The environment.
  const fromEnv = (variable: string, kind: SettingKind, continues?: RegExp): Chosen | undefined => {
    const text = env.get(variable);
    if (text === undefined || text === "") return undefined;
    const value = envValue(text, kind, variable, continues);
    return { value, source: { from: "env", where: variable } };
  };
  for (const setting of spec.settings) {
    const own = fromEnv(variableName(spec.command, setting.name), setting.kind, setting.continues);
    if (own) tiersOf(setting.name).env = own;
    for (const alias of setting.aliases ?? []) {
      const aliased = fromEnv(alias, setting.kind, setting.continues);
      if (aliased) tiersOf(setting.name).aliases.push(aliased);
    }
    if (setting.secret) {
      const name = `${setting.name}-file`;
      const file = fromEnv(variableName(spec.command, name), "string");
      if (file) tiersOf(name).env = file;
    }
  }
  const config = fromEnv(variableName(spec.command, "config"), "string") ??
    fromEnv(CONFIG_VARIABLE, "string");
  if (config) tiersOf("config").env = config;
  const positional = spec.positional?.configurable ? spec.positional : undefined;
  if (positional) {
    const given = fromEnv(variableName(spec.command, positional.name), "string");
    if (given) tiersOf(positional.name).env = given;
  }
  // The file.
  const configChosen = pick(tiers.get("config"));
  if (configChosen) {
    const path = String(configChosen.value);
    const section = readSection(spec, path, configChosen.source.where);
    for (const [key, value] of Object.entries(section)) {
      const where = `${path}: ${spec.command}.${key}`;
      tiersOf(key).file = {
        value: fileValue(value, kindOf(spec, key), where),
        source: { from: "file", where },
      };
    }
  }

  // Choose, each a secret and its file at once.
  const chosen = new Map<string, Chosen>();
  if (configChosen) chosen.set("config", configChosen);
  for (const setting of spec.settings) {
    if (!setting.secret) {
      const value = pick(tiers.get(setting.name));
      if (value) chosen.set(setting.name, value);
      continue;
    }
    const fileName = `${setting.name}-file`;
    const secret = pickSecret(tiers.get(setting.name), tiers.get(fileName), setting.name);
    if (secret?.file) {
      chosen.set(fileName, secret.file);
      const path = String(secret.file.value);
      const label = secret.file.source.where;
      chosen.set(setting.name, {
        value: readSecretFile(path, label),
        source: { from: secret.file.source.from, where: label },
      });
    } else if (secret?.value) {
      chosen.set(setting.name, secret.value);
    }
  }
  let positionals = parsed.positionals;
  if (positional) {
    if (positionals.length > 0) {
      chosen.set(positional.name, {
        value: positionals[0] ?? "",
        source: { from: "argument", where: positional.value },
      });
    } else {
      const value = pick(tiers.get(positional.name));
      if (value) {
        chosen.set(positional.name, value);
        positionals = [String(value.value)];
      }
    }
  }
  return new Settings(spec, { help, check, positionals, chosen, notes });
}

/** The first candidate, by precedence. */
function pick(tiers: Tiers | undefined): Chosen | undefined {
  return tiers && (tiers.flag ?? tiers.env ?? tiers.aliases[0] ?? tiers.file);
}

/**
 * A secret and its `-file` form: the first tier that gives either wins,
 * and one tier may not give both.
 */
function pickSecret(
  secret: Tiers | undefined,
  file: Tiers | undefined,
  name: string,
): { value?: Chosen; file?: Chosen } | undefined {
  const levels: [Chosen | undefined, Chosen | undefined][] = [
    [secret?.flag, file?.flag],
    [secret?.env, file?.env],
    [secret?.aliases[0], undefined],
    [secret?.file, file?.file],
  ];
  for (const [value, fromFile] of levels) {
    if (value && fromFile) {
      throw new UsageError(
        `${value.source.where} and ${fromFile.source.where} both give the ${name}: give one`,
      );
    }
    if (value) return { value };
    if (fromFile) return { file: fromFile };
  }
  return undefined;
}

/** Reads a secret from its file: the text without trailing white space. */
function readSecretFile(path: string, label: string): string {
  const text = readTextFile(path, label).trimEnd();
  if (text === "") throw new UsageError(`${label}: "${path}" is empty`);
  return text;
}

/** How a variable's text becomes a value. */
function envValue(
  text: string,
  kind: SettingKind,
  variable: string,
  continues?: RegExp,
): string | boolean | string[] {
  if (kind === "string") return text;
  if (kind === "boolean") {
    if (/^(1|true|yes|on)$/i.test(text)) return true;
    if (/^(0|false|no|off)$/i.test(text)) return false;
    throw new UsageError(`${variable}: expected true or false, not "${text}"`);
  }
  const items: string[] = [];
  for (const item of text.split(",").map((part) => part.trim())) {
    if (item === "") continue;
    if (continues?.test(item) && items.length > 0) items[items.length - 1] += `,${item}`;
    else items.push(item);
  }
  return items;
}

/** The kind of a key of the command's section (checked to be one of its keys). */
function kindOf(spec: CommandSpec, key: string): SettingKind {
  return spec.settings.find((setting) => setting.name === key)?.kind ?? "string";
}

/** How a value of the file becomes a value, checked against its kind. */
function fileValue(value: unknown, kind: SettingKind, where: string): string | boolean | string[] {
  const scalar = (item: unknown): string | undefined =>
    typeof item === "string"
      ? item
      : typeof item === "number" && Number.isFinite(item)
      ? String(item)
      : undefined;
  if (kind === "boolean") {
    if (typeof value === "boolean") return value;
    throw new UsageError(`${where}: expected true or false, not ${describeJson(value)}`);
  }
  if (kind === "list") {
    const items = Array.isArray(value) ? value.map(scalar) : [scalar(value)];
    if (items.every((item) => item !== undefined)) return items as string[];
    throw new UsageError(
      `${where}: expected a string or a list of strings, not ${describeJson(value)}`,
    );
  }
  const text = scalar(value);
  if (text !== undefined) return text;
  throw new UsageError(`${where}: expected a string, not ${describeJson(value)}`);
}

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") return `the number ${value}`;
  return `"${String(value)}"`;
}

/**
 * Reads the command's section of a `--config` file, checking that the file
 * is a JSON object of known sections and the section has only keys the
 * command knows.
 */
function readSection(spec: CommandSpec, path: string, label: string): Record<string, unknown> {
  const text = readTextFile(path, label);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path}: not valid JSON: ${describeJsonError(error)}`);
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new UsageError(
      `${path}: expected a JSON object with a section per command, such as {"${spec.command}": {}}`,
    );
  }
  for (const key of Object.keys(document)) {
    if (!COMMAND_SECTIONS.includes(key)) {
      throw new UsageError(
        `${path}: unknown section "${key}": expected ${COMMAND_SECTIONS.join(", ")}${
          suggest(key, COMMAND_SECTIONS)
        }`,
      );
    }
  }
  const section = (document as Record<string, unknown>)[spec.command];
  if (section === undefined) return {};
  if (typeof section !== "object" || section === null || Array.isArray(section)) {
    throw new UsageError(`${path}: ${spec.command}: expected an object of settings`);
  }
  const keys = fileKeys(spec);
  for (const key of Object.keys(section)) {
    if (!keys.includes(key)) {
      throw new UsageError(
        `${path}: ${spec.command}: unknown setting "${key}"${suggest(key, keys)}`,
      );
    }
  }
  return section as Record<string, unknown>;
}

/** The keys a command's section may have. */
function fileKeys(spec: CommandSpec): string[] {
  return [
    ...spec.positional?.configurable ? [spec.positional.name] : [],
    ...spec.settings.flatMap((setting) =>
      setting.secret ? [setting.name, `${setting.name}-file`] : [setting.name]
    ),
  ];
}

/** `JSON.parse`'s complaint in one line, with its line and column when it gives them. */
function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const place = /\((line \d+ column \d+)\)/.exec(message)?.[1];
  const what = message.split(/,? ["\n]| in JSON at position/)[0] ?? message;
  return place ? `${what} (${place})` : what;
}

/**
 * Fails for a variable of this command's prefix that no setting has: with
 * every variable listed where Deno allows it, else by looking for the names
 * one typo away from each known one (Deno lets `--allow-env=SOCKETPROXY_*`
 * read such variables, but not list them).
 */
function checkVariables(spec: CommandSpec, env: Environment): void {
  const prefix = variablePrefix(spec.command);
  const known = knownVariables(spec);
  const listed = env.names();
  let suspects: Iterable<string>;
  if (listed !== undefined) {
    suspects = listed.filter((name) => name.startsWith(prefix));
  } else if (env.readable(prefix)) {
    suspects = typoNeighbours([...known].map((name) => name.slice(prefix.length)), prefix);
  } else {
    return;
  }
  for (const name of suspects) {
    if (known.has(name) || env.get(name) === undefined) continue;
    throw new UsageError(
      `unknown variable "${name}": socketproxy ${spec.command} has no such setting${
        suggest(name, [...known])
      }`,
    );
  }
}

/** Every variable a command reads under its prefix. */
function knownVariables(spec: CommandSpec): Set<string> {
  const names = commandFlags(spec)
    .filter((flag) => flag.role !== "help" && flag.role !== "check")
    .map((flag) => flag.name);
  if (spec.positional?.configurable) names.push(spec.positional.name);
  return new Set(names.map((name) => variableName(spec.command, name)));
}

const VARIABLE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

/** The names one deletion, insertion, substitution or swap away from each suffix, and its lower case. */
function typoNeighbours(suffixes: string[], prefix: string): Set<string> {
  const found = new Set<string>();
  for (const suffix of suffixes) {
    found.add(prefix + suffix.toLowerCase());
    for (let i = 0; i <= suffix.length; i++) {
      const head = suffix.slice(0, i);
      for (const letter of VARIABLE_LETTERS) found.add(prefix + head + letter + suffix.slice(i));
      if (i === suffix.length) continue;
      const tail = suffix.slice(i + 1);
      found.add(prefix + head + tail);
      for (const letter of VARIABLE_LETTERS) found.add(prefix + head + letter + tail);
      if (i + 1 < suffix.length) {
        found.add(prefix + head + suffix[i + 1] + suffix[i] + tail.slice(1));
      }
    }
  }
  return found;
}

/** ` (did you mean "X"?)` for the closest candidate within two edits, else nothing. */
function suggest(text: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let distance = 3;
  for (const candidate of candidates) {
    const d = editDistance(text.toLowerCase(), candidate.toLowerCase());
    if (d < distance) [best, distance] = [candidate, d];
  }
  return best === undefined ? "" : ` (did you mean "${best}"?)`;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
