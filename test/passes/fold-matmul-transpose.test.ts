import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { printType } from "../../compiler/ir/types.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { verifyGraph } from "../../compiler/verify.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import "../../passes/index.js";
import { PassManager } from "../../passes/manager.js";
import { assertClose, repoRoot } from "../util/helpers.js";

const count = (g: Graph, op: string): number => g.nodes.filter((n) => n.op === op).length;

function seq(shape: number[], k: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return makeTensor(
    "f32",
    shape,
    Array.from({ length: n }, (_, i) => (((i * k) % 17) - 8) / 8),
  );
}

/** y = Transpose(x, perm) @ w (w a constant), plus the Transpose's output when `keep`. */
function graph(perm: number[], xShape: number[], wShape: number[], keep = false): Graph {
  const b = new GraphBuilder("t");
  const x = b.input("x", "f32", xShape);
  const t = b.op("Transpose", [x], { perm });
  const w = b.constant(seq(wShape, 5), "w");
  b.output(b.op("MatMul", [t, w], {}, { names: ["y"] }));
  return keep ? b.output(t) : b.output(b.op("Identity", [x]));
}

function foldKeeps(g: Graph, x: Tensor): Graph {
  const feeds = new Map([["x", x]]);
  const want = [...runGraph(g, feeds).values()];
  new PassManager("fold-matmul-transpose,dce").run(g);
  assert.deepEqual(verifyGraph(g), []);
  const got = [...runGraph(g, feeds).values()];
  want.forEach((w, i) => assertClose(got[i], w, 1e-6, `output ${i}`));
  return g;
}

describe("fold-matmul-transpose", () => {
  it("folds a sequence-first Transpose into perm_a; the CPU reference gives the same result", () => {
    const g = foldKeeps(graph([1, 0, 2], [3, 2, 4], [4, 5]), seq([3, 2, 4], 3));
    assert.equal(count(g, "Transpose"), 0);
    const mm = g.nodes.find((n) => n.op === "MatMul")!;
    assert.deepEqual(mm.attrs.perm_a, [1, 0, 2]);
    assert.equal(mm.inputs[0], g.inputs[0]);
    assert.equal(printType(mm.outputs[0].type), "f32[2, 3, 5]");
  });

  it("composes chained Transposes and keeps one that has other users", () => {
    const b = new GraphBuilder("t2");
    const x = b.input("x", "f32", [2, 3, 4, 5]);
    const t1 = b.op("Transpose", [x], { perm: [1, 2, 0, 3] });
    const t2 = b.op("Transpose", [t1], { perm: [2, 0, 1, 3] });
    const w = b.constant(seq([5, 3], 7), "w");
    const g = b.output(b.op("MatMul", [t2, w]));
    foldKeeps(g, seq([2, 3, 4, 5], 3));
    assert.equal(count(g, "Transpose"), 0);
    // t2(t1(x)) axis i = x axis t1[t2[i]]: [0, 1, 2, 3]
    assert.deepEqual(g.nodes.find((n) => n.op === "MatMul")!.attrs.perm_a, [0, 1, 2, 3]);

    const k = foldKeeps(graph([1, 0, 2], [3, 2, 4], [4, 5], true), seq([3, 2, 4], 3));
    assert.equal(count(k, "Transpose"), 1, "the Transpose also feeds a graph output");
  });

  it("leaves a Transpose that moves K, and a MatMul whose B has batch dims", () => {
    const g1 = foldKeeps(graph([0, 2, 1], [2, 4, 3], [4, 5]), seq([2, 4, 3], 3));
    assert.equal(count(g1, "Transpose"), 1);
    const b = new GraphBuilder("t3");
    const x = b.input("x", "f32", [3, 2, 4]);
    const t = b.op("Transpose", [x], { perm: [1, 0, 2] });
    const g2 = b.output(b.op("MatMul", [t, b.constant(seq([2, 4, 5], 5), "w")]));
    foldKeeps(g2, seq([3, 2, 4], 3));
    assert.equal(count(g2, "Transpose"), 1);
  });

  it("a perm_a that moves K or meets a batched B is an error naming the node", () => {
    const b = new GraphBuilder("bad");
    const x = b.input("x", "f32", [2, 3, 4]);
    const w = b.constant(seq([3, 5], 5), "w");
    assert.throws(() => b.op("MatMul", [x, w], { perm_a: [0, 2, 1] }), /perm_a \[0, 2, 1\] must permute/);
    const wb = b.constant(seq([2, 4, 5], 5), "wb");
    assert.throws(
      () => b.op("MatMul", [x, wb], { perm_a: [1, 0, 2] }),
      /perm_a needs a B without batch dims/,
    );
  });

  it("removes the 6 QKV-input Transposes of the exported Fashion-MNIST ViT; logits within 1e-4", () => {
    const ex = join(repoRoot, "examples", "fmnist-vit");
    const model = join(ex, "vit_fmnist_opset17.onnx");
    const ref = importOnnxFile(model, "vit.onnx");
    const g = importOnnxFile(model, "vit.onnx");
    new PassManager("onnx-structure").run(g);
    const folded = g.nodes.filter((n) => n.op === "MatMul" && n.attrs.perm_a !== undefined);
    assert.equal(folded.length, 6);
    for (const n of folded) assert.deepEqual(n.attrs.perm_a, [1, 0, 2]);
    assert.equal(count(g, "Transpose"), 31);
    assert.deepEqual(verifyGraph(g), []);
    const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 3, 2);
    const feeds = new Map([["pixels", x]]);
    assertClose(runGraph(g, feeds).get("logits")!, runGraph(ref, feeds).get("logits")!, 1e-4, "logits");
  });
});
