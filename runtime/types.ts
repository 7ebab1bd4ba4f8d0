import type { DType } from "../compiler/ir/dtype.js";
import type { Tensor } from "../compiler/ir/tensor.js";
import type { KType } from "../compiler/kir/types.js";

/**
 * What every device runtime's loaded program offers (WebGPU's `GpuProgram`, CUDA's
 * `CudaProgram`): run once with inputs by name, get the outputs by name. Symbols are bound from
 * the input shapes; device memory stays owned by the program between runs until `destroy`.
 */
export interface ProgramRunner {
  run(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>>;
  destroy(): void;
}

/**
 * What both runtimes record of a persistent state buffer (KV caches, running sums) besides its
 * device handle (WebGPU's `GpuState.buffer`, CUDA's `CudaState.ptr`).
 */
export interface StateInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Element type on the device; must equal the storage of the program buffer it is bound to. */
  readonly storage: Exclude<KType, "bool">;
  readonly bytes: number;
}

/** Why host tensor `t` cannot be written to state `s` (undefined: it can). */
export function stateMismatch(s: StateInfo, t: Tensor): string | undefined {
  return t.dtype !== s.dtype || t.shape.join() !== s.shape.join()
    ? `state '${s.name}' is ${s.dtype}[${s.shape.join(", ")}], got ${t.dtype}[${t.shape.join(", ")}]`
    : undefined;
}
