/**
 * The byte values of the telnet protocol as the engine in `telnet.ts`
 * speaks it: commands (RFC 854), option codes, and the bytes inside the
 * subnegotiations it reads and writes (TTYPE, CHARSET, MSDP, MSSP). One
 * home for the numbers, so the engine and the message parsers agree.
 *
 * @module
 */

/** Interpret As Command: starts every command; doubled, a data byte 0xFF. */
export const IAC = 255;
/** Asks the peer to stop performing an option. */
export const DONT = 254;
/** Asks the peer to perform an option. */
export const DO = 253;
/** Refuses to perform an option, or stops. */
export const WONT = 252;
/** Offers to perform an option. */
export const WILL = 251;
/** Starts a subnegotiation. */
export const SB = 250;
/** Go Ahead, which MUD servers send after a prompt. */
export const GA = 249;
/** Ends a subnegotiation. */
export const SE = 240;
/** IAC EOR, the end-of-record mark (RFC 885), not the option of that name. */
export const EOR_MARK = 239;

/** Option: the server echoes what it receives (RFC 857). */
export const ECHO = 1;
/** Option: suppress go-ahead (RFC 858). */
export const SGA = 3;
/** Option: terminal type (RFC 1091), with MTTS on top. */
export const TTYPE = 24;
/** Option: end of record (RFC 885). */
export const EOR = 25;
/** Option: negotiate about window size (RFC 1073). */
export const NAWS = 31;
/** Option: charset (RFC 2066). */
export const CHARSET = 42;
/** Option: the MUD Server Data Protocol. */
export const MSDP = 69;
/** Option: the MUD Server Status Protocol. */
export const MSSP = 70;
/** Option: the Generic MUD Communication Protocol. */
export const GMCP = 201;

/**
 * The telnet option codes the engine knows by name, for reading
 * {@linkcode Telnet.enabled} and {@linkcode OptionEvent}s. MCCP2 and MCCP3
 * are listed because they are refused on purpose.
 */
export const TELNET_OPTION = {
  ECHO,
  SGA,
  TTYPE,
  EOR,
  NAWS,
  CHARSET,
  MSDP,
  MSSP,
  MCCP2: 86,
  MCCP3: 87,
  GMCP,
} as const;

/** TTYPE IS: the answer that carries a terminal type. */
export const TTYPE_IS = 0;
/** TTYPE SEND: the server asks for the next terminal type. */
export const TTYPE_SEND = 1;

// RFC 2066 subnegotiation commands.
/** CHARSET REQUEST: the list of charsets offered. */
export const CHARSET_REQUEST = 1;
/** CHARSET ACCEPTED: the charset chosen from the list. */
export const CHARSET_ACCEPTED = 2;
/** CHARSET REJECTED: none of the list. */
export const CHARSET_REJECTED = 3;
/** CHARSET TTABLE-IS: a translation table follows. */
export const CHARSET_TTABLE_IS = 4;
/** CHARSET TTABLE-REJECTED: the translation table is refused. */
export const CHARSET_TTABLE_REJECTED = 5;
/** A REQUEST that offers translation tables starts with this, then a version byte. */
export const TTABLE_MARK: readonly number[] = Array.from(
  "[TTABLE]",
  (char) => char.charCodeAt(0),
);

// MSDP and MSSP share VAR and VAL; MSDP adds tables and arrays.
/** MSDP_VAR and MSSP_VAR: a variable's name follows. */
export const VAR = 1;
/** MSDP_VAL and MSSP_VAL: a value follows. */
export const VAL = 2;
/** MSDP_TABLE_OPEN: a table of VAR and VAL pairs starts. */
export const TABLE_OPEN = 3;
/** MSDP_TABLE_CLOSE: the table ends. */
export const TABLE_CLOSE = 4;
/** MSDP_ARRAY_OPEN: an array of VALs starts. */
export const ARRAY_OPEN = 5;
/** MSDP_ARRAY_CLOSE: the array ends; MSDP text holds no byte up to this one. */
export const ARRAY_CLOSE = 6;

/** NUL, which after CR is padding (RFC 854). */
export const NUL = 0;
/** Line feed. */
export const LF = 10;
/** Carriage return. */
export const CR = 13;
