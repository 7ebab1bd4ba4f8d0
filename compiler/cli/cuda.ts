/** `--target cuda` for `tokr compile`: graph -> Program (CUDA_TARGET) -> .cu + fatbin artifact. */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { compileCudaProgram } from "../../backends/cuda/program.js";
import { CudaRenderError } from "../../backends/cuda/render.js";
import { CUDA_BF16_TARGET, CUDA_TARGET } from "../../backends/cuda/target.js";
import { F16Error, toF16 } from "../../backends/wgsl/f16.js";
import { CudaToolError, cudaHome, findNvcc } from "../../backends/cuda/toolchain.js";
import { CudaArtifactError, CudaProgram, CudaStateError } from "../../runtime/cuda/program.js";
import { CudaUnavailableError } from "../../runtime/cuda/loader.js";
import { DeviceDataError } from "../../runtime/device-data.js";
import { RunError } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { buildProgram, ScheduleError } from "../kir/schedule.js";
import { type Args, CliError } from "./cli.js";

/** Precision of a CUDA artifact: `f16` converts the graph (as for WGSL), `bf16` changes f32 storage. */
export interface CudaCompileOptions {
  readonly f16?: boolean;
  readonly bf16?: boolean;
}

/**
 * Writes a CUDA artifact (`<name>.cu`, `<name>.fatbin` for sm_80/sm_90, `resources.json`,
 * `weights.safetensors`, `manifest.json`; see docs/cuda.md). Needs nvcc (`$CUDA_HOME/bin/nvcc`);
 * without it, an error says what is missing before any work is done. `bf16`: the graph's f32
 * tensors are stored and computed as `__nv_bfloat16` (accumulations stay f32); the artifact's
 * inputs and outputs stay f32 at the host API (converted at upload/download).
 */
export function compileCuda(args: Args, g: Graph, dir: string, opts: CudaCompileOptions = {}): void {
  if (opts.f16 && opts.bf16) throw new CliError("--f16 and --bf16 exclude each other");
  if (!findNvcc())
    throw new CliError(
      `compile --target cuda needs nvcc: none at ${join(cudaHome(), "bin", "nvcc")}; install the CUDA ` +
        "toolkit (12 or newer) and set CUDA_HOME to it (default /usr/local/cuda)",
    );
  const abs = args.path(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory())
    throw new CliError(`${dir}: exists and is not a directory`);
  try {
    const target = opts.bf16 ? CUDA_BF16_TARGET : opts.f16 ? { ...CUDA_TARGET, f16: true } : CUDA_TARGET;
    compileCudaProgram(buildProgram(opts.f16 ? toF16(g) : g, target), abs);
  } catch (e) {
    if (
      e instanceof ScheduleError ||
      e instanceof CudaRenderError ||
      e instanceof CudaToolError ||
      e instanceof F16Error
    )
      throw new CliError(e.message);
    throw e;
  }
}

/** What to do when a CUDA artifact cannot run here, by the runtime's error code. */
const UNAVAILABLE_HINT: Readonly<Record<string, string>> = {
  ERR_NO_CUDA_DEVICE:
    "run it on a machine with an NVIDIA GPU (sm_80 or newer) and its driver, or compile the model for " +
    "another target (tokr compile --target wgsl or cpu) and run that",
  ERR_CUDA_NOT_BUILT: "build the addon first",
};

/**
 * `tokr run DIR` on a CUDA artifact: loads it through runtime/cuda (`CudaProgram`), runs it once
 * and frees it. Without a device (every machine here) it fails with the runtime's `no CUDA device`
 * message and what to do, as a CLI error (exit 1), never a crash.
 */
export async function runCuda(
  args: Args,
  dir: string,
  inputs: ReadonlyMap<string, Tensor>,
): Promise<Map<string, Tensor>> {
  let p: CudaProgram | undefined;
  try {
    p = CudaProgram.load(args.path(dir));
    return await p.run(inputs);
  } catch (e) {
    if (e instanceof CudaUnavailableError) {
      const hint = UNAVAILABLE_HINT[e.code];
      throw new CliError(`${dir}: cannot run the CUDA artifact: ${e.message}${hint ? `; ${hint}` : ""}`);
    }
    if (
      e instanceof CudaArtifactError ||
      e instanceof CudaStateError ||
      e instanceof RunError ||
      e instanceof DeviceDataError
    )
      throw new CliError(`${dir}: ${e.message}`);
    throw e;
  } finally {
    p?.destroy();
  }
}
