/// <reference types="@webgpu/types" />
// Fused `attention` kernel micro benchmark on the WebGPU runtime (lavapipe here). Usage:
//   node --import tsx bench/attention.ts [--runs N] [--reps N] [--shapes s1,s2] [--variants v1,v2]
//     [--base compiler/ops/attention-lower.base.ts]
// One-node graphs at the Fashion-MNIST ViT and vit_b_16 shapes, lowered by buildProgram for the
// runtime's target; every variant (table VARIANTS; `base`: the `lowerAttention` of the `--base`
// file, an older attention-lower.ts saved next to the current one) is loaded in this one process
// and the variants are timed interleaved (round robin), `--reps` dispatches per submit, median of
// `--runs` rounds. The first variant is the baseline of the printed ratios. See bench/README.md.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { renderWgsl } from "../backends/wgsl/render.js";
import { runGraph } from "../backends/cpu/interpreter.js";
import { GraphBuilder } from "../compiler/builder.js";
import type { Graph } from "../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../compiler/ir/tensor.js";
import { buildProgram } from "../compiler/kir/schedule.js";
import type { Lowering } from "../compiler/kir/types.js";
import { attentionDef, type ScoreKind } from "../compiler/ops/attention.js";
import { attentionLowering, lowerAttention, type RowsTuning } from "../compiler/ops/attention-lower.js";
import type { LowerCtx } from "../compiler/ops/registry.js";
import "../passes/index.js";
import { compileProgram } from "../runtime/artifact.js";
import { nodeGpu } from "../runtime/webgpu/node.js";
import type { GpuProgram } from "../runtime/webgpu/program.js";
import { WebGpuRuntime } from "../runtime/webgpu/runtime.js";
import { maxAbsDiff, median, randomF32 } from "./fmnist-eval.js";

/** A benchmark shape: q/k/v `[B, H, N, D]` and the importance kind. */
interface Shape {
  readonly name: string;
  readonly dims: readonly [number, number, number, number];
  readonly scores: ScoreKind;
}

const SHAPES: readonly Shape[] = [
  { name: "fmnist-b1", dims: [1, 4, 197, 16], scores: "none" },
  { name: "fmnist-b32", dims: [32, 4, 197, 16], scores: "none" },
  { name: "fmnist-b32-cls", dims: [32, 4, 197, 16], scores: "cls" },
  { name: "fmnist-b32-colsum", dims: [32, 4, 197, 16], scores: "colsum" },
  { name: "vit_b_16", dims: [1, 12, 197, 64], scores: "none" },
];

/** Lowerings to compare: `default` is what the compiler picks; the others pin a variant / knobs. */
const VARIANTS: Record<string, (ctx: LowerCtx) => Lowering> = {
  default: lowerAttention,
  workgroup: (ctx) => attentionLowering(ctx, "workgroup"),
  ...Object.fromEntries(
    (
      [
        ["rows-r1", { rows: 1 }],
        ["rows-r2", { rows: 2 }],
        ["rows-r4", { rows: 4 }],
        ["rows-r5", { rows: 5 }],
        ["rows-wg4", { wg: 4 }],
        ["rows-wg16", { wg: 16 }],
        ["rows-online", { online: true }],
        ["rows-r2-wg4", { rows: 2, wg: 4 }],
        ["rows-r3", { rows: 3 }],
      ] as const satisfies readonly (readonly [string, RowsTuning])[]
    ).map(([n, t]) => [n, (ctx: LowerCtx) => attentionLowering(ctx, "rows", t)]),
  ),
};

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    reps: { type: "string", default: "3" },
    shapes: { type: "string" },
    variants: { type: "string" },
    base: { type: "string" },
  },
});
if (opts.base) {
  const mod = (await import(pathToFileURL(resolve(opts.base)).href)) as {
    lowerAttention?: (ctx: LowerCtx) => Lowering;
  };
  if (!mod.lowerAttention) throw new Error(`--base ${opts.base}: the module exports no lowerAttention`);
  VARIANTS.base = mod.lowerAttention;
}
const RUNS = Number(opts.runs);
const REPS = Number(opts.reps);
if (!Number.isInteger(RUNS) || RUNS < 7) throw new Error(`--runs ${opts.runs}: need an integer >= 7`);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps ${opts.reps}: need an integer >= 1`);
const shapes = opts.shapes ? opts.shapes.split(",").map(pick(SHAPES, "shape")) : SHAPES;
const variants = (opts.variants ?? (opts.base ? "base,default" : "default,rows-online"))
  .split(",")
  .map((v) => {
    if (!(v in VARIANTS))
      throw new Error(`--variants: unknown '${v}' (known: ${Object.keys(VARIANTS).join(", ")})`);
    return v;
  });

function pick<T extends { name: string }>(xs: readonly T[], what: string): (n: string) => T {
  return (n) => {
    const x = xs.find((s) => s.name === n);
    if (!x) throw new Error(`unknown ${what} '${n}' (known: ${xs.map((s) => s.name).join(", ")})`);
    return x;
  };
}

function attentionGraph(s: Shape): Graph {
  const gb = new GraphBuilder(`attn_${s.name}`);
  const [q, k, v] = ["q", "k", "v"].map((n) => gb.input(n, "f32", s.dims));
  const outs = gb.ops("attention", [q, k, v], { scores: s.scores }, s.scores === "none" ? 1 : 2);
  return gb.output(...outs);
}

/** FLOPs as `attention`'s count: two matmuls plus ~5 per (query, key) pair. */
function flops(s: Shape): number {
  const [B, H, N, D] = s.dims;
  return B * H * N * N * (4 * D + 5);
}

const rt = await WebGpuRuntime.create(await nodeGpu());
const original = attentionDef.lower;
console.log(`# fused attention micro benchmark (${rt.ctx.description})`);
console.log(`date: ${new Date().toISOString()}; runs ${RUNS}, ${REPS} dispatches per submit`);
for (const s of shapes) {
  const g = attentionGraph(s);
  const inputs = new Map<string, Tensor>(
    g.inputs.map((x, i) => [
      x.name,
      makeTensor(
        "f32",
        [...s.dims],
        randomF32(
          s.dims.reduce((a, b) => a * b),
          i + 1,
        ),
      ),
    ]),
  );
  const want = runGraph(g, inputs);
  const progs: GpuProgram[] = [];
  for (const v of variants) {
    attentionDef.lower = VARIANTS[v];
    const cp = compileProgram(buildProgram(g, rt.target), "wgsl", rt.target, renderWgsl);
    attentionDef.lower = original;
    const t0 = performance.now();
    const prog = await rt.load(cp);
    const got = await prog.run(inputs);
    const t1 = performance.now();
    console.error(`${s.name} ${v}: loaded and first run in ${(t1 - t0).toFixed(0)} ms`);
    const err = Math.max(...g.outputs.map((o) => maxAbsDiff(got.get(o.name)!.data, want.get(o.name)!.data)));
    if (!(err < 1e-4)) throw new Error(`${s.name} ${v}: max abs error ${err} against the CPU reference`);
    await prog.time(inputs, 1); // warm-up (pipeline compilation)
    progs.push(prog);
  }
  const ms: number[][] = variants.map(() => []);
  for (let r = 0; r < RUNS; r++)
    for (let x = 0; x < progs.length; x++) ms[x].push(await progs[x].time(inputs, REPS));
  const base = median(ms[0]);
  console.log(`\n## ${s.name} [${s.dims.join(",")}] scores ${s.scores}`);
  variants.forEach((v, x) => {
    const m = median(ms[x]);
    const paired = median(ms[x].map((t, r) => t / ms[0][r]));
    console.log(
      `${v.padEnd(14)} ${m.toFixed(3).padStart(9)} ms  ${(flops(s) / m / 1e6).toFixed(2).padStart(6)} GFLOP/s` +
        `  x${(m / base).toFixed(2)} (paired median x${paired.toFixed(2)})`,
    );
  });
}
rt.device.destroy();
