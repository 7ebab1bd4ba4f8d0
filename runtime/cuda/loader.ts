import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { repoRootFrom } from "../../scripts/paths.js";

/** Where scripts/build-cuda.js puts the addon. */
export const CUDA_ADDON_PATH = join(repoRootFrom(import.meta.url), "build", "cuda", "tokr_cuda.node");

/** An opaque device pointer or module handle owned by the addon. */
export type DeviceHandle = object & { readonly __cudaHandle?: never };

/** The native addon's functions (runtime/cuda/addon.cc). Device calls throw ERR_NO_CUDA_DEVICE without one. */
export interface CudaAddon {
  runtimeVersion(): number;
  deviceCount(): number;
  deviceName(): string;
  alloc(bytes: number): DeviceHandle;
  free(ptr: DeviceHandle): void;
  upload(ptr: DeviceHandle, data: Uint8Array): void;
  download(ptr: DeviceHandle, bytes: number): Uint8Array;
  loadModule(fatbin: Uint8Array): DeviceHandle;
  launch(
    module: DeviceHandle,
    entry: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    buffers: readonly DeviceHandle[],
    symbols: readonly number[],
  ): void;
  synchronize(): void;
}

/** An error with a stable `code`: ERR_CUDA_NOT_BUILT, ERR_NO_CUDA_DEVICE (from the addon) or ERR_CUDA. */
export class CudaUnavailableError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

let cached: CudaAddon | undefined;

/** Loads the addon; throws ERR_CUDA_NOT_BUILT explaining how to build it when it is absent. */
export function loadCudaAddon(path = CUDA_ADDON_PATH): CudaAddon {
  if (cached && path === CUDA_ADDON_PATH) return cached;
  if (!existsSync(path))
    throw new CudaUnavailableError(
      `the CUDA runtime addon is not built (${path}): run \`node scripts/build-cuda.js\` on a machine with ` +
        "the CUDA toolkit (CUDA_HOME, nvcc, libcudart_static.a), g++ and Node's headers",
      "ERR_CUDA_NOT_BUILT",
    );
  const req = createRequire(import.meta.url);
  const addon = req(path) as CudaAddon;
  if (path === CUDA_ADDON_PATH) cached = addon;
  return addon;
}

/** Number of CUDA devices; throws (code ERR_NO_CUDA_DEVICE or ERR_CUDA_NOT_BUILT) when there is none. */
export function cudaDeviceCount(): number {
  return loadCudaAddon().deviceCount();
}
