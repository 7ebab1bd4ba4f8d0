/**
 * Fewer copy kernels (compiler/kir/views.ts, schedule.ts): reductions read Transpose / Slice
 * chains through strides, view-like nodes that keep row-major order alias their input, and views
 * cross capacity-padded values (adaptive prune). Programs match the CPU reference on the KIR
 * interpreter; step counts are exact.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph, Value } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import type { Program } from "../../compiler/kir/program.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram, ScheduleError } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import { rowMajorView, type ViewGraph } from "../../compiler/kir/views.js";
import { getOp } from "../../compiler/ops/registry.js";
import { computeKnown } from "../../compiler/infer.js";
import "../../compiler/ops/index.js";
import { assertClose } from "../util/helpers.js";
import { images, reduce } from "../passes/reduce-fixtures.js";
import { leadingBox, smallVit, withCounts } from "./adaptive-fixtures.js";
import { wave } from "./views-fixtures.js";

const B = sym("B");

/** Program steps computing nodes of `op` (by the names of their first outputs). */
function stepsOf(p: Program, g: Graph, op: string): number {
  const names = new Set(g.nodes.filter((n) => n.op === op).map((n) => n.outputs[0].name));
  return p.steps.filter((s) => s.nodes.some((n) => names.has(n))).length;
}

/** Every output of the program equals the reference's (leading box of capacity-padded ones), both orders. */
function matchesReference(
  g: Graph,
  p: Program,
  feeds: Map<string, ReturnType<typeof wave>>,
  tol = 1e-5,
): void {
  const want = runGraph(g, feeds);
  for (const order of ["forward", "reverse"] as const) {
    const got = runProgramOnKir(p, feeds, { order });
    for (const [name, w] of want)
      assertClose(leadingBox(got.get(name)!, w.shape), w, tol, `${name} (${order})`);
  }
}

const ints = (b: GraphBuilder, vs: number[]): Value => b.const("i64", [vs.length], vs);

describe("reductions read strided inputs", () => {
  it("hand-checked: ReduceSum over axis 1 of a transposed [2, 3] is its column sums, with no copy", () => {
    const b = new GraphBuilder("colsum");
    const x = b.input("x", "f32", [2, 3]);
    const t = b.op("Transpose", [b.op("Neg", [x])], { perm: [1, 0] });
    const y = b.op("ReduceSum", [t], { axes: [1], keepdims: 0 });
    const g = b.output(y);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Transpose"), 0);
    assert.equal(p.steps.length, 2); // Neg, the reduction reading it transposed
    const feeds = new Map([["x", makeTensor("f32", [2, 3], [1, 2, 3, 10, 20, 30])]]);
    assert.deepEqual([...runProgramOnKir(p, feeds).get(y.name)!.data], [-11, -22, -33]);
    // Without views the Transpose is a copy kernel.
    assert.equal(stepsOf(buildProgram(g, DEFAULT_TARGET, { stridedViews: false }), g, "Transpose"), 1);
  });

  it("the axis innermost in storage picks the plan: a reduced axis transposed out of last place is cooperative", () => {
    // x [2, 8, 64] transposed to [2, 64, 8] (strides [512, 1, 64]), summed over the 64: the logical
    // last axis is kept (8) but the reduced one is contiguous, so a workgroup shares each row.
    const b = new GraphBuilder("inner");
    const x = b.input("x", "f32", [2, 8, 64]);
    const t = b.op("Transpose", [b.op("Neg", [x])], { perm: [0, 2, 1] });
    const y = b.op("ReduceSum", [t], { axes: [1], keepdims: 0 });
    const g = b.output(y);
    const gpu: Target = { ...DEFAULT_TARGET, matmul: "tiled" };
    const p = buildProgram(g, gpu);
    assert.equal(stepsOf(p, g, "Transpose"), 0);
    const red = p.kernels[p.steps[p.steps.length - 1].kernel];
    assert.ok(red.workgroupSize[0] > 1 && red.grid[0] === 16, JSON.stringify([red.workgroupSize, red.grid]));
    // Summed over the 8 instead (stride 64; the kept 64 is contiguous): one invocation per row.
    const b2 = new GraphBuilder("strided_rows");
    const x2 = b2.input("x", "f32", [2, 8, 64]);
    const t2 = b2.op("Transpose", [b2.op("Neg", [x2])], { perm: [0, 2, 1] });
    const y2 = b2.op("ReduceSum", [t2], { axes: [2], keepdims: 0 });
    const g2 = b2.output(y2);
    const p2 = buildProgram(g2, gpu);
    const red2 = p2.kernels[p2.steps[p2.steps.length - 1].kernel];
    assert.equal(stepsOf(p2, g2, "Transpose"), 0);
    assert.ok(
      red2.workgroupSize[0] > 1 && red2.grid[0] === 128 / red2.workgroupSize[0],
      JSON.stringify(red2),
    );
    const feeds = new Map([["x", wave([2, 8, 64], 3)]]);
    matchesReference(g, p, feeds);
    matchesReference(g2, p2, feeds);
  });

  it("ReduceMean / ReduceSum / ReduceMax over kept and reduced axes of Transpose and Slice chains", () => {
    const b = new GraphBuilder("reduces");
    b.symbol("B");
    const x = b.input("x", "f32", [B, 6, 8]);
    const r = b.op("Relu", [x]);
    // The ToMe metric's shape: k heads [B, 2, 6, 4] (a Slice of channels 0..8 step 1, split, transposed).
    const heads = b.op("Transpose", [b.op("Reshape", [r, ints(b, [-1, 6, 2, 4])])], { perm: [0, 2, 1, 3] });
    const mean = b.op("ReduceMean", [heads], { axes: [1] });
    // Two reduced axes that are not adjacent in storage, keepdims 0.
    const sum = b.op("ReduceSum", [heads], { axes: [1, 3], keepdims: 0 });
    // A strided Slice (every other row from 1), reduced over its last axis.
    const sl = b.op("Slice", [r, ints(b, [1]), ints(b, [6]), ints(b, [1]), ints(b, [2])]);
    const max = b.op("ReduceMax", [sl], { axes: [2] });
    const g = b.output(mean, sum, max);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Transpose") + stepsOf(p, g, "Slice"), 0);
    assert.equal(p.steps.length, 4); // Relu + three reductions
    for (const batch of [1, 3]) matchesReference(g, p, new Map([["x", wave([batch, 6, 8], batch)]]));
  });
});

describe("view-like nodes that keep row-major order alias their input", () => {
  it("a Transpose moving a size-1 axis feeds attention's bias with no copy (the merge size bias)", () => {
    const b = new GraphBuilder("size_bias");
    b.symbol("B");
    const q = b.input("q", "f32", [B, 2, 5, 4]);
    const s = b.input("s", "f32", [B, 5, 1]);
    // log(size) [B, 5, 1] -> [B, 1, 5] -> [B, 1, 1, 5]: the same elements in the same order.
    const bias = b.op("Unsqueeze", [
      b.op("Transpose", [b.op("Log", [s])], { perm: [0, 2, 1] }),
      ints(b, [1]),
    ]);
    const a = b.op("attention", [q, q, q, null, bias], { scale: 0.5 });
    const g = b.output(a);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Transpose"), 0);
    assert.equal(p.steps.length, 2); // Log, attention
    const t = g.nodes.find((n) => n.op === "Transpose")!.outputs[0];
    const tb = p.buffers.find((x) => x.name === t.name)!;
    const logb = p.buffers.find((x) => x.name === g.nodes.find((n) => n.op === "Log")!.outputs[0].name)!;
    assert.equal(tb.aliasOf, logb.id);
    assert.equal(stepsOf(buildProgram(g, DEFAULT_TARGET, { stridedViews: false }), g, "Transpose"), 1);
    const pos = (shape: number[], seed: number) => {
      const w = wave(shape, seed);
      return makeTensor(
        "f32",
        shape,
        Float32Array.from(w.data, (v) => 1.5 + Number(v)),
      );
    };
    for (const batch of [1, 2])
      matchesReference(
        g,
        p,
        new Map([
          ["q", wave([batch, 2, 5, 4], 3)],
          ["s", pos([batch, 5, 1], 4)],
        ]),
      );
  });

  it("rowMajorView: which view-like nodes keep every element in row-major order", () => {
    const b = new GraphBuilder("which");
    const x = b.input("x", "f32", [2, 3, 1]);
    const cases: [Value, boolean][] = [
      [b.op("Transpose", [x], { perm: [0, 2, 1] }), true], // [2, 1, 3]: only the size-1 axis moves
      [b.op("Transpose", [x], { perm: [2, 0, 1] }), true],
      [b.op("Transpose", [x], { perm: [1, 0, 2] }), false], // [3, 2, 1]: 2 and 3 swap
      [b.op("Gather", [x, b.const("i64", [], [0])], { axis: 2 }), true], // [2, 3]
      [b.op("Gather", [x, b.const("i64", [], [1])], { axis: 0 }), false], // offset 3, a third of x
      [b.op("Slice", [x, ints(b, [0]), ints(b, [3]), ints(b, [1])]), true], // everything
      [b.op("Slice", [x, ints(b, [0]), ints(b, [2]), ints(b, [1])]), false], // a prefix: fewer elements
      [b.op("Slice", [x, ints(b, [1]), ints(b, [3]), ints(b, [1])]), false],
    ];
    const g = b.output(...cases.map(([v]) => v));
    const producer = new Map(g.nodes.map((n) => [n.outputs[0], n]));
    const known = computeKnown(g);
    const vg: ViewGraph = {
      producer: (v) => producer.get(v),
      users: () => [],
      def: (n) => getOp(n.op),
      known: (v) => known.get(v),
      isOutput: () => false,
      stop: () => false,
    };
    for (const [v, want] of cases) {
      const n = producer.get(v)!;
      assert.equal(
        rowMajorView(n, vg),
        want,
        `${n.op} ${JSON.stringify(n.attrs)} -> ${v.type.dims.join(",")}`,
      );
    }
  });
});

describe("views across capacity-padded values (adaptive prune)", () => {
  it("a Transpose of a pruned value folds into the Relu reading it; results match per live row", () => {
    const b = new GraphBuilder("padded");
    const x = b.input("x", "f32", [2, 6, 4]);
    const sc = b.input("s", "f32", [2, 6]);
    const [y, , count] = b.ops("tokens.prune", [x, sc], { threshold: 0.5, capacity: 4, protect_first: 1 }, 3);
    const g = b.output(b.op("Relu", [b.op("Transpose", [y], { perm: [0, 2, 1] })]), count);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Transpose"), 0);
    const scores = makeTensor("f32", [2, 6], [0.9, 0.1, 0.8, 0.7, 0.2, 0.1, 0.9, 0.6, 0.1, 0.1, 0.1, 0.1]);
    matchesReference(
      g,
      p,
      new Map([
        ["x", wave([2, 6, 4], 5)],
        ["s", scores],
      ]),
    );
  });

  it("a Slice the padded-axis rules refuse is not folded: its refusal is still reported", () => {
    const b = new GraphBuilder("refused");
    const x = b.input("x", "f32", [2, 6, 4]);
    const sc = b.input("s", "f32", [2, 6]);
    const [y] = b.ops("tokens.prune", [x, sc], { threshold: 0.5, capacity: 4, protect_first: 1 }, 3);
    // Rows 0..2 of the pruned tokens: only row 0 is kept in every example.
    const sl = b.op("Slice", [y, ints(b, [0]), ints(b, [2]), ints(b, [1])]);
    const g = b.output(b.op("Relu", [sl]));
    assert.throws(
      () => buildProgram(g, DEFAULT_TARGET),
      (e: unknown) => e instanceof ScheduleError && /\(Slice\).*slices along the padded axis/.test(e.message),
    );
  });
});

describe("a small ViT with token reduction has the unreduced program's copy kernels", () => {
  // The default target (8 storage buffers per stage): the merge kernels fit within it.
  const target: Target = DEFAULT_TARGET;

  it("merge (r = 2) in every block: 1 Transpose and 1 Gather step as unreduced (were 6 and 4)", () => {
    const plain = smallVit(3);
    const unreduced = buildProgram(plain, target);
    assert.equal(stepsOf(unreduced, plain, "Transpose"), 1);
    const g = smallVit(3);
    reduce(g, "blocks[0..2]: merge(r: 2)");
    const p = buildProgram(g, target);
    assert.equal(stepsOf(unreduced, plain, "Gather"), 1);
    assert.equal(stepsOf(p, g, "Transpose"), 1);
    assert.equal(stepsOf(p, g, "Gather"), 1);
    assert.equal(stepsOf(p, g, "Slice"), 0);
    // The ToMe metric (mean of k over heads) reads k through strides.
    assert.equal(stepsOf(p, g, "ReduceMean"), 3);
    // Without views: the exporter-style head splits plus the two size-bias Transposes are copies.
    assert.equal(stepsOf(buildProgram(g, target, { stridedViews: false }), g, "Transpose"), 9);
    matchesReference(g, p, new Map([[g.inputs[0].name, images(2, 48)]]), 1e-4);
  });

  it("adaptive prune at block 1: 1 Transpose and 1 Gather step as unreduced (were 5 and 7)", () => {
    const g = smallVit(3);
    reduce(g, "blocks.1.layer: prune(threshold: 0.08, keep: 0.7, protect: 1)");
    withCounts(g);
    const p = buildProgram(g, target);
    assert.equal(stepsOf(p, g, "Transpose"), 1);
    assert.equal(stepsOf(p, g, "Gather"), 1);
    assert.equal(stepsOf(p, g, "Slice"), 0);
    matchesReference(g, p, new Map([[g.inputs[0].name, images(3, 48)]]), 1e-4);
  });
});
