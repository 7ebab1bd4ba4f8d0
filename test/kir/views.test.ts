/**
 * Strided views (compiler/kir/views.ts): hand-checked view chains, and programs whose kernels
 * read q/k/v and pointwise inputs through strides and store attention's output through its
 * Reshape/Transpose chain, matching the CPU reference on the KIR interpreter.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { computeKnown } from "../../compiler/infer.js";
import type { Graph, Node, Value } from "../../compiler/ir/graph.js";
import { type Dim, mul, printDim, sym } from "../../compiler/ir/sym.js";
import type { Program } from "../../compiler/kir/program.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import {
  composeView,
  contiguousStrides,
  inputView,
  outputView,
  type ViewGraph,
} from "../../compiler/kir/views.js";
import { exactDiv } from "../../compiler/ops/known.js";
import { getOp } from "../../compiler/ops/registry.js";
import "../../compiler/ops/index.js";
import { assertClose } from "../util/helpers.js";
import { headSplitFeeds, headSplitGraph, HS, wave } from "./views-fixtures.js";

const B = sym("B");
const dims = (ds: readonly Dim[]): string[] => ds.map(printDim);

function viewGraph(g: Graph, stop: (v: Value) => boolean = () => false): ViewGraph {
  const producer = new Map<Value, Node>();
  const users = new Map<Value, Node[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const v of n.inputs) if (v) users.set(v, [...(users.get(v) ?? []), n]);
  }
  const known = computeKnown(g);
  return {
    producer: (v) => producer.get(v),
    users: (v) => users.get(v) ?? [],
    def: (n) => getOp(n.op),
    known: (v) => known.get(v),
    isOutput: (v) => g.outputs.includes(v),
    stop,
  };
}

/** Program steps computing nodes of `op` (by the names of their first outputs). */
function stepsOf(p: Program, g: Graph, op: string): number {
  const names = new Set(g.nodes.filter((n) => n.op === op).map((n) => n.outputs[0].name));
  return p.steps.filter((s) => s.nodes.some((n) => names.has(n))).length;
}

const TARGETS: readonly [string, Target][] = [
  ["rows attention (register target)", DEFAULT_TARGET],
  ["workgroup attention (tiled target)", { ...DEFAULT_TARGET, matmul: "tiled" }],
];

describe("strided views: layouts", () => {
  it("exactDiv (shared with ops/known.ts) divides only when the quotient holds for every symbol value", () => {
    const div = (a: Dim, b: Dim): Dim | undefined => exactDiv([a], [b]);
    assert.equal(div(12, 4), 3);
    assert.equal(div(12, 5), undefined);
    assert.equal(printDim(div(mul(4, B), 4)!), "B");
    assert.equal(div(mul(4, B), B), 4);
    assert.equal(printDim(div(mul(6, B, sym("N")), mul(3, B))!), "2*N");
    assert.equal(div(mul(4, B), 8), undefined);
    assert.equal(div(mul(4, B), sym("N")), undefined);
    assert.equal(div(8, B), undefined);
    assert.equal(div(8, 0), undefined);
  });

  it("the exporter's head split of [N, B, 3C] is a strided view of it (N=5, C=8, H=2, D=4)", () => {
    // Slice channels 8..16 -> Reshape [5, 2B, 4] -> Transpose [1, 0, 2] -> Reshape [B, 2, 5, 4].
    const v = composeView(
      [5, B, 24],
      [
        { k: "slice", starts: [0, 0, 8], steps: [1, 1, 1], dims: [5, B, 8] },
        { k: "reshape", dims: [5, mul(2, B), 4] },
        { k: "permute", perm: [1, 0, 2] },
        { k: "reshape", dims: [B, 2, 5, 4] },
      ],
    )!;
    assert.equal(v.offset, 8);
    // b steps over a token's 24 channels, h over a head's 4, n over a whole token row of B examples.
    assert.deepEqual(dims(v.strides), ["24", "4", "24*B", "1"]);
  });

  it("an axis merging non-adjacent factors is not a strided view until a later view splits it", () => {
    const steps = [
      { k: "slice", starts: [0, 0, 8], steps: [1, 1, 1], dims: [5, B, 8] },
      { k: "reshape", dims: [5, mul(2, B), 4] },
    ] as const;
    // [5, 2B, 4]: the 2B axis is (b: 24, h: 4), not one stride.
    assert.equal(composeView([5, B, 24], steps), undefined);
    // Without the Slice the channels are contiguous with b: one stride of 4.
    assert.deepEqual(dims(composeView([5, B, 8], [steps[1]])!.strides), ["8*B", "4", "1"]);
  });

  it("a Reshape across contiguous axes merges them first: [4, 3] as [6, 2] is row-major", () => {
    assert.deepEqual(composeView([4, 3], [{ k: "reshape", dims: [6, 2] }])?.strides, [2, 1]);
    // [B, 4, 3] -> [B, 6, 2] -> Transpose [0, 2, 1]: the 4*3 block regroups as 6*2, then swaps.
    const t = composeView(
      [B, 4, 3],
      [
        { k: "reshape", dims: [B, 6, 2] },
        { k: "permute", perm: [0, 2, 1] },
      ],
    )!;
    assert.deepEqual([t.offset, ...t.strides], [0, 12, 1, 2]);
    // Merging needs contiguity: columns 0..2 of [4, 5] (strides 5, 1) do not merge; columns
    // 0, 2, 4 of [4, 6] (strides 6, 2) do, as one run of stride 2.
    const cols = { k: "slice", starts: [0, 0], steps: [1, 1], dims: [4, 3] } as const;
    assert.equal(composeView([4, 5], [cols, { k: "reshape", dims: [6, 2] }]), undefined);
    const even = { k: "slice", starts: [0, 0], steps: [1, 2], dims: [4, 3] } as const;
    assert.deepEqual(composeView([4, 6], [even, { k: "reshape", dims: [6, 2] }])?.strides, [4, 2]);
  });

  it("steps and size-1 axes: a Slice with step 2 doubles the stride; size-1 axes get stride 0", () => {
    const v = composeView(
      [6, 1, 10],
      [
        { k: "slice", starts: [1, 0, 3], steps: [2, 1, 1], dims: [3, 1, 4] },
        { k: "permute", perm: [2, 1, 0] },
      ],
    )!;
    assert.equal(v.offset, 1 * 10 + 3);
    assert.deepEqual(v.strides, [1, 0, 20]);
    assert.deepEqual(contiguousStrides([3, 1, 4]), [4, 0, 1]);
  });

  it("a Gather of one constant index picks an axis: offset index*stride, the axis dropped or kept", () => {
    // q, k, v = Gather(Transpose([B, N, 3, H, D] -> [3, B, H, N, D]), i): the IR ViT's head split.
    const qkv = composeView(
      [B, 5, 3, 2, 4],
      [
        { k: "permute", perm: [2, 0, 3, 1, 4] },
        { k: "pick", axis: 0, index: 2, keep: false },
      ],
    )!;
    assert.equal(qkv.offset, 2 * 8);
    assert.deepEqual(dims(qkv.strides), ["120", "4", "24", "1"]);
    const kept = composeView([4, 3], [{ k: "pick", axis: 1, index: 1, keep: true }])!;
    assert.deepEqual([kept.offset, ...kept.strides], [1, 3, 0]);
  });

  it("input walks stop at non-view producers, fold Transposes and skip plain Reshape chains", () => {
    const b = new GraphBuilder("walk");
    b.symbol("B");
    const x = b.input("x", "f32", [B, 3, 4]);
    const y = b.op("Relu", [x]);
    const t = b.op("Transpose", [y], { perm: [0, 2, 1] });
    const r = b.op("Reshape", [y, b.const("i64", [2], [0, -1])]);
    const g = b.output(t, r);
    const vg = viewGraph(g);
    const tv = inputView(t, vg)!;
    assert.equal(tv.base, y);
    assert.deepEqual(tv.strides, [12, 1, 4]);
    assert.deepEqual(
      tv.nodes.map((n) => n.op),
      ["Transpose"],
    );
    // A Reshape alone already shares storage: nothing to fold.
    assert.equal(inputView(r, vg), undefined);
    // A stop value (a capacity-padded one, say) is the base even when a view produced it.
    assert.equal(
      inputView(
        t,
        viewGraph(g, (v) => v === t),
      ),
      undefined,
    );
  });

  it("output walks follow single-user bijective chains and stop before graph outputs and Slices", () => {
    const g = headSplitGraph();
    const vg = viewGraph(g);
    const att = g.nodes.find((n) => n.op === "attention")!;
    const ov = outputView(att.outputs[0], vg)!;
    // Reshape [2B, 5, 4] -> Transpose -> Reshape [5B, 8]: attention's (b, h, n, d) lands at n*8B + b*8 + h*4 + d.
    assert.deepEqual(
      ov.nodes.map((n) => n.op),
      ["Reshape", "Transpose", "Reshape"],
    );
    assert.deepEqual(dims(ov.target.type.dims), ["5*B", "8"]);
    assert.deepEqual(dims(ov.strides), ["8", "4", "8*B", "1"]);
    assert.equal(ov.offset, 0);

    const b = new GraphBuilder("out");
    const x = b.input("x", "f32", [2, 3]);
    const y = b.op("Relu", [x]);
    const t = b.op("Transpose", [y], { perm: [1, 0] });
    const s = b.op("Slice", [
      t,
      b.const("i64", [1], [1]),
      b.const("i64", [1], [3]),
      b.const("i64", [1], [0]),
    ]);
    const g2 = b.output(s);
    const ov2 = outputView(y, viewGraph(g2))!;
    assert.equal(ov2.target, t);
    assert.deepEqual(ov2.strides, [1, 2]);
    // A graph output is not written through.
    assert.equal(outputView(y, viewGraph(b.output(t))), undefined);
  });
});

describe("strided views: programs on the KIR interpreter", () => {
  for (const [name, target] of TARGETS)
    it(`the head split around attention runs with no Transpose or Slice kernel: ${name}`, () => {
      const g = headSplitGraph();
      const p = buildProgram(g, target);
      assert.equal(stepsOf(p, g, "Transpose"), 0, "every Transpose folds");
      assert.equal(stepsOf(p, g, "Slice"), 0, "every Slice folds");
      // Transpose + Add, attention, MatMul, Transpose + residual Add.
      assert.equal(p.steps.length, 4);
      const att = p.steps.find((s) => p.kernels[s.kernel].name.includes("attn"))!;
      const bound = att.args.map((a) => p.buffers[a]);
      // q, k, v read the one [N, B, 3C] buffer; the output is the [N*B, C] MatMul input.
      const X = g.nodes.find((n) => n.op === "Add")!.outputs[0];
      assert.deepEqual(
        bound.slice(0, 3).map((b) => b.name),
        [X.name, X.name, X.name],
      );
      assert.deepEqual(dims(bound[3].dims), [`${HS.N}*B`, `${HS.C}`]);
      assert.equal(p.batchSymbol, "B", p.batchRefusal);
      for (const batch of [1, 3]) {
        const feeds = headSplitFeeds(batch);
        const want = runGraph(g, feeds);
        const got = runProgramOnKir(p, feeds);
        for (const [n, w] of want) assertClose(got.get(n)!, w, 1e-5, `${n} at batch ${batch}`);
      }
      // Without views every Transpose and Slice is a copy kernel (the Reshapes alias).
      const plain = buildProgram(g, target, { stridedViews: false });
      assert.equal(stepsOf(plain, g, "Transpose"), 8);
      assert.equal(stepsOf(plain, g, "Slice"), 3);
    });

  it("a pointwise chain reads a Transpose and a broadcast Slice through strides (static and symbolic)", () => {
    const b = new GraphBuilder("pw");
    b.symbol("B");
    const x = b.input("x", "f32", [B, 4, 6]);
    const c = b.input("c", "f32", [B, 6, 8]);
    // y[b, j, i] = x[b, i, j] * 2 + c[b, j, 2*k + 1] with k along a size-3 axis, broadcast over i.
    const t = b.op("Transpose", [b.op("Relu", [x])], { perm: [0, 2, 1] });
    const s = b.op("Slice", [
      c,
      b.const("i64", [1], [1]),
      b.const("i64", [1], [2]),
      b.const("i64", [1], [2]),
    ]);
    const y = b.op("Add", [b.op("Mul", [t, b.const("f32", [], [2])]), s]);
    const g = b.output(y);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Transpose") + stepsOf(p, g, "Slice"), 0);
    for (const batch of [1, 2]) {
      const feeds = new Map([
        ["x", wave([batch, 4, 6], 3)],
        ["c", wave([batch, 6, 8], 4)],
      ]);
      assertClose(runProgramOnKir(p, feeds).get(y.name)!, runGraph(g, feeds).get(y.name)!, 1e-6);
    }
  });

  it("a Slice, a Reshape regrouping its contiguous axes and a Transpose are read through strides", () => {
    const b = new GraphBuilder("regroup");
    b.symbol("B");
    const x = b.input("x", "f32", [B, 8, 3]);
    // Rows 2..5 of relu(x) ([B, 4, 3], offset 6), seen as [B, 6, 2] (the 4*3 block regrouped),
    // transposed, plus 1: one kernel reads relu(x) through strides; no Slice or Transpose copy.
    const sl = b.op("Slice", [
      b.op("Relu", [x]),
      b.const("i64", [1], [2]),
      b.const("i64", [1], [6]),
      b.const("i64", [1], [1]),
    ]);
    const r = b.op("Reshape", [sl, b.const("i64", [3], [-1, 6, 2])]);
    const t = b.op("Transpose", [r], { perm: [0, 2, 1] });
    const y = b.op("Add", [t, b.const("f32", [], [1])]);
    const g = b.output(y);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Slice") + stepsOf(p, g, "Transpose"), 0);
    for (const batch of [1, 3]) {
      const feeds = new Map([["x", wave([batch, 8, 3], 5)]]);
      assertClose(runProgramOnKir(p, feeds).get(y.name)!, runGraph(g, feeds).get(y.name)!, 1e-6);
    }
  });

  it("a unit that must be split by the binding limit reads row-major: its Transpose is materialised", () => {
    const b = new GraphBuilder("split");
    const x = b.input("x", "f32", [4, 6, 8]);
    const z = b.input("z", "f32", [2, 6, 4, 8]);
    const t = b.op("Transpose", [x], { perm: [1, 0, 2] });
    const y = b.op("Add", [t, z]);
    const g = b.output(y);
    // z (1536 bytes) is over a 1 KiB limit: the Add runs in two chunks, reading t whole.
    const tiny: Target = { ...DEFAULT_TARGET, maxStorageBindingBytes: 1024 };
    const p = buildProgram(g, tiny);
    assert.equal(stepsOf(p, g, "Transpose"), 1);
    assert.equal(stepsOf(p, g, "Add"), 2);
    const feeds = new Map([
      ["x", wave([4, 6, 8], 5)],
      ["z", wave([2, 6, 4, 8], 6)],
    ]);
    assertClose(runProgramOnKir(p, feeds, { target: tiny }).get(y.name)!, runGraph(g, feeds).get(y.name)!);
    // With the default limit the Transpose folds into the Add.
    assert.equal(stepsOf(buildProgram(g, DEFAULT_TARGET), g, "Transpose"), 0);
  });

  it("Gathers of constant indices after a Transpose feed attention without copies", () => {
    const b = new GraphBuilder("gather_heads");
    b.symbol("B");
    const x = b.input("x", "f32", [B, 5, 3, 2, 4]);
    const t = b.op("Transpose", [b.op("Relu", [x])], { perm: [2, 0, 3, 1, 4] });
    const pick = (i: number): Value => b.op("Gather", [t, b.const("i64", [], [i])], { axis: 0 });
    const a = b.op("attention", [pick(0), pick(1), pick(2), null, null], { scale: 0.5 });
    const g = b.output(b.op("Transpose", [a], { perm: [0, 2, 1, 3] }));
    for (const [name, target] of TARGETS) {
      const p = buildProgram(g, target);
      assert.equal(p.steps.length, 3, name); // Relu, attention, the output's own Transpose
      assert.equal(stepsOf(p, g, "Gather"), 0, name);
      const feeds = new Map([["x", wave([2, 5, 3, 2, 4], 7)]]);
      const want = runGraph(g, feeds).get(g.outputs[0].name)!;
      assertClose(runProgramOnKir(p, feeds).get(g.outputs[0].name)!, want, 1e-5, name);
    }
  });

  it("values with a capacity-padded axis (adaptive prune) fold like any other (views-reduce.test.ts runs them)", () => {
    const b = new GraphBuilder("padded");
    const x = b.input("x", "f32", [2, 6, 4]);
    const sc = b.input("s", "f32", [2, 6]);
    const [y] = b.ops("tokens.prune", [x, sc], { threshold: 0.5, capacity: 4, protect_first: 1 }, 3);
    const g = b.output(b.op("Relu", [b.op("Transpose", [y], { perm: [0, 2, 1] })]));
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(stepsOf(p, g, "Transpose"), 0);
    assert.equal(stepsOf(buildProgram(g, DEFAULT_TARGET, { stridedViews: false }), g, "Transpose"), 1);
  });

  it("equal strided kernels dedupe; different strides are different kernels", () => {
    const b = new GraphBuilder("dedupe");
    const x = b.input("x", "f32", [3, 4]);
    const y = b.input("y", "f32", [3, 4]);
    const z = b.input("z", "f32", [4, 3]);
    const u = b.op("Relu", [b.op("Transpose", [x], { perm: [1, 0] })]);
    const v = b.op("Relu", [b.op("Transpose", [y], { perm: [1, 0] })]);
    const w = b.op("Relu", [z]);
    const g = b.output(u, v, w);
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(p.steps.length, 3);
    assert.equal(new Set(p.steps.map((s) => s.kernel)).size, 2);
  });
});
