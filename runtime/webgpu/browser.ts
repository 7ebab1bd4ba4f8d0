/// <reference types="@webgpu/types" />
/**
 * The browser entry to the WebGPU runtime (bundled by scripts/build-browser.ts into one ES module).
 * It adds no runtime code of its own: `navigator.gpu` replaces Node's Dawn (node.ts) and `fetch`
 * replaces the file system for artifacts; WebGpuRuntime and GpuProgram are the classes Node runs.
 */
import { WebGpuRuntime } from "./runtime.js";
import type { DeviceOptions } from "./device.js";

export { WebGpuRuntime } from "./runtime.js";
export { GpuProgram, type RunOptions } from "./program.js";
export {
  acquireDevice,
  type DeviceOptions,
  type GpuContext,
  GpuRuntimeError,
  type GpuState,
  NoAdapterError,
} from "./device.js";
export { WgslCompileError } from "./pipelines.js";
export {
  ArtifactError,
  type CompiledProgram,
  type FetchLike,
  fetchFiles,
  loadProgramArtifact,
  loadProgramArtifactFromUrl,
} from "../artifact.js";
export { parseSafetensors, SafetensorsError, serializeSafetensors } from "../safetensors.js";
export { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";

/** The page's `navigator.gpu` (undefined without WebGPU: acquireDevice then says so). */
export function browserGpu(): GPU | undefined {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
}

/** A runtime on the page's WebGPU adapter. */
export function browserRuntime(opts: DeviceOptions = {}): Promise<WebGpuRuntime> {
  return WebGpuRuntime.create(browserGpu(), opts);
}
