import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bindInputs, RunError } from "../cpu/interpreter.js";
import { Graph } from "../../compiler/ir/graph.js";
import { evalDim, printDim } from "../../compiler/ir/sym.js";
import { numel, type Tensor } from "../../compiler/ir/tensor.js";
import { tensorType } from "../../compiler/ir/types.js";
import { fromDevice, toDevice } from "../../compiler/kir/run.js";
import { type Program, type ProgramBuffer, type Step, stepEnv } from "../../compiler/kir/program.js";
import type { DType } from "../../compiler/ir/dtype.js";
import { manifestBuffers, unboundSymbolError } from "../../runtime/artifact.js";
import { kernelSymbols } from "../../compiler/kir/builder.js";
import { serializeSafetensors } from "../../runtime/safetensors.js";
import type { Target } from "../../compiler/kir/types.js";
import type { CudaEmulator, EmuBuffer, ThreadOrder } from "./cpu.js";
import { elemBytes, fromBytes, launchOf, toBytes } from "./emulate.js";
import { compileFatbin, type ResourceUsage } from "./nvcc.js";
import { type CudaKernelInfo, CudaRenderError, renderModule } from "./render.js";
import { CUDA_TARGET } from "./target.js";

/** What `compileCudaProgram` wrote. */
export interface CudaArtifact {
  readonly dir: string;
  readonly cu: string;
  /** Absent when built with `{ nvcc: false }`. */
  readonly fatbin?: string;
  readonly manifest: string;
  readonly weights: string;
  readonly kernels: readonly CudaKernelInfo[];
  readonly resources: readonly ResourceUsage[];
  readonly nvccSeconds: number;
}

/** `manifest.json` of a CUDA artifact (dims printed with printDim; `runtime/cuda` reads it). */
export interface CudaManifest {
  readonly format: typeof CUDA_MANIFEST_FORMAT;
  /** What `tokr` reads to tell artifact kinds apart (like the cpu and wgsl manifests). */
  readonly target: "cuda";
  readonly name: string;
  readonly source: string;
  readonly fatbin: string | null;
  /** Constant buffers' data, keyed by each buffer's `weight`. */
  readonly weights: string;
  readonly symbols: readonly { readonly name: string; readonly capacity?: string }[];
  readonly kernels: readonly (CudaKernelInfo & { readonly grid: readonly string[] })[];
  readonly buffers: readonly {
    readonly id: number;
    readonly name: string;
    readonly dtype: DType;
    readonly dims: readonly string[];
    readonly storage: ProgramBuffer["storage"];
    readonly size: string;
    readonly kind: ProgramBuffer["kind"];
    readonly aliasOf?: number;
    /** Element offset into `aliasOf` (WGSL binding-limit chunks); CUDA runners refuse it (`offsetViews`). */
    readonly offset?: number;
    readonly weight?: string;
    readonly firstUse: number;
    readonly lastUse: number;
  }[];
  readonly steps: readonly Step[];
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
}

export const CUDA_MANIFEST_FORMAT = "tokr-cuda-2";

/**
 * Buffers that are views at a nonzero offset into their root (a unit split by the WGSL binding
 * limit, `compiler/kir/split.ts`), one message each. CUDA binds whole buffers (its target has no
 * binding limit, so its schedule never splits) and its runners refuse such views.
 */
export function offsetViews(
  buffers: readonly { readonly name: string; readonly aliasOf?: number; readonly offset?: number }[],
): string[] {
  return buffers.flatMap((b) =>
    b.offset ? [`buffer '${b.name}' is a view at element offset ${b.offset} into buffer ${b.aliasOf}`] : [],
  );
}

/** Why a program with offset views cannot run on CUDA, or undefined when it has none. */
export function offsetViewError(name: string, views: readonly string[]): string | undefined {
  if (views.length === 0) return undefined;
  return (
    `program ${name}: ${views.join("; ")}: offset views come from splitting for a storage binding limit ` +
    "(WGSL); the CUDA backend binds whole buffers: schedule the program for CUDA_TARGET"
  );
}

/** A C identifier for file names. */
const fileName = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, "_") || "program";

/**
 * Writes `<name>.cu`, `<name>.fatbin` (sm_80 + sm_90 SASS, compute_90 PTX), `resources.json`
 * (ptxas per kernel and architecture), `weights.safetensors` (constant buffers) and
 * `manifest.json` (`CudaManifest`: kernel argument layouts, symbolic grids, steps and buffers,
 * for the runtime) into `outDir`.
 */
export function compileCudaProgram(
  program: Program,
  outDir: string,
  opts: { readonly nvcc?: boolean } = {},
): CudaArtifact {
  const views = offsetViewError(program.name, offsetViews(program.buffers));
  if (views) throw new CudaRenderError(views);
  const unbound = programUnboundSymbol(program);
  if (unbound) throw new CudaRenderError(unbound);
  const bad = programBindingMismatches(program);
  if (bad.length > 0)
    throw new CudaRenderError(
      `program ${program.name}: kernel arguments of the wrong element type:\n${bad.join("\n")}`,
    );
  mkdirSync(outDir, { recursive: true });
  const name = fileName(program.name);
  const mod = renderModule(program.kernels, `program ${program.name}`);
  let fatbin: string | undefined;
  let resources: ResourceUsage[] = [];
  let nvccSeconds = 0;
  const cu = join(outDir, `${name}.cu`);
  if (opts.nvcc ?? true) {
    const r = compileFatbin(mod.source, outDir, name);
    fatbin = r.fatbinPath;
    resources = r.resources;
    nvccSeconds = r.seconds;
  } else writeFileSync(cu, mod.source);
  writeFileSync(join(outDir, "resources.json"), JSON.stringify(resources, null, 1) + "\n");
  const { buffers, weights: weightData } = manifestBuffers(program.buffers);
  const weights = join(outDir, "weights.safetensors");
  writeFileSync(weights, serializeSafetensors(weightData, undefined, weights));
  const manifest = join(outDir, "manifest.json");
  const grids = new Map(program.kernels.map((k) => [k.name, k.grid.map(printDim)]));
  const m: CudaManifest = {
    format: CUDA_MANIFEST_FORMAT,
    target: "cuda",
    name: program.name,
    source: `${name}.cu`,
    fatbin: fatbin ? `${name}.fatbin` : null,
    weights: "weights.safetensors",
    symbols: program.symbols.map((s) => ({
      name: s.name,
      ...(s.capacity !== undefined ? { capacity: printDim(s.capacity) } : {}),
    })),
    kernels: mod.kernels.map((k) => ({ ...k, grid: grids.get(k.name)! })),
    buffers,
    steps: program.steps,
    inputs: program.inputs,
    outputs: program.outputs,
  };
  writeFileSync(manifest, JSON.stringify(m, null, 1) + "\n");
  return { dir: outDir, cu, fatbin, manifest, weights, kernels: mod.kernels, resources, nvccSeconds };
}

/** `unboundSymbolError` over the program's own kernels (the CUDA paths take a Program, not a CompiledProgram). */
function programUnboundSymbol(program: Program): string | undefined {
  return unboundSymbolError(
    program,
    program.kernels.map((k) => ({ name: k.name, symbols: kernelSymbols(k) })),
  );
}

/**
 * Steps whose kernel parameter type differs from the storage of the buffer passed to it: on a
 * device the kernel would read or write elements of the wrong width. Empty when all agree.
 */
export function programBindingMismatches(program: Program): string[] {
  const out: string[] = [];
  for (const [i, s] of program.steps.entries()) {
    const k = program.kernels[s.kernel];
    k.params.forEach((p, j) => {
      const b = program.buffers[s.args[j]];
      if (b.storage !== p.t)
        out.push(
          `step ${i} (kernel ${k.name}): parameter '${p.name}' is ${p.t} but buffer %${b.name} is stored as ${b.storage}`,
        );
    });
  }
  return out;
}

/**
 * Runs a whole program on the CUDA emulator (one process, every step in order), binding symbols
 * from the inputs like the reference does; returns the outputs by name. Mirrors the KIR
 * interpreter's `runProgramOnKir`.
 */
export function emulateProgram(
  emu: CudaEmulator,
  program: Program,
  feeds: ReadonlyMap<string, Tensor>,
  order: ThreadOrder = "forward",
  target: Target = program.target ?? CUDA_TARGET,
): Map<string, Tensor> {
  const views = offsetViewError(program.name, offsetViews(program.buffers));
  if (views) throw new RunError(views);
  const unbound = programUnboundSymbol(program);
  if (unbound) throw new RunError(unbound);
  const sig = new Graph(program.name);
  for (const s of program.symbols) sig.declareSymbol(s);
  for (const id of program.inputs) {
    const b = program.buffers[id];
    sig.addInput(tensorType(b.dtype, b.dims), b.name);
  }
  const env = bindInputs(sig, feeds);
  // Like the runtimes and the KIR runner: a data-dependent symbol takes its capacity.
  for (const s of program.symbols)
    if (!env.has(s.name) && s.capacity !== undefined) env.set(s.name, evalDim(s.capacity, env));
  const bufs: EmuBuffer[] = [];
  const root = (id: number): number => program.buffers[id].aliasOf ?? id;
  for (const b of program.buffers) {
    if (b.aliasOf !== undefined) continue;
    const bytes = evalDim(b.size, env) * elemBytes(b.storage);
    const t = b.kind === "input" ? feeds.get(b.name) : b.kind === "constant" ? b.data : undefined;
    if ((b.kind === "input" || b.kind === "constant") && !t) throw new RunError(`no data for %${b.name}`);
    bufs.push({ id: b.id, bytes, ...(t ? { data: toBytes(toDevice(t, target), b.storage) } : {}) });
  }
  const launches = program.steps.map((s) =>
    launchOf(program.kernels[s.kernel], stepEnv(env, s), s.args.map(root)),
  );
  const outIds = [...new Set(program.outputs.map(root))];
  const got = emu.run(bufs, launches, outIds, order);
  const out = new Map<string, Tensor>();
  for (const id of program.outputs) {
    const b = program.buffers[id];
    const shape = b.dims.map((d) => evalDim(d, env));
    const a = fromBytes(got.get(root(id))!, b.storage);
    out.set(b.name, fromDevice(a.length === numel(shape) ? a : a.slice(0, numel(shape)), b.dtype, shape));
  }
  return out;
}
