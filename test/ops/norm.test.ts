import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { Graph } from "../../compiler/ir/graph.js";
import { assertClose, t } from "../util/helpers.js";
import { infer, inferStr, ref, ty } from "./harness.js";

describe("LayerNormalization", () => {
  it("normalizes the last axis with scale and bias", () => {
    // mean 2.5, var 1.25, 1/sqrt(1.25) = 0.894427191
    const x = t("f32", [4], [1, 2, 3, 4]);
    const [y] = ref("LayerNormalization", [x], { epsilon: 0 });
    assertClose(y, t("f32", [4], [-1.3416408, -0.4472136, 0.4472136, 1.3416408]));
    const scale = t("f32", [4], [2, 1, 1, 1]);
    const bias = t("f32", [4], [0, 0, 1, 0]);
    const [z] = ref("LayerNormalization", [x, scale, bias], { epsilon: 0 });
    assertClose(z, t("f32", [4], [-2.6832816, -0.4472136, 1.4472136, 1.3416408]));
  });

  it("adds epsilon to the variance", () => {
    // var 1, eps 1: 1/sqrt(2)
    const [y] = ref("LayerNormalization", [t("f32", [2], [1, -1])], { epsilon: 1 });
    assertClose(y, t("f32", [2], [0.70710678, -0.70710678]));
  });

  it("returns Mean and InvStdDev", () => {
    // rows [1, 3] and [2, 6]: means 2 and 4, variances 1 and 4.
    const outs = ref("LayerNormalization", [t("f64", [2, 2], [1, 3, 2, 6])], { epsilon: 0 }, 3);
    assert.equal(outs.length, 3);
    assertClose(outs[0], t("f64", [2, 2], [-1, 1, -1, 1]));
    assertClose(outs[1], t("f32", [2, 1], [2, 4]));
    assertClose(outs[2], t("f32", [2, 1], [1, 0.5]));
  });

  it("normalizes over every axis from `axis` on", () => {
    // mean 3, deviations [-2, 0, -1, 3], var 3.5, 1/sqrt(3.5) = 0.5345225
    const [y, mean] = ref("LayerNormalization", [t("f32", [2, 2], [1, 3, 2, 6])], { axis: 0, epsilon: 0 }, 2);
    assertClose(y, t("f32", [2, 2], [-1.069045, 0, -0.5345225, 1.6035675]));
    assertClose(mean, t("f32", [1, 1], [3]));
  });

  it("broadcasts a scale of lower rank", () => {
    // Per-column scale [1, 10] over a [2, 2] normalization.
    const [y] = ref("LayerNormalization", [t("f32", [2, 2], [1, 3, 2, 6]), t("f32", [2], [1, 10])], {
      axis: 0,
      epsilon: 0,
    });
    assertClose(y, t("f32", [2, 2], [-1.069045, 0, -0.5345225, 16.035675]));
  });

  it("infers Y, Mean and InvStdDev types", () => {
    const x = ty("f32[B@batch, N@token, 64]");
    assert.deepEqual(inferStr("LayerNormalization", [x, ty("f32[64]"), ty("f32[64]")], {}, 3), [
      "f32[B@batch, N@token, 64]",
      "f32[B@batch, N@token, 1]",
      "f32[B@batch, N@token, 1]",
    ]);
    assert.deepEqual(inferStr("LayerNormalization", [ty("f16[B@batch, N@token, 64]")], { axis: 1 }, 2), [
      "f16[B@batch, N@token, 64]",
      "f32[B@batch, 1, 1]",
    ]);
  });

  it("rejects bad uses", () => {
    const x = ty("f32[B, N, 64]");
    assert.throws(
      () => infer("LayerNormalization", [x, ty("f32[32]")]),
      /scale of shape \[32\] does not broadcast/,
    );
    assert.throws(() => infer("LayerNormalization", [x, ty("f32[64]"), ty("f16[64]")]), /bias has dtype f16/);
    assert.throws(() => infer("LayerNormalization", [x, ty("f32[2, B, N, 64]")]), /does not broadcast/);
    assert.throws(() => infer("LayerNormalization", [x], { axis: 3 }), /axis 3 is out of range for rank 3/);
    assert.throws(() => infer("LayerNormalization", [ty("i32[4]")]), /float/);
    assert.throws(() => infer("LayerNormalization", [x], { stash_type: 11 }), /stash_type/);
  });
});

describe("RMSNorm", () => {
  it("divides by the root mean square and scales", () => {
    // mean(x^2) = 12.5, sqrt = 3.5355339
    assertClose(
      ref("RMSNorm", [t("f32", [2], [3, 4])], { epsilon: 0 })[0],
      t("f32", [2], [0.8485281, 1.1313708]),
    );
    const [y] = ref("RMSNorm", [t("f32", [2], [3, 4]), t("f32", [2], [2, 0.5])], { epsilon: 0 });
    assertClose(y, t("f32", [2], [1.6970563, 0.5656854]));
  });

  it("uses epsilon 1e-6 by default", () => {
    // mean(x^2) = 1e-6, + 1e-6 = 2e-6: y = 1e-3 / sqrt(2e-6) = 1/sqrt(2)
    const [y] = ref("RMSNorm", [t("f64", [2], [1e-3, 1e-3])]);
    assertClose(y, t("f64", [2], [0.70710678, 0.70710678]), 1e-7);
  });

  it("normalizes rows independently and infers", () => {
    const [y] = ref("RMSNorm", [t("f32", [2, 2], [3, 4, 0, 2])], { epsilon: 0 });
    // second row: mean(x^2) = 2, sqrt 1.4142136
    assertClose(y, t("f32", [2, 2], [0.8485281, 1.1313708, 0, 1.4142136]));
    assert.deepEqual(inferStr("RMSNorm", [ty("f32[B@batch, N@token, 64]"), ty("f32[64]")]), [
      "f32[B@batch, N@token, 64]",
    ]);
    assert.throws(() => infer("RMSNorm", [ty("f32[B, N, 64]"), ty("f32[63]")]), /does not broadcast/);
  });
});

describe("Softmax", () => {
  it("computes hand-checked values", () => {
    // e^-2, e^-1, 1 over their sum 1.5032147
    assertClose(
      ref("Softmax", [t("f32", [3], [1, 2, 3])])[0],
      t("f32", [3], [0.0900306, 0.2447285, 0.665241]),
    );
  });

  it("is numerically stable and handles -inf masks", () => {
    assertClose(ref("Softmax", [t("f32", [2], [1000, 1000])])[0], t("f32", [2], [0.5, 0.5]));
    assertClose(ref("Softmax", [t("f32", [3], [-1000, 0, -Infinity])])[0], t("f32", [3], [0, 1, 0]));
  });

  it("works along a non-last axis", () => {
    // column 0: softmax(1, 3) = [0.1192029, 0.8807971]; column 1: [0.5, 0.5]
    const [y] = ref("Softmax", [t("f32", [2, 2], [1, 1, 3, 1])], { axis: 0 });
    assertClose(y, t("f32", [2, 2], [0.1192029, 0.5, 0.8807971, 0.5]));
    const [z] = ref("Softmax", [t("f32", [1, 2, 2], [1, 1, 3, 1])], { axis: -2 });
    assertClose(z, t("f32", [1, 2, 2], [0.1192029, 0.5, 0.8807971, 0.5]));
  });

  it("infers and rejects", () => {
    assert.deepEqual(inferStr("Softmax", [ty("f32[B@batch, H@head, N@token, N]")]), [
      "f32[B@batch, H@head, N@token, N]",
    ]);
    assert.throws(() => infer("Softmax", [ty("f32[B, N]")], { axis: -3 }), /out of range/);
    assert.throws(() => infer("Softmax", [ty("i64[4]")]), /float/);
  });
});

describe("attention in a graph", () => {
  it("runs MatMul -> Softmax -> MatMul on the CPU interpreter", () => {
    const g = new Graph("t");
    g.declareSymbol({ name: "N" });
    const q = g.addInput(ty("f32[N@token, 2]"), "q");
    const kt = g.addInput(ty("f32[2, N]"), "kt");
    const v = g.addInput(ty("f32[N, 1]"), "v");
    const [s] = g.addNode("MatMul", [q, kt], [ty("f32[N@token, N]")]).outputs;
    const [p] = g.addNode("Softmax", [s], [ty("f32[N@token, N]")]).outputs;
    const [o] = g.addNode("MatMul", [p, v], [ty("f32[N@token, 1]")], {}, { names: ["o"] }).outputs;
    g.outputs.push(o);
    // Scores [[0, 0], [0, ln 3]]: row 0 averages v evenly, row 1 weighs it 1:3.
    const inputs = new Map([
      ["q", t("f32", [2, 2], [0, 0, 0, 1])],
      ["kt", t("f32", [2, 2], [0, 0, 0, Math.log(3)])],
      ["v", t("f32", [2, 1], [4, 8])],
    ]);
    assertClose(runGraph(g, inputs).get("o")!, t("f32", [2, 1], [6, 7]));
  });
});
