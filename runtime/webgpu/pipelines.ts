/// <reference types="@webgpu/types" />
import type { CompiledKernel } from "../artifact.js";

/** WGSL that does not compile or a pipeline that does not validate; names the kernel and line:column. */
export class WgslCompileError extends Error {
  constructor(
    readonly kernel: string,
    readonly detail: string,
  ) {
    super(`kernel ${kernel}: ${detail}`);
    this.name = "WgslCompileError";
  }
}

/** A ready pipeline and the layout its bind groups use (params, then the symbol uniform). */
export interface GpuKernel {
  readonly kernel: CompiledKernel;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/**
 * Pipelines cached by WGSL source (the renderer is deterministic, so equal source means equal
 * kernel). Explicit bind group layouts, so parameters a shader does not read still bind.
 */
export class PipelineCache {
  private readonly cache = new Map<string, Promise<GpuKernel>>();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.cache.size;
  }

  get(k: CompiledKernel): Promise<GpuKernel> {
    let p = this.cache.get(k.source);
    if (!p) {
      p = this.compile(k);
      this.cache.set(k.source, p);
      p.catch(() => this.cache.delete(k.source));
    }
    return p;
  }

  private async compile(k: CompiledKernel): Promise<GpuKernel> {
    const device = this.device;
    // The scope captures the module's validation error (else Dawn prints it as uncaptured).
    // Scopes are a per-device stack: pop before any await, or concurrent compiles (Promise.all
    // over a program's kernels) catch each other's errors.
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: k.source, label: k.name });
    const moduleScope = device.popErrorScope();
    const info = await module.getCompilationInfo();
    const moduleError = await moduleScope;
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) throw new WgslCompileError(k.name, errors.map((m) => describe(k, m)).join("\n"));
    if (moduleError) throw new WgslCompileError(k.name, moduleError.message);
    const entries: GPUBindGroupLayoutEntry[] = k.params.map((p, i) => ({
      binding: i,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: p.access === "read" ? "read-only-storage" : "storage" },
    }));
    if (k.symbols.length > 0)
      entries.push({
        binding: k.params.length,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform" },
      });
    device.pushErrorScope("validation");
    const layout = device.createBindGroupLayout({ entries, label: k.name });
    const pending = device.createComputePipelineAsync({
      label: k.name,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const scope = device.popErrorScope();
    let pipeline: GPUComputePipeline | undefined;
    let failure: string | undefined;
    try {
      pipeline = await pending;
    } catch (e) {
      failure = (e as Error).message;
    }
    const err = await scope;
    if (failure !== undefined || err || !pipeline)
      throw new WgslCompileError(k.name, `pipeline creation failed: ${err?.message ?? failure ?? "unknown"}`);
    return { kernel: k, pipeline, layout };
  }
}

/** `kernel.wgsl:line:col: message` plus the offending line and a caret. */
function describe(k: CompiledKernel, m: GPUCompilationMessage): string {
  const line = k.source.split("\n")[m.lineNum - 1] ?? "";
  const caret = " ".repeat(Math.max(0, m.linePos - 1)) + "^";
  return `${k.name}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}\n  ${line}\n  ${caret}`;
}
