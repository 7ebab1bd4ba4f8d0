import type { CstNode, ParserMethod } from "chevrotain";
import { DimTypeParser, parserMessages } from "../compiler/ir/text/shared-grammar.js";
import * as T from "./lexer.js";

/**
 * The `.tokr` grammar as a chevrotain CstParser: rules only, no semantics (visitor.ts builds the
 * AST). Error recovery is on so that one run reports every syntax error.
 */

const messages = parserMessages({
  end: "the end of the file",
  leftOver: (found) => `expected 'model', 'block', 'policy' or a constant but found ${found}`,
  expectedIn: (rule) => (rule === "primary" ? "an expression" : undefined),
});

export class TokrParser extends DimTypeParser {
  protected readonly mulOps = [T.Star, T.Slash];
  protected readonly word = T.Ident;
  protected get factor(): ParserMethod<[], CstNode> {
    return this.postfix;
  }

  constructor() {
    super(T.ALL_TOKENS, { recoveryEnabled: true, maxLookahead: 3, errorMessageProvider: messages });
    this.performSelfAnalysis();
  }

  program = this.RULE("program", () => {
    this.MANY(() => this.SUBRULE(this.item));
  });

  item = this.RULE("item", () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.constDecl) },
      { ALT: () => this.SUBRULE(this.blockDecl) },
      { ALT: () => this.SUBRULE(this.modelDecl) },
      { ALT: () => this.SUBRULE(this.policyDecl) },
    ]);
  });

  /** `policy NAME { SELECTOR: DIRECTIVE(args) ... }` (docs/language.md, Policies). */
  policyDecl = this.RULE("policyDecl", () => {
    this.CONSUME(T.Policy);
    this.CONSUME(T.Ident);
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.policyRule));
    this.CONSUME(T.RCurly);
  });

  policyRule = this.RULE("policyRule", () => {
    this.SUBRULE(this.selector);
    this.CONSUME(T.Colon);
    this.CONSUME(T.Ident);
    this.SUBRULE(this.callArgs);
  });

  /** `blocks[2..11].attn`, `blocks.*`, `blocks.3.mlp`: dot-separated segments. */
  selector = this.RULE("selector", () => {
    this.AT_LEAST_ONE_SEP({ SEP: T.Dot, DEF: () => this.SUBRULE(this.selectorSegment) });
  });

  selectorSegment = this.RULE("selectorSegment", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Ident) },
      { ALT: () => this.CONSUME(T.IntLit) },
      { ALT: () => this.CONSUME(T.Star) },
    ]);
    this.OPTION(() => {
      this.CONSUME(T.LSquare);
      this.CONSUME2(T.IntLit, { LABEL: "lo" });
      this.OPTION2(() => {
        this.CONSUME(T.DotDot);
        this.CONSUME3(T.IntLit, { LABEL: "hi" });
      });
      this.CONSUME(T.RSquare);
    });
  });

  constDecl = this.RULE("constDecl", () => {
    this.CONSUME(T.Ident);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expr);
  });

  blockDecl = this.RULE("blockDecl", () => {
    this.CONSUME(T.Block);
    this.CONSUME(T.Ident);
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.blockParam) });
    this.CONSUME(T.RParen);
    this.SUBRULE(this.body);
  });

  blockParam = this.RULE("blockParam", () => {
    this.CONSUME(T.Ident);
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      this.CONSUME2(T.Ident);
    });
  });

  modelDecl = this.RULE("modelDecl", () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.Ident);
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.inputDecl) });
    this.CONSUME(T.RParen);
    this.CONSUME(T.Arrow);
    this.CONSUME2(T.LParen);
    this.MANY_SEP2({ SEP: T.Comma, DEF: () => this.SUBRULE(this.outputDecl) });
    this.CONSUME2(T.RParen);
    this.SUBRULE(this.body);
  });

  inputDecl = this.RULE("inputDecl", () => {
    this.CONSUME(T.Ident);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.type);
  });

  outputDecl = this.RULE("outputDecl", () => {
    this.CONSUME(T.Ident);
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      this.SUBRULE(this.type);
    });
  });

  body = this.RULE("body", () => {
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.statement));
    this.CONSUME(T.RCurly);
  });

  statement = this.RULE("statement", () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.paramStmt) },
      { ALT: () => this.SUBRULE(this.repeatStmt) },
      { ALT: () => this.SUBRULE(this.returnStmt) },
      { ALT: () => this.SUBRULE(this.assignStmt) },
    ]);
  });

  paramStmt = this.RULE("paramStmt", () => {
    this.CONSUME(T.Param);
    this.CONSUME(T.Ident);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.type);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expr);
  });

  repeatStmt = this.RULE("repeatStmt", () => {
    this.CONSUME(T.Repeat);
    this.SUBRULE(this.expr);
    this.CONSUME(T.As);
    this.CONSUME(T.Ident);
    this.SUBRULE(this.body);
  });

  returnStmt = this.RULE("returnStmt", () => {
    this.CONSUME(T.Return);
    this.SUBRULE(this.expr);
  });

  assignStmt = this.RULE("assignStmt", () => {
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.CONSUME(T.Ident) });
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expr);
  });

  /** The operand of dim/number arithmetic (shared-grammar.ts): a primary with calls and indexing. */
  postfix = this.RULE("postfix", () => {
    this.SUBRULE(this.primary);
    this.MANY(() => {
      this.OR([{ ALT: () => this.SUBRULE(this.callArgs) }, { ALT: () => this.SUBRULE(this.index) }]);
    });
  });

  callArgs = this.RULE("callArgs", () => {
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.arg) });
    this.CONSUME(T.RParen);
  });

  arg = this.RULE("arg", () => {
    this.OPTION(() => {
      this.CONSUME(T.Ident);
      this.CONSUME(T.Colon);
    });
    this.SUBRULE(this.expr);
  });

  index = this.RULE("index", () => {
    this.CONSUME(T.LSquare);
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.sliceItem) });
    this.CONSUME(T.RSquare);
  });

  /** `e`, `:`, `a:`, `:b`, `a:b`; the start and end are tagged so the visitor can tell them apart. */
  sliceItem = this.RULE("sliceItem", () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Colon);
          this.OPTION(() => this.SUBRULE(this.expr, { LABEL: "end" }));
        },
      },
      {
        ALT: () => {
          this.SUBRULE2(this.expr, { LABEL: "start" });
          this.OPTION2(() => {
            this.CONSUME2(T.Colon);
            this.OPTION3(() => this.SUBRULE3(this.expr, { LABEL: "end" }));
          });
        },
      },
    ]);
  });

  primary = this.RULE("primary", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.IntLit) },
      { ALT: () => this.CONSUME(T.FloatLit) },
      { ALT: () => this.CONSUME(T.StringLit) },
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      { ALT: () => this.SUBRULE(this.list) },
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.SUBRULE(this.expr);
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => this.SUBRULE(this.qualifiedName) },
    ]);
  });

  list = this.RULE("list", () => {
    this.CONSUME(T.LSquare);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.expr) });
    this.CONSUME(T.RSquare);
  });

  qualifiedName = this.RULE("qualifiedName", () => {
    this.CONSUME(T.Ident);
    this.MANY(() => {
      this.CONSUME(T.Dot);
      this.CONSUME2(T.Ident);
    });
  });
}

export const tokrParser = new TokrParser();
