import type { Dim } from "../ir/sym.js";
import type { Tensor } from "../ir/tensor.js";
import { numel } from "../ir/tensor.js";
import { type AxisRole, printType, tensorType } from "../ir/types.js";
import { asF64, fromF64, numelDim } from "./numeric.js";
import { type InferCtx, type RefCtx, OpError, registerOp } from "./registry.js";
import { broadcastIndex, input, normAxis, throwOp } from "./util.js";

/**
 * ReduceMean, ReduceSum, ReduceMax with ONNX semantics. `keepdims` and `noop_with_empty_axes`
 * are ONNX int flags (0/1, any non-zero is true) so imported attributes carry over unchanged.
 * Axes come from the `axes` attribute (opset < 18) or the optional second input (opset 18),
 * which must be known at compile time; no axes reduces over every axis.
 */

type Kind = "mean" | "sum" | "max";

/** Normalised, sorted axes to reduce, or "noop" when the op is the identity. */
function resolveAxes(
  raw: readonly Dim[] | undefined,
  rank: number,
  noopWhenEmpty: boolean,
  fail: (m: string) => never,
): number[] | "noop" {
  if (raw === undefined || raw.length === 0)
    return noopWhenEmpty ? "noop" : Array.from({ length: rank }, (_, i) => i);
  const axes = raw.map((a) => {
    if (typeof a !== "number") return fail(`axes must be integers, got a symbolic value`);
    return normAxis(a, rank, fail);
  });
  if (new Set(axes).size !== axes.length) fail(`axes [${raw.join(", ")}] repeat an axis`);
  return axes.sort((p, q) => p - q);
}

function inferAxes(ctx: InferCtx, rank: number): number[] | "noop" {
  const attrAxes = ctx.optAttr<readonly number[]>("axes");
  const hasInput = !!ctx.inputs[1];
  if (attrAxes && hasInput) ctx.fail(`axes given both as attribute and as input`);
  let raw: readonly Dim[] | undefined = attrAxes;
  if (hasInput) {
    const t = ctx.inputs[1]!;
    if (t.dtype !== "i64" && t.dtype !== "i32")
      ctx.fail(`axes input must be an integer tensor, got ${printType(t)}`);
    raw = ctx.known(1);
    if (raw === undefined) ctx.fail(`axes input must be known at compile time`);
  }
  return resolveAxes(raw, rank, ctx.attr<number>("noop_with_empty_axes") !== 0, ctx.fail);
}

function refAxes(axesIn: Tensor | null, ctx: RefCtx, rank: number): number[] | "noop" {
  const attrAxes = ctx.optAttr<readonly number[]>("axes");
  if (attrAxes && axesIn) throw new OpError(`axes given both as attribute and as input`);
  const raw = axesIn ? Array.from(axesIn.data) : attrAxes;
  return resolveAxes(raw, rank, ctx.attr<number>("noop_with_empty_axes") !== 0, throwOp);
}

/** Reduces x over `axes`; the result shape keeps reduced axes as 1 (callers drop them for keepdims = 0). */
function reduce(x: Tensor, axes: readonly number[], kind: Kind): Float64Array {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  // Broadcasting the kept shape back over x maps every input element to its output slot.
  const slot = broadcastIndex(kept, x.shape);
  const acc = new Float64Array(numel(kept)).fill(kind === "max" ? -Infinity : 0);
  const xd = asF64(x.data);
  if (kind === "max") {
    for (let k = 0; k < xd.length; k++) {
      const v = xd[k];
      // NaN propagates (numpy maximum.reduce).
      if (v > acc[slot[k]] || Number.isNaN(v)) acc[slot[k]] = v;
    }
  } else for (let k = 0; k < xd.length; k++) acc[slot[k]] += xd[k];
  if (kind === "mean") {
    const n = axes.reduce((p, a) => p * x.shape[a], 1);
    for (let i = 0; i < acc.length; i++) acc[i] /= n;
  }
  return acc;
}

function defineReduce(name: string, kind: Kind, doc: string): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: "data" }, { name: "axes", optional: true }],
    outputs: [{ name: "reduced" }],
    attrs: {
      axes: { kind: "ints", optional: true, doc: "opset < 18 form; opset 18 passes axes as input 1" },
      keepdims: { kind: "int", default: 1, doc: "ONNX int flag: keep reduced axes as length 1" },
      noop_with_empty_axes: { kind: "int", default: 0, doc: "ONNX int flag: empty axes means identity" },
    },
    pure: true,
    infer(ctx) {
      const x = input(ctx, 0);
      if (x.dtype === "bool") ctx.fail(`${name} does not take bool input`);
      const axes = inferAxes(ctx, x.dims.length);
      if (axes === "noop") return [x];
      const keep = ctx.attr<number>("keepdims") !== 0;
      const dims: Dim[] = [];
      const roles: (AxisRole | null)[] = [];
      x.dims.forEach((d, i) => {
        const reduced = axes.includes(i);
        if (reduced && !keep) return;
        dims.push(reduced ? 1 : d);
        roles.push(reduced ? null : (x.axes?.[i] ?? null));
      });
      return [tensorType(x.dtype, dims, roles)];
    },
    reference([x, axesIn], ctx) {
      const X = x!;
      const axes = refAxes(axesIn, ctx, X.shape.length);
      if (axes === "noop") return [X];
      const keep = ctx.attr<number>("keepdims") !== 0;
      const shape = X.shape.flatMap((d, i) => (!axes.includes(i) ? [d] : keep ? [1] : []));
      return [fromF64(X.dtype, shape, reduce(X, axes, kind))];
    },
    flops: (ctx) => numelDim(input(ctx, 0).dims),
  });
}

defineReduce("ReduceSum", "sum", "Sum over `axes` (ONNX); an empty reduction gives 0.");
defineReduce(
  "ReduceMean",
  "mean",
  "Arithmetic mean over `axes` (ONNX); integer results truncate toward zero.",
);
defineReduce(
  "ReduceMax",
  "max",
  "Maximum over `axes` (ONNX); NaN propagates; an empty reduction gives -inf.",
);
