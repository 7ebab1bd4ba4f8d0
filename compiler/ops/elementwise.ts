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
import { type InferCtx, type OpDef, registerOp } from "./registry.js";
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

type DTypeRule = "same" | "bool";

function requireDtypes(ctx: InferCtx, allowed: (d: DType) => boolean, what: string): void {
  ctx.inputs.forEach((t, i) => {
    if (t && !allowed(t.dtype)) ctx.fail(`input ${i} has dtype ${t.dtype}; ${ctx.op} needs ${what}`);
  });
}

function defineUnary(name: string, doc: string, f: (x: number) => number, floatOnly = true): OpDef {
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
    ...(symbolic ? { symbolic: binarySymbolic(symbolic) } : {}),
  });
}

defineUnary("Sqrt", "Square root.", Math.sqrt);
defineUnary("Exp", "e^x.", Math.exp);
defineUnary("Log", "Natural logarithm.", Math.log);
defineUnary("Erf", "Gauss error function.", erf);
defineUnary("Tanh", "Hyperbolic tangent.", Math.tanh);
defineUnary("Sigmoid", "1 / (1 + e^-x).", (x) =>
  x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)),
);
defineUnary("Relu", "max(x, 0).", (x) => (x > 0 ? x : 0), false);
defineUnary("Neg", "-x.", (x) => -x, false);
defineUnary("Reciprocal", "1 / x.", (x) => 1 / x);
defineUnary("Abs", "|x|.", Math.abs, false);

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
  flops: (ctx) => dimMul(8, numelDim(input(ctx, 0))),
});

function intDiv(a: number, b: number): number {
  if (b === 0) return 0;
  return Math.trunc(a / b);
}

defineBinary("Add", "a + b with broadcasting.", (a, b) => a + b, "same", dimAdd);
defineBinary("Sub", "a - b with broadcasting.", (a, b) => a - b, "same", dimSub);
defineBinary("Mul", "a * b with broadcasting.", (a, b) => a * b, "same", dimMul);
defineBinary(
  "Div",
  "a / b with broadcasting; integer division truncates.",
  (a, b, dt) => (isInt(dt) ? intDiv(a, b) : a / b),
  "same",
  divDim,
);
defineBinary("Pow", "a ^ b with broadcasting; the result has a's dtype.", (a, b) => Math.pow(a, b), "same");
/** Equality of known values: decided when equal, or when a non-negative dim meets a negative number. */
function equalDim(a: Dim, b: Dim): Dim | undefined {
  if (dimEquals(a, b)) return 1;
  if (typeof a === "number" && typeof b === "number") return 0;
  const neg = (x: Dim, y: Dim) => typeof x === "number" && x < 0 && provablyNonNeg(y);
  return neg(a, b) || neg(b, a) ? 0 : undefined;
}

defineBinary("Equal", "a == b, bool result.", (a, b) => (a === b ? 1 : 0), "bool", equalDim);
defineBinary("Less", "a < b, bool result.", (a, b) => (a < b ? 1 : 0), "bool");
defineBinary("Greater", "a > b, bool result.", (a, b) => (a > b ? 1 : 0), "bool");

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
  symbolic(ctx) {
    return ctx.known(0);
  },
});
