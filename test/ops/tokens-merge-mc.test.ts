import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { computeKnown, makeInferCtx } from "../../compiler/infer.js";
import type { Attrs } from "../../compiler/ir/attrs.js";
import { printDim, sym } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { getOp } from "../../compiler/ops/registry.js";
import { assertClose, t } from "../util/helpers.js";
import { runSingleOp } from "./single-op.js";

// The 5-token example of tokens.test.ts (protect_first = 1): A = positions 1, 3; B = 2, 4.
// cos(1,2) = 1, cos(1,4) = .7071, cos(3,2) = 0, cos(3,4) = .7071. Bipartite merges 1 into 2 first.
const xm = t("f32", [1, 5, 2], [100, 0, 1, -1, 2, -2, 3, -3, 4, -4]);
const mm = t("f32", [1, 5, 2], [1, 0, 1, 0, 2, 0, 0, 1, 1, 1]);
// Below, R = cos(1,4) = cos(3,4) = 1/sqrt(2).

const merge = (inputs: readonly (Tensor | null)[], attrs: Attrs): Tensor[] =>
  runSingleOp("tokens.merge", inputs, attrs, 3).outs;

test("merge multi_criteria: informative tokens 1 and 2 are spared, 3 merges into 4 first", () => {
  // Importance over the unprotected tokens 1..4 is [1, 1, 0, 0] after min-max (CLS is ignored).
  const imp = t("f32", [1, 5], [0.9, 0.8, 0.8, 0.2, 0.2]);
  const attrs = { r: 1, method: "multi_criteria", w_sim: 1, w_info: 1, w_size: 0 };
  // Edges: (1,2) = 1 - 1 = 0, (1,4) = R - .5 = .207, (3,2) = -.5, (3,4) = R. Best: 1 -> 4, 3 -> 4.
  const one = merge([xm, mm, null, imp], attrs);
  assertClose(one[0], t("f32", [1, 4, 2], [100, 0, 1, -1, 2, -2, 3.5, -3.5]));
  assertClose(one[1], t("f32", [1, 4, 1], [1, 1, 1, 2]));
  assertClose(one[2], t("i64", [1, 5], [0, 1, 2, 3, 3]));
  // r = 2: 1 also goes to 4 -> (1 + 3 + 4) / 3.
  const two = merge([xm, mm, null, imp], { ...attrs, r: 2 });
  assertClose(two[0], t("f32", [1, 3, 2], [100, 0, 2, -2, 8 / 3, -8 / 3]));
  assertClose(two[1], t("f32", [1, 3, 1], [1, 1, 3]));
  assertClose(two[2], t("i64", [1, 5], [0, 2, 1, 2, 2]));
});

test("merge multi_criteria: the size term makes the smaller pair merge first", () => {
  // Sizes of tokens 1..4: [3, 1, 2, 1] -> size / max = [1, 1/3, 2/3, 1/3].
  const sizes = t("f32", [1, 5, 1], [1, 3, 1, 2, 1]);
  // w_size = 2: (1,2) = 1 - 4/3 = -1/3, (1,4) = R - 4/3, (3,2) = -1, (3,4) = R - 1 = -.293 > -1/3.
  const out = merge([xm, mm, sizes], { r: 1, method: "multi_criteria", w_info: 0, w_size: 2 });
  assertClose(out[0], t("f32", [1, 4, 2], [100, 0, 1, -1, 2, -2, 10 / 3, -10 / 3]));
  assertClose(out[1], t("f32", [1, 4, 1], [1, 3, 1, 3]));
  assertClose(out[2], t("i64", [1, 5], [0, 1, 2, 3, 3]));
  // w_size = 1 keeps the bipartite choice: (1,2) = 1/3 beats (3,4) = R - .5.
  const weak = merge([xm, mm, sizes], { r: 1, method: "multi_criteria", w_info: 0, w_size: 1 });
  assertClose(weak[2], t("i64", [1, 5], [0, 1, 1, 2, 3]));
});

test("merge multi_criteria: with w_info = w_size = 0 (and w_sim > 0) it equals bipartite", () => {
  const vals = (n: number, seed: number): number[] =>
    Array.from({ length: n }, (_, i) => Math.sin(seed * 3.7 + i * 1.9) * 2);
  const x = t("f32", [2, 9, 3], vals(54, 1));
  const m = t("f32", [2, 9, 4], vals(72, 2));
  const size = t(
    "f32",
    [2, 9, 1],
    vals(18, 3).map((v) => 1 + Math.abs(v)),
  );
  const imp = t("f32", [2, 9], vals(18, 4));
  for (const r of [1, 2, 4]) {
    const bip = merge([x, m, size], { r });
    const mc = merge([x, m, size, imp], { r, method: "multi_criteria", w_sim: 2, w_info: 0, w_size: 0 });
    bip.forEach((o, i) => assertClose(mc[i], o, 1e-6, `r = ${r}, output ${i}`));
  }
});

test("merge multi_criteria: NaN importance ranks its edges lowest; constant importance is ignored", () => {
  // Token 1's edges are NaN: 3 -> 4 (R) merges first although 1 -> 2 has cosine 1.
  const nan = t("f32", [1, 5], [0, NaN, 0.5, 0.5, 0.5]);
  const out = merge([xm, mm, null, nan], { r: 1, method: "multi_criteria" });
  assertClose(out[2], t("i64", [1, 5], [0, 1, 2, 3, 3]));
  assert.ok(Array.from(out[0].data).every((v) => !Number.isNaN(v)));
  // Constant importance normalises to 0: the default weights then only see cosine and (equal) sizes.
  const flat = t("f32", [1, 5], [7, 7, 7, 7, 7]);
  const same = merge([xm, mm, null, flat], { r: 1, method: "multi_criteria" });
  assertClose(same[2], t("i64", [1, 5], [0, 1, 1, 2, 3]));
});

test("merge multi_criteria: inference errors and flops", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "f32", [1, 5, 2]);
  const m = b.input("m", "f32", [1, 5, 3]);
  const imp = b.input("imp", "f32", [1, 5]);
  const imp4 = b.input("imp4", "f32", [1, 4]);
  const impI = b.input("impI", "i32", [1, 5]);
  assert.throws(
    () => b.ops("tokens.merge", [x, m, null, imp], { r: 1 }),
    /the importance input is used only by method "multi_criteria"/,
  );
  assert.throws(() => b.ops("tokens.merge", [x, m], { r: 1, w_info: 1 }), /w_info applies only/);
  assert.throws(
    () => b.ops("tokens.merge", [x, m, null, imp4], { r: 1, method: "multi_criteria" }),
    /importance has shape \[1, 4\], expected \[1, 5\]/,
  );
  assert.throws(
    () => b.ops("tokens.merge", [x, m, null, impI], { r: 1, method: "multi_criteria" }),
    /importance must be a float tensor/,
  );
  assert.throws(() => b.ops("tokens.merge", [x, m], { r: 1, method: "mctf" }), /must be one of/);

  for (const s of ["B", "N"]) b.symbol(s);
  const xs = b.input("xs", "f32", [sym("B"), 9, 8]);
  const ms = b.input("ms", "f32", [sym("B"), 9, 4]);
  const def = getOp("tokens.merge")!;
  const flops = (attrs: Attrs): string => {
    const g = b.output(xs);
    const ctx = makeInferCtx(g, def, { op: def.name, attrs, inputs: [xs, ms] }, 1, {
      known: computeKnown(g),
      dataDims: "mint",
    });
    return printDim(def.flops!(ctx, def.infer(ctx)));
  };
  // U = 8: 4 x 4 pairs. Bipartite 2*16*4 + 2*9*8 = 272; multi_criteria + 2*9 + 6*16 = 386.
  assert.equal(flops({ r: 2 }), "272*B");
  assert.equal(flops({ r: 2, method: "multi_criteria" }), "386*B");
});
