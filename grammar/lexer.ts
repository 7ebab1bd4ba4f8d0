import { createToken, Lexer, type TokenType } from "chevrotain";
import { PUNCTUATION, punct, StringLit, WhiteSpace } from "../compiler/ir/text/shared-tokens.js";

export * from "../compiler/ir/text/shared-tokens.js";

/** Tokens of the `.tokr` language (docs/language.md). Labels are what error messages show. */

/** Comments go to their own group: the parser never sees them, `tokr fmt` keeps them. */
export const Comment = createToken({ name: "Comment", pattern: /\/\/[^\n\r]*/, group: "comments" });

export const Ident = createToken({ name: "Ident", pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: "a name" });

const kw = (word: string): TokenType =>
  createToken({ name: `Kw_${word}`, pattern: word, longer_alt: Ident, label: `'${word}'` });
export const Model = kw("model");
export const Block = kw("block");
export const Param = kw("param");
export const Repeat = kw("repeat");
export const As = kw("as");
export const Return = kw("return");
export const Policy = kw("policy");
export const True = kw("true");
export const False = kw("false");

/**
 * Floats need a `.` or an exponent so that `12` stays an integer (repeat counts, dims). A `.`
 * followed by `.` or a letter is not part of a number, so `0..5` and `blocks.0.attn` lex as
 * integers and dots (policy selectors).
 */
export const FloatLit = createToken({
  name: "FloatLit",
  pattern: /\d+\.(?![.A-Za-z_])\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+/,
  label: "a number",
});
export const IntLit = createToken({ name: "IntLit", pattern: /\d+/, label: "an integer" });

export const Arrow = punct("Arrow", "->");
export const DotDot = punct("DotDot", "..");
export const Dot = punct("Dot", ".");
export const Slash = punct("Slash", "/");

/** Lexing order: keywords before names, `->` before `-`, `..` before `.`. */
export const ALL_TOKENS: TokenType[] = [
  WhiteSpace,
  Comment,
  Model,
  Block,
  Param,
  Repeat,
  As,
  Return,
  Policy,
  True,
  False,
  Ident,
  StringLit,
  FloatLit,
  IntLit,
  Arrow,
  DotDot,
  Dot,
  Slash,
  ...PUNCTUATION,
];

export const tokrLexer = new Lexer(ALL_TOKENS, { positionTracking: "full", ensureOptimizations: false });
