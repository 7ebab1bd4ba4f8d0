/** `--target cuda` for `tokr compile`: graph -> Program (CUDA_TARGET) -> .cu + fatbin artifact. */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { compileCudaProgram } from "../../backends/cuda/program.js";
import { CudaRenderError } from "../../backends/cuda/render.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { CudaToolError, cudaHome, findNvcc } from "../../backends/cuda/toolchain.js";
import type { Graph } from "../ir/graph.js";
import { buildProgram, ScheduleError } from "../kir/schedule.js";
import { type Args, CliError } from "./cli.js";

/**
 * Writes a CUDA artifact (`<name>.cu`, `<name>.fatbin` for sm_80/sm_90, `resources.json`,
 * `weights.safetensors`, `manifest.json`; see docs/cuda.md). Needs nvcc (`$CUDA_HOME/bin/nvcc`);
 * without it, an error says what is missing before any work is done.
 */
export function compileCuda(args: Args, g: Graph, dir: string): void {
  if (!findNvcc())
    throw new CliError(
      `compile --target cuda needs nvcc: none at ${join(cudaHome(), "bin", "nvcc")}; install the CUDA ` +
        "toolkit (12 or newer) and set CUDA_HOME to it (default /usr/local/cuda)",
    );
  const abs = args.path(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory())
    throw new CliError(`${dir}: exists and is not a directory`);
  try {
    compileCudaProgram(buildProgram(g, CUDA_TARGET), abs);
  } catch (e) {
    if (e instanceof ScheduleError || e instanceof CudaRenderError || e instanceof CudaToolError)
      throw new CliError(e.message);
    throw e;
  }
}
