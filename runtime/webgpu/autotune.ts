/// <reference types="@webgpu/types" />
/**
 * Compile-time choice of the matmul kernel variant (`Target.matmul` style and
 * `Target.matmulVariant`: register blocking or workgroup tiling, tile shapes; see `MATMUL_VARIANTS`
 * in compiler/ops/linalg-lower.ts) by timing every variant on the device for the model's largest
 * matmul. No Node imports: the cache is passed in (a JSON file in the CLI).
 */
import { renderWgsl } from "../../backends/wgsl/render.js";
import { Graph, type Node } from "../../compiler/ir/graph.js";
import { type Dim, evalDim, freeSymbols } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { tensorType, type TensorType } from "../../compiler/ir/types.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import type { Target } from "../../compiler/kir/types.js";
import { MATMUL_VARIANTS, type MatmulVariant, lowerMatmul } from "../../compiler/ops/linalg-lower.js";
import { getOp } from "../../compiler/ops/registry.js";
import { nodeFlops } from "../../compiler/report/flops.js";
import { compileProgram } from "../artifact.js";
import type { GpuProgram } from "./program.js";
import type { WebGpuRuntime } from "./runtime.js";

export type MatmulStyle = Target["matmul"];

/** The matmul the tuner timed, its timings and the choice (recorded in the artifact manifest). */
export interface MatmulTuning {
  readonly adapter: string;
  /** The graph node (first output name), op, and its input shapes with every symbol at 1. */
  readonly node: string;
  readonly op: string;
  readonly shapes: readonly (readonly number[])[];
  readonly flops: number;
  /** Best of a few timed batches, milliseconds per run of the node's kernels: the best variant of each style. */
  readonly ms: Readonly<Record<MatmulStyle, number>>;
  /** The same per variant name (absent in cache entries written before variants were tuned). */
  readonly variants?: Readonly<Record<string, number>>;
  /** The style of the fastest variant. */
  readonly choice: MatmulStyle;
  /** The fastest variant's name (absent: the style's default). */
  readonly variant?: string;
  /** True when the result came from the cache instead of timing. */
  readonly cached: boolean;
}

/** `base` with the tuned matmul style and variant (`base` itself without a tuning). */
export function tunedTarget(base: Target, t: MatmulTuning | undefined): Target {
  if (!t) return base;
  const { matmulVariant: _old, ...rest } = base;
  return t.variant === undefined
    ? { ...rest, matmul: t.choice }
    : { ...rest, matmul: t.choice, matmulVariant: t.variant };
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

/** Ops whose kernels are the tuned matmul lowering (MatMul, Gemm), by their OpDef's `lower`. */
function isTunedMatmul(op: string): boolean {
  return getOp(op)?.lower === lowerMatmul;
}

/**
 * The node lowered by the matmul lowering with the most flops (`OpDef.flops`), with every graph
 * symbol bound to 1 (the batch-1 latency case; data-dependent symbols at their capacity when it is
 * a number).
 */
export function largestMatmul(g: Graph): MatmulProblem | undefined {
  const env = new Map<string, number>();
  const bind = (d: Dim): void => {
    for (const s of freeSymbols(d)) if (!env.has(s)) env.set(s, 1);
  };
  for (const s of g.symbols.values()) if (typeof s.capacity === "number") env.set(s.name, s.capacity);
  const counts = nodeFlops(g);
  let best: MatmulProblem | undefined;
  g.nodes.forEach((n, i) => {
    const count = counts[i];
    if (!isTunedMatmul(n.op) || count === undefined || !n.inputs[0]) return;
    for (const v of [...n.inputs, ...n.outputs]) if (v) v.type.dims.forEach(bind);
    bind(count);
    const flops = evalDim(count, env);
    const types = n.inputs.map((v) => (v ? numeric(v.type, env) : null));
    const outs = n.outputs.map((o) => numeric(o.type, env));
    if (!best || flops > best.flops) best = { node: n, types, outs, flops };
  });
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
 * Times every matmul variant (`MATMUL_VARIANTS`) on the device for `g`'s largest matmul and
 * returns the fastest (undefined when the graph has no matmul). Each variant: a warm-up run, a
 * timed run, then (unless over 100 ms and 3x slower than the best such run) the best of 3 batches sized to ~30 ms,
 * the variants' batches interleaved.
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
  // All variants are loaded, warmed up, then timed in 3 interleaved rounds (so load from other
  // processes drifts over all alike); a slow one (see below) is not timed further.
  const variants: Record<string, number> = {};
  const ms: Record<MatmulStyle, number> = { register: Infinity, tiled: Infinity };
  const loaded: { v: MatmulVariant; program: GpuProgram; warm: number; repeats: number }[] = [];
  try {
    for (const v of MATMUL_VARIANTS) {
      const target: Target = { ...rt.target, matmul: v.style, matmulVariant: v.name };
      const program = await rt.load(compileProgram(buildProgram(graph, target), "wgsl", target, renderWgsl));
      loaded.push({ v, program, warm: Infinity, repeats: 1 });
    }
    for (const l of loaded) {
      await l.program.time(feeds, 1); // first run: pipeline and buffer setup
      l.warm = await l.program.time(feeds, 1);
      l.repeats = Math.max(1, Math.min(200, Math.ceil(30 / Math.max(l.warm, 0.01))));
      variants[l.v.name] = l.warm;
    }
    const bestWarm = Math.min(...loaded.map((l) => l.warm));
    // Small problems are cheap to time, and one run of them is too noisy to rule a variant out.
    const timed = loaded.filter((l) => l.warm <= 3 * bestWarm || l.warm < 100);
    for (let round = 0; round < 3; round++)
      for (const l of timed)
        variants[l.v.name] = Math.min(variants[l.v.name]!, await l.program.time(feeds, l.repeats));
  } finally {
    for (const l of loaded) l.program.destroy();
  }
  let best = MATMUL_VARIANTS[0];
  for (const v of MATMUL_VARIANTS) {
    ms[v.style] = Math.min(ms[v.style], variants[v.name]!);
    if (variants[v.name]! < variants[best.name]!) best = v;
  }
  const tuning: MatmulTuning = {
    adapter: rt.ctx.description,
    node: p.node.outputs[0]?.name ?? `#${p.node.id}`,
    op: p.node.op,
    shapes: p.types.flatMap((t) => (t ? [t.dims as number[]] : [])),
    flops: p.flops,
    ms,
    variants,
    choice: best.style,
    variant: best.name,
    cached: false,
  };
  cache?.set(key, tuning);
  return tuning;
}
