import { type DType, isDType, isFloat, isInt } from "../ir/dtype.js";
import {
  add as dimAdd,
  dimEquals,
  floordiv,
  mul as dimMul,
  neg,
  provablyNonNeg,
  sub as dimSub,
  type Dim,
} from "../ir/sym.js";
import { castScalar } from "../ir/tensor.js";
import { tensorType, type TensorType } from "../ir/types.js";
import { type InferCtx, type OpDef, type PointwiseCtx, registerOp } from "./registry.js";
import * as K from "../kir/expr.js";
import { type Expr, type UnOp, registerType } from "../kir/types.js";
import { concreteDims, symbolicSafe } from "./known.js";
import { broadcastIndex, broadcastType, concreteBroadcast, input, mapBroadcast } from "./util.js";

/** Elementwise ops are one table: name, scalar function, and dtype rule. */

function numelDim(t: TensorType): Dim {
  return dimMul(...t.dims);
}

/** erf with |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function geluErf(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

type Rule1 = (x: Expr, ctx: PointwiseCtx) => Expr;
type Rule2 = (a: Expr, b: Expr, ctx: PointwiseCtx) => Expr;

// ---------- scalar rules for kernels (registers: i64/i8/u8 as i32, bool as bool, f64 as f32) ----------

/** i8/u8 live as i32 on devices; the reference stores them in 8-bit arrays, which wrap. */
function narrow(v: Expr, d: DType): Expr {
  if (d !== "i8" && d !== "u8") return v;
  const w = K.mod(K.add(K.mod(v, 256), 256), 256);
  return d === "u8" ? w : K.select(K.gt(w, 127), K.sub(w, 256), w);
}

/** Cast semantics of the reference (castScalar): floats truncate into integers, NaN/inf give 0; NaN is false. */
function castTo(x: Expr, from: DType, to: DType, ctx: PointwiseCtx): Expr {
  const t = registerType(to, ctx.target);
  if (to === "bool") {
    if (from === "bool") return x;
    return isFloat(from) ? K.and(K.ne(x, 0), K.eq(x, x)) : K.ne(x, 0);
  }
  if (isFloat(to) || !isFloat(from)) return narrow(K.cast(x, t), to);
  const finite = K.lt(K.unary("abs", x), K.lit(Infinity, x.t));
  return narrow(K.select(finite, K.cast(x, t), 0), to);
}

const unaryRule =
  (op: UnOp): Rule1 =>
  (x) =>
    K.unary(op, x);

/** Neg/Abs/Relu of a bool are the identity in the reference (bool storage keeps non-zero as 1). */
const boolIdentity =
  (rule: Rule1): Rule1 =>
  (x, ctx) =>
    x.t === "bool" ? x : rule(x, ctx);

function sigmoidRule(x: Expr): Expr {
  // Both branches of the reference's stable form from one exp(-|x|).
  const e = K.unary("exp", K.unary("neg", K.unary("abs", x)));
  return K.select(K.ge(x, 0), K.div(1, K.add(1, e)), K.div(e, K.add(1, e)));
}

function geluRule(x: Expr, ctx: PointwiseCtx): Expr {
  const half = K.mul(0.5, x);
  if (ctx.attr<string>("approximate") === "tanh") {
    const inner = K.mul(SQRT_2_OVER_PI, K.add(x, K.mul(0.044715, K.mul(x, K.mul(x, x)))));
    return K.mul(half, K.add(1, K.unary("tanh", inner)));
  }
  return K.mul(half, K.add(1, K.unary("erf", K.mul(x, Math.SQRT1_2))));
}

/** Integer division truncates and x / 0 is 0 (reference intDiv); the divisor is made safe first. */
function divRule(a: Expr, b: Expr): Expr {
  if (a.t === "f32" || a.t === "f16") return K.div(a, b);
  const zero = K.eq(b, 0);
  return K.select(zero, 0, K.div(a, K.select(zero, 1, b)));
}

/** Pow in f32 with the result in a's dtype (the exponent may have another dtype). */
function powRule(a: Expr, b: Expr, ctx: PointwiseCtx): Expr {
  const [da, db] = [ctx.inputs[0] ?? ctx.output, ctx.inputs[1] ?? ctx.output];
  const fa = castTo(a, da, "f32", ctx);
  const fb = castTo(b, db, "f32", ctx);
  return castTo(K.binary("pow", fa, fb), "f32", ctx.output, ctx);
}

/** Comparisons; KIR orders only numbers, so bools compare as 0/1. */
const compare =
  (op: "lt" | "gt" | "eq"): Rule2 =>
  (a, b) =>
    a.t === "bool" && op !== "eq" ? K.binary(op, K.cast(a, "i32"), K.cast(b, "i32")) : K.binary(op, a, b);

const binaryRule =
  (op: "add" | "sub" | "mul"): Rule2 =>
  (a, b) =>
    K.binary(op, a, b);

type DTypeRule = "same" | "bool";

function requireDtypes(ctx: InferCtx, allowed: (d: DType) => boolean, what: string): void {
  ctx.inputs.forEach((t, i) => {
    if (t && !allowed(t.dtype)) ctx.fail(`input ${i} has dtype ${t.dtype}; ${ctx.op} needs ${what}`);
  });
}

function defineUnary(
  name: string,
  doc: string,
  f: (x: number) => number,
  rule: Rule1,
  floatOnly = true,
): OpDef {
  return registerOp({
    name,
    doc,
    inputs: [{ name: "x" }],
    outputs: [{ name: "y" }],
    attrs: {},
    pure: true,
    infer(ctx) {
      if (floatOnly) requireDtypes(ctx, isFloat, "a float type");
      return [input(ctx, 0)];
    },
    reference([x]) {
      return [mapBroadcast([x!], x!.dtype, f)];
    },
    flops: (ctx) => numelDim(input(ctx, 0)),
    pointwise: ([x], ctx) => narrow(rule(x, ctx), ctx.output),
  });
}

/** Shape arithmetic on known integer values (Shape -> Gather -> Mul -> Concat); undefined = unknown. */
type DimFn = (a: Dim, b: Dim) => Dim | undefined;

function binarySymbolic(g: DimFn): (ctx: InferCtx) => readonly Dim[] | undefined {
  return symbolicSafe((ctx) => {
    const [a, b] = [input(ctx, 0), input(ctx, 1)];
    const [va, vb] = [ctx.known(0), ctx.known(1)];
    const [sa, sb] = [concreteDims(a), concreteDims(b)];
    if (!va || !vb || !sa || !sb || !isInt(a.dtype)) return undefined;
    const out = concreteBroadcast([sa, sb]);
    const [ia, ib] = [broadcastIndex(sa, out), broadcastIndex(sb, out)];
    const vals: Dim[] = [];
    for (let k = 0; k < ia.length; k++) {
      const v = g(va[ia[k]], vb[ib[k]]);
      if (v === undefined) return undefined;
      vals.push(v);
    }
    return vals;
  });
}

/** Integer Div truncates; on dims (non-negative) that is floordiv. */
function divDim(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === "number" && typeof b === "number") return b === 0 ? undefined : intDiv(a, b);
  if (typeof b !== "number") return floordiv(a, b);
  return b > 0 ? floordiv(a, b) : b < 0 ? neg(floordiv(a, -b)) : undefined;
}

function defineBinary(
  name: string,
  doc: string,
  f: (a: number, b: number, dt: DType) => number,
  rule: DTypeRule,
  pw: Rule2,
  symbolic?: DimFn,
): OpDef {
  return registerOp({
    name,
    doc,
    inputs: [{ name: "a" }, { name: "b" }],
    outputs: [{ name: "c" }],
    attrs: {},
    pure: true,
    infer(ctx) {
      const a = input(ctx, 0);
      const b = input(ctx, 1);
      if (name !== "Pow" && a.dtype !== b.dtype) ctx.fail(`operand dtypes differ: ${a.dtype} and ${b.dtype}`);
      if (a.dtype === "bool" && rule === "same") ctx.fail(`${name} does not take bool operands`);
      return [broadcastType(rule === "bool" ? "bool" : a.dtype, [a, b], ctx.fail)];
    },
    reference([a, b]) {
      const dt = rule === "bool" ? "bool" : a!.dtype;
      return [mapBroadcast([a!, b!], dt, (x, y) => f(x, y, a!.dtype))];
    },
    flops: (ctx, outs) => numelDim(outs[0]),
    pointwise: ([a, b], ctx) => narrow(pw(a, b, ctx), ctx.output),
    ...(symbolic ? { symbolic: binarySymbolic(symbolic) } : {}),
  });
}

defineUnary("Sqrt", "Square root.", Math.sqrt, unaryRule("sqrt"));
defineUnary("Exp", "e^x.", Math.exp, unaryRule("exp"));
defineUnary("Log", "Natural logarithm.", Math.log, unaryRule("log"));
defineUnary("Erf", "Gauss error function.", erf, unaryRule("erf"));
defineUnary("Tanh", "Hyperbolic tangent.", Math.tanh, unaryRule("tanh"));
defineUnary(
  "Sigmoid",
  "1 / (1 + e^-x).",
  (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  sigmoidRule,
);
defineUnary(
  "Relu",
  "max(x, 0).",
  (x) => (x > 0 ? x : 0),
  // select, not max: NaN gives 0 as in the reference.
  boolIdentity((x) => K.select(K.gt(x, 0), x, 0)),
  false,
);
defineUnary("Neg", "-x.", (x) => -x, boolIdentity(unaryRule("neg")), false);
defineUnary(
  "Reciprocal",
  "1 / x.",
  (x) => 1 / x,
  (x) => K.div(1, x),
);
defineUnary("Abs", "|x|.", Math.abs, boolIdentity(unaryRule("abs")), false);

registerOp({
  name: "Not",
  doc: "Logical not of a bool tensor.",
  inputs: [{ name: "x" }],
  outputs: [{ name: "y" }],
  attrs: {},
  pure: true,
  infer(ctx) {
    requireDtypes(ctx, (d) => d === "bool", "bool");
    return [input(ctx, 0)];
  },
  reference([x]) {
    return [mapBroadcast([x!], "bool", (v) => (v ? 0 : 1))];
  },
  pointwise: ([x]) => K.unary("not", x),
});

registerOp({
  name: "Gelu",
  doc: 'GELU: x * Phi(x) with `approximate = "none"` (erf form) or the tanh approximation.',
  inputs: [{ name: "x" }],
  outputs: [{ name: "y" }],
  attrs: { approximate: { kind: "string", default: "none", oneOf: ["none", "tanh"] } },
  pure: true,
  infer(ctx) {
    requireDtypes(ctx, isFloat, "a float type");
    return [input(ctx, 0)];
  },
  reference([x], ctx) {
    const f = ctx.attr<string>("approximate") === "tanh" ? geluTanh : geluErf;
    return [mapBroadcast([x!], x!.dtype, f)];
  },
  pointwise: ([x], ctx) => geluRule(x, ctx),
  flops: (ctx) => dimMul(8, numelDim(input(ctx, 0))),
});

function intDiv(a: number, b: number): number {
  if (b === 0) return 0;
  return Math.trunc(a / b);
}

defineBinary("Add", "a + b with broadcasting.", (a, b) => a + b, "same", binaryRule("add"), dimAdd);
defineBinary("Sub", "a - b with broadcasting.", (a, b) => a - b, "same", binaryRule("sub"), dimSub);
defineBinary("Mul", "a * b with broadcasting.", (a, b) => a * b, "same", binaryRule("mul"), dimMul);
defineBinary(
  "Div",
  "a / b with broadcasting; integer division truncates.",
  (a, b, dt) => (isInt(dt) ? intDiv(a, b) : a / b),
  "same",
  divRule,
  divDim,
);
defineBinary(
  "Pow",
  "a ^ b with broadcasting; the result has a's dtype.",
  (a, b) => Math.pow(a, b),
  "same",
  powRule,
);
/** Equality of known values: decided when equal, or when a non-negative dim meets a negative number. */
function equalDim(a: Dim, b: Dim): Dim | undefined {
  if (dimEquals(a, b)) return 1;
  if (typeof a === "number" && typeof b === "number") return 0;
  const neg = (x: Dim, y: Dim) => typeof x === "number" && x < 0 && provablyNonNeg(y);
  return neg(a, b) || neg(b, a) ? 0 : undefined;
}

defineBinary("Equal", "a == b, bool result.", (a, b) => (a === b ? 1 : 0), "bool", compare("eq"), equalDim);
defineBinary("Less", "a < b, bool result.", (a, b) => (a < b ? 1 : 0), "bool", compare("lt"));
defineBinary("Greater", "a > b, bool result.", (a, b) => (a > b ? 1 : 0), "bool", compare("gt"));

registerOp({
  name: "Where",
  doc: "cond ? a : b with three-way broadcasting.",
  inputs: [{ name: "cond" }, { name: "a" }, { name: "b" }],
  outputs: [{ name: "y" }],
  attrs: {},
  pure: true,
  infer(ctx) {
    const [c, a, b] = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
    if (c.dtype !== "bool") ctx.fail(`condition must be bool, got ${c.dtype}`);
    if (a.dtype !== b.dtype) ctx.fail(`branch dtypes differ: ${a.dtype} and ${b.dtype}`);
    return [broadcastType(a.dtype, [c, a, b], ctx.fail)];
  },
  reference([c, a, b]) {
    return [mapBroadcast([c!, a!, b!], a!.dtype, (p, x, y) => (p ? x : y))];
  },
  pointwise: ([c, a, b]) => K.select(c, a, b),
  // Exported shape arithmetic selects dims with Where (e.g. torch's expand(-1) -> Equal/Where -> Expand).
  symbolic: symbolicSafe((ctx) => {
    const ts = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
    const vs = [ctx.known(0), ctx.known(1), ctx.known(2)];
    const ss = ts.map(concreteDims);
    if (!isInt(ts[1].dtype) || vs.some((v) => !v) || ss.some((s) => !s)) return undefined;
    const shapes = ss as number[][];
    const out = concreteBroadcast(shapes);
    const idx = shapes.map((s) => broadcastIndex(s, out));
    const vals: Dim[] = [];
    for (let k = 0; k < idx[0].length; k++) {
      const c = vs[0]![idx[0][k]];
      if (typeof c !== "number") return undefined;
      vals.push(c ? vs[1]![idx[1][k]] : vs[2]![idx[2][k]]);
    }
    return vals;
  }),
});

registerOp({
  name: "Cast",
  doc: "Converts to dtype `to` (floats truncate toward zero into integers; non-zero is true).",
  inputs: [{ name: "x" }],
  outputs: [{ name: "y" }],
  attrs: { to: { kind: "dtype" } },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const to = ctx.attr<string>("to");
    if (!isDType(to)) return ctx.fail(`unknown dtype '${to}'`);
    return [tensorType(to, x.dims, x.axes)];
  },
  reference([x], ctx) {
    const to = ctx.attr<DType>("to");
    return [mapBroadcast([x!], to, (v) => castScalar(to, v))];
  },
  pointwise: ([x], ctx) => castTo(x, ctx.inputs[0] ?? ctx.output, ctx.output, ctx),
  symbolic(ctx) {
    return ctx.known(0);
  },
});
