import type { Attrs } from "../../../compiler/ir/attrs.js";
import type { DType } from "../../../compiler/ir/dtype.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import type { TensorType } from "../../../compiler/ir/types.js";

/**
 * One op application checked on every backend against the reference: the KIR interpreter
 * (test/kir/lowering.test.ts), WGSL on Dawn and emulated CUDA run the same table.
 */
export interface OpCase {
  /** Unique, e.g. "Add/broadcast-row". */
  readonly name: string;
  readonly op: string;
  readonly attrs?: Attrs;
  readonly inputs: readonly (Tensor | null)[];
  /** Input types when some dims are symbolic (defaults to the tensors' static shapes). */
  readonly types?: readonly (TensorType | null)[];
  /** Symbol bindings of the run (for symbolic types). */
  readonly env?: Readonly<Record<string, number>>;
  readonly numOutputs?: number;
  /**
   * Inputs that are graph constants, so inference sees their values (Slice starts, Expand
   * shape, axes given as inputs); the others are graph inputs.
   */
  readonly consts?: readonly number[];
  /** Max |got - want| <= tol * (1 + |want|); default 1e-5 (f32). */
  readonly tol?: number;
}

/** Deterministic pseudo-random values in [lo, hi) (mulberry32). */
export function rand(seed: number, n: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out.push(lo + (hi - lo) * u);
  }
  return out;
}

/** A tensor of seeded random values (integers for int dtypes, 0/1 for bool). */
export function randTensor(dtype: DType, shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = rand(seed, n, lo, hi);
  if (dtype === "bool")
    return makeTensor(
      dtype,
      shape,
      v.map((x) => (x > (lo + hi) / 2 ? 1 : 0)),
    );
  if (dtype === "i32" || dtype === "i64" || dtype === "i8" || dtype === "u8")
    return makeTensor(dtype, shape, v.map(Math.floor));
  return makeTensor(dtype, shape, v);
}
