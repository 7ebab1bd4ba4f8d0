import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph, Value } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { sym } from "../../compiler/ir/sym.js";
import { printType } from "../../compiler/ir/types.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { findBlocks } from "../../passes/discover-blocks.js";
import { PassManager } from "../../passes/manager.js";
import { assertClose, repoRoot, t } from "../util/helpers.js";

const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);
const count = (g: Graph, op: string): number => ops(g).filter((o) => o === op).length;

/** Deterministic pseudo-random values in [-1, 1). */
function rand(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  let s = seed;
  const vals = Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
  return makeTensor("f32", shape, vals);
}

/** Runs `pipeline` and checks the outputs did not change (within tol) on `feeds`. */
function runKeepsOutputs(g: Graph, pipeline: string, feeds: Map<string, Tensor>, tol = 1e-5): void {
  const before = runGraph(g, feeds);
  new PassManager(pipeline).run(g);
  // Rewrites may rename the values graph outputs refer to: compare by position.
  const after = [...runGraph(g, feeds).values()];
  [...before.values()].forEach((want, i) => assertClose(after[i], want, tol, `output ${i}`));
}

describe("onnx-structure on the exported Fashion-MNIST ViT", () => {
  const ex = join(repoRoot, "examples", "fmnist-vit");
  const model = join(ex, "vit_fmnist_opset17.onnx");

  it("fuses 6 attentions, finds 6 blocks over 197 tokens and keeps the logits within 1e-4", () => {
    const ref = importOnnxFile(model, "vit.onnx");
    const g = importOnnxFile(model, "vit.onnx");
    assert.equal(count(ref, "Softmax"), 6);
    new PassManager("onnx-structure").run(g);
    assert.equal(count(g, "attention"), 6);
    assert.equal(count(g, "Softmax"), 0);
    assert.equal(count(g, "Erf"), 0);
    assert.equal(count(g, "Gelu"), 6);
    const att = g.nodes.find((n) => n.op === "attention")!;
    assert.equal(printType(att.inputs[0]!.type), "f32[batch, 4, 197, 16]"); // [B, H, N, D]
    assert.equal(att.attrs.scale, 0.25); // 1/sqrt(16): the exporter divides q by 4

    const blocks = findBlocks(g);
    assert.equal(blocks.length, 6);
    const scopes = new Set(g.nodes.map((n) => n.scope).filter((s) => s !== undefined));
    for (let k = 0; k < 6; k++) {
      assert.equal(blocks[k].tokens, 197);
      assert.equal(blocks[k].tokenAxis, 1);
      assert.equal(blocks[k].attention.scope, `blocks.${k}.attn`);
      assert.equal(blocks[k].attnAdd.scope, `blocks.${k}`);
      for (const s of ["", ".attn", ".mlp"]) assert.ok(scopes.has(`blocks.${k}${s}`), `blocks.${k}${s}`);
      assert.equal(printType(blocks[k].mlpAdd.outputs[0].type), "f32[batch, 197@token, 64]");
    }
    assert.ok(blocks[1].mlpNodes.some((n) => n.op === "Gelu"));
    assert.equal(blocks[1].input, blocks[0].mlpAdd.outputs[0]);

    const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 7, 3);
    const feeds = new Map([["pixels", x]]);
    const want = runGraph(ref, feeds).get("logits")!;
    assertClose(runGraph(g, feeds).get("logits")!, want, 1e-4, "logits of images 7..9");
  });
});

/** q·kᵀ·scale [+ bias] → Softmax → ·v over rank-4 [B, H, N, D] inputs. */
function attention4(opts: { axis?: number; bias?: boolean; scale?: number } = {}): Graph {
  const b = new GraphBuilder("att4");
  const q = b.input("q", "f32", [1, 2, 3, 4]);
  const k = b.input("k", "f32", [1, 2, 3, 4]);
  const v = b.input("v", "f32", [1, 2, 3, 4]);
  const kt = b.op("Transpose", [k], { perm: [0, 1, 3, 2] });
  let s = b.op("MatMul", [q, kt]);
  s = b.op("Mul", [s, b.const("f32", [], [opts.scale ?? 0.5])]);
  if (opts.bias) s = b.op("Add", [s, b.const("f32", [3, 3], [0, -1, -2, 0, 0, -1, 3, 0, 0])]);
  const p = b.op("Softmax", [s], { axis: opts.axis ?? -1 });
  return b.output(b.ops("MatMul", [p, v], {}, 1, { names: ["y"] })[0]);
}

const qkv = (shape: number[]): Map<string, Tensor> =>
  new Map([
    ["q", rand(shape, 1)],
    ["k", rand(shape, 2)],
    ["v", rand(shape, 3)],
  ]);

describe("fuse-attention", () => {
  it("fuses rank-4 attention with its scale and additive bias, same outputs", () => {
    const g = attention4({ bias: true });
    runKeepsOutputs(g, "fuse-attention,dce", qkv([1, 2, 3, 4]));
    assert.deepEqual(ops(g), ["attention"]);
    const a = g.nodes[0];
    assert.equal(a.attrs.scale, 0.5);
    assert.equal(a.inputs[1], g.inputs[1], "kᵀ's Transpose is folded away");
    assert.equal(printType(a.inputs[4]!.type), "f32[3, 3]");
  });

  it("one query row by hand: two keys, scale 1, v = [[1], [3]]", () => {
    const b = new GraphBuilder("one");
    const q = b.input("q", "f32", [1, 1, 1, 1]);
    const k = b.input("k", "f32", [1, 1, 2, 1]);
    const v = b.input("v", "f32", [1, 1, 2, 1]);
    const s = b.op("MatMul", [q, b.op("Transpose", [k], { perm: [0, 1, 3, 2] })]);
    const g = b.output(b.op("MatMul", [b.op("Softmax", [s], { axis: 3 }), v], {}, { names: ["y"] }));
    new PassManager("fuse-attention,dce").run(g);
    assert.deepEqual(ops(g), ["attention"]);
    // scores [0, ln 3] → p = [1/4, 3/4] → y = 1/4 + 9/4 = 2.5
    const y = runGraph(
      g,
      new Map([
        ["q", t("f32", [1, 1, 1, 1], [1])],
        ["k", t("f32", [1, 1, 2, 1], [0, Math.log(3)])],
        ["v", t("f32", [1, 1, 2, 1], [1, 3])],
      ]),
    ).get(g.outputs[0].name)!;
    assertClose(y, t("f32", [1, 1, 1, 1], [2.5]), 1e-6);
  });

  it("does not fuse a Softmax over another axis", () => {
    const g = attention4({ axis: 2 });
    new PassManager("fuse-attention").run(g);
    assert.equal(count(g, "attention"), 0);
    assert.equal(count(g, "Softmax"), 1);
  });

  it("does not fuse when the probabilities are also read elsewhere", () => {
    const b = new GraphBuilder("two");
    const q = b.input("q", "f32", [1, 2, 3, 4]);
    const k = b.input("k", "f32", [1, 2, 3, 4]);
    const v = b.input("v", "f32", [1, 2, 3, 4]);
    const s = b.op("MatMul", [q, b.op("Transpose", [k], { perm: [0, 1, 3, 2] })]);
    const p = b.op("Softmax", [s], { axis: -1 });
    const g = b.output(b.op("MatMul", [p, v]), p);
    new PassManager("fuse-attention").run(g);
    assert.equal(count(g, "attention"), 0);
  });

  it("fuses the nn.MultiheadAttention export (heads merged into the batch) into [B, H, N, D]", () => {
    // x: [N=3, B=2, C=8], 2 heads of 4: Reshape [N, B*H, D], Transpose to [B*H, N, D] (k to [B*H, D, N]).
    const b = new GraphBuilder("mha");
    const heads = (x: Value, perm: number[]): Value =>
      b.op("Transpose", [b.op("Reshape", [x, b.const("i64", [3], [3, 4, 4])])], { perm });
    const q = heads(b.input("q", "f32", [3, 2, 8]), [1, 0, 2]);
    const kt = heads(b.input("k", "f32", [3, 2, 8]), [1, 2, 0]);
    const v = heads(b.input("v", "f32", [3, 2, 8]), [1, 0, 2]);
    const s = b.op("MatMul", [b.op("Div", [q, b.const("f32", [], [2])]), kt]);
    const o = b.op("MatMul", [b.op("Softmax", [s], { axis: -1 }), v]);
    const g = b.output(b.op("Transpose", [o], { perm: [1, 0, 2] }, { names: ["y"] }));
    runKeepsOutputs(g, "fuse-attention,canonicalize,dce", qkv([3, 2, 8]));
    const a = g.nodes.find((n) => n.op === "attention")!;
    assert.equal(a.attrs.scale, 0.5);
    assert.equal(printType(a.inputs[0]!.type), "f32[2, 2, 3, 4]");
    assert.equal(count(g, "Softmax"), 0);
  });
});

/** (x - mean) / sqrt(var + eps) * gamma + beta over the last axis of f32[2, 4]. */
function layerNorm(opts: { eps?: number; axes2?: number[] } = {}): Graph {
  const b = new GraphBuilder("ln");
  const x = b.input("x", "f32", [2, 4]);
  const mean = b.op("ReduceMean", [x], { axes: [-1], keepdims: 1 });
  const d = b.op("Sub", [x, mean]);
  const sq = b.op("Pow", [d, b.const("f32", [], [2])]);
  const vr = b.op("ReduceMean", [sq], { axes: opts.axes2 ?? [1], keepdims: 1 });
  const std = b.op("Sqrt", [b.op("Add", [vr, b.const("f32", [], [opts.eps ?? 1e-5])])]);
  const n = b.op("Mul", [b.op("Div", [d, std]), b.const("f32", [4], [1, 2, 1, 1])]);
  return b.output(b.op("Add", [n, b.const("f32", [4], [0, 0, 0, 10])], {}, { names: ["y"] }));
}

describe("fuse-layernorm", () => {
  it("fuses the expansion with scale and bias; values checked by hand", () => {
    const g = layerNorm();
    new PassManager("fuse-layernorm,dce").run(g);
    assert.deepEqual(ops(g), ["LayerNormalization"]);
    assert.equal(g.nodes[0].attrs.axis, 1);
    assert.equal(g.nodes[0].attrs.epsilon, Math.fround(1e-5));
    // Row [1, 2, 3, 4]: mean 2.5, var 1.25; row [2, 2, 2, 2]: all 0 (then + beta).
    const x = t("f32", [2, 4], [1, 2, 3, 4, 2, 2, 2, 2]);
    const s = Math.sqrt(1.25 + 1e-5);
    const want = t("f32", [2, 4], [-1.5 / s, (2 * -0.5) / s, 0.5 / s, 1.5 / s + 10, 0, 0, 0, 10]);
    assertClose(runGraph(g, new Map([["x", x]])).get(g.outputs[0].name)!, want, 1e-5);
  });

  it("does not fuse when the two means reduce different axes", () => {
    const g = layerNorm({ axes2: [0, 1] });
    new PassManager("fuse-layernorm").run(g);
    assert.equal(count(g, "LayerNormalization"), 0);
  });

  it("does not fuse a non-positive eps", () => {
    const g = layerNorm({ eps: 0 });
    new PassManager("fuse-layernorm").run(g);
    assert.equal(count(g, "LayerNormalization"), 0);
  });
});

/** 0.5 · x · (1 + erf(x / c)) as PyTorch exports it: ((x * (1 + erf(x / c))) * 0.5. */
function geluErf(c = Math.SQRT2): Graph {
  const b = new GraphBuilder("gelu");
  const x = b.input("x", "f32", [3]);
  const e = b.op("Erf", [b.op("Div", [x, b.const("f32", [], [c])])]);
  const a = b.op("Add", [e, b.const("f32", [], [1])]);
  return b.output(b.op("Mul", [b.op("Mul", [x, a]), b.const("f32", [], [0.5])], {}, { names: ["y"] }));
}

describe("fuse-gelu", () => {
  const x = t("f32", [3], [-1, 0, 1]);
  it("fuses the erf form; Φ(1) = 0.8413447", () => {
    const g = geluErf();
    new PassManager("fuse-gelu").run(g);
    assert.deepEqual(ops(g), ["Gelu"]);
    assert.equal(g.nodes[0].attrs.approximate, "none");
    const y = runGraph(g, new Map([["x", x]])).get(g.outputs[0].name)!;
    assertClose(y, t("f32", [3], [-(1 - 0.8413447), 0, 0.8413447]), 1e-6);
  });

  it("fuses the tanh form, grouped as (x * 0.5) * (1 + tanh(...))", () => {
    const b = new GraphBuilder("gelu_tanh");
    const xv = b.input("x", "f32", [3]);
    const cube = b.op("Mul", [b.op("Pow", [xv, b.const("f32", [], [3])]), b.const("f32", [], [0.044715])]);
    const inner = b.op("Mul", [b.op("Add", [xv, cube]), b.const("f32", [], [Math.sqrt(2 / Math.PI)])]);
    const a = b.op("Add", [b.const("f32", [], [1]), b.op("Tanh", [inner])]);
    const half = b.op("Mul", [xv, b.const("f32", [], [0.5])]);
    const g = b.output(b.op("Mul", [half, a], {}, { names: ["y"] }));
    new PassManager("fuse-gelu").run(g);
    assert.deepEqual(ops(g), ["Gelu"]);
    assert.equal(g.nodes[0].attrs.approximate, "tanh");
    // 0.5 * (1 + tanh(0.7978845608 * 1.044715)) = 0.8411920
    const y = runGraph(g, new Map([["x", x]])).get(g.outputs[0].name)!;
    assertClose(y, t("f32", [3], [-(1 - 0.841192), 0, 0.841192]), 1e-6);
  });

  it("does not fuse erf(x / 1.5)", () => {
    const g = geluErf(1.5);
    new PassManager("fuse-gelu").run(g);
    assert.equal(count(g, "Gelu"), 0);
    assert.equal(count(g, "Erf"), 1);
  });
});

describe("fold-shape-chains", () => {
  it("turns a Shape/Gather/Unsqueeze/Concat target over a symbolic batch into [0, -1]", () => {
    // x: f32[B, 3, 4] → Reshape(x, concat(unsqueeze(shape(x)[0]), [12])) : f32[B, 12]
    const b = new GraphBuilder("chain");
    b.symbol("B");
    const x = b.input("x", "f32", [sym("B"), 3, 4]);
    const batch = b.op("Gather", [b.op("Shape", [x]), b.const("i64", [], [0])], { axis: 0 });
    const dim0 = b.op("Unsqueeze", [batch, b.const("i64", [1], [0])]);
    const target = b.op("Concat", [dim0, b.const("i64", [1], [12])], { axis: 0 });
    const g = b.output(b.op("Reshape", [x, target], {}, { names: ["y"] }));
    assert.equal(printType(g.outputs[0].type), "f32[B, 12]");
    const feeds = new Map([["x", rand([2, 3, 4], 5)]]);
    runKeepsOutputs(g, "fold-shape-chains", feeds);
    assert.deepEqual(ops(g), ["Reshape"]);
    const c = g.constants.get(g.nodes[0].inputs[1]!)!;
    assert.deepEqual(Array.from(c.data!.data), [0, 12]);
  });

  it("uses -1 for one moved symbolic dim and leaves a target with two alone", () => {
    const b = new GraphBuilder("moved");
    b.symbol("B");
    b.symbol("N");
    const x = b.input("x", "f32", [3, sym("B")]);
    const bx = b.op("Gather", [b.op("Shape", [x]), b.const("i64", [1], [1])], { axis: 0 });
    const y = b.op("Reshape", [x, b.op("Mul", [bx, b.const("i64", [1], [3])])]); // f32[3*B]
    const w = b.input("w", "f32", [sym("B"), sym("N")]);
    const sw = b.op("Shape", [w]);
    const nb = b.op(
      "Concat",
      [
        b.op("Slice", [sw, b.const("i64", [1], [1]), b.const("i64", [1], [2])]),
        b.op("Slice", [sw, b.const("i64", [1], [0]), b.const("i64", [1], [1])]),
      ],
      { axis: 0 },
    );
    const z = b.op("Reshape", [w, nb]); // f32[N, B]: neither dim is the input's at its position
    const g = b.output(y, z);
    assert.equal(printType(z.type), "f32[N, B]");
    new PassManager("fold-shape-chains").run(g);
    const targets = g.nodes.filter((n) => n.op === "Reshape").map((n) => g.constants.get(n.inputs[1]!)?.data);
    assert.deepEqual(targets[0] && Array.from(targets[0].data), [-1]);
    assert.equal(targets[1], undefined);
  });
});

describe("discover-blocks", () => {
  it("needs both residual Adds: attention without an MLP residual is not a block", () => {
    const b = new GraphBuilder("half");
    const x = b.input("x", "f32", [1, 2, 5, 4]);
    const a = b.op("attention", [x, x, x]);
    const g = b.output(b.op("Add", [x, a]));
    new PassManager("discover-blocks").run(g);
    assert.equal(findBlocks(g).length, 0);
    assert.ok(g.nodes.every((n) => n.scope === undefined));
  });

  it("scopes a minimal block and marks the token axis of the residual stream", () => {
    const b = new GraphBuilder("block");
    const x = b.input("x", "f32", [1, 2, 5, 4]);
    const h = b.op("Relu", [x]);
    const mid = b.op("Add", [x, b.op("attention", [h, h, h])]);
    const g = b.output(b.op("Add", [mid, b.op("Tanh", [mid])]));
    new PassManager("discover-blocks").run(g);
    assert.deepEqual(
      g.nodes.map((n) => `${n.op}:${n.scope}`),
      ["Relu:blocks.0.attn", "attention:blocks.0.attn", "Add:blocks.0", "Tanh:blocks.0.mlp", "Add:blocks.0"],
    );
    // keys come from axis 2 of k = h = f32[1, 2, 5, 4]: 5 tokens, axis 2 of x (the only 5)
    assert.equal(printType(x.type), "f32[1, 2, 5@token, 4]");
    assert.equal(printType(g.outputs[0].type), "f32[1, 2, 5@token, 4]");
  });
});
