import { createToken, Lexer, type TokenType } from "chevrotain";
import { IDENT, KEYWORDS } from "./syntax.js";

/** Tokens of the textual IR (docs/ir.md). Labels are what error messages show. */

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /\s+/, group: Lexer.SKIPPED });
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

const STRING = /"(?:[^"\\\r\n]|\\.)*"/;
export const ValueName = createToken({
  name: "ValueName",
  pattern: new RegExp(`%(?:[A-Za-z0-9_.]+|${STRING.source})`),
  label: "a value name (%x)",
});
export const StringLit = createToken({ name: "StringLit", pattern: STRING, label: "a string" });
export const NumberLit = createToken({
  name: "NumberLit",
  pattern: /\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/,
  label: "a number",
});

const punct = (name: string, text: string): TokenType =>
  createToken({ name, pattern: text, label: `'${text}'` });
export const LessEq = punct("LessEq", "<=");
export const LAngle = punct("LAngle", "<");
export const RAngle = punct("RAngle", ">");
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

/** Lexing order: keywords before identifiers (`longer_alt` makes `nodes` an identifier, not `node`). */
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

export const irLexer = new Lexer(ALL_TOKENS, { positionTracking: "full", ensureOptimizations: false });
