/**
 * Shared WebGPU setup for tests: one runtime per option set per process. Without an adapter the
 * tests skip with the reason (CI installs lavapipe, so there they run).
 */
import type { DeviceOptions } from "../../runtime/webgpu/device.js";
import { nodeGpu } from "../../runtime/webgpu/node.js";
import { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { skipUnlessRequired } from "../util/helpers.js";

const runtimes = new Map<string, Promise<WebGpuRuntime | string>>();

/** A runtime, or the reason there is none (pass it to `t.skip`). */
export function gpuRuntime(opts: DeviceOptions = {}): Promise<WebGpuRuntime | string> {
  const key = JSON.stringify(opts);
  let r = runtimes.get(key);
  if (!r) {
    r = nodeGpu()
      .then((gpu) => WebGpuRuntime.create(gpu, opts))
      .catch((e: unknown) => skipUnlessRequired(`no WebGPU device: ${(e as Error).message}`));
    runtimes.set(key, r);
  }
  return r;
}
