/// <reference types="@webgpu/types" />
/**
 * Compile-time choice of the matmul style (`Target.matmul`: register blocking or workgroup
 * tiling, compiler/ops/linalg-lower.ts) by timing both on the device for the model's largest
 * matmul. No Node imports: the cache is passed in (a JSON file in the CLI).
 */
import { renderWgsl } from "../../backends/wgsl/render.js";
import { Graph, type Node } from "../../compiler/ir/graph.js";
import { type Dim, evalDim, freeSymbols } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { tensorType, type TensorType } from "../../compiler/ir/types.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import type { Target } from "../../compiler/kir/types.js";
import { compileProgram } from "../artifact.js";
import type { WebGpuRuntime } from "./runtime.js";

export type MatmulStyle = Target["matmul"];
const STYLES: readonly MatmulStyle[] = ["register", "tiled"];

/** The matmul the tuner timed, its timings and the choice (recorded in the artifact manifest). */
export interface MatmulTuning {
  readonly adapter: string;
  /** The graph node (first output name), op, and its input shapes with every symbol at 1. */
  readonly node: string;
  readonly op: string;
  readonly shapes: readonly (readonly number[])[];
  readonly flops: number;
  /** Best of a few timed batches, milliseconds per run of the node's kernels. */
  readonly ms: Readonly<Record<MatmulStyle, number>>;
  readonly choice: MatmulStyle;
  /** True when the result came from the cache instead of timing. */
  readonly cached: boolean;
}

/** Where tunings persist between compiles (keyed by adapter description and problem). */
export interface TuningCache {
  get(key: string): MatmulTuning | undefined;
  set(key: string, value: MatmulTuning): void;
}

/** A matmul node of a graph with numeric shapes. */
export interface MatmulProblem {
  readonly node: Node;
  readonly types: readonly (TensorType | null)[];
  readonly outs: readonly TensorType[];
  readonly flops: number;
}

const numeric = (t: TensorType, env: ReadonlyMap<string, number>): TensorType =>
  tensorType(
    t.dtype,
    t.dims.map((d) => evalDim(d, env)),
    t.axes,
  );

/**
 * The MatMul/Gemm node with the most flops, with every graph symbol bound to 1 (the batch-1
 * latency case; data-dependent symbols at their capacity when it is a number).
 */
export function largestMatmul(g: Graph): MatmulProblem | undefined {
  const env = new Map<string, number>();
  const bind = (d: Dim): void => {
    for (const s of freeSymbols(d)) if (!env.has(s)) env.set(s, 1);
  };
  for (const s of g.symbols.values()) if (typeof s.capacity === "number") env.set(s.name, s.capacity);
  let best: MatmulProblem | undefined;
  for (const n of g.nodes) {
    if (n.op !== "MatMul" && n.op !== "Gemm") continue;
    const a = n.inputs[0];
    if (!a) continue;
    for (const v of [...n.inputs, ...n.outputs]) if (v) v.type.dims.forEach(bind);
    const types = n.inputs.map((v) => (v ? numeric(v.type, env) : null));
    const outs = n.outputs.map((o) => numeric(o.type, env));
    const ad = types[0]!.dims as number[];
    const k = n.op === "Gemm" && n.attrs.transA ? ad[0] : ad[ad.length - 1];
    const flops = 2 * k * (outs[0].dims as number[]).reduce((x, y) => x * y, 1);
    if (!best || flops > best.flops) best = { node: n, types, outs, flops };
  }
  return best;
}

/** A one-node graph of the problem (all its inputs are graph inputs). */
function problemGraph(p: MatmulProblem): Graph {
  const g = new Graph("autotune");
  const ins = p.types.map((t, i) => (t ? g.addInput(t, `x${i}`) : null));
  const n = g.addNode(p.node.op, ins, p.outs, p.node.attrs, { names: ["y"] });
  g.outputs.push(n.outputs[0]);
  return g;
}

/** Cache key: the adapter, the problem and the precision. */
export function tuningKey(adapter: string, p: MatmulProblem, f16: boolean): string {
  const shapes = p.types.map((t) => (t ? `${t.dtype}[${t.dims.join("x")}]` : "-")).join(",");
  return `${adapter}|${p.node.op}(${shapes})|f16=${f16}`;
}

/**
 * Times the register and tiled matmul styles on the device for `g`'s largest matmul and returns
 * the faster (undefined when the graph has no matmul). Each style: a warm-up run, then the best
 * of 3 batches sized to ~30 ms.
 */
export async function tuneMatmul(
  rt: WebGpuRuntime,
  g: Graph,
  cache?: TuningCache,
): Promise<MatmulTuning | undefined> {
  const p = largestMatmul(g);
  if (!p) return undefined;
  const key = tuningKey(rt.ctx.description, p, rt.target.f16);
  const hit = cache?.get(key);
  if (hit) return { ...hit, cached: true };
  const graph = problemGraph(p);
  const feeds = new Map(
    p.types.flatMap((t, i) => {
      if (!t) return [];
      const dims = t.dims as number[];
      const n = dims.reduce((x, y) => x * y, 1);
      const data = Float32Array.from({ length: n }, (_, j) => ((j * 7919) % 13) / 13 - 0.5);
      return [[`x${i}`, makeTensor(t.dtype, dims, data)] as const];
    }),
  );
  const ms = {} as Record<MatmulStyle, number>;
  for (const style of STYLES) {
    const target: Target = { ...rt.target, matmul: style };
    const program = await rt.load(compileProgram(buildProgram(graph, target), "wgsl", target, renderWgsl));
    try {
      const warm = await program.time(feeds, 1);
      const repeats = Math.max(1, Math.min(200, Math.ceil(30 / Math.max(warm, 0.01))));
      let best = Infinity;
      for (let i = 0; i < 3; i++) best = Math.min(best, await program.time(feeds, repeats));
      ms[style] = best;
    } finally {
      program.destroy();
    }
  }
  const choice = STYLES.reduce((a, b) => (ms[b] < ms[a] ? b : a));
  const tuning: MatmulTuning = {
    adapter: rt.ctx.description,
    node: p.node.outputs[0]?.name ?? `#${p.node.id}`,
    op: p.node.op,
    shapes: p.types.flatMap((t) => (t ? [t.dims as number[]] : [])),
    flops: p.flops,
    ms,
    choice,
    cached: false,
  };
  cache?.set(key, tuning);
  return tuning;
}
