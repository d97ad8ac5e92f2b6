/**
 * The character sets of the browser terminal's telnet engine: the names a
 * charset goes by, decoding server text and encoding user input in UTF-8,
 * Latin-1 or CP437, and which charset to accept from those a server offers.
 * Nothing here is telnet framing; `telnet.ts` reads the CHARSET
 * subnegotiation and asks {@linkcode chooseCharset} for the answer.
 *
 * @module
 */

/**
 * A character set the engine can decode and encode: the server's text and
 * the user's input. `utf-8` and `latin1` are also `TextDecoder` labels
 * (`latin1` decodes as windows-1252, as browsers do); `cp437` (the IBM PC
 * set of BBS art) has no `TextDecoder`, so use {@linkcode decodeText} or
 * {@linkcode Telnet.decode}.
 */
export type TelnetCharset = "utf-8" | "latin1" | "cp437";

/** What a character the charset lacks is encoded as. */
const QUESTION_MARK = 0x3f;

/**
 * The charset a label names, for configuration and CHARSET: `UTF-8`,
 * `ISO-8859-1`, `latin1`, `CP437`, `IBM437` and their usual aliases, in any
 * case.
 *
 * @param label A charset name.
 * @returns The charset, or `undefined` when it is not one the engine has.
 *
 * @example
 * ```ts
 * import { normalizeCharset } from "./telnet.ts";
 *
 * console.assert(normalizeCharset("ISO-8859-1") === "latin1");
 * console.assert(normalizeCharset("koi8-r") === undefined);
 * ```
 */
export function normalizeCharset(label: string): TelnetCharset | undefined {
  const key = String(label).toLowerCase().replace(/[^a-z0-9]/g, "");
  if (key === "utf8") return "utf-8";
  if (LATIN1_LABELS.has(key)) return "latin1";
  if (CP437_LABELS.has(key)) return "cp437";
  return undefined;
}

const LATIN1_LABELS: ReadonlySet<string> = new Set([
  "latin1",
  "l1",
  "iso88591",
  "iso885911987",
  "isoir100",
  "csisolatin1",
  "cp819",
  "ibm819",
  // What TextDecoder("latin1") decodes, by its own names.
  "windows1252",
  "cp1252",
]);

const CP437_LABELS: ReadonlySet<string> = new Set([
  "cp437",
  "ibm437",
  "437",
  "cspc8codepage437",
  "oem437",
]);

/**
 * CP437's upper half, bytes 0x80 to 0xFF, 16 to a row. The lower half is
 * ASCII: BBSes send control codes (ESC for ANSI art) there, not CP437's
 * glyphs for them.
 */
const CP437_HIGH = [
  "ÇüéâäàåçêëèïîìÄÅ", // 0x80
  "ÉæÆôöòûùÿÖÜ¢£¥₧ƒ", // 0x90
  "áíóúñÑªº¿⌐¬½¼¡«»", // 0xA0
  "░▒▓│┤╡╢╖╕╣║╗╝╜╛┐", // 0xB0
  "└┴┬├─┼╞╟╚╔╩╦╠═╬╧", // 0xC0
  "╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀", // 0xD0
  "αßΓπΣσµτΦΘΩδ∞φε∩", // 0xE0
  "≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0", // 0xF0
].join("");

/** Every byte's character in CP437, made on first use. */
let cp437Chars: string[] | undefined;
/** Code points above 0x7F to their byte, per charset, made on first use. */
const encodings = new Map<TelnetCharset, Map<number, number>>();
let utf8Decoder: TextDecoder | undefined;
let latin1Decoder: TextDecoder | undefined;

/**
 * Decodes bytes in a charset, all at once (for a stream of UTF-8, use
 * {@linkcode Telnet.decode}). Latin-1 decodes as `TextDecoder("latin1")`
 * does, that is as windows-1252; CP437 by its table, with ASCII below 0x80.
 *
 * @param bytes The bytes.
 * @param charset Their charset.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { decodeText } from "./telnet.ts";
 *
 * console.assert(decodeText(Uint8Array.of(0xc9, 0xcd, 0xbb), "cp437") === "╔═╗");
 * console.assert(decodeText(Uint8Array.of(0xe9), "latin1") === "é");
 * ```
 */
export function decodeText(bytes: Uint8Array, charset: TelnetCharset): string {
  switch (charset) {
    case "utf-8":
      utf8Decoder ??= new TextDecoder("utf-8");
      return utf8Decoder.decode(bytes);
    case "latin1":
      latin1Decoder ??= new TextDecoder("latin1");
      return latin1Decoder.decode(bytes);
    case "cp437": {
      cp437Chars ??= Array.from(
        { length: 256 },
        (_, byte) => byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH.charAt(byte - 0x80),
      );
      const chars = cp437Chars;
      return Array.from(bytes, (byte) => chars[byte] ?? "").join("");
    }
  }
}

/**
 * Encodes text in a charset, the inverse of {@linkcode decodeText}; a
 * character the charset lacks becomes `?`.
 *
 * @param text The text.
 * @param charset The charset.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import { encodeText } from "./telnet.ts";
 *
 * console.assert(encodeText("é€✓", "latin1").join() === "233,128,63");
 * console.assert(encodeText("═", "cp437").join() === "205");
 * ```
 */
export function encodeText(text: string, charset: TelnetCharset): Uint8Array {
  if (charset === "utf-8") return new TextEncoder().encode(text);
  let table = encodings.get(charset);
  if (!table) {
    table = new Map();
    for (let byte = 0x80; byte <= 0xff; byte++) {
      const char = decodeText(Uint8Array.of(byte), charset);
      table.set(char.codePointAt(0) ?? 0, byte);
    }
    encodings.set(charset, table);
  }
  const out: number[] = [];
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    out.push(code < 0x80 ? code : table.get(code) ?? QUESTION_MARK);
  }
  return Uint8Array.from(out);
}

/**
 * Picks the charset to accept from the names a server offers (a CHARSET
 * REQUEST's list): UTF-8 if any name names it, else `fallback`, each time
 * the first such name.
 *
 * @param offered The names, in the server's order; spaces around a name are ignored.
 * @param fallback The charset taken when UTF-8 is not offered.
 * @returns The chosen name's index in `offered` and its charset, or
 *   `undefined` when neither is offered.
 *
 * @example
 * ```ts
 * import { chooseCharset } from "./telnet_charset.ts";
 *
 * const chosen = chooseCharset(["CP437", "UTF-8"], "cp437");
 * console.assert(chosen?.index === 1 && chosen.charset === "utf-8");
 * ```
 */
export function chooseCharset(
  offered: readonly string[],
  fallback: TelnetCharset,
): { index: number; charset: TelnetCharset } | undefined {
  const preference: TelnetCharset[] = ["utf-8", fallback];
  for (const wanted of preference) {
    const index = offered.findIndex((name) => normalizeCharset(name.trim()) === wanted);
    if (index >= 0) return { index, charset: wanted };
  }
  return undefined;
}
