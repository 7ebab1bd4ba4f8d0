/// <reference types="@webgpu/types" />
import type { DType } from "../../compiler/ir/dtype.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { storageType, type Target } from "../../compiler/kir/types.js";
import type { CompiledProgram } from "../artifact.js";
import { fromDevice, toDevice } from "../device-data.js";
import { deviceBytes } from "../plan.js";
import { stateMismatch } from "../types.js";
import {
  acquireDevice,
  type DeviceOptions,
  type GpuContext,
  GpuRuntimeError,
  type GpuState,
  missingCapabilities,
} from "./device.js";
import { PipelineCache } from "./pipelines.js";
import { GpuProgram } from "./program.js";

/**
 * One WebGPU device with its pipeline cache and persistent state buffers. The same code runs in
 * Node (`new WebGpuRuntime(await acquireDevice(await nodeGpu()))`) and in browsers (`navigator.gpu`).
 */
export class WebGpuRuntime {
  readonly pipelines: PipelineCache;
  private readonly states = new Map<string, GpuState>();

  constructor(readonly ctx: GpuContext) {
    this.pipelines = new PipelineCache(ctx.device);
  }

  static async create(gpu: GPU | undefined, opts: DeviceOptions = {}): Promise<WebGpuRuntime> {
    return new WebGpuRuntime(await acquireDevice(gpu, opts));
  }

  get device(): GPUDevice {
    return this.ctx.device;
  }
  get target(): Target {
    return this.ctx.target;
  }

  /** Compiles every kernel (errors name the kernel and line:column) and uploads the constants. */
  async load(cp: CompiledProgram): Promise<GpuProgram> {
    if (cp.backend !== "wgsl")
      throw new GpuRuntimeError(`${cp.name}: a ${cp.backend} program cannot run on WebGPU`);
    const missing = missingCapabilities(cp.target, this.target);
    if (missing.length > 0)
      throw new GpuRuntimeError(
        `${cp.name}: compiled for capabilities this device lacks: ${missing.join(", ")} (device: ${this.ctx.description})`,
      );
    for (const k of cp.kernels) {
      if (k.params.length > this.target.maxStorageBuffersPerStage)
        throw new GpuRuntimeError(
          `kernel ${k.name}: ${k.params.length} storage buffers, but the device allows ${this.target.maxStorageBuffersPerStage} per shader stage`,
        );
      const inv = k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2];
      if (inv > this.target.maxWorkgroupInvocations)
        throw new GpuRuntimeError(
          `kernel ${k.name}: workgroup of ${inv} invocations exceeds the device limit ${this.target.maxWorkgroupInvocations}`,
        );
    }
    const kernels = await Promise.all(cp.kernels.map((k) => this.pipelines.get(k)));
    return new GpuProgram(this, cp, kernels);
  }

  /** Creates (or replaces) a zero-filled state buffer. */
  createState(name: string, dtype: DType, shape: readonly number[]): GpuState {
    this.states.get(name)?.buffer.destroy();
    const storage = storageType(dtype, this.target);
    const bytes = deviceBytes(
      storage,
      shape.reduce((a, b) => a * b, 1),
    );
    if (bytes > this.target.maxStorageBindingBytes)
      throw new GpuRuntimeError(
        `state '${name}': ${bytes} bytes exceed the device's max storage binding size ${this.target.maxStorageBindingBytes}`,
      );
    const buffer = this.device.createBuffer({
      label: `state ${name}`,
      size: bytes,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const s: GpuState = { name, dtype, shape: [...shape], storage, bytes, buffer };
    this.states.set(name, s);
    return s;
  }

  state(name: string): GpuState {
    const s = this.states.get(name);
    if (!s) throw new GpuRuntimeError(`no state buffer '${name}'`);
    return s;
  }

  writeState(name: string, t: Tensor): void {
    const s = this.state(name);
    const bad = stateMismatch(s, t);
    if (bad) throw new GpuRuntimeError(bad);
    this.device.queue.writeBuffer(s.buffer, 0, toDevice(t, s.storage, `state '${name}'`));
  }

  async readState(name: string): Promise<Tensor> {
    const s = this.state(name);
    const staging = this.device.createBuffer({
      size: s.bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(s.buffer, 0, staging, 0, s.bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const t = fromDevice(staging.getMappedRange().slice(0), s.storage, s.dtype, s.shape);
    staging.destroy();
    return t;
  }

  destroyState(name: string): void {
    this.states.get(name)?.buffer.destroy();
    this.states.delete(name);
  }

  destroy(): void {
    for (const s of this.states.values()) s.buffer.destroy();
    this.states.clear();
    this.device.destroy();
  }
}
