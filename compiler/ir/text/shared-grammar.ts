import {
  CstParser,
  EOF,
  type CstNode,
  type IParserConfig,
  type IParserErrorMessageProvider,
  type IToken,
  type ParserMethod,
  type TokenType,
} from "chevrotain";
import { At, Comma, LSquare, Minus, Plus, RSquare } from "./shared-tokens.js";

/**
 * What the textual IR grammar (grammar.ts) and the `.tokr` grammar (grammar/parser.ts) share: syntax
 * error wording, dim arithmetic and tensor types. Their own rules stay in their own parsers.
 */

function tokenLabel(t: TokenType): string {
  return t.LABEL ?? t.name;
}

function oneOf(paths: readonly (readonly TokenType[])[]): string {
  const firsts = [...new Set(paths.filter((p) => p.length > 0).map((p) => tokenLabel(p[0])))];
  return firsts.length === 1 ? firsts[0] : `one of ${firsts.join(", ")}`;
}

/** How one grammar words the messages that differ between the two. */
export interface MessageStyle {
  /** What a message says when the input ends where a token was expected. */
  readonly end: string;
  /** The message for tokens left after the top rule; `found` is the first of them, quoted. */
  readonly leftOver: (found: string) => string;
  /** What a rule expected when none of its alternatives applies; undefined: their first tokens. */
  readonly expectedIn?: (ruleName: string) => string | undefined;
}

/** Chevrotain's error messages as `expected X but found 'y'`, X by token labels. */
export function parserMessages(style: MessageStyle): IParserErrorMessageProvider {
  const found = (tok: IToken | undefined): string =>
    !tok || tok.tokenType === EOF ? style.end : `'${tok.image}'`;
  return {
    buildMismatchTokenMessage: ({ expected, actual }) =>
      `expected ${tokenLabel(expected)} but found ${found(actual)}`,
    buildNotAllInputParsedMessage: ({ firstRedundant }) => style.leftOver(found(firstRedundant)),
    buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, ruleName }) =>
      `expected ${style.expectedIn?.(ruleName) ?? oneOf(expectedPathsPerAlt.flat())} but found ${found(actual[0])}`,
    buildEarlyExitMessage: ({ expectedIterationPaths, actual }) =>
      `expected ${oneOf(expectedIterationPaths)} but found ${found(actual[0])}`,
  };
}

/**
 * The rules both grammars share: `+ -` over `term`s, a `term` multiplies `unary`s, `unary` negates a
 * `factor`; and tensor types `f32[B@batch, N*2@token, 4]` (`type`, each dim a `typeDim`).
 * Rules record lazily (in performSelfAnalysis), so the abstract members may be subclass fields.
 */
export abstract class DimTypeParser extends CstParser {
  /** What `unary` applies to when it is not a negation. */
  protected abstract readonly factor: ParserMethod<[], CstNode>;
  /** The operators of `term`. */
  protected abstract readonly mulOps: readonly TokenType[];
  /** The token of dtype names and axis roles. */
  protected abstract readonly word: TokenType;

  constructor(tokens: TokenType[], config: IParserConfig) {
    super(tokens, config);
  }

  /** Dims and numbers: `+ -` over `term`s. */
  expr = this.RULE("expr", () => {
    this.SUBRULE(this.term);
    this.MANY(() => {
      this.OR([{ ALT: () => this.CONSUME(Plus) }, { ALT: () => this.CONSUME(Minus) }]);
      this.SUBRULE1(this.term);
    });
  });

  term = this.RULE("term", () => {
    this.SUBRULE(this.unary);
    this.MANY(() => {
      this.OR(this.mulOps.map((op) => ({ ALT: () => this.CONSUME(op) })));
      this.SUBRULE1(this.unary);
    });
  });

  unary = this.RULE("unary", () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Minus);
          this.SUBRULE(this.unary);
        },
      },
      { ALT: () => this.SUBRULE(this.factor) },
    ]);
  });

  /** `f32[B@batch, N@token, 4]` */
  type = this.RULE("type", () => {
    this.CONSUME(this.word);
    this.CONSUME(LSquare);
    this.MANY_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.typeDim) });
    this.CONSUME(RSquare);
  });

  typeDim = this.RULE("typeDim", () => {
    this.SUBRULE(this.expr);
    this.OPTION(() => {
      this.CONSUME(At);
      this.CONSUME(this.word);
    });
  });
}

/** Folds `operands` left to right with the operator tokens between them (a rule's CST keeps those apart). */
export function foldInfix<T>(
  operands: readonly T[],
  ops: readonly IToken[],
  apply: (a: T, op: IToken, b: T) => T,
): T {
  const inOrder = [...ops].sort((a, b) => a.startOffset - b.startOffset);
  return inOrder.reduce((acc, op, i) => apply(acc, op, operands[i + 1]), operands[0]);
}
