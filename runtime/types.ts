import type { Tensor } from "../compiler/ir/tensor.js";

/**
 * What every device runtime's loaded program offers (WebGPU's `GpuProgram`, CUDA's
 * `CudaProgram`): run once with inputs by name, get the outputs by name. Symbols are bound from
 * the input shapes; device memory stays owned by the program between runs until `destroy`.
 */
export interface ProgramRunner {
  run(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>>;
  destroy(): void;
}
