import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRootFrom } from "../../scripts/paths.js";

/** backends/cuda in the source tree: cuda_cpu.h and cpu_main.cc live here (also when running from dist/). */
export const CUDA_BACKEND_DIR = join(repoRootFrom(import.meta.url), "backends", "cuda");

/** `$CUDA_HOME` or /usr/local/cuda. */
export function cudaHome(): string {
  return process.env.CUDA_HOME ?? "/usr/local/cuda";
}

/** Path of nvcc, or undefined with the reason in `missing`. */
export function findNvcc(): string | undefined {
  const p = join(cudaHome(), "bin", "nvcc");
  return existsSync(p) ? p : undefined;
}

/** A working g++ on PATH (C++17 with x86-64 or ucontext fibers), or undefined. */
export function findGxx(): string | undefined {
  const r = spawnSync("g++", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? "g++" : undefined;
}

/** Why CUDA builds cannot run here (empty when both compilers are present). */
export function missingTools(): string[] {
  const out: string[] = [];
  if (!findNvcc()) out.push(`nvcc not found at ${join(cudaHome(), "bin", "nvcc")} (set CUDA_HOME)`);
  if (!findGxx()) out.push("g++ not found on PATH (apt-get install g++)");
  return out;
}

export class CudaToolError extends Error {}

/** Runs a tool; a non-zero exit throws with the command and its output. */
export function run(
  cmd: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): { out: string; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", env: env ?? process.env, maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.error) throw new CudaToolError(`${cmd}: ${r.error.message}`);
  if (r.status !== 0)
    throw new CudaToolError(`${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal}):\n${out}`);
  return { out, seconds };
}
