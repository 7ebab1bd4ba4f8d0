import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import type { Program } from "../../compiler/kir/program.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import { assertClose } from "../util/helpers.js";

// Matmul epilogues: pointwise chains after MatMul/Gemm fused into the matmul kernel's store.

const TILED: Target = { ...DEFAULT_TARGET, matmul: "tiled" };

const f32 = (shape: number[], seed = 1): Tensor =>
  makeTensor(
    "f32",
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.7 + seed)),
  );

/** Schedules for `target`, runs on the KIR interpreter, compares every output with runGraph. */
function check(g: Graph, feeds: Map<string, Tensor>, target: Target = DEFAULT_TARGET): Program {
  const p = buildProgram(g, target);
  const got = runProgramOnKir(p, feeds, { target });
  for (const [k, w] of runGraph(g, feeds)) assertClose(got.get(k)!, w, 1e-5, k);
  return p;
}

/** The ops of each step, in order. */
function stepOps(g: Graph, p: Program): string[][] {
  const op = new Map(g.nodes.map((n) => [n.outputs[0].name, n.op]));
  return p.steps.map((s) => s.nodes.map((n) => op.get(n)!));
}

/** A ViT MLP: x [N, T, 8] -> MatMul + bias + Gelu -> MatMul + bias + residual. */
function mlp(): { g: Graph; feeds: Map<string, Tensor> } {
  const b = new GraphBuilder("mlp");
  b.symbol("N");
  const x = b.input("x", "f32", [sym("N"), 5, 8]);
  const w1 = b.constant(f32([8, 12], 2), "w1");
  const b1 = b.constant(f32([12], 3), "b1");
  const w2 = b.constant(f32([12, 8], 4), "w2");
  const b2 = b.constant(f32([8], 5), "b2");
  const h = b.op("Gelu", [b.op("Add", [b1, b.op("MatMul", [x, w1])])]);
  const y = b.op("Add", [x, b.op("Add", [b.op("MatMul", [h, w2]), b2])]);
  return { g: b.output(y), feeds: new Map([["x", f32([3, 5, 8], 6)]]) };
}

for (const target of [DEFAULT_TARGET, TILED])
  test(`MLP: each MatMul and its bias/Gelu/residual chain is one kernel (${target.matmul})`, () => {
    const { g, feeds } = mlp();
    const p = check(g, feeds, target);
    assert.deepEqual(stepOps(g, p), [
      ["MatMul", "Add", "Gelu"],
      ["MatMul", "Add", "Add"],
    ]);
    // The MatMul outputs and the pre-Gelu sum never reach memory: x, 4 constants, h, y.
    assert.equal(p.buffers.length, 7);
    // Symbolic batch: the same program at another binding.
    const other = new Map([["x", f32([1, 5, 8], 7)]]);
    const got = runProgramOnKir(p, other, { target });
    assertClose(got.get(g.outputs[0].name)!, runGraph(g, other).get(g.outputs[0].name)!, 1e-5, "N=1");
  });

test("Gemm with C, then a broadcast scale (column vector) and a comparison: the epilogue changes dtype", () => {
  const b = new GraphBuilder("gemm");
  const a = b.input("a", "f32", [6, 5]);
  const w = b.constant(f32([9, 5], 2), "w");
  const c = b.constant(f32([9], 3), "c");
  const col = b.constant(f32([6, 1], 4), "col");
  const y = b.op("Gemm", [a, w, c], { transB: 1, alpha: 0.5 });
  const gt = b.op("Greater", [b.op("Mul", [y, col]), b.constant(makeTensor("f32", [], [0.1]), "t")]);
  const g = b.output(gt);
  const p = check(g, new Map([["a", f32([6, 5], 5)]]));
  assert.deepEqual(stepOps(g, p), [["Gemm", "Mul", "Greater"]]);
  assert.equal(p.buffers[p.outputs[0]].storage, "u32", "bool result stored as u32");
});

test("a MatMul whose output is also read elsewhere, or that is a graph output, keeps its own store", () => {
  const b = new GraphBuilder("side");
  const x = b.input("x", "f32", [4, 8]);
  const mm = b.op("MatMul", [x, b.constant(f32([8, 6], 2), "w")]);
  const r = b.op("Relu", [mm]);
  const s = b.op("ReduceSum", [mm], { keepdims: 0 });
  const g = b.output(r, s);
  const p = check(g, new Map([["x", f32([4, 8], 3)]]));
  assert.ok(
    stepOps(g, p).some((ops) => ops.join() === "MatMul"),
    JSON.stringify(stepOps(g, p)),
  );

  const b2 = new GraphBuilder("out");
  const x2 = b2.input("x", "f32", [4, 8]);
  const mm2 = b2.op("MatMul", [x2, b2.constant(f32([8, 6], 2), "w")]);
  const g2 = b2.output(b2.op("Relu", [mm2]), mm2);
  const p2 = check(g2, new Map([["x", f32([4, 8], 3)]]));
  assert.deepEqual(stepOps(g2, p2), [["MatMul"], ["Relu"]]);
});

test("a chain storing two values, or of another shape than the MatMul's output, is not an epilogue", () => {
  const b = new GraphBuilder("two");
  const x = b.input("x", "f32", [4, 8]);
  const mm = b.op("MatMul", [x, b.constant(f32([8, 6], 2), "w")]);
  const a = b.op("Add", [mm, b.constant(f32([6], 3), "bias")]);
  const r = b.op("Relu", [a]);
  const g = b.output(r, a);
  const p = check(g, new Map([["x", f32([4, 8], 4)]]));
  assert.deepEqual(stepOps(g, p), [["MatMul"], ["Add", "Relu"]]);

  const b2 = new GraphBuilder("bcast");
  const x2 = b2.input("x", "f32", [4, 8]);
  const mm2 = b2.op("MatMul", [x2, b2.constant(f32([8, 1], 2), "w")]);
  const g2 = b2.output(b2.op("Add", [mm2, b2.constant(f32([6], 3), "row")]));
  const p2 = check(g2, new Map([["x", f32([4, 8], 4)]]));
  assert.deepEqual(stepOps(g2, p2), [["MatMul"], ["Add"]]);
});

test("batched MatMul epilogue reads a batch-broadcast input through output coordinates", () => {
  const b = new GraphBuilder("batched");
  const x = b.input("x", "f32", [2, 3, 4, 5]);
  const w = b.input("w", "f32", [3, 5, 6]);
  const mm = b.op("MatMul", [x, w]);
  const g = b.output(b.op("Add", [mm, b.constant(f32([3, 1, 6], 2), "per_head")]));
  const p = check(
    g,
    new Map([
      ["x", f32([2, 3, 4, 5], 3)],
      ["w", f32([3, 5, 6], 4)],
    ]),
  );
  assert.deepEqual(stepOps(g, p), [["MatMul", "Add"]]);
});

test("f16 MatMul + bias on an f16 target: the epilogue computes and stores in f16", () => {
  const h = (shape: number[], seed: number): Tensor => makeTensor("f16", shape, f32(shape, seed).data);
  const b = new GraphBuilder("half");
  const x = b.input("x", "f16", [5, 8]);
  const mm = b.op("MatMul", [x, b.constant(h([8, 6], 2), "w")]);
  const g = b.output(b.op("Add", [mm, b.constant(h([6], 3), "bias")]));
  const target: Target = { ...DEFAULT_TARGET, f16: true };
  const feeds = new Map([["x", h([5, 8], 4)]]);
  const p = buildProgram(g, target);
  assert.deepEqual(stepOps(g, p), [["MatMul", "Add"]]);
  assert.equal(p.buffers[p.outputs[0]].storage, "f16");
  const got = runProgramOnKir(p, feeds, { target }).get(g.outputs[0].name)!;
  assertClose(got, runGraph(g, feeds).get(g.outputs[0].name)!, 1e-2, "f16");
});
