import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CudaToolError, findNvcc, run } from "./toolchain.js";

/** Architectures of the fatbin: SASS for sm_80 and sm_90, plus compute_90 PTX for newer GPUs to JIT. */
export const GENCODE = [
  "-gencode",
  "arch=compute_80,code=sm_80",
  "-gencode",
  "arch=compute_90,code=[sm_90,compute_90]",
] as const;

/** ptxas's report for one kernel on one architecture. */
export interface ResourceUsage {
  readonly entry: string;
  readonly arch: string;
  readonly registers: number;
  readonly barriers: number;
  readonly sharedBytes: number;
  readonly stackBytes: number;
  readonly spillStores: number;
  readonly spillLoads: number;
}

/** Parses `nvcc -Xptxas -v` output (entry blocks: "Compiling entry function", properties, "Used ..."). */
export function parsePtxasInfo(log: string): ResourceUsage[] {
  const out: ResourceUsage[] = [];
  let cur: { entry: string; arch: string; stack: number; ss: number; sl: number } | undefined;
  for (const line of log.split("\n")) {
    const c = /Compiling entry function '([^']+)' for '([^']+)'/.exec(line);
    if (c) {
      cur = { entry: c[1], arch: c[2], stack: 0, ss: 0, sl: 0 };
      continue;
    }
    const f = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (f && cur) {
      cur.stack = +f[1];
      cur.ss = +f[2];
      cur.sl = +f[3];
      continue;
    }
    const u = /Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?/.exec(line);
    if (u && cur) {
      out.push({
        entry: cur.entry,
        arch: cur.arch,
        registers: +u[1],
        barriers: u[2] ? +u[2] : 0,
        sharedBytes: u[3] ? +u[3] : 0,
        stackBytes: cur.stack,
        spillStores: cur.ss,
        spillLoads: cur.sl,
      });
      cur = undefined;
    }
  }
  return out;
}

export interface FatbinResult {
  readonly cuPath: string;
  readonly fatbinPath: string;
  readonly resources: ResourceUsage[];
  readonly seconds: number;
}

/** nvcc's arguments for one .cu -> .fatbin (warnings are errors, ptxas reports resources). */
function nvccArgs(cuPath: string, fatbinPath: string): string[] {
  return [
    "-fatbin",
    ...GENCODE,
    "-std=c++17",
    "-Werror",
    "all-warnings",
    "-Xptxas",
    "-v",
    cuPath,
    "-o",
    fatbinPath,
  ];
}

function nvccOrThrow(): string {
  const nvcc = findNvcc();
  if (!nvcc) throw new CudaToolError("nvcc not found: set CUDA_HOME to a CUDA toolkit (13.x tested)");
  return nvcc;
}

/**
 * Writes `<name>.cu` and compiles it with nvcc to `<name>.fatbin` (warnings are errors);
 * returns ptxas's resource usage per kernel and architecture.
 */
export function compileFatbin(source: string, outDir: string, name: string): FatbinResult {
  const nvcc = nvccOrThrow();
  mkdirSync(outDir, { recursive: true });
  const cuPath = join(outDir, `${name}.cu`);
  const fatbinPath = join(outDir, `${name}.fatbin`);
  writeFileSync(cuPath, source);
  const { out, seconds } = run(nvcc, nvccArgs(cuPath, fatbinPath));
  return { cuPath, fatbinPath, resources: parsePtxasInfo(out), seconds };
}

/**
 * `compileFatbin` for an existing `.cu`, without blocking: nvcc runs while the caller works
 * (tests overlap it with the g++ emulator build). Writes the fatbin next to the source.
 */
export function compileFatbinAsync(cuPath: string): Promise<FatbinResult> {
  const nvcc = nvccOrThrow();
  const fatbinPath = cuPath.replace(/\.cu$/, "") + ".fatbin";
  const args = nvccArgs(cuPath, fatbinPath);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(nvcc, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`;
      if (err) reject(new CudaToolError(`${nvcc} ${args.join(" ")} failed (${err.message}):\n${out}`));
      else
        resolve({
          cuPath,
          fatbinPath,
          resources: parsePtxasInfo(out),
          seconds: (performance.now() - t0) / 1000,
        });
    });
  });
}
