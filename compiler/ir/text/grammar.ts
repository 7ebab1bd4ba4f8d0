import type { CstNode, ParserMethod } from "chevrotain";
import * as T from "./lexer.js";
import { DimTypeParser, parserMessages } from "./shared-grammar.js";

/**
 * The grammar of the textual IR as a chevrotain CstParser: rules only, no semantics
 * (builder.ts turns the CST into a Graph). Error recovery is on so one run reports several errors.
 */

const messages = parserMessages({
  end: "the end of the input",
  leftOver: (found) => `unexpected ${found} after the end of the graph`,
});

export class IRGrammar extends DimTypeParser {
  protected readonly mulOps = [T.Star];
  protected readonly word = T.Ident;
  protected get factor(): ParserMethod<[], CstNode> {
    return this.primary;
  }

  constructor() {
    super(T.ALL_TOKENS, { recoveryEnabled: true, maxLookahead: 4, errorMessageProvider: messages });
    this.performSelfAnalysis();
  }

  graph = this.RULE("graph", () => {
    this.CONSUME(T.Graph);
    this.CONSUME(T.At);
    this.SUBRULE(this.name);
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.param) });
    this.CONSUME(T.RParen);
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.statement));
    this.SUBRULE(this.returnStmt);
    this.CONSUME(T.RCurly);
  });

  param = this.RULE("param", () => {
    this.CONSUME(T.ValueName);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.type);
  });

  statement = this.RULE("statement", () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.symDecl) },
      { ALT: () => this.SUBRULE(this.policyDecl) },
      { ALT: () => this.SUBRULE(this.constDecl) },
      { ALT: () => this.SUBRULE(this.nodeStmt) },
    ]);
  });

  returnStmt = this.RULE("returnStmt", () => {
    this.CONSUME(T.Return);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.CONSUME(T.ValueName) });
  });

  symDecl = this.RULE("symDecl", () => {
    this.CONSUME(T.Sym);
    this.CONSUME(T.SymWord);
    this.OPTION(() => {
      this.CONSUME(T.LessEq);
      this.SUBRULE(this.expr);
    });
  });

  policyDecl = this.RULE("policyDecl", () => {
    this.CONSUME(T.Policy);
    this.CONSUME(T.At);
    this.SUBRULE(this.name);
    this.SUBRULE(this.attrDict);
    this.OPTION(() => this.SUBRULE(this.loc));
  });

  constDecl = this.RULE("constDecl", () => {
    this.CONSUME(T.Const);
    this.CONSUME(T.ValueName);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.type);
    this.OPTION(() => {
      this.CONSUME(T.Equals);
      this.AT_LEAST_ONE(() =>
        this.OR([{ ALT: () => this.SUBRULE(this.dense) }, { ALT: () => this.SUBRULE(this.ref) }]),
      );
    });
  });

  dense = this.RULE("dense", () => {
    this.CONSUME(T.Dense);
    this.CONSUME(T.LAngle);
    this.CONSUME(T.LSquare);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.dataValue) });
    this.CONSUME(T.RSquare);
    this.CONSUME(T.RAngle);
  });

  dataValue = this.RULE("dataValue", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      {
        ALT: () => {
          this.OPTION(() => this.CONSUME(T.Minus));
          this.OR1([
            { ALT: () => this.CONSUME(T.NumberLit) },
            { ALT: () => this.CONSUME(T.Inf) },
            { ALT: () => this.CONSUME(T.Nan) },
          ]);
        },
      },
    ]);
  });

  ref = this.RULE("ref", () => {
    this.CONSUME(T.Ref);
    this.CONSUME(T.LAngle);
    this.CONSUME(T.StringLit);
    this.CONSUME(T.RAngle);
  });

  nodeStmt = this.RULE("nodeStmt", () => {
    this.OR([
      {
        ALT: () => {
          this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.CONSUME(T.ValueName, { LABEL: "outputs" }) });
          this.CONSUME(T.Equals);
          this.CONSUME(T.AnyName, { LABEL: "op" });
        },
      },
      // A node without outputs starts with its op name, which then must be a plain identifier.
      { ALT: () => this.CONSUME(T.Ident, { LABEL: "op" }) },
    ]);
    this.CONSUME(T.LParen);
    this.MANY_SEP1({ SEP: T.Comma, DEF: () => this.SUBRULE(this.operand) });
    this.CONSUME(T.RParen);
    this.OPTION(() => this.SUBRULE(this.attrDict));
    this.OPTION1(() => {
      this.CONSUME(T.Policy);
      this.CONSUME(T.At);
      this.SUBRULE(this.name);
    });
    this.OPTION2(() => {
      this.CONSUME(T.Scope);
      this.CONSUME(T.StringLit);
    });
    this.OPTION3(() => this.SUBRULE(this.loc));
    this.OPTION4(() => {
      this.CONSUME(T.Colon);
      this.AT_LEAST_ONE_SEP1({ SEP: T.Comma, DEF: () => this.SUBRULE(this.type) });
    });
  });

  operand = this.RULE("operand", () => {
    this.OR([{ ALT: () => this.CONSUME(T.ValueName) }, { ALT: () => this.CONSUME(T.None) }]);
  });

  /** Graph, policy and attribute names: a word or a quoted string. */
  name = this.RULE("name", () => {
    this.OR([{ ALT: () => this.CONSUME(T.AnyName) }, { ALT: () => this.CONSUME(T.StringLit) }]);
  });

  attrDict = this.RULE("attrDict", () => {
    this.CONSUME(T.LCurly);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.attr) });
    this.CONSUME(T.RCurly);
  });

  attr = this.RULE("attr", () => {
    this.SUBRULE(this.name);
    this.CONSUME(T.Equals);
    this.OR([{ ALT: () => this.SUBRULE(this.list) }, { ALT: () => this.SUBRULE(this.scalar) }]);
  });

  list = this.RULE("list", () => {
    this.CONSUME(T.LSquare);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.scalar) });
    this.CONSUME(T.RSquare);
  });

  scalar = this.RULE("scalar", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.StringLit) },
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      { ALT: () => this.SUBRULE(this.expr) },
    ]);
  });

  /** The operands of dim arithmetic (shared-grammar.ts): numbers, symbols, dim functions, parentheses. */
  primary = this.RULE("primary", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.NumberLit) },
      { ALT: () => this.CONSUME(T.Inf) },
      { ALT: () => this.CONSUME(T.Nan) },
      {
        ALT: () => {
          this.CONSUME(T.SymWord);
          this.OPTION(() => {
            this.CONSUME(T.LParen);
            this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.expr) });
            this.CONSUME(T.RParen);
          });
        },
      },
      {
        ALT: () => {
          this.CONSUME1(T.LParen);
          this.SUBRULE1(this.expr);
          this.CONSUME1(T.RParen);
        },
      },
    ]);
  });

  /** `loc("file":line:col node "name")`, every part optional. */
  loc = this.RULE("loc", () => {
    this.CONSUME(T.Loc);
    this.CONSUME(T.LParen);
    this.OPTION(() => this.CONSUME(T.StringLit, { LABEL: "file" }));
    this.OPTION1(() => {
      this.CONSUME(T.Colon);
      this.CONSUME(T.NumberLit, { LABEL: "line" });
      this.OPTION2(() => {
        this.CONSUME1(T.Colon);
        this.CONSUME1(T.NumberLit, { LABEL: "col" });
      });
    });
    this.OPTION3(() => {
      this.CONSUME(T.NodeKw);
      this.CONSUME1(T.StringLit, { LABEL: "nodeName" });
    });
    this.CONSUME(T.RParen);
  });
}

/** One shared instance: chevrotain parsers are reset by assigning `input`. */
export const irGrammar = new IRGrammar();
