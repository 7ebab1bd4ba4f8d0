import { isFloat, type DType } from "../ir/dtype.js";
import { MAX_KNOWN_ELEMENTS } from "../infer.js";
import type { Dim } from "../ir/sym.js";
import {
  DimError,
  add,
  atomDim,
  ceildiv,
  dimEquals,
  floordiv,
  max,
  min,
  mul,
  neg,
  printDim,
  provablyNonNeg,
  sub,
} from "../ir/sym.js";
import { type Tensor, allocData, numel, stridesOf } from "../ir/tensor.js";
import type { TensorType } from "../ir/types.js";
import type { InferCtx } from "./registry.js";
import { makeTensorFrom, shapeStr } from "./util.js";

/**
 * Helpers shared by the data-movement ops. Each op computes, for a concrete shape, the flat
 * source index of every output element; the same map moves tensor data (reference) and
 * compile-time known values (symbolic), so both follow one definition.
 */

/** The dims of `t` when all are concrete. */
export function concreteDims(t: TensorType): number[] | undefined {
  return t.dims.every((d) => typeof d === "number") ? (t.dims as number[]) : undefined;
}

/** Known values are tracked only for small non-float tensors (see computeKnown). */
export function trackable(dtype: DType, count: number): boolean {
  return !isFloat(dtype) && count <= MAX_KNOWN_ELEMENTS;
}

/** The known values of input `i` when they are all concrete numbers. */
export function knownInts(ctx: InferCtx, i: number): number[] | undefined {
  const v = ctx.known(i);
  return v && v.every((d) => typeof d === "number") ? (v as number[]) : undefined;
}

/** Known values of input `i`, failing with a message naming what must be constant. */
export function requireKnown(ctx: InferCtx, i: number, what: string): readonly Dim[] {
  const v = ctx.known(i);
  if (!v) ctx.fail(`${what} (input ${i}) must be known at compile time (a constant or shape arithmetic)`);
  return v;
}

/** Like requireKnown, for values that must be concrete integers (axes, steps). */
export function requireInts(ctx: InferCtx, i: number, what: string): number[] {
  const v = requireKnown(ctx, i, what);
  if (!v.every((d) => typeof d === "number"))
    ctx.fail(`${what} (input ${i}) must be constant integers, got symbolic ${shapeStr(v)}`);
  return v as number[];
}

/** `src[idx[k]]` for every k, as a tensor of `shape`. */
export function takeTensor(src: Tensor, idx: ArrayLike<number>, shape: readonly number[]): Tensor {
  const out = allocData(src.dtype, idx.length);
  for (let k = 0; k < idx.length; k++) out[k] = src.data[idx[k]];
  return makeTensorFrom(src.dtype, shape, out);
}

/** `src[idx[k]]` for every k, over known values. */
export function takeKnown(src: readonly Dim[], idx: ArrayLike<number>): Dim[] {
  return Array.from(idx, (i) => src[i]);
}

/** Flat source index of each output element of a view: offset + sum over axes of i[a] * strides[a]. */
export function viewIndex(outShape: readonly number[], strides: readonly number[], offset = 0): Int32Array {
  const n = numel(outShape);
  const idx = new Int32Array(n);
  const r = outShape.length;
  const ctr = new Array<number>(r).fill(0);
  let cur = offset;
  for (let k = 0; k < n; k++) {
    idx[k] = cur;
    for (let a = r - 1; a >= 0; a--) {
      ctr[a]++;
      cur += strides[a];
      if (ctr[a] < outShape[a]) break;
      cur -= ctr[a] * strides[a];
      ctr[a] = 0;
    }
  }
  return idx;
}

/** Index map of a strided slice: output axis a reads input positions starts[a] + i*steps[a]. */
export function sliceIndex(
  inShape: readonly number[],
  starts: readonly number[],
  steps: readonly number[],
  outShape: readonly number[],
): Int32Array {
  const strides = stridesOf(inShape);
  const offset = starts.reduce((acc, s, a) => acc + s * strides[a], 0);
  return viewIndex(
    outShape,
    strides.map((st, a) => st * steps[a]),
    offset,
  );
}

/** Index map of a transpose: output axis i is input axis perm[i]. */
export function transposeIndex(inShape: readonly number[], perm: readonly number[]): Int32Array {
  const strides = stridesOf(inShape);
  return viewIndex(
    perm.map((p) => inShape[p]),
    perm.map((p) => strides[p]),
  );
}

/**
 * For each output element of a concatenation along `axis`, which part it comes from and its
 * flat index there.
 */
export function concatIndex(
  shapes: readonly (readonly number[])[],
  axis: number,
): { part: Int32Array; idx: Int32Array } {
  const outer = numel(shapes[0].slice(0, axis));
  const blocks = shapes.map((s) => numel(s.slice(axis)));
  const total = outer * blocks.reduce((a, b) => a + b, 0);
  const part = new Int32Array(total);
  const idx = new Int32Array(total);
  let k = 0;
  for (let o = 0; o < outer; o++)
    blocks.forEach((b, p) => {
      for (let j = 0; j < b; j++, k++) {
        part[k] = p;
        idx[k] = o * b + j;
      }
    });
  return { part, idx };
}

/** Clamped start and element count of one sliced axis of concrete size `d` (ONNX Slice rules). */
export function sliceAxis(
  d: number,
  start: number,
  end: number,
  step: number,
): { start: number; len: number } {
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), d);
    end = Math.min(Math.max(end, 0), d);
  } else {
    start = Math.min(Math.max(start, 0), d - 1);
    end = Math.min(Math.max(end, -1), d - 1);
  }
  return { start, len: Math.max(0, Math.ceil((end - start) / step)) };
}

/** Index values at or beyond this magnitude mean "to the end" (INT32/INT64 max/min sentinels). */
const SENTINEL = 2 ** 31 - 1;

/**
 * Output length of one sliced axis whose size or bounds are symbolic. Symbolic sizes are taken
 * to be larger than the constant indices, so those are not clamped (`x[:, 1:]` on N tokens gives
 * N - 1, `x[:, -2:3]` gives 0); the interpreter checks every shape at run time.
 */
export function sliceAxisSym(d: Dim, start: Dim, end: Dim, step: number, fail: (m: string) => never): Dim {
  if (typeof d === "number" && typeof start === "number" && typeof end === "number")
    return sliceAxis(d, start, end, step).len;
  const hi = step > 0 ? d : sub(d, 1);
  const bound = (v: Dim, isStart: boolean): Dim => {
    if (typeof v === "number") {
      if (v >= SENTINEL) return hi;
      if (v <= -SENTINEL) return isStart || step > 0 ? 0 : -1;
      return v < 0 ? add(d, v) : v;
    }
    // Symbolic bounds come from shape arithmetic and so are sizes (non-negative).
    if (!provablyNonNeg(v))
      fail(`slice bound ${printDim(v)} may be negative; it must be a constant or a size`);
    return min(v, hi);
  };
  const s = bound(start, true);
  const e = bound(end, false);
  return dimSafe(fail, () => stepCount(step > 0 ? sub(e, s) : sub(s, e), Math.abs(step)));
}

/**
 * max(ceil(span / step), 0) for a positive step, where symbols are taken to be large: N - 1
 * counts as positive and 5 - N as negative; mixed spans keep the max.
 */
export function stepCount(span: Dim, step: number): Dim {
  if (typeof span === "number") return Math.max(0, Math.ceil(span / step));
  const sym = sub(span, span.c);
  if (provablyNonNeg(sym)) return ceildiv(span, step);
  if (provablyNonNeg(neg(sym))) return 0;
  return max(0, ceildiv(span, step));
}

/**
 * a / b when b divides a exactly (as polynomials over the dim atoms), else undefined.
 * Common factors are cancelled first, so [B, 197, 64] / [B, 64] gives 197.
 */
export function exactDiv(num: readonly Dim[], den: readonly Dim[]): Dim | undefined {
  const rest = [...num];
  const left: Dim[] = [];
  for (const d of den) {
    const j = rest.findIndex((x) => dimEquals(x, d));
    if (j >= 0) rest.splice(j, 1);
    else left.push(d);
  }
  const a = mul(...rest);
  const b = mul(...left);
  let q: Dim | undefined;
  if (typeof b === "number") {
    if (b <= 0) return undefined;
    q = floordiv(a, b);
  } else if (typeof a !== "number" && a.c === 0 && b.c === 0 && b.terms.length === 1) {
    // Divide every term of a by b's single monomial.
    const bt = b.terms[0];
    const parts: Dim[] = [];
    for (const t of a.terms) {
      if (t.coef % bt.coef !== 0) return undefined;
      const fs = [...t.factors];
      for (const f of bt.factors) {
        const j = fs.findIndex((x) => x.key === f.key);
        if (j < 0) return undefined;
        fs.splice(j, 1);
      }
      parts.push(mul(t.coef / bt.coef, ...fs.map(atomDim)));
    }
    q = add(...parts);
  }
  return q !== undefined && dimEquals(mul(q, b), a) ? q : undefined;
}

/** Runs dim arithmetic, turning a DimError (overflow, division by a non-positive) into `fail`. */
export function dimSafe<T>(fail: (m: string) => never, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DimError) fail(e.message);
    throw e;
  }
}

/** Wraps a `symbolic` evaluator: values that cannot be computed (DimError) are simply unknown. */
export function symbolicSafe(
  f: (ctx: InferCtx) => readonly Dim[] | undefined,
): (ctx: InferCtx) => readonly Dim[] | undefined {
  return (ctx) => {
    try {
      return f(ctx);
    } catch (e) {
      if (e instanceof DimError) return undefined;
      throw e;
    }
  };
}
