/// <reference types="@webgpu/types" />
/**
 * The Node entry to WebGPU: Dawn through the `webgpu` package. Browsers pass `navigator.gpu`
 * to acquireDevice instead; everything else is shared.
 */
let cached: GPU | undefined;

/** Dawn's GPU object (created once per process; installs the WebGPU globals such as GPUBufferUsage). */
export async function nodeGpu(): Promise<GPU> {
  if (cached) return cached;
  const mod = (await import("webgpu")) as { create(opts: string[]): GPU; globals: object };
  Object.assign(globalThis, mod.globals);
  cached = mod.create([]);
  return cached;
}
