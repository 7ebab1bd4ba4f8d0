import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bindInputs, RunError } from "../../backends/cpu/interpreter.js";
import {
  CUDA_MANIFEST_FORMAT,
  type CudaManifest,
  offsetViewError,
  offsetViews,
} from "../../backends/cuda/program.js";
import { Graph } from "../../compiler/ir/graph.js";
import { evalDim, parseDim } from "../../compiler/ir/sym.js";
import { allocData, type Tensor } from "../../compiler/ir/tensor.js";
import { tensorType } from "../../compiler/ir/types.js";
import { type ProgramBuffer, stepEnv } from "../../compiler/kir/program.js";
import { storageType, type Target } from "../../compiler/kir/types.js";
import { fromDevice, toDevice } from "../device-data.js";
import { unboundSymbolError } from "../artifact.js";
import { planMemory } from "../plan.js";
import { parseSafetensors } from "../safetensors.js";
import type { ProgramRunner, StateInfo } from "../types.js";
import { type CudaAddon, CudaUnavailableError, type DeviceHandle, loadCudaAddon } from "./loader.js";

/** A CUDA artifact that cannot be loaded (bad manifest, missing files). */
export class CudaArtifactError extends Error {}

/**
 * A named device buffer that outlives runs (a KV cache, a running sum), made by
 * `CudaRuntime.createState`: bound to a program input instead of a host tensor, or named in
 * `outputsTo` so an output is written there and not read back. CUDA's twin of WebGPU's `GpuState`.
 */
export interface CudaState extends StateInfo {
  readonly ptr: DeviceHandle;
}

/** Errors of state bookkeeping and bindings (unknown state, wrong dtype, shape or storage). */
export class CudaStateError extends Error {}

export interface CudaRunOptions {
  /** Write these outputs into state buffers instead of reading them back. */
  readonly outputsTo?: ReadonlyMap<string, CudaState>;
}

const isState = (v: Tensor | CudaState): v is CudaState => "ptr" in v;

/** A CUDA artifact read from disk: its manifest, fatbin bytes and constant data. */
export interface CudaArtifactFiles {
  readonly manifest: CudaManifest;
  readonly fatbin: Uint8Array;
  readonly weights: ReadonlyMap<string, Tensor>;
}

/** Reads `manifest.json`, the fatbin and `weights.safetensors` of a `compileCudaProgram` directory. */
export function readCudaArtifact(dir: string): CudaArtifactFiles {
  const read = (name: string): Uint8Array => {
    try {
      return new Uint8Array(readFileSync(join(dir, name)));
    } catch (e) {
      throw new CudaArtifactError(`${join(dir, name)}: cannot read: ${(e as Error).message}`);
    }
  };
  let manifest: CudaManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(read("manifest.json"))) as CudaManifest;
  } catch (e) {
    if (e instanceof CudaArtifactError) throw e;
    throw new CudaArtifactError(`${join(dir, "manifest.json")}: not JSON: ${(e as Error).message}`);
  }
  if (manifest.format !== CUDA_MANIFEST_FORMAT)
    throw new CudaArtifactError(
      `${join(dir, "manifest.json")}: format is ${JSON.stringify(manifest.format)}, expected ${CUDA_MANIFEST_FORMAT}`,
    );
  if (!manifest.fatbin)
    throw new CudaArtifactError(`${dir}: the artifact has no fatbin (compiled without nvcc); it cannot run`);
  return {
    manifest,
    fatbin: read(manifest.fatbin),
    weights: parseSafetensors(read(manifest.weights), join(dir, manifest.weights)),
  };
}

/**
 * Throws `CudaArtifactError` when the artifact stores a dtype differently from `target` (a `--bf16`
 * artifact keeps f32 tensors as bf16): states made for `target` could not bind to it, and the
 * caller would learn it only then. Like `WebGpuRuntime.load`'s capability check.
 */
export function checkArtifactTarget(m: CudaManifest, target: Target): void {
  // Inputs and outputs only: what states bind to (a bf16 program keeps some scratch, e.g. attention probs, in f32).
  const b = [...m.inputs, ...m.outputs]
    .map((id) => m.buffers[id])
    .find((b) => storageType(b.dtype, target) !== b.storage);
  if (!b) return;
  const want = storageType(b.dtype, target);
  throw new CudaArtifactError(
    `${m.name}: the artifact stores ${b.dtype} buffer '${b.name}' as ${b.storage}, but this runtime's target ` +
      `stores ${b.dtype} as ${want}` +
      (b.storage === "bf16" ? " (a --bf16 artifact needs new CudaRuntime(addon, CUDA_BF16_TARGET))" : "") +
      (want === "bf16" ? " (a runtime on CUDA_BF16_TARGET needs an artifact compiled with --bf16)" : ""),
  );
}

/**
 * A CUDA program on the device through the runtime addon: the fatbin module and the constants
 * are loaded once; each run binds symbols from the input shapes, plans buffers by liveness (like
 * the WebGPU runtime), uploads the inputs, launches every step in order and downloads the outputs.
 * Without a device, `load` throws `CudaUnavailableError` with code `ERR_NO_CUDA_DEVICE`.
 */
export class CudaProgram implements ProgramRunner {
  private readonly constants = new Map<number, DeviceHandle>();
  private slots: { ptr: DeviceHandle; bytes: number }[] = [];
  private readonly buffers: readonly ProgramBuffer[];

  private constructor(
    private readonly addon: CudaAddon,
    readonly manifest: CudaManifest,
    private readonly module: DeviceHandle,
    weights: ReadonlyMap<string, Tensor>,
  ) {
    this.buffers = manifest.buffers.map((b) => ({
      ...b,
      dims: b.dims.map(parseDim),
      size: parseDim(b.size),
      ...(b.weight !== undefined ? { data: weights.get(b.weight) } : {}),
    }));
  }

  /** Loads an artifact directory, or already-read files, onto the first CUDA device. */
  static load(artifact: string | CudaArtifactFiles, addon?: CudaAddon): CudaProgram {
    const files = typeof artifact === "string" ? readCudaArtifact(artifact) : artifact;
    const views = offsetViewError(files.manifest.name, offsetViews(files.manifest.buffers));
    if (views) throw new CudaArtifactError(views);
    const unbound = unboundSymbolError(files.manifest, files.manifest.kernels);
    if (unbound) throw new CudaArtifactError(unbound);
    const a = addon ?? loadCudaAddon();
    const module = device(() => a.loadModule(files.fatbin));
    const p = new CudaProgram(a, files.manifest, module, files.weights);
    try {
      p.uploadConstants();
    } catch (e) {
      p.destroy();
      throw e;
    }
    return p;
  }

  get name(): string {
    return this.manifest.name;
  }

  /**
   * Runs every step; returns the outputs not redirected to states, by name. Inputs given as
   * states are read in place (no upload); `outputsTo` outputs are written into their states.
   */
  async run(
    inputs: ReadonlyMap<string, Tensor | CudaState>,
    opts: CudaRunOptions = {},
  ): Promise<Map<string, Tensor>> {
    await Promise.resolve();
    const m = this.manifest;
    const env = this.bind(inputs);
    const external = this.bindStates(inputs, opts.outputsTo, env);
    const plan = planMemory(this.buffers, env, new Set(external.keys()));
    while (this.slots.length < plan.slots.length) this.slots.push({ ptr: this.alloc(4), bytes: 4 });
    plan.slots.forEach((bytes, i) => {
      if (this.slots[i].bytes >= bytes) return;
      this.addon.free(this.slots[i].ptr);
      this.slots[i] = { ptr: this.alloc(bytes), bytes };
    });
    const ptr = (id: number): DeviceHandle => {
      const root = this.buffers[id].aliasOf ?? id;
      const c = this.constants.get(root) ?? external.get(root)?.ptr;
      if (c) return c;
      const s = plan.slotOf.get(root);
      if (s === undefined) throw new RunError(`${m.name}: buffer '${this.buffers[id].name}' has no memory`);
      return this.slots[s].ptr;
    };
    for (const id of m.inputs) {
      const b = this.buffers[id];
      const v = inputs.get(b.name)!;
      if (!isState(v)) device(() => this.addon.upload(ptr(id), toDevice(v, b.storage, `input '${b.name}'`)));
    }
    m.steps.forEach((s) => {
      const k = m.kernels[s.kernel];
      // Generic kernels: the step binds its own values of the class symbols.
      const senv = stepEnv(env, s);
      const grid = k.grid.map((d) => evalDim(parseDim(d), senv)) as [number, number, number];
      if (grid.some((g) => g === 0)) return;
      const syms = k.symbols.map((n) => senv.get(n)!);
      device(() => this.addon.launch(this.module, k.entry, grid, k.block, s.args.map(ptr), syms));
    });
    device(() => this.addon.synchronize());
    const out = new Map<string, Tensor>();
    for (const id of m.outputs) {
      const b = this.buffers[id];
      if (opts.outputsTo?.has(b.name)) continue;
      const shape = b.dims.map((d) => evalDim(d, env));
      const bytes = device(() => this.addon.download(ptr(id), plan.bytes.get(id)!));
      const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      out.set(b.name, fromDevice(buf as ArrayBuffer, b.storage, b.dtype, shape));
    }
    return out;
  }

  /** Frees the device memory (the module stays loaded for the process). */
  destroy(): void {
    for (const p of this.constants.values()) this.addon.free(p);
    for (const s of this.slots) this.addon.free(s.ptr);
    this.constants.clear();
    this.slots = [];
  }

  private uploadConstants(): void {
    for (const b of this.buffers) {
      if (b.kind !== "constant" || b.aliasOf !== undefined) continue;
      if (!b.data)
        throw new CudaArtifactError(`${this.name}: constant '${b.name}' has no data in the weights`);
      const bytes = toDevice(b.data, b.storage, `constant '${b.name}'`);
      const p = this.alloc(bytes.byteLength);
      this.constants.set(b.id, p);
      device(() => this.addon.upload(p, bytes));
    }
  }

  private alloc(bytes: number): DeviceHandle {
    return device(() => this.addon.alloc(bytes));
  }

  /**
   * Buffer roots bound to caller-owned states (not planned, never freed here). A state must have
   * the buffer's dtype, shape under this binding and device storage (a bf16 artifact stores f32
   * buffers as bf16); an output is redirected at most once and only outputs can be.
   */
  private bindStates(
    inputs: ReadonlyMap<string, Tensor | CudaState>,
    outputsTo: ReadonlyMap<string, CudaState> | undefined,
    env: ReadonlyMap<string, number>,
  ): Map<number, CudaState> {
    const m = this.manifest;
    const external = new Map<number, CudaState>();
    const bindState = (id: number, s: CudaState, what: string): void => {
      const b = this.buffers[id];
      const shape = b.dims.map((d) => evalDim(d, env));
      if (s.dtype !== b.dtype || s.shape.join() !== shape.join())
        throw new CudaStateError(
          `${m.name}: ${what} '${b.name}' is ${b.dtype}[${shape.join(", ")}], but state '${s.name}' is ${s.dtype}[${s.shape.join(", ")}]`,
        );
      if (s.storage !== b.storage)
        throw new CudaStateError(
          `${m.name}: ${what} '${b.name}' is stored as ${b.storage} on the device, but state '${s.name}' as ${s.storage}` +
            " (create the state on a CudaRuntime with the artifact's target)",
        );
      const root = b.aliasOf ?? id;
      const prev = external.get(root);
      if (prev && prev !== s)
        throw new CudaStateError(
          `${m.name}: ${what} '${b.name}' shares memory with a buffer bound to '${prev.name}'`,
        );
      external.set(root, s);
    };
    for (const name of outputsTo?.keys() ?? [])
      if (!m.outputs.some((id) => this.buffers[id].name === name))
        throw new CudaStateError(`${m.name}: outputsTo names '${name}', which is not an output`);
    for (const id of m.inputs) {
      const v = inputs.get(this.buffers[id].name);
      if (v && isState(v)) bindState(id, v, "input");
    }
    for (const id of m.outputs) {
      const s = outputsTo?.get(this.buffers[id].name);
      if (s) bindState(id, s, "output");
    }
    return external;
  }

  /** Symbols from the input shapes exactly as the reference binds them, plus capacities. */
  private bind(inputs: ReadonlyMap<string, Tensor | CudaState>): Map<string, number> {
    const sig = new Graph(this.name);
    for (const s of this.manifest.symbols)
      sig.declareSymbol({ name: s.name, ...(s.capacity ? { capacity: parseDim(s.capacity) } : {}) });
    for (const id of this.manifest.inputs) {
      const b = this.buffers[id];
      sig.addInput(tensorType(b.dtype, b.dims), b.name);
    }
    // States bind symbols by their shape like tensors do (bindInputs reads shapes only).
    const shaped = new Map(
      [...inputs].map(([k, v]): [string, Tensor] => [
        k,
        isState(v) ? { dtype: v.dtype, shape: [...v.shape], data: allocData(v.dtype, 0) } : v,
      ]),
    );
    const env = bindInputs(sig, shaped);
    for (const s of this.manifest.symbols)
      if (!env.has(s.name) && s.capacity !== undefined) env.set(s.name, evalDim(parseDim(s.capacity), env));
    return env;
  }
}

/** Runs an addon call; its errors (ERR_NO_CUDA_DEVICE, ERR_CUDA) become `CudaUnavailableError`s. */
export function device<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as Error & { code?: unknown };
    if (typeof err.code === "string" && err.code.startsWith("ERR_"))
      throw new CudaUnavailableError(err.message, err.code);
    throw e;
  }
}
