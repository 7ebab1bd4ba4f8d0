import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { computeKnown, makeInferCtx } from "../../compiler/infer.js";
import { printDim, sym } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { printType } from "../../compiler/ir/types.js";
import { getOp } from "../../compiler/ops/registry.js";
import { assertClose, t } from "../util/helpers.js";
import { runSingleOp } from "./single-op.js";

// q = k = 0 makes every logit 0, so a bias of log(A) sets the attention probabilities to A exactly.
function probs(heads: number[][][]): { q: Tensor; k: Tensor; v: Tensor; bias: Tensor } {
  const H = heads.length;
  const N = heads[0].length;
  return {
    q: t("f32", [1, H, N, 1], new Array<number>(H * N).fill(0)),
    k: t("f32", [1, H, N, 1], new Array<number>(H * N).fill(0)),
    v: t("f32", [1, H, N, 1], new Array<number>(H * N).fill(1)),
    bias: t("f32", [1, H, N, N], heads.flat(2).map(Math.log)),
  };
}

const A = [
  [0.5, 0.5],
  [0.25, 0.75],
];

test("attention graph: one head, hand-iterated rank [.375, .625] -> [.34375, .65625] -> [1/3, 2/3]", () => {
  const { q, k, v, bias } = probs([A]);
  const run = (graph_iters: number): Tensor =>
    runSingleOp("attention", [q, k, v, null, bias], { scores: "graph", graph_iters }, 2).outs[1];
  // s0 = [.5, .5]; s1 = A^T s0 = [.375, .625]; s2 = A^T s1 = [.34375, .65625].
  assertClose(run(1), t("f32", [1, 2], [0.375, 0.625]));
  assertClose(run(2), t("f32", [1, 2], [0.34375, 0.65625]));
  // The stationary distribution pi = pi A is [1/3, 2/3].
  assertClose(run(60), t("f32", [1, 2], [1 / 3, 2 / 3]));
  // The default is 5 iterations; the distance to pi shrinks 4x per step (A's other eigenvalue is 1/4).
  const five = runSingleOp("attention", [q, k, v, null, bias], { scores: "graph" }, 2).outs[1];
  assertClose(five, t("f32", [1, 2], [1 / 3 + (0.5 - 1 / 3) / 4 ** 5, 2 / 3 - (0.5 - 1 / 3) / 4 ** 5]));
});

test("attention graph: heads are averaged before ranking; one iteration is colsum scaled to 1", () => {
  // Head 2 is the identity-ish A2; the graph uses (A + A2) / 2 = [[.7, .3], [.175, .825]].
  const A2 = [
    [0.9, 0.1],
    [0.1, 0.9],
  ];
  const { q, k, v, bias } = probs([A, A2]);
  const g = runSingleOp("attention", [q, k, v, null, bias], { scores: "graph", graph_iters: 2 }, 2).outs[1];
  // s1 = [.4375, .5625]; s2 = [.7*.4375 + .175*.5625, .3*.4375 + .825*.5625] = [.40469, .59531].
  assertClose(g, t("f32", [1, 2], [0.7 * 0.4375 + 0.175 * 0.5625, 0.3 * 0.4375 + 0.825 * 0.5625]));
  const one = runSingleOp("attention", [q, k, v, null, bias], { scores: "graph", graph_iters: 1 }, 2).outs[1];
  const col = runSingleOp("attention", [q, k, v, null, bias], { scores: "colsum" }, 2).outs[1];
  const sum = col.data[0] + col.data[1];
  assertClose(one, t("f32", [1, 2], [col.data[0] / sum, col.data[1] / sum]));
});

test("attention graph: a fully masked query row contributes nothing; an all-masked batch gives zeros", () => {
  // 3 tokens, q = 0 -> uniform over allowed keys. Row 0 attends {0, 1}, row 1 {1}, row 2 nothing.
  const q = t("f32", [2, 1, 3, 1], [0, 0, 0, 0, 0, 0]);
  const k = t("f32", [2, 1, 3, 1], [1, 2, 3, 1, 2, 3]);
  const v = t("f32", [2, 1, 3, 1], [1, 2, 3, 1, 2, 3]);
  const mask = t("bool", [2, 1, 3, 3], [1, 1, 0, 0, 1, 0, 0, 0, 0, ...new Array<number>(9).fill(0)]);
  const { outs } = runSingleOp("attention", [q, k, v, mask], { scores: "graph", graph_iters: 2 }, 2);
  // s0 = 1/3 each; A^T s0 = [1/6, 1/6 + 1/3, 0] -> [.25, .75, 0]; A^T s1 = [.125, .125 + .75, 0] -> same /1.
  assertClose(outs[1], t("f32", [2, 3], [0.125, 0.875, 0, 0, 0, 0]));
  assert.ok(Array.from(outs[0].data).every((x) => !Number.isNaN(x)));
});

test("attention graph: causal self-attention ranks the first token highest", () => {
  // Uniform causal attention over 3 tokens: A = [[1,0,0],[.5,.5,0],[1/3,1/3,1/3]].
  const z = t("f32", [1, 1, 3, 1], [0, 0, 0]);
  const imp = runSingleOp("attention", [z, z, z], { causal: true, scores: "graph", graph_iters: 1 }, 2)
    .outs[1];
  // colsum = [11/6, 5/6, 1/3], sum 3.
  assertClose(imp, t("f32", [1, 3], [11 / 18, 5 / 18, 1 / 9]));
});

test("attention graph: inference, errors and flops", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N"]) b.symbol(s);
  const q = b.input("q", "f32", [sym("B"), 2, sym("N"), 4], ["batch", null, "token", null]);
  const [, imp] = b.ops("attention", [q, q, q], { scores: "graph" }, 2);
  assert.equal(printType(imp.type), "f32[B@batch, N@token]");
  const q3 = b.input("q3", "f32", [1, 2, 3, 4]);
  const k5 = b.input("k5", "f32", [1, 2, 5, 4]);
  assert.throws(
    () => b.ops("attention", [q3, k5, k5], { scores: "graph" }, 2),
    /scores = "graph" needs as many queries as keys, got Nq = 3, Nk = 5/,
  );
  assert.throws(
    () => b.ops("attention", [q3, q3, q3], { scores: "graph", graph_iters: 0 }, 2),
    /graph_iters must be >= 1, got 0/,
  );
  assert.throws(
    () => b.ops("attention", [q3, q3, q3], { scores: "cls", graph_iters: 3 }, 2),
    /graph_iters applies only to scores = "graph", not "cls"/,
  );
  assert.throws(() => b.ops("attention", [q3, q3, q3], { scores: "graph" }), /needs the importance output/);

  // flops: the plain attention count + B*Hq*N*N (head average) + T*B*(2*N*N + 2*N).
  const def = getOp("attention")!;
  const flops = (attrs: Record<string, string | number>): string => {
    const g = b.output(q);
    const node = { op: "attention", attrs, inputs: [q, q, q] };
    const ctx = makeInferCtx(g, def, node, 2, { known: computeKnown(g), dataDims: "mint" });
    return printDim(def.flops!(ctx, def.infer(ctx)));
  };
  const plain = flops({ scores: "colsum" });
  assert.equal(plain, "42*B*N*N"); // Hq = 2, D = Dv = 4: (2*8 + 5) * 2*B*N*N
  // + 2*B*N*N (head average) + 3 * B * (2*N*N + 2*N).
  assert.equal(flops({ scores: "graph", graph_iters: 3 }), "6*B*N + 50*B*N*N");
});
