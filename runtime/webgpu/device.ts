/// <reference types="@webgpu/types" />
import type { Target } from "../../compiler/kir/types.js";
import type { StateInfo } from "../types.js";

/**
 * Device acquisition from any `GPU` object: `navigator.gpu` in a browser, the `webgpu` package's
 * `create([])` in Node (see node.ts). There is no CPU fallback: no adapter is an error.
 */

export class NoAdapterError extends Error {
  constructor(detail: string) {
    super(
      `no WebGPU adapter (${detail}). To get one: on Debian/Ubuntu install Mesa lavapipe ` +
        "(mesa-vulkan-drivers from bookworm-backports, Mesa >= 25; see DEVELOPERS.md), or point " +
        "VK_ICD_FILENAMES at a SwiftShader ICD (e.g. /usr/lib/chromium/vk_swiftshader_icd.json); " +
        "in Chromium start with --enable-unsafe-webgpu",
    );
    this.name = "NoAdapterError";
  }
}

/**
 * How the host waits for a run's readback. `poll`: await `mapAsync` at once. `sleep`: first sleep
 * for most of the run's expected device time (`HostWaitEstimate`), then await. Dawn in Node polls
 * for completion on the JS thread (setImmediate loop) while a promise is pending; on a CPU driver
 * (lavapipe, SwiftShader) that loop competes with the driver's threads for the same cores.
 */
export type HostWait = "poll" | "sleep";

export interface DeviceOptions {
  /** Compute IR f16 tensors in f16 when the adapter has `shader-f16` (else f32). */
  readonly f16?: boolean;
  /** Default: `sleep` on CPU adapters, `poll` on GPUs (where polling costs no device time). */
  readonly hostWait?: HostWait;
  /** Use subgroup operations when the adapter has them (default true). */
  readonly subgroups?: boolean;
}

/** An acquired device and the KIR target it satisfies. */
export interface GpuContext {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  readonly target: Target;
  /** "vendor / architecture / description" of the adapter, for reports. */
  readonly description: string;
  readonly hostWait: HostWait;
}

/** CPU drivers (lavapipe, SwiftShader) run barrier-free register blocking faster than tiling. */
function isCpuAdapter(a: GPUAdapter): boolean {
  const i = a.info;
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(`${i.vendor} ${i.architecture} ${i.description}`);
}

/** The KIR target an adapter supports, given what the caller asks for. */
export function targetFromAdapter(adapter: GPUAdapter, opts: DeviceOptions = {}): Target {
  const l = adapter.limits;
  const subgroups = (opts.subgroups ?? true) && adapter.features.has("subgroups");
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
  return {
    f16: (opts.f16 ?? false) && adapter.features.has("shader-f16"),
    subgroups,
    subgroupSize: subgroups ? (info.subgroupMinSize ?? 4) : 4,
    maxWorkgroupInvocations: l.maxComputeInvocationsPerWorkgroup,
    maxWorkgroupStorageBytes: l.maxComputeWorkgroupStorageSize,
    maxStorageBuffersPerStage: l.maxStorageBuffersPerShaderStage,
    maxStorageBindingBytes: l.maxStorageBufferBindingSize,
    matmul: isCpuAdapter(adapter) ? "register" : "tiled",
  };
}

/** Requests an adapter and a device whose features and limits cover the returned target. */
export async function acquireDevice(gpu: GPU | undefined, opts: DeviceOptions = {}): Promise<GpuContext> {
  if (!gpu) throw new NoAdapterError("this environment has no navigator.gpu");
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    throw new NoAdapterError(`requestAdapter failed: ${(e as Error).message}`);
  }
  if (!adapter) throw new NoAdapterError("requestAdapter() returned null");
  const target = targetFromAdapter(adapter, opts);
  const requiredFeatures: GPUFeatureName[] = [];
  if (target.f16) requiredFeatures.push("shader-f16");
  if (target.subgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupSizeZ: l.maxComputeWorkgroupSizeZ,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
    },
  });
  const i = adapter.info;
  const description = [i.vendor, i.architecture, i.description].filter((s) => s).join(" / ");
  const hostWait = opts.hostWait ?? (isCpuAdapter(adapter) ? "sleep" : "poll");
  return { adapter, device, target, description, hostWait };
}

/** Which capabilities of `want` (an artifact's target) the device's `have` lacks; empty if none. */
export function missingCapabilities(want: Target, have: Target): string[] {
  const out: string[] = [];
  if (want.f16 && !have.f16) out.push("shader-f16");
  if (want.subgroups && !have.subgroups) out.push("subgroups");
  if (want.subgroups && have.subgroupSize < want.subgroupSize)
    out.push(`subgroup size ${want.subgroupSize} (device: ${have.subgroupSize})`);
  const lim = [
    "maxWorkgroupInvocations",
    "maxWorkgroupStorageBytes",
    "maxStorageBuffersPerStage",
    "maxStorageBindingBytes",
  ] as const;
  for (const k of lim) if (want[k] > have[k]) out.push(`${k} ${want[k]} (device: ${have[k]})`);
  return out;
}

export class GpuRuntimeError extends Error {}

/** A named device buffer that outlives runs (KV caches); bind it as a program input or output. */
export interface GpuState extends StateInfo {
  readonly buffer: GPUBuffer;
}
