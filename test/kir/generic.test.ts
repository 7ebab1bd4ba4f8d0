/**
 * Generic kernels (compiler/kir/generic.ts): the Fashion-MNIST ViT reduced by a ToMe schedule has
 * a different static token count in every block; units that differ only in those counts share one
 * kernel and each step binds its own counts. The program matches the CPU reference on KIR, an
 * unreduced program is unchanged, and device artifacts round-trip the step bindings.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph, Value } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { kernelSymbols } from "../../compiler/kir/builder.js";
import type { Program } from "../../compiler/kir/program.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram, nodeName } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { compileVariant } from "../../bench/fmnist-eval.js";
import {
  ArtifactError,
  compileProgram,
  loadProgramArtifact,
  writeProgramArtifact,
} from "../../runtime/artifact.js";
import { repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
const onnx = join(ex, "vit_fmnist_opset17.onnx");
const policy = join(repoRoot, "bench", "policies", "tome-sched-48-40-16-8.tokr");

function reduced(): ReturnType<typeof compileVariant> {
  return compileVariant(onnx, "tome", { source: readFileSync(policy, "utf8"), file: policy });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Symbols each step's kernel reads that the program does not bind: all bound by the step. */
function assertStepsBind(p: Program): number {
  const graphSyms = new Set(p.symbols.map((s) => s.name));
  let generic = 0;
  for (const s of p.steps) {
    const own = kernelSymbols(p.kernels[s.kernel]).filter((n) => !graphSyms.has(n));
    for (const n of own) assert.ok(s.bind?.[n] !== undefined, `step ${s.nodes[0]} leaves ${n} unbound`);
    if (own.length) generic++;
  }
  return generic;
}

/** Distinct kernels per op family: the sorted ops of a step's nodes, joined by "+". */
function familyKernels(g: Graph, p: Program): Record<string, number> {
  const opOf = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o.name, n.op] as const)));
  const fams = new Map<string, Set<number>>();
  for (const s of p.steps) {
    const key = [...new Set(s.nodes.map((n) => opOf.get(n) ?? "?"))].sort().join("+");
    fams.set(key, (fams.get(key) ?? new Set()).add(s.kernel));
  }
  return Object.fromEntries([...fams].map(([k, ks]) => [k, ks.size]));
}

/** Families with one unit each in the reduced fmnist ViT (before block 0 or unreduced). */
const shared = { Concat: 1, Conv: 1, Expand: 1, Gather: 1, Transpose: 1 };

test("tome-sched-48-40-16-8 fmnist ViT: one kernel per class of units, KIR equals the reference", () => {
  const v = reduced();
  // Blocks 0-4 have their own token counts (block 5 keeps block 4's).
  assert.equal(new Set(v.tokens).size, 5, `tokens ${v.tokens.join(",")}`);
  const perShape = buildProgram(v.graph, DEFAULT_TARGET, { genericKernels: false });
  const p = buildProgram(v.graph, DEFAULT_TARGET);
  assert.equal(p.steps.length, perShape.steps.length);
  // Distinct kernels per op family (the ops of a step's nodes): per shape, one per block's token
  // count; generic, one per class (a family with two classes has units that differ in more than
  // their token counts). An exact count, so a class split or a lost fold shows.
  assert.deepEqual(familyKernels(v.graph, perShape), {
    ...shared,
    "Add+Gelu+MatMul": 4,
    "Add+MatMul": 9,
    Add: 6,
    Gemm: 6,
    LayerNormalization: 5,
    Log: 4,
    ReduceMean: 4,
    attention: 5,
    "tokens.merge": 16,
  });
  assert.deepEqual(familyKernels(v.graph, p), {
    ...shared,
    "Add+Gelu+MatMul": 1,
    "Add+MatMul": 2,
    Add: 2,
    Gemm: 2,
    LayerNormalization: 1,
    Log: 1,
    ReduceMean: 1,
    attention: 2,
    "tokens.merge": 8,
  });
  assert.equal(p.kernels.length, 25);
  const genericSteps = assertStepsBind(p);
  assert.ok(genericSteps >= 4 * v.tokens.length, `${genericSteps} steps run generic kernels`);
  // Buffers (sizes, live ranges) do not depend on how the kernels are shared.
  assert.deepEqual(
    p.buffers.map((b) => [b.name, b.size, b.firstUse, b.lastUse]),
    perShape.buffers.map((b) => [b.name, b.size, b.firstUse, b.lastUse]),
  );

  const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, 2);
  const feeds = new Map([[v.graph.inputs[0].name, x]]);
  const want = runGraph(v.graph, feeds).get(v.graph.outputs[0].name)!;
  for (const order of ["forward", "reverse"] as const) {
    const got = runProgramOnKir(p, feeds, { order }).get(v.graph.outputs[0].name)!;
    assert.deepEqual([...got.shape], [...want.shape]);
    assert.ok(maxAbsDiff(got.data, want.data) < 1e-3, `max diff ${maxAbsDiff(got.data, want.data)}`);
  }
});

test("an unreduced program is unchanged by generic kernels (byte-identical kernels and steps)", () => {
  const v = compileVariant(onnx, "unreduced");
  const a = buildProgram(v.graph, DEFAULT_TARGET);
  const b = buildProgram(v.graph, DEFAULT_TARGET, { genericKernels: false });
  assert.equal(JSON.stringify(a.kernels), JSON.stringify(b.kernels));
  assert.equal(JSON.stringify(a.steps), JSON.stringify(b.steps));
  assert.ok(a.steps.every((s) => s.bind === undefined));
});

test("device artifacts round-trip step bindings; a step that leaves a kernel symbol unbound is refused", async () => {
  const v = reduced();
  const p = buildProgram(v.graph, DEFAULT_TARGET);
  const files = writeProgramArtifact(compileProgram(p, "wgsl", DEFAULT_TARGET, renderWgsl));
  const get = (n: string): Promise<Uint8Array> => Promise.resolve(files.get(n)!);
  const back = await loadProgramArtifact(get);
  assert.deepEqual(
    back.steps.map((s) => s.bind ?? null),
    p.steps.map((s) => s.bind ?? null),
  );
  assert.ok(back.steps.some((s) => s.bind !== undefined));
  // Drop one step's binding: the loader names the step and the symbol.
  const m = JSON.parse(new TextDecoder().decode(files.get("manifest.json")!)) as {
    program: { steps: { bind?: Record<string, number> }[] };
  };
  const i = m.program.steps.findIndex((s) => s.bind !== undefined);
  delete m.program.steps[i].bind;
  const broken = new Map(files).set("manifest.json", new TextEncoder().encode(JSON.stringify(m)));
  await assert.rejects(
    loadProgramArtifact((n) => Promise.resolve(broken.get(n)!)),
    (e: unknown) => e instanceof ArtifactError && new RegExp(`step ${i} .*reads symbol g`).test(e.message),
  );
});

test("a broadcast axis (1) and a full-size axis never share a generic kernel", () => {
  // Add(a[4,8], b[4,1]) and Add(c[4,8], d[4,8]) differ in one static dim, but b's 1 broadcasts.
  const src = `
model m(a: f32[4, 8], b: f32[4, 1], c: f32[4, 8], d: f32[4, 8]) -> (y: f32[4, 8], z: f32[4, 8]) {
  y = exp(a + b)
  z = exp(c + d)
}
`;
  const g = compileTokr(src, "broadcast.tokr");
  const p = buildProgram(g, DEFAULT_TARGET);
  assert.equal(assertStepsBind(p), 0, "no step binds a class symbol");
  const feeds = new Map(
    (["a", "b", "c", "d"] as const).map((n, i) => {
      const shape = n === "b" ? [4, 1] : [4, 8];
      const len = shape[0] * shape[1];
      return [
        n,
        makeTensor(
          "f32",
          shape,
          Array.from({ length: len }, (_, k) => Math.sin(k + 7 * i)),
        ),
      ] as const;
    }),
  );
  const want = runGraph(g, feeds);
  const got = runProgramOnKir(p, feeds);
  for (const name of ["y", "z"])
    assert.ok(maxAbsDiff(got.get(name)!.data, want.get(name)!.data) < 1e-6, name);
});

test("two attentions over 6 and 3 tokens: one kernel, steps bind 6 and 3, scores kept privately for 6", () => {
  const b = new GraphBuilder("two_attn");
  const ins = (n: number, tag: string): Value[] =>
    ["q", "k", "v"].map((r) => b.input(`${r}${tag}`, "f32", [1, 2, n, 4]));
  const a6 = b.op("attention", ins(6, "6"));
  const a3 = b.op("attention", ins(3, "3"));
  const g = b.output(b.op("Relu", [a6]), b.op("Relu", [a3]));
  const p = buildProgram(g, DEFAULT_TARGET);
  const perShape = buildProgram(g, DEFAULT_TARGET, { genericKernels: false });
  const attn = (q: Program): Program["kernels"] => q.kernels.filter((k) => k.name.includes("attn"));
  assert.equal(attn(perShape).length, 2);
  assert.equal(attn(p).length, 1);
  assert.equal(p.kernels.length, perShape.kernels.length - 2); // the Relus share one kernel too
  const k = attn(p)[0];
  const s = kernelSymbols(k).filter((n) => n !== "batch");
  assert.equal(s.length, 1, `symbols ${kernelSymbols(k).join(",")}`);
  const binds = p.steps.filter((st) => p.kernels[st.kernel] === k).map((st) => st.bind?.[s[0]]);
  assert.deepEqual(binds, [6, 3]);
  // The rows variant sizes its private score arrays by the class maximum (6 keys), not online softmax.
  assert.ok(
    k.arrays.some((a) => a.scope === "private" && a.size === 6),
    JSON.stringify(k.arrays),
  );
  const rnd = (n: number, seed: number): Tensor =>
    makeTensor(
      "f32",
      [1, 2, n, 4],
      Array.from({ length: 8 * n }, (_, i) => Math.sin(i * 0.7 + seed)),
    );
  const feeds = new Map<string, Tensor>();
  for (const [n, tag] of [
    [6, "6"],
    [3, "3"],
  ] as const)
    ["q", "k", "v"].forEach((r, i) => feeds.set(`${r}${tag}`, rnd(n, i + n)));
  const want = runGraph(g, feeds);
  const got = runProgramOnKir(p, feeds);
  for (const [name, w] of want) assert.ok(maxAbsDiff(got.get(name)!.data, w.data) < 1e-5, name);
});

test("tome-sched-48-40-16-8: merges removing 48, 40, 16 and 8 tokens share kernels (r read from the dims)", () => {
  const v = reduced();
  const merges = new Set(v.graph.nodes.filter((n) => n.op === "tokens.merge").map((n) => nodeName(n)));
  assert.equal(merges.size, 4);
  /** Distinct kernels of the merge steps, and each merge step's class-symbol bindings. */
  const mergeKernels = (p: Program): { kernels: number; binds: string[] } => {
    const steps = p.steps.filter((s) => s.nodes.some((n) => merges.has(n)));
    return {
      kernels: new Set(steps.map((s) => s.kernel)).size,
      binds: steps.map((s) => JSON.stringify(s.bind ?? {})),
    };
  };
  const perShape = mergeKernels(buildProgram(v.graph, DEFAULT_TARGET, { genericKernels: false }));
  const p = buildProgram(v.graph, DEFAULT_TARGET);
  const generic = mergeKernels(p);
  // Four launches per merge (norms, match, plan, gather): 16 kernels per shape. Shared: block 0
  // (no size input yet) keeps its own four, blocks 1-3 share four.
  assert.equal(perShape.kernels, 16);
  assert.equal(generic.kernels, 8);
  assert.equal(p.genericRefusals, undefined);
  // The three shared merges bind different token counts.
  assert.equal(new Set(generic.binds.filter((b) => b !== "{}")).size, 3);
});

test("prune-merge: prunes keeping different counts share kernels (keep read from the dims), KIR equals the reference", () => {
  const file = join(repoRoot, "bench", "policies", "prune-merge.tokr");
  const v = compileVariant(onnx, "prune-merge", { source: readFileSync(file, "utf8"), file });
  const prunes = new Set(v.graph.nodes.filter((n) => n.op === "tokens.prune").map((n) => nodeName(n)));
  assert.equal(prunes.size, 5);
  const pruneKernels = (p: Program): number =>
    new Set(p.steps.filter((s) => s.nodes.some((n) => prunes.has(n))).map((s) => s.kernel)).size;
  assert.equal(pruneKernels(buildProgram(v.graph, DEFAULT_TARGET, { genericKernels: false })), 15);
  const p = buildProgram(v.graph, DEFAULT_TARGET);
  assert.equal(pruneKernels(p), 3);
  const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, 2);
  const feeds = new Map([[v.graph.inputs[0].name, x]]);
  const want = runGraph(v.graph, feeds).get(v.graph.outputs[0].name)!;
  const got = runProgramOnKir(p, feeds).get(v.graph.outputs[0].name)!;
  assert.ok(maxAbsDiff(got.data, want.data) < 1e-3, `max diff ${maxAbsDiff(got.data, want.data)}`);
});
