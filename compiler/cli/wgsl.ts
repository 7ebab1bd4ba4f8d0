/** `--target wgsl` for `tokr compile` and `tokr run`: graph -> Program -> WGSL artifact -> WebGPU. */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
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
import { type Args, CliError, fsMessage } from "./cli.js";

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
      e instanceof DeviceDataError
    )
      throw new CliError(e.message);
    throw e;
  }
}

function schedule(g: Graph, target: Target): CompiledProgram {
  return compileProgram(buildProgram(g, target), "wgsl", target, renderWgsl);
}

/**
 * Writes a WGSL artifact for the portable target (WebGPU default limits, f32, no subgroups), so
 * the artifact runs on every adapter. Compiling needs no GPU.
 */
export async function compileWgsl(args: Args, g: Graph, dir: string, source: string): Promise<void> {
  const cp = await cli(() => schedule(g, DEFAULT_TARGET));
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

/** Runs a WGSL artifact directory, or a graph scheduled for the local adapter, on WebGPU. */
export async function runWgsl(
  args: Args,
  input: string | Graph,
  inputs: ReadonlyMap<string, Tensor>,
): Promise<Map<string, Tensor>> {
  return cli(async () => {
    const rt = await WebGpuRuntime.create(await nodeGpu());
    try {
      const cp =
        typeof input === "string"
          ? await loadProgramArtifact((name) => readFile(join(args.path(input), name)), input)
          : schedule(input, rt.target);
      const program = await rt.load(cp);
      return await program.run(inputs);
    } finally {
      rt.destroy();
    }
  });
}
