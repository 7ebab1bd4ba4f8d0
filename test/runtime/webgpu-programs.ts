/** Hand-built Programs for the WebGPU runtime tests (until the scheduler builds them from graphs). */
import type { DType } from "../../compiler/ir/dtype.js";
import { type Dim, mul, sym } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { elementwiseKernel } from "../../compiler/kir/builder.js";
import { add, lit, mul as emul } from "../../compiler/kir/expr.js";
import type { Program, ProgramBuffer } from "../../compiler/kir/program.js";
import { type Kernel, storageType, type Target } from "../../compiler/kir/types.js";

export interface BufSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly Dim[];
  readonly kind: ProgramBuffer["kind"];
  readonly data?: Tensor;
  readonly aliasOf?: number;
}

/** A program of steps (kernel index, buffer ids); buffer lifetimes derived from the steps. */
export function makeProgram(
  target: Target,
  bufs: readonly BufSpec[],
  kernels: readonly Kernel[],
  steps: readonly (readonly [number, readonly number[]])[],
): Program {
  const symbols = new Set<string>();
  for (const b of bufs)
    for (const d of b.dims)
      if (typeof d !== "number")
        for (const t of d.terms) for (const f of t.factors) if (f.k === "var") symbols.add(f.name);
  const buffers = bufs.map((b, id): ProgramBuffer => {
    const uses = steps.flatMap(([, args], i) => (args.includes(id) ? [i] : []));
    return {
      id,
      name: b.name,
      dtype: b.dtype,
      dims: b.dims,
      storage: storageType(b.dtype, target),
      size: b.dims.reduce<Dim>((a, d) => mul(a, d), 1),
      kind: b.kind,
      ...(b.aliasOf !== undefined ? { aliasOf: b.aliasOf } : {}),
      ...(b.data ? { data: b.data } : {}),
      firstUse: uses.length ? Math.min(...uses) : -1,
      lastUse: uses.length ? Math.max(...uses) : -1,
    };
  });
  return {
    name: "test",
    symbols: [...symbols].sort().map((name) => ({ name })),
    buffers,
    kernels,
    steps: steps.map(([kernel, args], i) => ({ kernel, args, nodes: [`node${i}`] })),
    inputs: buffers.filter((b) => b.kind === "input").map((b) => b.id),
    outputs: buffers.filter((b) => b.kind === "output").map((b) => b.id),
  };
}

export const N = sym("N");

/** y[i] = a * x[i] + c over N elements of f32 (or i32 when `t` is i32). */
export function affineKernel(name: string, a: number, c: number, t: "f32" | "i32" = "f32"): Kernel {
  return elementwiseKernel(name, N, 64, (kb) => {
    const x = kb.buffer("x", t, "read");
    const y = kb.buffer("y", t, "read_write");
    return (i) => kb.store(y, i, add(emul(kb.load(x, i), lit(a, t)), lit(c, t)));
  });
}

/** z[i] = x[i] * y[i]. */
export function mulKernel(): Kernel {
  return elementwiseKernel("mul", N, 64, (kb) => {
    const x = kb.buffer("x", "f32", "read");
    const y = kb.buffer("y", "f32", "read");
    const z = kb.buffer("z", "f32", "read_write");
    return (i) => kb.store(z, i, emul(kb.load(x, i), kb.load(y, i)));
  });
}

/** acc[i] += x[i] (an in-place update, as a KV-cache append would do). */
export function accumulateKernel(): Kernel {
  return elementwiseKernel("accumulate", N, 64, (kb) => {
    const acc = kb.buffer("acc", "f32", "read_write");
    const x = kb.buffer("x", "f32", "read");
    return (i) => kb.store(acc, i, add(kb.load(acc, i), kb.load(x, i)));
  });
}
