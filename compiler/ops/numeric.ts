import { type DType, isFloat } from "../ir/dtype.js";
import { type Dim, mul } from "../ir/sym.js";
import { type Tensor, allocData, castScalar } from "../ir/tensor.js";
import type { AxisRole, TensorType } from "../ir/types.js";
import type { InferCtx } from "./registry.js";
import { makeTensorFrom } from "./util.js";

/** Helpers shared by the reduction-style ops (linalg, norm, reduce): f64 accumulation, row geometry. */

/**
 * Writes f64 results into the storage of `dtype`: f32 rounds, f16 rounds to half, integers
 * truncate toward zero (ONNX Cast semantics), so every reference accumulates in f64 and stores once.
 */
export function fromF64(dtype: DType, shape: readonly number[], acc: Float64Array): Tensor {
  if (dtype === "f64") return makeTensorFrom(dtype, shape, acc);
  if (dtype === "f32") return makeTensorFrom(dtype, shape, new Float32Array(acc));
  const out = allocData(dtype, acc.length);
  for (let i = 0; i < acc.length; i++) out[i] = castScalar(dtype, acc[i]);
  return makeTensorFrom(dtype, shape, out);
}

/** The values as f64 (no copy when they already are): hot loops then see one array type. */
export function asF64(d: ArrayLike<number>): Float64Array {
  return d instanceof Float64Array ? d : new Float64Array(d);
}

/** Product of `shape[from..to)`. */
export function span(shape: readonly number[], from: number, to = shape.length): number {
  let n = 1;
  for (let i = from; i < to; i++) n *= shape[i];
  return n;
}

/** Product of symbolic dims. */
export function numelDim(dims: readonly Dim[]): Dim {
  return mul(...dims);
}

/** Fails unless input `i` (when present) has a float dtype. */
export function requireFloat(ctx: InferCtx, i: number, what: string): void {
  const t = ctx.inputs[i];
  if (t && !isFloat(t.dtype)) ctx.fail(`${what} has dtype ${t.dtype}; ${ctx.op} needs a float type`);
}

/** Fails when an optional input's dtype differs from the main input's. */
export function requireSameDtype(ctx: InferCtx, main: TensorType, i: number, what: string): void {
  const t = ctx.inputs[i];
  if (t && t.dtype !== main.dtype)
    ctx.fail(`${what} has dtype ${t.dtype}, expected ${main.dtype} like the input`);
}

/** Axis roles of `t` with the roles at `drop` cleared (axes whose meaning an op changed). */
export function dropRoles(t: TensorType, drop: (axis: number) => boolean): (AxisRole | null)[] | undefined {
  return t.axes?.map((a, i) => (drop(i) ? null : a));
}
