import { createToken, Lexer, type TokenType } from "chevrotain";
import { PUNCTUATION, punct, STRING, StringLit, WhiteSpace } from "./shared-tokens.js";
import { IDENT, KEYWORDS } from "./syntax.js";

export * from "./shared-tokens.js";

/** Tokens of the textual IR (docs/ir.md). Labels are what error messages show. */

export const Comment = createToken({ name: "Comment", pattern: /\/\/[^\n\r]*/, group: Lexer.SKIPPED });

/** Any word usable as an op, attribute, graph or policy name (identifiers and keywords). */
export const AnyName = createToken({ name: "AnyName", pattern: Lexer.NA, label: "a name" });
/** Words usable as symbol names: all but the literal words `true false nan inf`. */
export const SymWord = createToken({
  name: "SymWord",
  pattern: Lexer.NA,
  categories: [AnyName],
  label: "a symbol",
});
export const Ident = createToken({
  name: "Ident",
  pattern: IDENT,
  categories: [SymWord, AnyName],
  label: "an identifier",
});

const LITERAL_WORDS: ReadonlySet<string> = new Set(["true", "false", "nan", "inf"]);
const keywordTokens = new Map<string, TokenType>(
  KEYWORDS.map((k) => [
    k,
    createToken({
      name: `Kw_${k}`,
      pattern: k,
      longer_alt: Ident,
      categories: LITERAL_WORDS.has(k) ? [AnyName] : [SymWord, AnyName],
      label: `'${k}'`,
    }),
  ]),
);
function kw(k: (typeof KEYWORDS)[number]): TokenType {
  return keywordTokens.get(k)!;
}
export const Graph = kw("graph");
export const Sym = kw("sym");
export const Policy = kw("policy");
export const Const = kw("const");
export const Return = kw("return");
export const None = kw("none");
export const Scope = kw("scope");
export const Loc = kw("loc");
export const NodeKw = kw("node");
export const Dense = kw("dense");
export const Ref = kw("ref");
export const True = kw("true");
export const False = kw("false");
export const Nan = kw("nan");
export const Inf = kw("inf");

export const ValueName = createToken({
  name: "ValueName",
  pattern: new RegExp(`%(?:[A-Za-z0-9_.]+|${STRING.source})`),
  label: "a value name (%x)",
});
export const NumberLit = createToken({
  name: "NumberLit",
  pattern: /\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/,
  label: "a number",
});

export const LessEq = punct("LessEq", "<=");
export const LAngle = punct("LAngle", "<");
export const RAngle = punct("RAngle", ">");

/**
 * Lexing order: keywords before identifiers (`longer_alt` makes `nodes` an identifier, not `node`),
 * `<=` before `<`.
 */
export const ALL_TOKENS: TokenType[] = [
  WhiteSpace,
  Comment,
  ...keywordTokens.values(),
  AnyName,
  SymWord,
  Ident,
  ValueName,
  StringLit,
  NumberLit,
  LessEq,
  LAngle,
  RAngle,
  ...PUNCTUATION,
];

export const irLexer = new Lexer(ALL_TOKENS, { positionTracking: "full", ensureOptimizations: false });
