import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { computeKnown, makeInferCtx } from "../../compiler/infer.js";
import { printDim, sym } from "../../compiler/ir/sym.js";
import { printType } from "../../compiler/ir/types.js";
import type { Attrs } from "../../compiler/ir/attrs.js";
import { getOp } from "../../compiler/ops/registry.js";
import { assertClose, t } from "../util/helpers.js";
import { runSingleOp } from "./single-op.js";

// Six tokens of two channels, entering (a) and leaving (b) a block:
// 0: [3,4] -> [6,8]   same direction, norm 5 -> 10: mag 5/10, dir 0
// 1: [1,0] -> [0,2]   orthogonal, norm 1 -> 2:      mag 1/2,  dir 1
// 2: [1,0] -> [-1,0]  reversed, same norm:          mag 0,    dir 2
// 3: [0,0] -> [0,0]   unchanged zero vector:        mag 0,    dir 0 (cos defined as 1)
// 4: [0,0] -> [1,0]   appears from zero:            mag 1,    dir 1 (cos defined as 0)
// 5: [1,1] -> [1,1]   unchanged:                    0, 0
const a = t("f32", [1, 6, 2], [3, 4, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1]);
const b = t("f32", [1, 6, 2], [6, 8, 0, 2, -1, 0, 0, 0, 1, 0, 1, 1]);

test("score transition: hand-computed magnitude and direction terms, zero vectors included", () => {
  const { outs } = runSingleOp("tokens.score", [a, b], { method: "transition" });
  assertClose(outs[0], t("f32", [1, 6], [0.5, 1.5, 2, 0, 2, 0]));
  // Weights scale the two terms separately: 2 * mag + 0.5 * dir.
  const w = runSingleOp("tokens.score", [a, b], { method: "transition", w_mag: 2, w_dir: 0.5 }).outs[0];
  assertClose(w, t("f32", [1, 6], [1, 1.5, 1, 0, 2.5, 0]));
});

test("score transition: identical tensors score 0; a shrinking token scores like a growing one", () => {
  const same = runSingleOp("tokens.score", [b, b], { method: "transition" }).outs[0];
  assertClose(same, t("f32", [1, 6], [0, 0, 0, 0, 0, 0]));
  // Swapping a and b keeps mag (relative to the larger norm) and dir: the score is symmetric.
  const swapped = runSingleOp("tokens.score", [b, a], { method: "transition" }).outs[0];
  assertClose(swapped, t("f32", [1, 6], [0.5, 1.5, 2, 0, 2, 0]));
});

test("score key_norm: L2 norm per token; rank 4 averages the heads", () => {
  const k3 = t("f32", [2, 2, 2], [3, 4, 0, 0, 1, 0, 0, -2]);
  assertClose(
    runSingleOp("tokens.score", [k3], { method: "key_norm" }).outs[0],
    t("f32", [2, 2], [5, 0, 1, 2]),
  );
  // [B=1, H=2, N=2, D=2]: token 0 has norms 5 and 1 -> 3; token 1 has 0 and 2 -> 1.
  const k4 = t("f32", [1, 2, 2, 2], [3, 4, 0, 0, 1, 0, 0, 2]);
  assertClose(runSingleOp("tokens.score", [k4], { method: "key_norm" }).outs[0], t("f32", [1, 2], [3, 1]));
});

test("score: symbolic inference keeps batch and token axes", () => {
  const g = new GraphBuilder("g");
  for (const s of ["B", "N", "H"]) g.symbol(s);
  const x = g.input("x", "f32", [sym("B"), sym("N"), 8], ["batch", "token", "channel"]);
  const y = g.input("y", "f32", [sym("B"), sym("N"), 8]);
  assert.equal(
    printType(g.op("tokens.score", [x, y], { method: "transition" }).type),
    "f32[B@batch, N@token]",
  );
  const k = g.input("k", "f16", [sym("B"), sym("H"), sym("N"), 4], ["batch", "head", "token", null]);
  assert.equal(printType(g.op("tokens.score", [k], { method: "key_norm" }).type), "f32[B@batch, N@token]");
});

test("score: infer errors", () => {
  const g = new GraphBuilder("g");
  const x = g.input("x", "f32", [1, 5, 2]);
  const y4 = g.input("y4", "f32", [1, 4, 2]);
  const i = g.input("i", "i32", [1, 5, 2]);
  const k2 = g.input("k2", "f32", [5, 2]);
  assert.throws(() => g.op("tokens.score", [x], { method: "transition" }), /"transition" needs b/);
  assert.throws(
    () => g.op("tokens.score", [x, y4], { method: "transition" }),
    /b has shape \[1, 4, 2\], expected \[1, 5, 2\]/,
  );
  assert.throws(() => g.op("tokens.score", [x, x], { method: "key_norm" }), /takes one input/);
  assert.throws(() => g.op("tokens.score", [x], { method: "key_norm", w_dir: 2 }), /w_dir applies only/);
  assert.throws(() => g.op("tokens.score", [k2], { method: "key_norm" }), /keys must be \[B, N, C\] or/);
  assert.throws(() => g.op("tokens.score", [i], { method: "key_norm" }), /a must be a float tensor/);
  assert.throws(() => g.op("tokens.score", [x, x], {}), /missing attribute 'method'/);
  assert.throws(() => g.op("tokens.score", [x, x], { method: "norm" }), /must be one of/);
});

test("score: flops", () => {
  const g = new GraphBuilder("g");
  for (const s of ["B", "N"]) g.symbol(s);
  const x = g.input("x", "f32", [sym("B"), sym("N"), 8]);
  const k = g.input("k", "f32", [sym("B"), 2, sym("N"), 4]);
  const def = getOp("tokens.score")!;
  const flops = (inputs: (typeof x)[], attrs: Attrs): string => {
    const graph = g.output(x);
    const ctx = makeInferCtx(graph, def, { op: def.name, attrs, inputs }, 1, {
      known: computeKnown(graph),
      dataDims: "mint",
    });
    return printDim(def.flops!(ctx, def.infer(ctx)));
  };
  // 6*C + 10 per token; key_norm 2 per element (16) + 2 per (head, token) (4).
  assert.equal(flops([x, x], { method: "transition" }), "58*B*N");
  assert.equal(flops([k], { method: "key_norm" }), "20*B*N");
});
