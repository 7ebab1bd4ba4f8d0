/** `--target wgsl` for `tokr compile` and `tokr run`: graph -> Program -> WGSL artifact -> WebGPU. */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
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
import {
  type MatmulTuning,
  type TuningCache,
  tunedTarget,
  tuneMatmul,
} from "../../runtime/webgpu/autotune.js";
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

/** The autotune cache file: $TOKR_CACHE_DIR, else $XDG_CACHE_HOME/tokr, else ~/.cache/tokr. */
export function tuningCacheFile(): string {
  const dir =
    process.env.TOKR_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "tokr");
  return join(dir, "wgsl-autotune.json");
}

/** A JSON file of tunings; an unreadable file is reported on stderr and replaced. */
function fileCache(io: CliIO): TuningCache {
  const file = tuningCacheFile();
  let entries: Record<string, MatmulTuning> = {};
  if (existsSync(file))
    try {
      entries = JSON.parse(readFileSync(file, "utf8")) as Record<string, MatmulTuning>;
    } catch (e) {
      io.stderr(`tokr: ignoring the autotune cache ${file}: ${fsMessage(e)}\n`);
    }
  return {
    get: (k) => entries[k],
    set: (k, v) => {
      entries[k] = v;
      try {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, JSON.stringify(entries, null, 2) + "\n");
      } catch (e) {
        io.stderr(`tokr: cannot write the autotune cache ${file}: ${fsMessage(e)}\n`);
      }
    },
  };
}

function describeTuning(t: MatmulTuning): string {
  const shapes = t.shapes.map((s) => `[${s.join("x")}]`).join(" x ");
  return (
    `tokr: matmul style for ${t.op} %${t.node} ${shapes}: register ${t.ms.register.toFixed(3)} ms, ` +
    `tiled ${t.ms.tiled.toFixed(3)} ms -> ${t.choice}${t.variant ? ` ${t.variant}` : ""}${t.cached ? " (cached)" : ""}\n`
  );
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
  let graph = g;
  let tuning: MatmulTuning | undefined;
  if (!opts.portable) {
    const rt = await localRuntime(f16);
    if (rt instanceof NoAdapterError)
      io.stderr(
        `tokr: ${rt.message.split(". To get one")[0]}; compiling for the portable target (as --portable)\n`,
      );
    else
      try {
        if (f16 && !rt.target.f16) throw lacksF16(rt.ctx.description);
        graph = await cli(() => (f16 ? toF16(g) : g));
        tuning = await cli(() => tuneMatmul(rt, graph, fileCache(io)));
        target = tunedTarget(rt.target, tuning);
        if (tuning) io.stderr(describeTuning(tuning));
      } finally {
        rt.destroy();
      }
  }
  // Portable target (asked for, or no adapter here): --f16 still converts the graph; the artifact then needs
  // an adapter with shader-f16 where it runs.
  if (f16 && graph === g) graph = await cli(() => toF16(g));
  const cp = await cli(() => schedule(graph, target, false));
  const abs = args.path(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory())
    throw new CliError(`${dir}: exists and is not a directory`);
  try {
    const files = writeProgramArtifact(cp, source);
    if (tuning) files.set("manifest.json", withTuning(files.get("manifest.json")!, tuning));
    for (const [name, bytes] of files) {
      mkdirSync(dirname(join(abs, name)), { recursive: true });
      writeFileSync(join(abs, name), bytes);
    }
  } catch (e) {
    throw new CliError(`${dir}: cannot write artifact: ${fsMessage(e)}`);
  }
}

/** The manifest with an `autotune` record (loaders ignore it; it says why `target.matmul` is what it is). */
function withTuning(manifest: Uint8Array, t: MatmulTuning): Uint8Array {
  const m = JSON.parse(new TextDecoder().decode(manifest)) as Record<string, unknown>;
  const { cached: _cached, ...record } = t;
  return new TextEncoder().encode(JSON.stringify({ ...m, autotune: { matmul: record } }, null, 2) + "\n");
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
    const source: { artifact: CompiledProgram } | { graph: Graph } =
      typeof input === "string"
        ? { artifact: await loadProgramArtifact((name) => readFile(join(args.path(input), name)), input) }
        : { graph: input };
    // An f16 artifact needs a device created with shader-f16.
    const f16 = "artifact" in source ? source.artifact.target.f16 : (opts.f16 ?? false);
    const rt = await WebGpuRuntime.create(await nodeGpu(), { f16 });
    try {
      if (f16 && !rt.target.f16) throw lacksF16(rt.ctx.description);
      const program = await rt.load(
        "artifact" in source ? source.artifact : schedule(source.graph, rt.target, f16),
      );
      return await program.run(inputs);
    } finally {
      rt.destroy();
    }
  });
}
