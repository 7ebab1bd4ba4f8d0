import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { CUDA_BACKEND_DIR, CudaToolError, findGxx, run } from "./toolchain.js";

/**
 * Runs generated CUDA on the CPU: the .cu is compiled by g++ with cuda_cpu.h and cpu_main.cc
 * into an executable driven by a job file (buffers, launches, writes). Executables are cached
 * under the OS temp dir by a hash of the source, the header, the driver and the flags.
 */

export interface EmulatorOptions {
  /** Build with AddressSanitizer + UBSan (slower; reports out-of-bounds accesses at the kernel line). */
  readonly asan?: boolean;
}

export type ThreadOrder = "forward" | "reverse" | "random";

/** A buffer for a run: raw device bytes, or `size` bytes of 0xFF poison when `data` is absent. */
export interface EmuBuffer {
  readonly id: number;
  readonly bytes: number;
  readonly data?: Uint8Array;
}

export interface EmuLaunch {
  readonly kernel: string;
  readonly grid: readonly [number, number, number];
  readonly symbols: readonly number[];
  readonly args: readonly number[];
}

export class EmulatorRunError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const CACHE_DIR = join(tmpdir(), "tokr-cuda-cpu");

function flags(asan: boolean): string[] {
  const base = ["-std=c++17", "-O1", "-g", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wno-unused"];
  return asan ? [...base, "-fsanitize=address,undefined", "-fno-omit-frame-pointer"] : base;
}

/** A built emulator for one .cu source. */
export class CudaEmulator {
  constructor(
    readonly exe: string,
    readonly buildSeconds: number,
    readonly asan: boolean,
  ) {}

  /** Runs launches in order on fresh buffers and returns the bytes of the buffers in `read`. */
  run(
    buffers: readonly EmuBuffer[],
    launches: readonly EmuLaunch[],
    read: readonly number[],
    order: ThreadOrder = "forward",
  ): Map<number, Uint8Array> {
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-run-"));
    try {
      const lines: string[] = [];
      for (const b of buffers) {
        let path = "-";
        if (b.data) {
          if (b.data.length !== b.bytes)
            throw new Error(`buffer ${b.id}: ${b.data.length} bytes given, ${b.bytes} declared`);
          path = join(dir, `in${b.id}.bin`);
          writeFileSync(path, b.data);
        }
        lines.push(`buffer ${b.id} ${b.bytes} ${path}`);
      }
      for (const l of launches)
        lines.push(
          `launch ${l.kernel} ${l.grid.join(" ")} ${l.symbols.length} ${l.symbols.join(" ")} ${l.args.length} ${l.args.join(" ")}`,
        );
      for (const id of read) lines.push(`write ${id} ${join(dir, `out${id}.bin`)}`);
      const job = join(dir, "job.txt");
      writeFileSync(job, lines.join("\n") + "\n");
      const env = { ...process.env, CUCPU_ORDER: order, ASAN_OPTIONS: "detect_leaks=0:abort_on_error=0" };
      const r = spawnSync(this.exe, [job], { encoding: "utf8", env, maxBuffer: 64 << 20 });
      if (r.status !== 0)
        throw new EmulatorRunError(
          `emulated CUDA run failed (exit ${r.status ?? r.signal}, order ${order}):\n${r.stderr}`,
          r.status,
          r.stderr,
        );
      return new Map(read.map((id) => [id, new Uint8Array(readFileSync(join(dir, `out${id}.bin`)))]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Compiles `source` (a generated .cu) with g++ and cuda_cpu.h; reuses a cached build. */
export function buildEmulator(source: string, opts: EmulatorOptions = {}): CudaEmulator {
  const gxx = findGxx();
  if (!gxx) throw new CudaToolError("g++ not found: the CUDA CPU emulation needs g++ (C++17)");
  const asan = opts.asan ?? false;
  const header = readFileSync(join(CUDA_BACKEND_DIR, "cuda_cpu.h"), "utf8");
  const main = readFileSync(join(CUDA_BACKEND_DIR, "cpu_main.cc"), "utf8");
  const key = createHash("sha256")
    .update(source)
    .update("\0")
    .update(header)
    .update("\0")
    .update(main)
    .update("\0")
    .update(flags(asan).join(" "))
    .digest("hex")
    .slice(0, 24);
  const dir = join(CACHE_DIR, key);
  const exe = join(dir, "emu");
  if (existsSync(exe)) return new CudaEmulator(exe, 0, asan);
  mkdirSync(dir, { recursive: true });
  const cu = join(dir, "kernels.cu");
  writeFileSync(cu, source);
  const tmp = `${exe}.${process.pid}.tmp`;
  const { seconds } = run(gxx, [
    ...flags(asan),
    `-I${CUDA_BACKEND_DIR}`,
    `-DTOKR_KERNELS="${cu}"`,
    join(CUDA_BACKEND_DIR, "cpu_main.cc"),
    "-o",
    tmp,
  ]);
  renameSync(tmp, exe); // atomic: concurrent test files never see a half-written binary
  return new CudaEmulator(exe, seconds, asan);
}
