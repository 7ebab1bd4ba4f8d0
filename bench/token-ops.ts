/// <reference types="@webgpu/types" />
// Micro benchmark of the token-op kernels on WebGPU: one-node tokens.merge / tokens.prune graphs at
// the Fashion-MNIST ViT shapes (x [B,197,64], metric [B,197,16]). Usage:
//   node --import tsx bench/token-ops.ts [--batch 1,32] [--runs 7] [--profile] [--base FILE]
// --base FILE: a module exporting lowerMerge / lowerPrune (e.g. an older compiler/ops/tokens-lower.ts
// saved as compiler/ops/tokens-lower.base.ts) timed against the current lowering in the same process,
// runs alternating, after checking that both give the same outputs (within 1e-6; refuses to time a
// mismatch). Reports per case the median wall time of a run (upload + dispatches + readback)
// and the median summed GPU time of its dispatches (each dispatch in its own submit).
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { renderWgsl } from "../backends/wgsl/render.js";
import { GraphBuilder } from "../compiler/builder.js";
import type { Attrs } from "../compiler/ir/attrs.js";
import type { Graph } from "../compiler/ir/graph.js";
import { sym } from "../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../compiler/ir/tensor.js";
import { buildProgram } from "../compiler/kir/schedule.js";
import type { Lowering } from "../compiler/kir/types.js";
import { getOp, type LowerCtx } from "../compiler/ops/registry.js";
import "../compiler/ops/index.js";
import { compileProgram } from "../runtime/artifact.js";
import { nodeGpu } from "../runtime/webgpu/node.js";
import type { GpuProgram } from "../runtime/webgpu/program.js";
import { WebGpuRuntime } from "../runtime/webgpu/runtime.js";
import { maxAbsDiff, median, randomF32 } from "./fmnist-eval.js";

const { values: opts } = parseArgs({
  options: {
    batch: { type: "string", default: "1,32" },
    runs: { type: "string", default: "7" },
    profile: { type: "boolean", default: false },
    base: { type: "string" },
  },
});
const RUNS = Number(opts.runs);
if (!Number.isInteger(RUNS) || RUNS < 3) throw new Error(`--runs ${opts.runs}: need an integer >= 3`);
const batches = opts.batch.split(",").map(Number);

type Lower = (ctx: LowerCtx) => Lowering;
interface Variant {
  readonly name: string;
  readonly merge: Lower;
  readonly prune: Lower;
}
const mergeDef = getOp("tokens.merge");
const pruneDef = getOp("tokens.prune");
if (!mergeDef?.lower || !pruneDef?.lower) throw new Error("tokens.merge / tokens.prune have no lowering");
const variants: Variant[] = [{ name: "current", merge: mergeDef.lower, prune: pruneDef.lower }];
if (opts.base) {
  const m = (await import(pathToFileURL(resolve(opts.base)).href)) as {
    lowerMerge: Lower;
    lowerPrune: Lower;
  };
  variants.unshift({ name: "base", merge: m.lowerMerge, prune: m.lowerPrune });
}

const N = 197;
interface Case {
  readonly name: string;
  readonly graph: () => Graph;
  readonly inputs: (b: number) => Map<string, Tensor>;
}
const batch = sym("batch");
const rnd = (shape: number[], seed: number, lo = -1, hi = 1): Tensor => {
  const v = randomF32(
    shape.reduce((a, b) => a * b, 1),
    seed,
  );
  return makeTensor(
    "f32",
    shape,
    Array.from(v, (u) => lo + ((u + 1) / 2) * (hi - lo)),
  );
};

function mergeCase(r: number, mc: boolean): Case {
  return {
    name: `merge${mc ? "-mctf" : ""} r=${r}`,
    graph: () => {
      const gb = new GraphBuilder(`merge_r${r}`);
      gb.symbol("batch");
      const x = gb.input("x", "f32", [batch, N, 64]);
      const m = gb.input("metric", "f32", [batch, N, 16]);
      const s = gb.input("size", "f32", [batch, N, 1]);
      const imp = mc ? gb.input("importance", "f32", [batch, N]) : null;
      const attrs: Attrs = mc ? { r, method: "multi_criteria" } : { r };
      const [y, z] = gb.ops("tokens.merge", [x, m, s, ...(imp ? [imp] : [])], attrs, 2);
      return gb.output(y, z);
    },
    inputs: (b) =>
      new Map([
        ["x", rnd([b, N, 64], 1)],
        ["metric", rnd([b, N, 16], 2)],
        ["size", rnd([b, N, 1], 3, 1, 3)],
        ...(mc ? [["importance", rnd([b, N], 4, 0, 1)] as const] : []),
      ]),
  };
}

function pruneCase(keep: number): Case {
  return {
    name: `prune keep=${keep}`,
    graph: () => {
      const gb = new GraphBuilder(`prune_k${keep}`);
      gb.symbol("batch");
      const x = gb.input("x", "f32", [batch, N, 64]);
      const s = gb.input("scores", "f32", [batch, N]);
      const [y, i] = gb.ops("tokens.prune", [x, s], { keep, protect_first: 1 }, 2);
      return gb.output(y, i);
    },
    inputs: (b) =>
      new Map([
        ["x", rnd([b, N, 64], 5)],
        ["scores", rnd([b, N], 6, 0, 1)],
      ]),
  };
}

const cases: Case[] = [
  mergeCase(16, false),
  mergeCase(24, false),
  mergeCase(24, true),
  mergeCase(48, false),
  pruneCase(Math.ceil(0.85 * N)),
];

const rt = await WebGpuRuntime.create(await nodeGpu());

async function load(c: Case, v: Variant): Promise<GpuProgram> {
  mergeDef!.lower = v.merge;
  pruneDef!.lower = v.prune;
  const g = c.graph();
  return rt.load(compileProgram(buildProgram(g, rt.target), "wgsl", rt.target, renderWgsl));
}

console.log(`token-op kernels on WebGPU, ${RUNS} runs per variant (medians)`);
for (const b of batches)
  for (const c of cases) {
    const progs = await Promise.all(variants.map((v) => load(c, v)));
    const inputs = c.inputs(b);
    const wall = progs.map(() => [] as number[]);
    const gpu = progs.map(() => [] as number[]);
    // First run (pipelines, buffers) doubles as the check that the variants agree.
    const outs = [];
    for (const p of progs) outs.push(await p.run(inputs));
    for (const [k, o] of outs.entries())
      for (const [name, t] of o) {
        const err = maxAbsDiff(t.data, outs[0].get(name)?.data ?? []);
        if (!(err <= 1e-6))
          throw new Error(`B=${b} ${c.name}: ${variants[k].name} output ${name} differs by ${err}`);
      }
    for (let i = 0; i < RUNS; i++)
      for (const [k, p] of progs.entries()) {
        const t = performance.now();
        await p.run(inputs);
        wall[k].push(performance.now() - t);
      }
    for (const [k, p] of progs.entries()) {
      const ds = await p.timeDispatches(inputs, { repeats: RUNS });
      gpu[k].push(ds.reduce((a, d) => a + d.ms, 0));
      if (opts.profile)
        console.log(
          `    ${variants[k].name}: ` +
            ds.map((d) => `${d.kernel}[${d.grid.join("x")}] ${d.ms.toFixed(2)}`).join(", "),
        );
    }
    const line = variants
      .map((v, k) => `${v.name} wall ${median(wall[k]).toFixed(2)} ms, gpu ${median(gpu[k]).toFixed(2)} ms`)
      .join(" | ");
    const ratio =
      variants.length === 2
        ? `  (wall ratio base/current ${(median(wall[0]) / median(wall[1])).toFixed(2)})`
        : "";
    console.log(`B=${b} ${c.name}: ${line}${ratio}`);
    for (const p of progs) p.destroy();
  }
process.exit(0);
