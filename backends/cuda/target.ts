import type { Target } from "../../compiler/kir/types.js";

/**
 * What lowerings may assume on the CUDA target (any sm_80+ GPU): 32-lane warps, 1024 threads
 * and 48 KiB of static shared memory per block, buffers as kernel pointers (no binding limit
 * beyond the 4 KiB parameter space). f16 storage is opt-in like on WebGPU.
 */
export const CUDA_TARGET: Target = {
  f16: false,
  subgroups: true,
  subgroupSize: 32,
  maxWorkgroupInvocations: 1024,
  maxWorkgroupStorageBytes: 48 * 1024,
  maxStorageBuffersPerStage: 64,
  // Kernel pointers have no binding limit: the schedule never splits for CUDA (its runners bind whole buffers).
  maxStorageBindingBytes: Number.MAX_SAFE_INTEGER,
  matmul: "tiled",
};

/** `tokr compile --target cuda --bf16`: IR f32 tensors stored and computed as `__nv_bfloat16`. */
export const CUDA_BF16_TARGET: Target = { ...CUDA_TARGET, bf16: true };
