/**
 * Shared by the fidelity and accuracy benchmarks and the demo: the Fashion-MNIST ViT compiled with or
 * without a token-reduction policy, its FLOPs from the report functions, and a runner on WGSL
 * (WebGPU) or, when there is no adapter, the CPU reference interpreter.
 */
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { runGraph } from "../backends/cpu/interpreter.js";
import { renderWgsl } from "../backends/wgsl/render.js";
import type { Graph } from "../compiler/ir/graph.js";
import type { Tensor } from "../compiler/ir/tensor.js";
import { buildProgram } from "../compiler/kir/schedule.js";
import { attachPolicyFile } from "../compiler/lang/check.js";
import { importOnnxFile } from "../compiler/onnx/import.js";
import { graphReport } from "../compiler/report/layers.js";
import { type IdxImages, readIdxImages, readIdxLabels } from "../examples/fmnist-vit/idx.js";
import "../passes/index.js";
import { PassManager } from "../passes/manager.js";
import { compileProgram } from "../runtime/artifact.js";
import { nodeGpu } from "../runtime/webgpu/node.js";
import { WebGpuRuntime } from "../runtime/webgpu/runtime.js";

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (!xs.length) throw new Error("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The first line of an error message (schedule errors list every problem). */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg.split("\n");
  return lines.length > 1 ? `${lines[0]} (+${lines.length - 1} more lines)` : msg;
}

export interface TestSet {
  readonly images: IdxImages;
  readonly labels: Uint8Array;
  /** Where the images came from, for reports. */
  readonly source: string;
}

/**
 * The 10k Fashion-MNIST test images from ../shared/data next to the repository, else the 500
 * shipped in examples/fmnist-vit (`full` false then).
 */
export function loadTestSet(root: string): TestSet & { readonly full: boolean } {
  const shared = join(root, "..", "shared", "data", "fashion-mnist");
  const full = existsSync(join(shared, "t10k-images-idx3-ubyte.gz"));
  const dir = full ? shared : join(root, "examples", "fmnist-vit");
  const prefix = full ? "t10k" : "t500";
  const images = readIdxImages(join(dir, `${prefix}-images-idx3-ubyte.gz`));
  const labels = readIdxLabels(join(dir, `${prefix}-labels-idx1-ubyte.gz`));
  if (labels.length !== images.count)
    throw new Error(`${dir}: ${images.count} images but ${labels.length} labels`);
  return { images, labels, source: relative(root, join(dir, `${prefix}-images-idx3-ubyte.gz`)), full };
}

/** The model compiled with one policy (or none). */
export interface Variant {
  readonly name: string;
  readonly graph: Graph;
  /** FLOPs of one image (`graphReport` with batch = 1; adaptive counts at their capacity). */
  readonly flops: number;
  /** Tokens entering each block's attention. */
  readonly tokens: readonly number[];
}

/** ONNX file -> `onnx-structure` -> (policy attached, `reduce` pipeline) -> report. */
export function compileVariant(
  onnxPath: string,
  name: string,
  policy?: { readonly source: string; readonly file: string },
): Variant {
  const g = importOnnxFile(onnxPath);
  new PassManager("onnx-structure").run(g);
  if (policy) {
    attachPolicyFile(g, policy.source, policy.file);
    new PassManager("reduce").run(g);
  }
  // One image: every symbol but the data-dependent ones (those default to their capacity) is the batch.
  const batch1 = [...g.symbols.values()]
    .filter((s) => s.capacity === undefined)
    .map((s) => [s.name, 1] as const);
  const rep = graphReport(g, new Map(batch1));
  if (typeof rep.totalFlops !== "number")
    throw new Error(`${name}: FLOPs stay symbolic (unbound: ${rep.unbound.join(", ")})`);
  const tokens = rep.layers.filter((l) => l.tokens !== null).map((l) => l.tokens);
  if (tokens.some((t) => typeof t !== "number")) throw new Error(`${name}: symbolic token counts`);
  return { name, graph: g, flops: rep.totalFlops, tokens: tokens as number[] };
}

/** A compiled variant ready to run a batch of images; `logits` is f32[n, 10]. */
export interface Runner {
  run(x: Tensor): Promise<Tensor>;
  destroy(): void;
}

/** The WGSL backend on the local WebGPU adapter, or why there is none (then callers use the CPU). */
export type Backend =
  | { readonly kind: "wgsl"; readonly rt: WebGpuRuntime; readonly description: string }
  | { readonly kind: "cpu"; readonly why: string };

export async function openBackend(wantCpu = false): Promise<Backend> {
  if (wantCpu) return { kind: "cpu", why: "asked for the CPU backend" };
  try {
    const rt = await WebGpuRuntime.create(await nodeGpu());
    return { kind: "wgsl", rt, description: rt.ctx.description };
  } catch (e) {
    return { kind: "cpu", why: firstLine(e) };
  }
}

/** Loads a variant on the backend (WGSL: schedule, render, compile pipelines, upload weights). */
export async function loadRunner(b: Backend, v: Variant): Promise<Runner> {
  const g = v.graph;
  const input = g.inputs[0].name;
  const output = g.outputs[0].name;
  switch (b.kind) {
    case "wgsl": {
      const cp = compileProgram(buildProgram(g, b.rt.target), "wgsl", b.rt.target, renderWgsl);
      const prog = await b.rt.load(cp);
      return {
        run: async (x) => (await prog.run(new Map([[input, x]]))).get(output)!,
        destroy: () => prog.destroy(),
      };
    }
    case "cpu":
      return {
        run: (x) => Promise.resolve(runGraph(g, new Map([[input, x]])).get(output)!),
        destroy: () => undefined,
      };
  }
}

/** Deterministic values in [-1, 1) (mulberry32), so every run measures the same data. */
export function randomF32(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

/** Largest |a - b| over two equally long arrays (Infinity if the lengths differ). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
