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

const LN3 = Math.log(3);

/** Naive softmax(q k^T * scale) v for one (b, h) slice given as row-major arrays. */
function naiveHead(q: number[][], k: number[][], v: number[][], scale: number): number[][] {
  return q.map((qi) => {
    const s = k.map((kj) => scale * kj.reduce((acc, x, d) => acc + x * qi[d], 0));
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return v[0].map((_, d) => e.reduce((acc, w, j) => acc + (w / z) * v[j][d], 0));
  });
}

/** Rows [n, d] of slice (b, h) of a rank-4 tensor. */
function slice(x: Tensor, b: number, h: number): number[][] {
  const [, H, N, D] = x.shape;
  return Array.from({ length: N }, (_, i) =>
    Array.from({ length: D }, (_, d) => x.data[((b * H + h) * N + i) * D + d]),
  );
}

test("attention: one head, scale 1, hand-computed probabilities 3/4 and 1/4", () => {
  // scores [ln 3, 0] -> softmax [3/4, 1/4]; out = 3/4 [4, 0] + 1/4 [0, 8] = [3, 2].
  const q = t("f32", [1, 1, 1, 2], [1, 0]);
  const k = t("f32", [1, 1, 2, 2], [LN3, 0, 0, 0]);
  const v = t("f32", [1, 1, 2, 2], [4, 0, 0, 8]);
  const { outs } = runSingleOp("attention", [q, k, v], { scale: 1 });
  assertClose(outs[0], t("f32", [1, 1, 1, 2], [3, 2]));
});

test("attention: matches a naive softmax(QK^T/sqrt(D))V over batch and heads", () => {
  const vals = (n: number, seed: number): number[] =>
    Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 1.5);
  const q = t("f32", [2, 2, 3, 3], vals(36, 1));
  const k = t("f32", [2, 2, 4, 3], vals(48, 2));
  const v = t("f32", [2, 2, 4, 2], vals(32, 3));
  const { outs } = runSingleOp("attention", [q, k, v]);
  const want: number[] = [];
  for (let b = 0; b < 2; b++)
    for (let h = 0; h < 2; h++)
      want.push(...naiveHead(slice(q, b, h), slice(k, b, h), slice(v, b, h), 1 / Math.sqrt(3)).flat());
  assertClose(outs[0], t("f32", [2, 2, 3, 2], want));
});

test("attention: grouped KV heads (Hq=4, Hkv=2): query head h reads kv head floor(h/2)", () => {
  // Zero keys give uniform weights, so each head returns the mean of its kv head's values.
  const q = t("f32", [1, 4, 1, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const k = t("f32", [1, 2, 2, 2], [0, 0, 0, 0, 0, 0, 0, 0]);
  const v = t("f32", [1, 2, 2, 1], [1, 1, 2, 2]);
  const { outs } = runSingleOp("attention", [q, k, v]);
  assertClose(outs[0], t("f32", [1, 4, 1, 1], [1, 1, 2, 2]));

  // And against the naive computation with distinct keys.
  const k2 = t("f32", [1, 2, 2, 2], [0.5, -1, 2, 0.25, -0.75, 1, 0.1, 0.3]);
  const v2 = t("f32", [1, 2, 2, 1], [1, 3, -2, 5]);
  const got = runSingleOp("attention", [q, k2, v2]).outs[0];
  const want: number[] = [];
  for (let h = 0; h < 4; h++)
    want.push(...naiveHead(slice(q, 0, h), slice(k2, 0, h >> 1), slice(v2, 0, h >> 1), Math.SQRT1_2).flat());
  assertClose(got, t("f32", [1, 4, 1, 1], want));
});

test("attention: broadcast mask; a fully masked row gives zeros, not NaN", () => {
  // q = 0: uniform over attended keys. Row 0 attends keys 0 and 2, row 1 nothing.
  const q = t("f32", [1, 1, 2, 1], [0, 0]);
  const k = t("f32", [1, 1, 3, 1], [1, 2, 3]);
  const v = t("f32", [1, 1, 3, 2], [1, 10, 2, 20, 4, 40]);
  const mask = t("bool", [2, 3], [1, 0, 1, 0, 0, 0]);
  const { outs } = runSingleOp("attention", [q, k, v, mask], { scores: "colsum" }, 2);
  assertClose(outs[0], t("f32", [1, 1, 2, 2], [2.5, 25, 0, 0]));
  assertClose(outs[1], t("f32", [1, 3], [0.5, 0, 0.5]));
});

test("attention: causal with Nq < Nk offsets the diagonal; with Nq > Nk early rows are empty", () => {
  const v = t("f32", [1, 1, 3, 1], [1, 2, 6]);
  const k = t("f32", [1, 1, 3, 1], [5, -1, 2]);
  // Nq=2, Nk=3: query i attends j <= i + 1 -> row 0 mean(1, 2), row 1 mean(1, 2, 6).
  const q = t("f32", [1, 1, 2, 1], [0, 0]);
  assertClose(
    runSingleOp("attention", [q, k, v], { causal: true }).outs[0],
    t("f32", [1, 1, 2, 1], [1.5, 3]),
  );
  // Nq=3, Nk=2: query i attends j <= i - 1 -> row 0 nothing, row 1 key 0, row 2 keys 0 and 1.
  const q3 = t("f32", [1, 1, 3, 1], [0, 0, 0]);
  const k2 = t("f32", [1, 1, 2, 1], [1, 1]);
  const v2 = t("f32", [1, 1, 2, 1], [4, 8]);
  assertClose(
    runSingleOp("attention", [q3, k2, v2], { causal: true }).outs[0],
    t("f32", [1, 1, 3, 1], [0, 4, 6]),
  );
});

test("attention: bias of log(size) gives ToMe proportional attention", () => {
  // q = 0, bias = log([1, 2, 5]) -> p = [1/8, 2/8, 5/8]; out = 8 * 1/8 = 1.
  const q = t("f32", [1, 1, 1, 1], [0]);
  const k = t("f32", [1, 1, 3, 1], [1, 2, 3]);
  const v = t("f32", [1, 1, 3, 1], [8, 0, 0]);
  const bias = t("f32", [3], [0, Math.log(2), Math.log(5)]);
  assertClose(runSingleOp("attention", [q, k, v, null, bias]).outs[0], t("f32", [1, 1, 1, 1], [1]));
});

test("attention: cls and colsum importance averaged over heads", () => {
  // D=1, scale 1, k = [1, 0]. Head 0: q = [ln3, 0] -> rows [3/4, 1/4], [1/2, 1/2].
  // Head 1: q = [0, ln3] -> rows [1/2, 1/2], [3/4, 1/4].
  // cls = mean of row 0 over heads = [5/8, 3/8]; colsum = mean of column sums = [5/4, 3/4].
  const q = t("f32", [1, 2, 2, 1], [LN3, 0, 0, LN3]);
  const k = t("f32", [1, 1, 2, 1], [1, 0]);
  const v = t("f32", [1, 1, 2, 1], [0, 0]);
  const cls = runSingleOp("attention", [q, k, v], { scale: 1, scores: "cls" }, 2).outs[1];
  assertClose(cls, t("f32", [1, 2], [5 / 8, 3 / 8]));
  const colsum = runSingleOp("attention", [q, k, v], { scale: 1, scores: "colsum" }, 2).outs[1];
  assertClose(colsum, t("f32", [1, 2], [5 / 4, 3 / 4]));
});

test("attention: symbolic inference, axis roles and flops", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N", "M"]) b.symbol(s);
  const q = b.input("q", "f16", [sym("B"), 4, sym("N"), 16], ["batch", "head", "token", "channel"]);
  const k = b.input("k", "f16", [sym("B"), 2, sym("M"), 16], ["batch", "head", "token", "channel"]);
  const v = b.input("v", "f16", [sym("B"), 2, sym("M"), 8]);
  const [out, imp] = b.ops("attention", [q, k, v], { scores: "cls" }, 2);
  assert.equal(printType(out.type), "f16[B@batch, 4@head, N@token, 8@channel]");
  assert.equal(printType(imp.type), "f32[B@batch, M@token]");
  const def = getOp("attention")!;
  const node = b.g.nodes[0];
  const ctx = makeInferCtx(b.g, def, node, 2, { known: computeKnown(b.g), dataDims: "declared" });
  // 2*B*4*N*M*(16+8) + 5*B*4*N*M
  assert.equal(printDim(def.flops!(ctx, [out.type, imp.type])), "212*B*M*N");
});

test("attention: infer errors", () => {
  const b = new GraphBuilder("g");
  const q = b.input("q", "f32", [1, 3, 2, 4]);
  const k = b.input("k", "f32", [1, 2, 5, 4]);
  const v = b.input("v", "f32", [1, 2, 5, 4]);
  assert.throws(() => b.ops("attention", [q, k, v]), /not a multiple of Hkv/);
  const q4 = b.input("q4", "f32", [1, 4, 2, 4]);
  assert.throws(() => b.ops("attention", [q4, k, v], {}, 2), /importance output needs scores/);
  assert.throws(() => b.ops("attention", [q4, k, v], { scores: "colsum" }), /needs the importance output/);
  const badMask = b.input("m", "bool", [3, 5]);
  assert.throws(() => b.ops("attention", [q4, k, v, badMask]), /mask of shape \[3, 5\] does not broadcast/);
  const fmask = b.input("fm", "f32", [2, 5]);
  assert.throws(() => b.ops("attention", [q4, k, v, fmask]), /mask must be bool/);
  const kd = b.input("kd", "f32", [1, 2, 5, 3]);
  assert.throws(() => b.ops("attention", [q4, kd, v]), /head dims of q and k differ/);
  const v6 = b.input("v6", "f32", [1, 2, 6, 4]);
  assert.throws(() => b.ops("attention", [q4, k, v6]), /key counts of k and v differ/);
});
