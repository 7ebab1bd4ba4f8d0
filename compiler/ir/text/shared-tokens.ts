import { createToken, Lexer, type TokenType } from "chevrotain";

/**
 * Tokens the textual IR and the `.tokr` language spell alike (types, dims, punctuation), one object
 * each so that the shared rules in shared-grammar.ts match in both. Labels are what error messages show.
 */

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /\s+/, group: Lexer.SKIPPED });

/** A JSON-style double-quoted string on one line. */
export const STRING = /"(?:[^"\\\r\n]|\\.)*"/;
export const StringLit = createToken({ name: "StringLit", pattern: STRING, label: "a string" });

/** A punctuation token labelled by its own text. */
export const punct = (name: string, text: string): TokenType =>
  createToken({ name, pattern: text, label: `'${text}'` });
export const LParen = punct("LParen", "(");
export const RParen = punct("RParen", ")");
export const LCurly = punct("LCurly", "{");
export const RCurly = punct("RCurly", "}");
export const LSquare = punct("LSquare", "[");
export const RSquare = punct("RSquare", "]");
export const Comma = punct("Comma", ",");
export const Colon = punct("Colon", ":");
export const Equals = punct("Equals", "=");
export const At = punct("At", "@");
export const Plus = punct("Plus", "+");
export const Minus = punct("Minus", "-");
export const Star = punct("Star", "*");

/** The punctuation above, for a lexer's token list: none is a prefix of another, so their order is free. */
export const PUNCTUATION: readonly TokenType[] = [
  LParen,
  RParen,
  LCurly,
  RCurly,
  LSquare,
  RSquare,
  Comma,
  Colon,
  Equals,
  At,
  Plus,
  Minus,
  Star,
];
