/** `--target wgsl` for `tokr compile` and `tokr run`: graph -> Program -> WGSL artifact -> WebGPU. */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { F16Error, toF16 } from "../../backends/wgsl/f16.js";
import { renderWgsl, WgslError } from "../../backends/wgsl/render.js";
import type { Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { buildProgram, ScheduleError } from "../kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../kir/types.js";
import {
  ArtifactError,
  type CompiledProgram,
  compileProgram,
  loadProgramArtifact,
  writeProgramArtifact,
} from "../../runtime/artifact.js";
import { DeviceDataError } from "../../runtime/device-data.js";
import { GpuRuntimeError, NoAdapterError } from "../../runtime/webgpu/device.js";
import { nodeGpu } from "../../runtime/webgpu/node.js";
import { WgslCompileError } from "../../runtime/webgpu/pipelines.js";
import { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { type Args, type CliIO, CliError, fsMessage } from "./cli.js";

/** The `target` of an artifact directory's manifest, if INPUT is one. */
export function artifactTarget(args: Args, input: string): string | undefined {
  const file = join(args.path(input), "manifest.json");
  if (!existsSync(file) || !statSync(args.path(input)).isDirectory()) return undefined;
  try {
    const m = JSON.parse(readFileSync(file, "utf8")) as { target?: unknown };
    return typeof m.target === "string" ? m.target : undefined;
  } catch {
    return undefined;
  }
}

/** Errors of scheduling, rendering, the device and the artifact become CLI errors (no stack). */
async function cli<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (
      e instanceof ScheduleError ||
      e instanceof WgslError ||
      e instanceof WgslCompileError ||
      e instanceof GpuRuntimeError ||
      e instanceof NoAdapterError ||
      e instanceof ArtifactError ||
      e instanceof DeviceDataError ||
      e instanceof F16Error
    )
      throw new CliError(e.message);
    throw e;
  }
}

/** `f16`: the graph's f32 tensors become f16 first (see backends/wgsl/f16.ts; needs target.f16). */
function schedule(g: Graph, target: Target, f16: boolean): CompiledProgram {
  return compileProgram(buildProgram(f16 ? toF16(g) : g, target), "wgsl", target, renderWgsl);
}

/** `tokr compile --target wgsl` options. */
export interface WgslCompileOptions {
  /** Store and compute the graph's f32 tensors in f16 (the adapter must have shader-f16). */
  readonly f16?: boolean;
  /** Compile for DEFAULT_TARGET (WebGPU default limits) instead of the local adapter's target. */
  readonly portable?: boolean;
}

function lacksF16(description: string): CliError {
  return new CliError(
    `--f16: the WebGPU adapter (${description}) lacks the shader-f16 feature; compile without --f16` +
      " (or with --portable to build an f16 artifact for another device)",
  );
}

/** A runtime on the local adapter, or the reason there is none. */
async function localRuntime(f16: boolean): Promise<WebGpuRuntime | NoAdapterError> {
  try {
    return await WebGpuRuntime.create(await nodeGpu(), { f16 });
  } catch (e) {
    if (e instanceof NoAdapterError) return e;
    throw e;
  }
}

/**
 * Writes a WGSL artifact. By default for the local adapter's target (its limits and features);
 * with `portable`, or when there is no adapter (said on stderr), for DEFAULT_TARGET, so the
 * artifact runs on every adapter (with `f16`: every adapter with shader-f16).
 */
export async function compileWgsl(
  args: Args,
  io: CliIO,
  g: Graph,
  dir: string,
  source: string,
  opts: WgslCompileOptions = {},
): Promise<void> {
  const f16 = opts.f16 ?? false;
  let target: Target = { ...DEFAULT_TARGET, f16 };
  if (!opts.portable) {
    const rt = await localRuntime(f16);
    if (rt instanceof NoAdapterError)
      io.stderr(
        `tokr: ${rt.message.split(". To get one")[0]}; compiling for the portable target (as --portable)\n`,
      );
    else {
      rt.destroy();
      if (f16 && !rt.target.f16) throw lacksF16(rt.ctx.description);
      target = rt.target;
    }
  }
  const cp = await cli(() => schedule(g, target, f16));
  const abs = args.path(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory())
    throw new CliError(`${dir}: exists and is not a directory`);
  try {
    for (const [name, bytes] of writeProgramArtifact(cp, source)) {
      mkdirSync(dirname(join(abs, name)), { recursive: true });
      writeFileSync(join(abs, name), bytes);
    }
  } catch (e) {
    throw new CliError(`${dir}: cannot write artifact: ${fsMessage(e)}`);
  }
}

/**
 * Runs a WGSL artifact directory, or a graph scheduled for the local adapter, on WebGPU. `f16`
 * (graphs only: an artifact's precision is fixed when it is compiled) computes in f16.
 */
export async function runWgsl(
  args: Args,
  input: string | Graph,
  inputs: ReadonlyMap<string, Tensor>,
  opts: { readonly f16?: boolean } = {},
): Promise<Map<string, Tensor>> {
  return cli(async () => {
    const rt = await WebGpuRuntime.create(await nodeGpu(), { f16: opts.f16 ?? false });
    try {
      if (opts.f16 && !rt.target.f16) throw lacksF16(rt.ctx.description);
      const cp =
        typeof input === "string"
          ? await loadProgramArtifact((name) => readFile(join(args.path(input), name)), input)
          : schedule(input, rt.target, opts.f16 ?? false);
      const program = await rt.load(cp);
      return await program.run(inputs);
    } finally {
      rt.destroy();
    }
  });
}
