import type { Atom, Dim } from "../ir/sym.js";
import {
  type BinOp,
  BOOL_RESULT,
  type Builtin,
  type Expr,
  isFloatKType,
  type KType,
  type SubgroupOp,
  type UnOp,
} from "./types.js";

/**
 * Expression constructors with type checking. Lowerings build KIR only through these (and
 * `KernelBuilder`), so ill-typed kernels fail at lowering time with a message, not in a driver.
 */

export class KirError extends Error {}

export type Operand = Expr | number;

export function lit(v: number, t: KType): Expr {
  if ((t === "i32" || t === "u32") && !Number.isInteger(v))
    throw new KirError(`${t} literal ${v} is not an integer`);
  if (t === "i32" && (v < -(2 ** 31) || v >= 2 ** 31)) throw new KirError(`i32 literal ${v} out of range`);
  if (t === "u32" && (v < 0 || v >= 2 ** 32)) throw new KirError(`u32 literal ${v} out of range`);
  if (t === "bool" && v !== 0 && v !== 1) throw new KirError(`bool literal must be 0 or 1, got ${v}`);
  return { k: "const", t, v };
}

export const i32 = (v: number): Expr => lit(v, "i32");
export const f32 = (v: number): Expr => lit(v, "f32");
export const TRUE: Expr = lit(1, "bool");
export const FALSE: Expr = lit(0, "bool");

/** A number operand takes the other operand's type. */
function operand(x: Operand, like: KType): Expr {
  return typeof x === "number" ? lit(x, like) : x;
}

function typeOfPair(a: Operand, b: Operand, what: string): KType {
  if (typeof a === "number" && typeof b === "number")
    return Number.isInteger(a) && Number.isInteger(b) ? "i32" : "f32";
  if (typeof a === "number") return (b as Expr).t;
  if (typeof b === "number") return a.t;
  if (a.t !== b.t) throw new KirError(`${what}: operand types differ (${a.t} and ${b.t})`);
  return a.t;
}

export function binary(op: BinOp, a: Operand, b: Operand): Expr {
  const t = typeOfPair(a, b, op);
  const ea = operand(a, t);
  const eb = operand(b, t);
  if ((op === "and" || op === "or") && t !== "bool")
    throw new KirError(`${op} needs bool operands, got ${t}`);
  if (t === "bool" && !(op === "and" || op === "or" || op === "eq" || op === "ne"))
    throw new KirError(`${op} is not defined on bool`);
  if (op === "pow" && !isFloatKType(t)) throw new KirError(`pow needs float operands, got ${t}`);
  return { k: "binary", t: BOOL_RESULT.has(op) ? "bool" : t, op, a: ea, b: eb };
}

const FLOAT_ONLY: ReadonlySet<UnOp> = new Set([
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "tanh",
  "erf",
  "floor",
  "ceil",
]);

export function unary(op: UnOp, a: Expr): Expr {
  if (FLOAT_ONLY.has(op) && !isFloatKType(a.t)) throw new KirError(`${op} needs a float, got ${a.t}`);
  if (op === "not" && a.t !== "bool") throw new KirError(`not needs a bool, got ${a.t}`);
  if ((op === "neg" || op === "abs") && (a.t === "bool" || a.t === "u32"))
    throw new KirError(`${op} is not defined on ${a.t}`);
  return { k: "unary", t: a.t, op, a };
}

export const add = (a: Operand, b: Operand): Expr => binary("add", a, b);
export const sub = (a: Operand, b: Operand): Expr => binary("sub", a, b);
export const mul = (a: Operand, b: Operand): Expr => binary("mul", a, b);
export const div = (a: Operand, b: Operand): Expr => binary("div", a, b);
export const mod = (a: Operand, b: Operand): Expr => binary("mod", a, b);
export const min = (a: Operand, b: Operand): Expr => binary("min", a, b);
export const max = (a: Operand, b: Operand): Expr => binary("max", a, b);
export const lt = (a: Operand, b: Operand): Expr => binary("lt", a, b);
export const le = (a: Operand, b: Operand): Expr => binary("le", a, b);
export const gt = (a: Operand, b: Operand): Expr => binary("gt", a, b);
export const ge = (a: Operand, b: Operand): Expr => binary("ge", a, b);
export const eq = (a: Operand, b: Operand): Expr => binary("eq", a, b);
export const ne = (a: Operand, b: Operand): Expr => binary("ne", a, b);
export const and = (a: Expr, b: Expr): Expr => binary("and", a, b);
export const or = (a: Expr, b: Expr): Expr => binary("or", a, b);

export function select(cond: Expr, a: Operand, b: Operand): Expr {
  if (cond.t !== "bool") throw new KirError(`select condition must be bool, got ${cond.t}`);
  const t = typeOfPair(a, b, "select");
  return { k: "select", t, cond, a: operand(a, t), b: operand(b, t) };
}

export function cast(a: Expr, t: KType): Expr {
  return a.t === t ? a : { k: "cast", t, a };
}

export function builtin(name: Builtin, axis: 0 | 1 | 2 = 0): Expr {
  return { k: "builtin", t: "i32", name, axis };
}

export function varRef(name: string, t: KType): Expr {
  return { k: "var", t, name };
}

export function load(array: string, index: Expr, t: KType): Expr {
  if (index.t !== "i32") throw new KirError(`index into '${array}' must be i32, got ${index.t}`);
  return { k: "load", t, array, index };
}

export function subgroup(op: SubgroupOp, a: Expr, arg?: Expr): Expr {
  if (op === "shuffle_xor" && arg === undefined) throw new KirError("shuffle_xor needs a lane mask");
  if (arg !== undefined && arg.t !== "i32") throw new KirError(`subgroup ${op} argument must be i32`);
  return { k: "subgroup", t: a.t, op, a, ...(arg ? { arg } : {}) };
}

/** Smallest finite / infinities as typed constants (renderers spell them per language). */
export const NEG_INF = (t: KType = "f32"): Expr => lit(-Infinity, t);

// ---------- symbolic dims ----------

/** A graph dim as an i32 expression over `sym` leaves (rendered from uniforms). */
export function dimExpr(d: Dim): Expr {
  if (typeof d === "number") return i32(d);
  let acc: Expr | undefined;
  for (const t of d.terms) {
    let term: Expr = i32(Math.abs(t.coef));
    if (Math.abs(t.coef) === 1) term = atomExpr(t.factors[0]);
    else term = mul(term, atomExpr(t.factors[0]));
    for (const f of t.factors.slice(1)) term = mul(term, atomExpr(f));
    if (acc === undefined) acc = t.coef < 0 ? sub(0, term) : term;
    else acc = t.coef < 0 ? sub(acc, term) : add(acc, term);
  }
  if (acc === undefined) return i32(d.c);
  return d.c === 0 ? acc : d.c < 0 ? sub(acc, -d.c) : add(acc, d.c);
}

function atomExpr(a: Atom): Expr {
  switch (a.k) {
    case "var":
      return { k: "sym", t: "i32", name: a.name };
    case "floordiv":
      // Dims are non-negative and divisors positive, so truncation is floor.
      return div(dimExpr(a.a), dimExpr(a.b));
    case "ceildiv": {
      const b = dimExpr(a.b);
      return div(add(dimExpr(a.a), sub(b, 1)), b);
    }
    case "min":
    case "max":
      return a.args.map(dimExpr).reduce((x, y) => (a.k === "min" ? min(x, y) : max(x, y)));
  }
}

/** Symbols an expression reads. */
export function exprSymbols(e: Expr, out: Set<string>): Set<string> {
  switch (e.k) {
    case "sym":
      out.add(e.name);
      break;
    case "const":
    case "var":
    case "builtin":
      break;
    case "unary":
    case "cast":
      exprSymbols(e.a, out);
      break;
    case "binary":
      exprSymbols(e.a, out);
      exprSymbols(e.b, out);
      break;
    case "select":
      exprSymbols(e.cond, out);
      exprSymbols(e.a, out);
      exprSymbols(e.b, out);
      break;
    case "load":
      exprSymbols(e.index, out);
      break;
    case "subgroup":
      exprSymbols(e.a, out);
      if (e.arg) exprSymbols(e.arg, out);
      break;
  }
  return out;
}
