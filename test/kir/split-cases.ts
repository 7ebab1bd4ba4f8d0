/** Graphs whose tensors exceed a 4 KiB binding limit, shared by the KIR and WGSL split tests. */
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";

/** Deterministic values in [-1, 1) (integers in [0, hi) for i64). */
export function seeded(dtype: "f32" | "i64", shape: number[], seed: number, hi = 0): Tensor {
  let s = seed >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return dtype === "i64" ? s % hi : s / 2 ** 31 - 1;
  });
  return makeTensor(dtype, shape, v);
}

export interface SplitCase {
  readonly name: string;
  readonly graph: Graph;
  readonly feeds: Map<string, Tensor>;
  /** At least this many more steps than the unsplit program. */
  readonly minExtraSteps: number;
  /** Kernels of the split program, when every chunk (incl. the last) has one shape. */
  readonly kernels?: number;
}

/** One case per split rule family; shapes are small (a few KiB) and row sizes divide 256 bytes. */
export function splitCases(): SplitCase[] {
  const cases: SplitCase[] = [];
  {
    // Pointwise group with a broadcast bias: [64, 32] f32 = 8 KiB -> 2 chunks of 32 rows.
    const b = new GraphBuilder("pointwise");
    const x = b.input("x", "f32", [64, 32]);
    const bias = b.constant(seeded("f32", [32], 2), "bias");
    const g = b.output(b.op("Tanh", [b.op("Add", [x, bias])]));
    cases.push({
      name: "pointwise chain + broadcast",
      graph: g,
      feeds: feeds(["x", [64, 32], 1]),
      minExtraSteps: 1,
      kernels: 1,
    });
  }
  {
    // MatMul over M rows ([1, 48, 40] is 7.5 KiB; axis 0 is 1) with a bias + Relu epilogue.
    const b = new GraphBuilder("matmul_rows");
    const x = b.input("x", "f32", [1, 48, 40]);
    const w = b.constant(seeded("f32", [40, 24], 3), "w");
    const bias = b.constant(seeded("f32", [24], 4), "bias");
    const g = b.output(b.op("Relu", [b.op("Add", [b.op("MatMul", [x, w]), bias])]));
    cases.push({
      name: "matmul rows + epilogue",
      graph: g,
      feeds: feeds(["x", [1, 48, 40], 5]),
      minExtraSteps: 1,
    });
  }
  {
    // Batched MatMul: both operands chunked along the batch.
    const b = new GraphBuilder("matmul_batch");
    const x = b.input("x", "f32", [8, 8, 32]);
    const y = b.input("y", "f32", [8, 32, 8]);
    const g = b.output(b.op("MatMul", [x, y]));
    cases.push({
      name: "batched matmul",
      graph: g,
      feeds: feeds(["x", [8, 8, 32], 6], ["y", [8, 32, 8], 7]),
      minExtraSteps: 1,
    });
  }
  {
    // MatMul reading A through a folded Transpose (`perm_a` [0, 2, 1, 3] keeps the batch axis in
    // place): chunks of the output's batch read chunks of A's stored axis perm_a[0] = 0.
    const b = new GraphBuilder("matmul_perm_a");
    const x = b.input("x", "f32", [4, 8, 8, 16]);
    const w = b.constant(seeded("f32", [16, 16], 8), "w");
    const g = b.output(b.op("MatMul", [x, w], { perm_a: [0, 2, 1, 3] }));
    cases.push({
      name: "matmul with perm_a",
      graph: g,
      feeds: feeds(["x", [4, 8, 8, 16], 9]),
      minExtraSteps: 1,
    });
  }
  {
    // Row-wise ops: LayerNorm (last axis), Softmax, ReduceMean over the last axis.
    const b = new GraphBuilder("rowwise");
    // [256, 16]: the mean's 4-byte rows need chunks of 64 rows for 256-byte aligned offsets.
    const x = b.input("x", "f32", [256, 16]);
    const s = b.constant(seeded("f32", [16], 8), "scale");
    const o = b.constant(seeded("f32", [16], 9), "shift");
    const ln = b.op("LayerNormalization", [x, s, o], { axis: -1 });
    const sm = b.op("Softmax", [ln], { axis: -1 });
    const mean = b.op("ReduceMean", [sm], { axes: [1], keepdims: 1 });
    const g = b.output(sm, mean);
    cases.push({
      name: "layernorm, softmax, reduce rows",
      graph: g,
      feeds: feeds(["x", [256, 16], 10]),
      minExtraSteps: 2,
    });
  }
  {
    // Fused attention over batch: q/k/v [4, 2, 16, 16] = 8 KiB each.
    const b = new GraphBuilder("attention_batch");
    const [q, k, v] = ["q", "k", "v"].map((n) => b.input(n, "f32", [4, 2, 16, 16]));
    const g = b.output(b.op("attention", [q, k, v]));
    cases.push({
      name: "attention over batch",
      graph: g,
      feeds: feeds(["q", [4, 2, 16, 16], 11], ["k", [4, 2, 16, 16], 12], ["v", [4, 2, 16, 16], 13]),
      minExtraSteps: 1,
      kernels: 1,
    });
  }
  {
    // Embedding gather by output rows: 200 indices into a small table -> [200, 16] = 12.5 KiB.
    const b = new GraphBuilder("gather_rows");
    const ix = b.input("ix", "i64", [200]);
    const table = b.constant(seeded("f32", [10, 16], 14), "table");
    const g = b.output(b.op("Gather", [table, ix], { axis: 0 }));
    const f = new Map([["ix", seeded("i64", [200], 15, 10)]]);
    cases.push({ name: "gather by index rows", graph: g, feeds: f, minExtraSteps: 3 });
  }
  {
    // Transpose keeping the batch axis, and Concat along an inner axis.
    const b = new GraphBuilder("transpose_concat");
    const x = b.input("x", "f32", [8, 16, 16]);
    const t = b.op("Transpose", [x], { perm: [0, 2, 1] });
    const g = b.output(b.op("Concat", [t, x], { axis: 2 }));
    cases.push({
      name: "transpose + concat",
      graph: g,
      feeds: feeds(["x", [8, 16, 16], 16]),
      minExtraSteps: 2,
    });
  }
  {
    // Token pruning per example: x [8, 32, 8] = 8 KiB; index rows of 16 i32 need chunks of 4 examples.
    const b = new GraphBuilder("prune_batch");
    const x = b.input("x", "f32", [8, 32, 8]);
    const scores = b.input("scores", "f32", [8, 32]);
    const [y, index] = b.ops("tokens.prune", [x, scores], { keep: 16, protect_first: 1 }, 2);
    const g = b.output(y, index);
    cases.push({
      name: "tokens.prune per example",
      graph: g,
      feeds: feeds(["x", [8, 32, 8], 17], ["scores", [8, 32], 18]),
      minExtraSteps: 1,
    });
  }
  return cases;
}

function feeds(...specs: [string, number[], number][]): Map<string, Tensor> {
  return new Map(specs.map(([n, shape, seed]) => [n, seeded("f32", shape, seed)]));
}

/** A pre-norm ViT block (2 heads, width 32, MLP 32) on 4 images of 16 tokens: 8 KiB weights stay whole. */
export const SMALL_VIT_BLOCK = `
dim = 32
heads = 2

block attn(x) {
  hd = dim / heads
  param wq: f32[dim, dim] = normal(std: 0.2)
  param wk: f32[dim, dim] = normal(std: 0.2)
  param wv: f32[dim, dim] = normal(std: 0.2)
  param wo: f32[dim, dim] = normal(std: 0.2)
  param bo: f32[dim] = normal(std: 0.1)
  q = transpose(reshape(matmul(x, wq), [0, 0, heads, hd]), perm: [0, 2, 1, 3])
  k = transpose(reshape(matmul(x, wk), [0, 0, heads, hd]), perm: [0, 2, 1, 3])
  v = transpose(reshape(matmul(x, wv), [0, 0, heads, hd]), perm: [0, 2, 1, 3])
  o = reshape(transpose(attention(q, k, v), perm: [0, 2, 1, 3]), [0, 0, dim])
  return matmul(o, wo) + bo
}

block mlp(x) {
  param w1: f32[dim, dim] = normal(std: 0.2)
  param b1: f32[dim] = normal(std: 0.1)
  param w2: f32[dim, dim] = normal(std: 0.2)
  param b2: f32[dim] = zeros()
  return matmul(gelu(matmul(x, w1) + b1), w2) + b2
}

model vitblock(x: f32[4, 16, dim]) -> (y: f32[4, 16, dim]) {
  param g1: f32[dim] = ones()
  param n1: f32[dim] = zeros()
  param g2: f32[dim] = ones()
  param n2: f32[dim] = zeros()
  x = x + attn(layernorm(x, g1, n1))
  y = x + mlp(layernorm(x, g2, n2))
}
`;
