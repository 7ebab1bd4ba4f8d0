import type { Attrs } from "../ir/attrs.js";
import type { DType } from "../ir/dtype.js";
import { type DimEnv, evalDim } from "../ir/sym.js";
import { makeTensor, type Tensor } from "../ir/tensor.js";
import type { TensorType } from "../ir/types.js";
import type { OpDef } from "../ops/registry.js";
import { roundBf16 } from "./bf16.js";
import { type KArray, type RunOptions, runKernel } from "./interp.js";
import { lowerCtx, lowerNode } from "./lower.js";
import { type KType, type Lowering, type Target, storageType } from "./types.js";

/** A zeroed device-form array of a storage type. */
export function deviceArray(t: Exclude<KType, "bool">, n: number): KArray {
  return t === "i32" ? new Int32Array(n) : t === "u32" ? new Uint32Array(n) : new Float32Array(n);
}

/**
 * A tensor in device form (f64 -> f32, i64 -> i32, bool -> u32, f16 as rounded f32 or f16 storage;
 * f32 in bf16 storage rounded to bf16, as the upload to a bf16 device buffer does).
 */
export function toDevice(t: Tensor, target: Target): KArray {
  const st = storageType(t.dtype, target);
  const out = deviceArray(st, t.data.length);
  if (st === "bf16") for (let i = 0; i < t.data.length; i++) out[i] = roundBf16(t.data[i]);
  else for (let i = 0; i < t.data.length; i++) out[i] = t.data[i];
  return out;
}

/** A device-form array back as a tensor of an IR dtype and shape. */
export function fromDevice(a: KArray, dtype: DType, shape: readonly number[]): Tensor {
  return makeTensor(dtype, shape, a);
}

/**
 * Runs a node's lowering on the KIR interpreter: the check every lowering gets against the op's
 * reference. `outTypes` may be symbolic; `env` binds the symbols (also used for output shapes).
 */
export function runLowered(
  lowering: Lowering,
  inputs: readonly (Tensor | null)[],
  outTypes: readonly TensorType[],
  env: DimEnv,
  target: Target,
  opts?: RunOptions,
): Tensor[] {
  const ins = inputs.map((t) => (t ? toDevice(t, target) : null));
  const outShapes = outTypes.map((t) => t.dims.map((d) => evalDim(d, env)));
  const outs = outTypes.map((t, i) =>
    deviceArray(
      storageType(t.dtype, target),
      outShapes[i].reduce((a, b) => a * b, 1),
    ),
  );
  const scratch = new Map(lowering.scratch.map((s) => [s.name, deviceArray(s.t, evalDim(s.size, env))]));
  for (const l of lowering.launches) {
    const arrays: Record<string, KArray> = {};
    l.kernel.params.forEach((p, i) => {
      const b = l.args[i];
      const a = b.kind === "input" ? ins[b.index] : b.kind === "output" ? outs[b.index] : scratch.get(b.name);
      if (!a)
        throw new Error(`kernel ${l.kernel.name}: parameter '${p.name}' is bound to a missing ${b.kind}`);
      arrays[p.name] = a;
    });
    runKernel(l.kernel, arrays, env, opts);
  }
  return outTypes.map((t, i) => fromDevice(outs[i], t.dtype, outShapes[i]));
}

/** Lowers one op application and runs it on the interpreter (op tests use this). */
export function runOpOnKir(
  def: OpDef,
  attrs: Attrs,
  inTypes: readonly (TensorType | null)[],
  outTypes: readonly TensorType[],
  inputs: readonly (Tensor | null)[],
  env: DimEnv,
  target: Target,
  opts?: RunOptions,
): Tensor[] {
  const name = def.name.replace(/[^A-Za-z0-9_]/g, "_").toLowerCase();
  const lowering = lowerNode(def, lowerCtx(def, name, attrs, inTypes, outTypes, target));
  return runLowered(lowering, inputs, outTypes, env, target, opts);
}
