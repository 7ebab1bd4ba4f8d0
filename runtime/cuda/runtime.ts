import type { DType } from "../../compiler/ir/dtype.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { storageType, type Target } from "../../compiler/kir/types.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { fromDevice, toDevice } from "../device-data.js";
import { deviceBytes } from "../plan.js";
import { stateMismatch } from "../types.js";
import { type CudaAddon, loadCudaAddon } from "./loader.js";
import {
  checkArtifactTarget,
  type CudaArtifactFiles,
  CudaProgram,
  type CudaState,
  CudaStateError,
  device,
  readCudaArtifact,
} from "./program.js";

export { type CudaState, CudaStateError };

/**
 * One CUDA device (through the addon) with its persistent state buffers, like `WebGpuRuntime`:
 * `load` gives `CudaProgram`s that run on it; states are created here and shared by its programs.
 * `target` decides the states' storage (`bf16: true` stores f32 states as bf16, as a `--bf16`
 * artifact stores its f32 inputs and outputs).
 */
export class CudaRuntime {
  private readonly states = new Map<string, CudaState>();

  constructor(
    readonly addon: CudaAddon = loadCudaAddon(),
    readonly target: Target = CUDA_TARGET,
  ) {}

  /**
   * Loads an artifact directory, or already-read files (throws ERR_NO_CUDA_DEVICE without a GPU).
   * The artifact's storage must match `target` (a `--bf16` one needs `CUDA_BF16_TARGET`), else
   * `CudaArtifactError` here rather than when a state is bound.
   */
  load(artifact: string | CudaArtifactFiles): CudaProgram {
    const files = typeof artifact === "string" ? readCudaArtifact(artifact) : artifact;
    checkArtifactTarget(files.manifest, this.target);
    return CudaProgram.load(files, this.addon);
  }

  /** Allocates (or replaces) state `name`; its contents are undefined until written. */
  createState(name: string, dtype: DType, shape: readonly number[]): CudaState {
    this.destroyState(name);
    const storage = storageType(dtype, this.target);
    const bytes = deviceBytes(
      storage,
      shape.reduce((a, b) => a * b, 1),
    );
    const ptr = device(() => this.addon.alloc(bytes));
    const s: CudaState = { name, dtype, shape: [...shape], storage, bytes, ptr };
    this.states.set(name, s);
    return s;
  }

  state(name: string): CudaState {
    const s = this.states.get(name);
    if (!s) throw new CudaStateError(`no state buffer '${name}'`);
    return s;
  }

  writeState(name: string, t: Tensor): void {
    const s = this.state(name);
    const bad = stateMismatch(s, t);
    if (bad) throw new CudaStateError(bad);
    device(() => this.addon.upload(s.ptr, toDevice(t, s.storage, `state '${name}'`)));
  }

  /** The state's contents as a host tensor (async like WebGPU's; the addon call is synchronous). */
  async readState(name: string): Promise<Tensor> {
    await Promise.resolve();
    const s = this.state(name);
    device(() => this.addon.synchronize());
    const bytes = device(() => this.addon.download(s.ptr, s.bytes));
    const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return fromDevice(buf, s.storage, s.dtype, s.shape);
  }

  destroyState(name: string): void {
    const s = this.states.get(name);
    if (!s) return;
    this.states.delete(name);
    this.addon.free(s.ptr);
  }

  /** Frees every state (programs free their own memory with `destroy`). */
  destroy(): void {
    for (const name of [...this.states.keys()]) this.destroyState(name);
  }
}
