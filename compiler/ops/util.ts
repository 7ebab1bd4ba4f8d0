import type { DType } from "../ir/dtype.js";
import { type Dim, dimEquals, printDim } from "../ir/sym.js";
import { type Tensor, allocData, makeTensor, numel, stridesOf, castScalar } from "../ir/tensor.js";
import type { AxisRole, TensorType } from "../ir/types.js";
import { tensorType } from "../ir/types.js";
import type { InferCtx } from "./registry.js";
import { OpError } from "./registry.js";

/** Input `i`, which must be present. */
export function input(ctx: InferCtx, i: number): TensorType {
  const t = ctx.inputs[i];
  if (!t) ctx.fail(`input ${i} is required`);
  return t;
}

export function shapeStr(dims: readonly Dim[]): string {
  return `[${dims.map(printDim).join(", ")}]`;
}

/** Numpy broadcasting over symbolic dims; equal symbols broadcast, unequal ones are an error. */
export function broadcastDims(shapes: readonly (readonly Dim[])[], fail: (m: string) => never): Dim[] {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = s[s.length - r + i] ?? 1;
      if (x === 1) continue;
      if (d === 1) d = x;
      else if (!dimEquals(d, x)) fail(`cannot broadcast shapes ${shapes.map(shapeStr).join(" and ")}`);
    }
    out.push(d);
  }
  return out;
}

/** Axis roles carried through broadcasting: the first operand of full rank that names a role wins. */
export function broadcastAxes(types: readonly TensorType[], rank: number): (AxisRole | null)[] | undefined {
  let out: (AxisRole | null)[] | undefined;
  for (const t of types) {
    if (!t.axes) continue;
    out ??= new Array<AxisRole | null>(rank).fill(null);
    const off = rank - t.dims.length;
    t.axes.forEach((a, i) => {
      if (a && out![off + i] === null && t.dims[i] !== 1) out![off + i] = a;
    });
  }
  return out;
}

export function broadcastType(dtype: DType, types: readonly TensorType[], fail: (m: string) => never): TensorType {
  const dims = broadcastDims(
    types.map((t) => t.dims),
    fail,
  );
  return tensorType(dtype, dims, broadcastAxes(types, dims.length));
}

export function concreteBroadcast(shapes: readonly (readonly number[])[]): number[] {
  return broadcastDims(shapes, (m) => {
    throw new OpError(m);
  }) as number[];
}

/** Normalises a possibly negative axis; fails when out of range. */
export function normAxis(axis: number, rank: number, fail: (m: string) => never = throwOp): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

export function throwOp(m: string): never {
  throw new OpError(m);
}

/** For each output index, the flat index into an input broadcast to `outShape`. */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[]): Int32Array {
  const n = numel(outShape);
  const idx = new Int32Array(n);
  const r = outShape.length;
  const off = r - inShape.length;
  const inStrides = stridesOf(inShape);
  const eff = outShape.map((_, i) => {
    const j = i - off;
    return j < 0 || inShape[j] === 1 ? 0 : inStrides[j];
  });
  const counter = new Array<number>(r).fill(0);
  let cur = 0;
  for (let k = 0; k < n; k++) {
    idx[k] = cur;
    for (let d = r - 1; d >= 0; d--) {
      counter[d]++;
      cur += eff[d];
      if (counter[d] < outShape[d]) break;
      cur -= eff[d] * counter[d];
      counter[d] = 0;
    }
  }
  return idx;
}

/** Applies `f` elementwise over broadcast inputs, casting results to `dtype`. */
export function mapBroadcast(
  inputs: readonly Tensor[],
  dtype: DType,
  f: (...xs: number[]) => number,
): Tensor {
  const outShape = concreteBroadcast(inputs.map((t) => t.shape));
  const n = numel(outShape);
  const out = allocData(dtype, n);
  const same = inputs.every((t) => t.shape.length === outShape.length && t.shape.every((d, i) => d === outShape[i]));
  const idx = same ? undefined : inputs.map((t) => broadcastIndex(t.shape, outShape));
  const xs = new Array<number>(inputs.length);
  const exact = dtype === "f32" || dtype === "f64" || dtype === "i64";
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < inputs.length; j++) xs[j] = inputs[j].data[idx ? idx[j][k] : k];
    const y = f(...xs);
    out[k] = exact ? y : castScalar(dtype, y);
  }
  return makeTensorFrom(dtype, outShape, out);
}

/** Wraps existing storage as a tensor without copying. */
export function makeTensorFrom(dtype: DType, shape: readonly number[], data: ReturnType<typeof allocData>): Tensor {
  if (data.length !== numel(shape)) throw new OpError(`internal: ${data.length} values for shape [${shape.join(", ")}]`);
  return Object.freeze({ dtype, shape: Object.freeze([...shape]), data });
}

export { makeTensor };
