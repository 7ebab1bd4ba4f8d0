import type { CstNode, IToken } from "chevrotain";
import type { AttrValue } from "../attrs.js";
import { DTYPES, type DType, isDType } from "../dtype.js";
import type { SourceLoc } from "../graph.js";
import { add, applyFunc, type Dim, DimError, mul, neg, type SymExpr, sub, sym } from "../sym.js";
import { AXIS_ROLES, type AxisRole, isAxisRole, tensorType, type TensorType } from "../types.js";
import { child, fail, needChild, needToken, nodes, token, tokens } from "./cst.js";
import { foldInfix } from "./shared-grammar.js";

/** CST -> values for the leaves of the grammar: strings, names, numbers and dims, types, attributes, locs. */

export function parseString(t: IToken, image = t.image): string {
  try {
    return JSON.parse(image) as string;
  } catch {
    return fail(t, `invalid string literal ${image}`);
  }
}

/** `%x` or `%"quoted"` without the `%`. */
export function valueName(t: IToken): string {
  const body = t.image.slice(1);
  return body.startsWith('"') ? parseString(t, body) : body;
}

/** The `name` rule: a word or a quoted string. */
export function nameOf(n: CstNode): { name: string; at: IToken } {
  const word = token(n, "AnyName");
  if (word) return { name: word.image, at: word };
  const s = needToken(n, "StringLit");
  return { name: parseString(s), at: s };
}

/** An expression's value: a plain number literal (possibly negated, possibly float) or a dim. */
type Num =
  | { readonly lit: true; readonly v: number; readonly at: IToken }
  | { readonly lit: false; readonly v: Dim; readonly at: IToken };

function dimOp(at: IToken, f: () => Dim): Num {
  try {
    return { lit: false, v: f(), at };
  } catch (e) {
    if (e instanceof DimError) fail(at, e.message);
    throw e;
  }
}

function toDim(x: Num): Dim {
  if (!x.lit) return x.v;
  if (!Number.isSafeInteger(x.v)) fail(x.at, `expected an integer dimension, found ${String(x.v)}`);
  return x.v === 0 ? 0 : x.v;
}

export function evalExpr(n: CstNode): Num {
  const terms = nodes(n, "term").map(evalTerm);
  return foldInfix(terms, [...tokens(n, "Plus"), ...tokens(n, "Minus")], (l, op, r) =>
    dimOp(op, () => (op.image === "+" ? add(toDim(l), toDim(r)) : sub(toDim(l), toDim(r)))),
  );
}

function evalTerm(n: CstNode): Num {
  const factors = nodes(n, "unary").map(evalUnary);
  if (factors.length === 1) return factors[0];
  return dimOp(factors[0].at, () => mul(...factors.map(toDim)));
}

function evalUnary(n: CstNode): Num {
  const inner = child(n, "unary");
  if (inner) {
    const minus = needToken(n, "Minus");
    const x = evalUnary(inner);
    return x.lit ? { lit: true, v: -x.v, at: minus } : dimOp(minus, () => neg(x.v));
  }
  return evalPrimary(needChild(n, "primary"));
}

function evalPrimary(n: CstNode): Num {
  const num = token(n, "NumberLit");
  if (num) return { lit: true, v: Number(num.image), at: num };
  const inf = token(n, "Kw_inf");
  if (inf) return { lit: true, v: Infinity, at: inf };
  const nan = token(n, "Kw_nan");
  if (nan) return { lit: true, v: NaN, at: nan };
  const word = token(n, "SymWord");
  const args = nodes(n, "expr").map(evalExpr);
  if (!word) return args[0] ?? fail(needToken(n, "LParen"), "expected an expression");
  if (!token(n, "LParen")) return dimOp(word, () => sym(word.image));
  return dimOp(word, () => applyFunc(word.image, args.map(toDim)));
}

/** A dim in a type or a symbol capacity. */
export function dimOf(exprNode: CstNode): Dim {
  return toDim(evalExpr(exprNode));
}

export function typeOf(n: CstNode): TensorType {
  const dt = needToken(n, "Ident");
  if (!isDType(dt.image)) fail(dt, `unknown dtype '${dt.image}' (expected one of ${DTYPES.join(", ")})`);
  const dims: Dim[] = [];
  const roles: (AxisRole | null)[] = [];
  for (const td of nodes(n, "typeDim")) {
    dims.push(dimOf(needChild(td, "expr")));
    const role = token(td, "Ident");
    if (role && !isAxisRole(role.image))
      fail(role, `unknown axis role '${role.image}' (expected one of ${AXIS_ROLES.join(", ")})`);
    roles.push(role ? (role.image as AxisRole) : null);
  }
  return tensorType(dt.image as DType, dims, roles);
}

type Scalar = number | boolean | string | SymExpr;

function scalarOf(n: CstNode): { v: Scalar; at: IToken } {
  const s = token(n, "StringLit");
  if (s) return { v: parseString(s), at: s };
  const t = token(n, "Kw_true") ?? token(n, "Kw_false");
  if (t) return { v: t.image === "true", at: t };
  const x = evalExpr(needChild(n, "expr"));
  return { v: x.v, at: x.at };
}

/** An attribute value: a scalar, or a list of numbers/dims or of strings. */
export function attrValueOf(n: CstNode): AttrValue {
  const list = child(n, "list");
  if (!list) return scalarOf(needChild(n, "scalar")).v;
  const items = nodes(list, "scalar").map(scalarOf);
  const strings = items.filter((x) => typeof x.v === "string");
  for (const x of items)
    if (typeof x.v === "boolean") fail(x.at, "lists hold numbers, dims or strings, not booleans");
  if (strings.length === 0) return items.map((x) => x.v as number | SymExpr);
  if (strings.length === items.length) return strings.map((x) => x.v as string);
  const odd = items.find((x) => (typeof x.v === "string") !== (typeof items[0].v === "string"))!;
  return fail(odd.at, "a list holds either strings or numbers and dims, not both");
}

/** One element of `dense<[...]>`, with the token to blame. */
export function dataValueOf(n: CstNode): { v: number; at: IToken } {
  const b = token(n, "Kw_true") ?? token(n, "Kw_false");
  if (b) return { v: b.image === "true" ? 1 : 0, at: b };
  const minus = token(n, "Minus");
  const num = token(n, "NumberLit");
  const word = token(n, "Kw_inf") ?? token(n, "Kw_nan");
  const at = minus ?? num ?? word ?? needToken(n, "NumberLit");
  const v = num ? Number(num.image) : word?.image === "inf" ? Infinity : NaN;
  return { v: minus ? -v : v, at };
}

export function locOf(n: CstNode): SourceLoc {
  const file = token(n, "file");
  const line = token(n, "line");
  const col = token(n, "col");
  const node = token(n, "nodeName");
  const int = (t: IToken): number => {
    const v = Number(t.image);
    if (!Number.isSafeInteger(v)) fail(t, `expected an integer, found ${t.image}`);
    return v;
  };
  return {
    ...(file ? { file: parseString(file) } : {}),
    ...(line ? { line: int(line) } : {}),
    ...(col ? { col: int(col) } : {}),
    ...(node ? { node: parseString(node) } : {}),
  };
}
