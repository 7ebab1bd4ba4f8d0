import type { CstElement, CstNode, IToken } from "chevrotain";
import { foldInfix } from "../compiler/ir/text/shared-grammar.js";
import type {
  Arg,
  BinaryOp,
  Expr,
  Ident,
  Item,
  PolicyRule,
  Pos,
  Program,
  SelectorSegment,
  SliceItem,
  Stmt,
  TypeExpr,
} from "./ast.js";
import type { LangDiagnostic } from "./diagnostics.js";
import { tokrLexer } from "./lexer.js";
import { tokrParser } from "./parser.js";

/** CST → AST. Runs only on a CST without syntax errors, so every token a rule requires is there. */

function isToken(e: CstElement): e is IToken {
  return "image" in e;
}

function toks(n: CstNode, key: string): IToken[] {
  return (n.children[key] ?? []).filter(isToken);
}
function tok(n: CstNode, key: string): IToken {
  return toks(n, key)[0];
}
function kids(n: CstNode, key: string): CstNode[] {
  return (n.children[key] ?? []).filter((e): e is CstNode => !isToken(e));
}
function kid(n: CstNode, key: string): CstNode {
  return kids(n, key)[0];
}

function posOf(t: IToken, end: IToken = t): Pos {
  const line = t.startLine ?? 1;
  const col = t.startColumn ?? 1;
  const len = end.startLine === line ? (end.endColumn ?? col) - col + 1 : t.image.length;
  return { line, col, len };
}

function ident(t: IToken): Ident {
  return { name: t.image, pos: posOf(t) };
}

/** The first and last token under a node, for spans. */
function span(n: CstNode): Pos {
  const all: IToken[] = [];
  const walk = (c: CstNode): void => {
    for (const list of Object.values(c.children))
      for (const e of list)
        if (isToken(e)) all.push(e);
        else walk(e);
  };
  walk(n);
  all.sort((a, b) => a.startOffset - b.startOffset);
  return posOf(all[0], all[all.length - 1]);
}

function join(a: Pos, b: Pos): Pos {
  return { line: a.line, col: a.col, len: b.line === a.line ? b.col + b.len - a.col : a.len };
}

/** Left-associative chains: operators and operands interleave in source order. */
function chain(operands: Expr[], ops: IToken[]): Expr {
  return foldInfix(operands, ops, (a, o, b) => ({
    k: "binary",
    op: o.image as BinaryOp,
    a,
    b,
    pos: join(a.pos, b.pos),
  }));
}

function expr(n: CstNode): Expr {
  return chain(kids(n, "term").map(termExpr), [...toks(n, "Plus"), ...toks(n, "Minus")]);
}

function termExpr(n: CstNode): Expr {
  return chain(kids(n, "unary").map(unaryExpr), [...toks(n, "Star"), ...toks(n, "Slash")]);
}

function unaryExpr(n: CstNode): Expr {
  const minus = toks(n, "Minus")[0];
  if (minus) {
    const e = unaryExpr(kid(n, "unary"));
    return { k: "neg", e, pos: join(posOf(minus), e.pos) };
  }
  return postfixExpr(kid(n, "postfix"));
}

function postfixExpr(n: CstNode): Expr {
  let acc = primaryExpr(kid(n, "primary"));
  const suffixes = [...kids(n, "callArgs"), ...kids(n, "index")].sort(
    (a, b) => span(a).line * 1e6 + span(a).col - (span(b).line * 1e6 + span(b).col),
  );
  for (const s of suffixes) {
    const pos = join(acc.pos, span(s));
    if (s.name === "callArgs") acc = { k: "call", callee: acc, args: kids(s, "arg").map(argOf), pos };
    else acc = { k: "index", base: acc, items: kids(s, "sliceItem").map(sliceItemOf), pos };
  }
  return acc;
}

function argOf(n: CstNode): Arg {
  const name = toks(n, "Ident")[0];
  return { ...(name ? { name: ident(name) } : {}), value: expr(kid(n, "expr")) };
}

function sliceItemOf(n: CstNode): SliceItem {
  const start = kids(n, "start")[0];
  const end = kids(n, "end")[0];
  if (toks(n, "Colon").length === 0) return { k: "at", e: expr(start) };
  return {
    k: "range",
    ...(start ? { start: expr(start) } : {}),
    ...(end ? { end: expr(end) } : {}),
    pos: span(n),
  };
}

function unquote(image: string): string {
  return JSON.parse(image) as string;
}

function primaryExpr(n: CstNode): Expr {
  const t = (key: string): IToken | undefined => toks(n, key)[0];
  let x: IToken | undefined;
  if ((x = t("IntLit"))) return { k: "int", value: Number(x.image), pos: posOf(x) };
  if ((x = t("FloatLit"))) return { k: "float", value: Number(x.image), pos: posOf(x) };
  if ((x = t("StringLit"))) return { k: "string", value: unquote(x.image), pos: posOf(x) };
  if ((x = t("Kw_true"))) return { k: "bool", value: true, pos: posOf(x) };
  if ((x = t("Kw_false"))) return { k: "bool", value: false, pos: posOf(x) };
  const list = kids(n, "list")[0];
  if (list) return { k: "list", items: kids(list, "expr").map(expr), pos: span(list) };
  const q = kids(n, "qualifiedName")[0];
  if (q) {
    const parts = toks(q, "Ident");
    return { k: "name", name: parts.map((p) => p.image).join("."), pos: span(q) };
  }
  return expr(kid(n, "expr"));
}

function typeOf(n: CstNode): TypeExpr {
  return {
    dtype: ident(tok(n, "Ident")),
    dims: kids(n, "typeDim").map((d) => {
      const axis = toks(d, "Ident")[0];
      return { e: expr(kid(d, "expr")), ...(axis ? { axis: ident(axis) } : {}) };
    }),
    pos: span(n),
  };
}

function body(n: CstNode): Stmt[] {
  return kids(n, "statement").map(stmt);
}

function stmt(s: CstNode): Stmt {
  const [name, n] = Object.entries(s.children)[0] as [string, CstNode[]];
  const c = n[0];
  switch (name) {
    case "paramStmt":
      return {
        k: "param",
        name: ident(tok(c, "Ident")),
        type: typeOf(kid(c, "type")),
        init: expr(kid(c, "expr")),
      };
    case "repeatStmt":
      return {
        k: "repeat",
        count: expr(kid(c, "expr")),
        var: ident(tok(c, "Ident")),
        body: body(kid(c, "body")),
        pos: posOf(tok(c, "Kw_repeat")),
      };
    case "returnStmt":
      return { k: "return", value: expr(kid(c, "expr")), pos: posOf(tok(c, "Kw_return")) };
    default:
      return { k: "assign", targets: toks(c, "Ident").map(ident), value: expr(kid(c, "expr")) };
  }
}

function segment(n: CstNode): SelectorSegment {
  const head = toks(n, "Ident")[0] ?? toks(n, "IntLit")[0] ?? toks(n, "Star")[0];
  const k = head.tokenType.name === "Ident" ? "name" : head.tokenType.name === "IntLit" ? "index" : "any";
  const lo = toks(n, "lo")[0];
  const hi = toks(n, "hi")[0] ?? lo;
  return {
    k,
    text: head.image,
    ...(lo ? { range: { lo: Number(lo.image), hi: Number(hi.image) } } : {}),
    pos: span(n),
  };
}

function policyRule(n: CstNode): PolicyRule {
  const sel = kid(n, "selector");
  const args = kid(n, "callArgs");
  return {
    selector: kids(sel, "selectorSegment").map(segment),
    selectorPos: span(sel),
    directive: ident(tok(n, "Ident")),
    args: kids(args, "arg").map(argOf),
    pos: span(n),
  };
}

function item(i: CstNode): Item {
  const [name, n] = Object.entries(i.children)[0] as [string, CstNode[]];
  const c = n[0];
  switch (name) {
    case "constDecl":
      return { k: "const", name: ident(tok(c, "Ident")), value: expr(kid(c, "expr")) };
    case "blockDecl":
      return {
        k: "block",
        name: ident(tok(c, "Ident")),
        params: kids(c, "blockParam").map((p) => {
          const [nm, kind] = toks(p, "Ident");
          return { name: ident(nm), ...(kind ? { kind: ident(kind) } : {}) };
        }),
        body: body(kid(c, "body")),
        end: posOf(tok(kid(c, "body"), "RCurly")),
      };
    case "policyDecl":
      return { k: "policy", name: ident(tok(c, "Ident")), rules: kids(c, "policyRule").map(policyRule) };
    default:
      return {
        k: "model",
        name: ident(tok(c, "Ident")),
        inputs: kids(c, "inputDecl").map((d) => ({
          name: ident(tok(d, "Ident")),
          type: typeOf(kid(d, "type")),
        })),
        outputs: kids(c, "outputDecl").map((d) => {
          const t = kids(d, "type")[0];
          return { name: ident(tok(d, "Ident")), ...(t ? { type: typeOf(t) } : {}) };
        }),
        body: body(kid(c, "body")),
      };
  }
}

/** Lexes and parses `source`; on syntax errors returns every one of them and no program. */
export function parseProgram(source: string): { program?: Program; diagnostics: LangDiagnostic[] } {
  const lexed = tokrLexer.tokenize(source);
  const diagnostics: LangDiagnostic[] = lexed.errors.map((e) => ({
    pos: { line: e.line ?? 1, col: e.column ?? 1, len: 1 },
    message: `unexpected character '${source.substr(e.offset, 1)}'`,
  }));
  tokrParser.input = lexed.tokens;
  const cst = tokrParser.program();
  for (const e of tokrParser.errors) {
    const t = e.token;
    const pos: Pos =
      t.startLine !== undefined && !Number.isNaN(t.startLine) ? posOf(t) : lastPos(lexed.tokens);
    diagnostics.push({ pos, message: e.message });
  }
  if (diagnostics.length) {
    diagnostics.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
    return { diagnostics };
  }
  const comments = (lexed.groups.comments ?? []).map((c) => ({ text: c.image, line: c.startLine ?? 1 }));
  return { program: { items: kids(cst, "item").map(item), comments }, diagnostics };
}

/** Where "end of file" errors point: just past the last token. */
function lastPos(tokens: readonly IToken[]): Pos {
  const last = tokens[tokens.length - 1];
  if (!last) return { line: 1, col: 1, len: 1 };
  return { line: last.endLine ?? 1, col: (last.endColumn ?? 0) + 1, len: 1 };
}
