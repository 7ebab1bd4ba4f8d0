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

export function broadcastType(
  dtype: DType,
  types: readonly TensorType[],
  fail: (m: string) => never,
): TensorType {
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

/**
 * How output element k finds its element of one broadcast input: -1 for the same index, a period
 * n for index modulo n (a trailing block repeated, e.g. a bias), or a precomputed index table.
 */
function indexer(inShape: readonly number[], outShape: readonly number[]): number | Int32Array {
  const n = numel(inShape);
  if (n === numel(outShape)) return -1;
  const off = outShape.length - inShape.length;
  let lead = 0;
  while (lead < inShape.length && inShape[lead] === 1) lead++;
  const suffix = inShape.slice(lead).every((d, i) => d === outShape[off + lead + i]);
  if (suffix) return n; // period
  return broadcastIndex(inShape, outShape);
}

/** Applies `f` elementwise over broadcast inputs (f64 arithmetic), storing results as `dtype`. */
export function mapBroadcast(
  inputs: readonly Tensor[],
  dtype: DType,
  f: (...xs: number[]) => number,
): Tensor {
  const outShape = concreteBroadcast(inputs.map((t) => t.shape));
  const n = numel(outShape);
  const acc = new Float64Array(n);
  const data = inputs.map((t) => (t.data instanceof Float64Array ? t.data : new Float64Array(t.data)));
  const ix = inputs.map((t) => indexer(t.shape, outShape));
  const at = (j: number, k: number): number => {
    const m = ix[j];
    return typeof m === "number" ? (m < 0 ? k : k % m) : m[k];
  };
  if (inputs.length === 1) {
    const a = data[0];
    for (let k = 0; k < n; k++) acc[k] = f(a[k]);
  } else if (inputs.length === 2) {
    const [a, b] = data;
    const [ma, mb] = ix;
    if (ma === -1 && typeof mb === "number") {
      // The common cases: same shapes, or a trailing block (bias, position embedding) repeated.
      const p = mb < 0 ? n : mb;
      for (let k = 0; k < n; k++) acc[k] = f(a[k], b[k % p]);
    } else for (let k = 0; k < n; k++) acc[k] = f(a[at(0, k)], b[at(1, k)]);
  } else {
    const xs = new Array<number>(inputs.length);
    for (let k = 0; k < n; k++) {
      for (let j = 0; j < inputs.length; j++) xs[j] = data[j][at(j, k)];
      acc[k] = f(...xs);
    }
  }
  if (dtype === "f64" || dtype === "i64") return makeTensorFrom(dtype, outShape, acc);
  if (dtype === "f32") return makeTensorFrom(dtype, outShape, new Float32Array(acc));
  const out = allocData(dtype, n);
  for (let k = 0; k < n; k++) out[k] = castScalar(dtype, acc[k]);
  return makeTensorFrom(dtype, outShape, out);
}

/** Wraps existing storage as a tensor without copying. */
export function makeTensorFrom(
  dtype: DType,
  shape: readonly number[],
  data: ReturnType<typeof allocData>,
): Tensor {
  if (data.length !== numel(shape))
    throw new OpError(`internal: ${data.length} values for shape [${shape.join(", ")}]`);
  return Object.freeze({ dtype, shape: Object.freeze([...shape]), data });
}

export { makeTensor };
