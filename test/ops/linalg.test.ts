import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Graph } from "../../compiler/ir/graph.js";
import { dimEquals, mul, parseDim, sym } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { printType, tensorType } from "../../compiler/ir/types.js";
import { makeInferCtx } from "../../compiler/infer.js";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { assertClose, t } from "../util/helpers.js";
import { infer, inferStr, opDef, ref, ty } from "./harness.js";

describe("MatMul", () => {
  it("multiplies 2-D matrices", () => {
    const [y] = ref("MatMul", [
      t("f32", [2, 3], [1, 2, 3, 4, 5, 6]),
      t("f32", [3, 2], [7, 8, 9, 10, 11, 12]),
    ]);
    assertClose(y, t("f32", [2, 2], [58, 64, 139, 154]));
  });

  it("promotes and squeezes 1-D operands", () => {
    const v = t("f32", [3], [1, 2, 3]);
    assertClose(ref("MatMul", [v, t("f32", [3], [4, 5, 6])])[0], t("f32", [], [32]));
    assertClose(
      ref("MatMul", [t("f32", [2], [1, 2]), t("f32", [2, 3], [1, 2, 3, 4, 5, 6])])[0],
      t("f32", [3], [9, 12, 15]),
    );
    assertClose(
      ref("MatMul", [t("f32", [2, 3], [1, 2, 3, 4, 5, 6]), t("f32", [3], [1, 1, 1])])[0],
      t("f32", [2], [6, 15]),
    );
    // A 1-D operand against a batched one keeps the batch.
    const b = t("f32", [2, 2, 1], [1, 2, 3, 4]);
    assertClose(ref("MatMul", [t("f32", [2], [10, 1]), b])[0], t("f32", [2, 1], [12, 34]));
    assert.deepEqual(inferStr("MatMul", [ty("f32[K]"), ty("f32[K]")]), ["f32[]"]);
    assert.deepEqual(inferStr("MatMul", [ty("f32[B, N, 8]"), ty("f32[8]")]), ["f32[B, N]"]);
    assert.deepEqual(inferStr("MatMul", [ty("f32[8]"), ty("f32[B, 8, 5]")]), ["f32[B, 5]"]);
  });

  it("broadcasts batch dimensions", () => {
    // a_p are row vectors [1, 2] and [3, 4]; b_q are columns [1, 0], [0, 1], [1, 1]; out[p, q] = a_p . b_q.
    const a = t("f32", [2, 1, 1, 2], [1, 2, 3, 4]);
    const b = t("f32", [3, 2, 1], [1, 0, 0, 1, 1, 1]);
    assertClose(ref("MatMul", [a, b])[0], t("f32", [2, 3, 1, 1], [1, 2, 3, 3, 4, 7]));
    assert.deepEqual(inferStr("MatMul", [ty("f32[2, 1, 1, 2]"), ty("f32[3, 2, 1]")]), ["f32[2, 3, 1, 1]"]);
  });

  it("multiplies integers exactly", () => {
    assertClose(
      ref("MatMul", [t("i32", [1, 2], [1, 2]), t("i32", [2, 1], [3, 4])])[0],
      t("i32", [1, 1], [11]),
    );
  });

  it("infers symbolic shapes and keeps A's leading roles", () => {
    assert.deepEqual(inferStr("MatMul", [ty("f32[B@batch, N@token, 64]"), ty("f32[64, 128]")]), [
      "f32[B@batch, N@token, 128]",
    ]);
    // Q Kᵀ: the key-token axis would repeat the token role, so it stays unnamed.
    assert.deepEqual(
      inferStr("MatMul", [ty("f32[B@batch, H@head, N@token, 16]"), ty("f32[B, H, 16, N@token]")]),
      ["f32[B@batch, H@head, N@token, N]"],
    );
    // B names a batch role that A lacks.
    assert.deepEqual(inferStr("MatMul", [ty("f32[1, N, 4]"), ty("f32[B@batch, 4, 5]")]), [
      "f32[B@batch, N, 5]",
    ]);
  });

  it("reports mismatched inner dims naming both", () => {
    assert.throws(() => infer("MatMul", [ty("f32[B, N, 64]"), ty("f32[32, 128]")]), /K = 64 .*K = 32/);
    assert.throws(() => infer("MatMul", [ty("f32[B, N, D]"), ty("f32[E, 8]")]), /K = D .*K = E/);
    assert.throws(
      () => infer("MatMul", [ty("f32[2, 3, 4]"), ty("f32[5, 4, 6]")]),
      /batch dimensions.*broadcast/,
    );
    assert.throws(() => infer("MatMul", [ty("f32[3, 4]"), ty("f16[4, 6]")]), /dtypes differ/);
    assert.throws(() => infer("MatMul", [ty("f32[]"), ty("f32[4]")]), /rank >= 1/);
    assert.throws(
      () => ref("MatMul", [t("f32", [2, 3], [1, 2, 3, 4, 5, 6]), t("f32", [2], [1, 1])]),
      /inner/,
    );
  });

  it("counts 2 flops per multiply-add", () => {
    const g = new Graph("t");
    const a = g.addInput(ty("f32[B, N, 64]"), "a");
    const b = g.addInput(ty("f32[64, 128]"), "b");
    const def = opDef("MatMul");
    const ctx = makeInferCtx(g, def, { op: "MatMul", attrs: {}, inputs: [a, b] }, 1, {
      known: new Map(),
      dataDims: "mint",
    });
    const flops = def.flops!(ctx, def.infer(ctx));
    assert.ok(dimEquals(flops, mul(2 * 64 * 128, sym("B"), sym("N"))));
  });
});

describe("Gemm", () => {
  const A = t("f32", [2, 2], [1, 2, 3, 4]);
  const B = t("f32", [2, 2], [5, 6, 7, 8]);

  it("computes A B with transposes", () => {
    assertClose(ref("Gemm", [A, B])[0], t("f32", [2, 2], [19, 22, 43, 50]));
    assertClose(ref("Gemm", [A, B], { transA: 1 })[0], t("f32", [2, 2], [26, 30, 38, 44]));
    assertClose(ref("Gemm", [A, B], { transB: 1 })[0], t("f32", [2, 2], [17, 23, 39, 53]));
    // Aᵀ Bᵀ = (B A)ᵀ; B A = [[23, 34], [31, 46]].
    assertClose(ref("Gemm", [A, B], { transA: 1, transB: 1 })[0], t("f32", [2, 2], [23, 31, 34, 46]));
  });

  it("scales and broadcasts C", () => {
    const row = t("f32", [2], [1, 2]);
    assertClose(
      ref("Gemm", [A, B, row], { alpha: 2, beta: 0.5 })[0],
      t("f32", [2, 2], [38.5, 45, 86.5, 101]),
    );
    const col = t("f32", [2, 1], [10, 20]);
    assertClose(ref("Gemm", [A, B, col])[0], t("f32", [2, 2], [29, 32, 63, 70]));
    assertClose(ref("Gemm", [A, B, t("f32", [], [1])], { beta: 0 })[0], t("f32", [2, 2], [19, 22, 43, 50]));
  });

  it("handles non-square transposed operands", () => {
    // A is stored [K=3, M=2]; Aᵀ = [[1, 3, 5], [2, 4, 6]]; B stored [N=1, K=3] = [1, 1, 1].
    const a = t("f32", [3, 2], [1, 2, 3, 4, 5, 6]);
    const b = t("f32", [1, 3], [1, 1, 1]);
    assertClose(ref("Gemm", [a, b], { transA: 1, transB: 1 })[0], t("f32", [2, 1], [9, 12]));
  });

  it("infers shapes and rejects bad operands", () => {
    assert.deepEqual(
      inferStr("Gemm", [ty("f32[4, M@token]"), ty("f32[4, 5]"), ty("f32[5]")], { transA: 1 }),
      ["f32[M@token, 5]"],
    );
    assert.deepEqual(inferStr("Gemm", [ty("f32[3, 4]"), ty("f32[N, 4]")], { transB: 1 }), ["f32[3, N]"]);
    assert.throws(() => infer("Gemm", [ty("f32[3, 4]"), ty("f32[5, 6]")]), /K = 4 .*K = 5/);
    assert.throws(
      () => infer("Gemm", [ty("f32[3, 4]"), ty("f32[4, 5]"), ty("f32[2, 5]")]),
      /does not broadcast to \[M, N\]/,
    );
    assert.throws(
      () => infer("Gemm", [ty("f32[3, 4]"), ty("f32[4, 5]"), ty("f32[1, 3, 5]")]),
      /does not broadcast/,
    );
    assert.throws(() => infer("Gemm", [ty("f32[2, 3, 4]"), ty("f32[4, 5]")]), /rank 2/);
  });
});

// ---------- Conv against a naive loop ----------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.round(((s >>> 8) / (1 << 24)) * 8 - 4); // small integers: exact sums
  };
}

function randT(shape: number[], next: () => number): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  return makeTensor("f32", shape, Array.from({ length: n }, next));
}

interface Cfg {
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
}

/** Direct 2-D convolution from the definition: zero-pad x explicitly, then slide. */
function naiveConv2d(x: Tensor, w: Tensor, bias: Tensor | null, c: Cfg): Tensor {
  const [N, C, H, W] = x.shape;
  const [M, Cg, kH, kW] = w.shape;
  const [pt, pl, pb, pr] = c.pads;
  const Hp = H + pt + pb;
  const Wp = W + pl + pr;
  const padded = new Float64Array(N * C * Hp * Wp);
  for (let n = 0; n < N; n++)
    for (let ch = 0; ch < C; ch++)
      for (let h = 0; h < H; h++)
        for (let q = 0; q < W; q++)
          padded[((n * C + ch) * Hp + h + pt) * Wp + q + pl] = x.data[((n * C + ch) * H + h) * W + q];
  const oH = Math.floor((Hp - c.dilations[0] * (kH - 1) - 1) / c.strides[0]) + 1;
  const oW = Math.floor((Wp - c.dilations[1] * (kW - 1) - 1) / c.strides[1]) + 1;
  const out: number[] = [];
  const perGroup = M / c.group;
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++)
      for (let i = 0; i < oH; i++)
        for (let j = 0; j < oW; j++) {
          let s = bias ? bias.data[m] : 0;
          const g = Math.floor(m / perGroup);
          for (let ci = 0; ci < Cg; ci++)
            for (let a = 0; a < kH; a++)
              for (let b = 0; b < kW; b++) {
                const h = i * c.strides[0] + a * c.dilations[0];
                const q = j * c.strides[1] + b * c.dilations[1];
                s +=
                  padded[((n * C + g * Cg + ci) * Hp + h) * Wp + q] *
                  w.data[((m * Cg + ci) * kH + a) * kW + b];
              }
          out.push(s);
        }
  return makeTensor("f32", [N, M, oH, oW], out);
}

describe("Conv", () => {
  const x33 = t("f32", [1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const ones22 = t("f32", [1, 1, 2, 2], [1, 1, 1, 1]);

  it("computes hand-checked 2-D cases", () => {
    assertClose(ref("Conv", [x33, ones22])[0], t("f32", [1, 1, 2, 2], [12, 16, 24, 28]));
    // Pad 1 all round, stride 2: windows cover {1}, {2, 3}, {4, 7}, {5, 6, 8, 9}.
    const y = ref("Conv", [x33, ones22, t("f32", [1], [1])], { pads: [1, 1, 1, 1], strides: [2, 2] })[0];
    assertClose(y, t("f32", [1, 1, 2, 2], [2, 6, 12, 29]));
  });

  it("computes hand-checked 1-D cases: dilation, auto_pad, groups", () => {
    const x = t("f32", [1, 1, 4], [1, 2, 3, 4]);
    const w = t("f32", [1, 1, 2], [1, 1]);
    // One unit of SAME padding: at the end (UPPER) or the start (LOWER).
    assertClose(ref("Conv", [x, w], { auto_pad: "SAME_UPPER" })[0], t("f32", [1, 1, 4], [3, 5, 7, 4]));
    assertClose(ref("Conv", [x, w], { auto_pad: "SAME_LOWER" })[0], t("f32", [1, 1, 4], [1, 3, 5, 7]));
    assertClose(ref("Conv", [x, w], { auto_pad: "VALID" })[0], t("f32", [1, 1, 3], [3, 5, 7]));
    const x5 = t("f32", [1, 1, 5], [1, 2, 3, 4, 5]);
    // SAME, stride 2, k 3 on length 5: 3 outputs, total padding 2 split 1/1.
    const same = ref("Conv", [x5, t("f32", [1, 1, 3], [1, 1, 1])], {
      auto_pad: "SAME_UPPER",
      strides: [2],
    })[0];
    assertClose(same, t("f32", [1, 1, 3], [3, 9, 9]));
    // Dilation 2: y[i] = x[i] + 10 x[i + 2].
    assertClose(
      ref("Conv", [x5, t("f32", [1, 1, 2], [1, 10])], { dilations: [2] })[0],
      t("f32", [1, 1, 3], [31, 42, 53]),
    );
    // Depthwise (group = 2): channel 0 scaled by 10, channel 1 by 100.
    const xd = t("f32", [1, 2, 2], [1, 2, 3, 4]);
    const wd = t("f32", [2, 1, 1], [10, 100]);
    assertClose(ref("Conv", [xd, wd], { group: 2 })[0], t("f32", [1, 2, 2], [10, 20, 300, 400]));
  });

  it("matches a naive loop over strides, pads, dilations and groups", () => {
    const next = rng(7);
    const cases: { x: number[]; w: number[]; c: Cfg }[] = [
      {
        x: [1, 2, 5, 5],
        w: [3, 2, 3, 3],
        c: { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 },
      },
      {
        x: [2, 4, 7, 6],
        w: [4, 2, 3, 2],
        c: { strides: [2, 1], pads: [0, 1, 2, 0], dilations: [1, 2], group: 2 },
      },
      {
        x: [1, 3, 8, 8],
        w: [6, 1, 2, 3],
        c: { strides: [3, 2], pads: [1, 0, 0, 2], dilations: [2, 1], group: 3 },
      },
      {
        x: [1, 2, 6, 9],
        w: [2, 2, 3, 3],
        c: { strides: [2, 3], pads: [2, 2, 2, 2], dilations: [2, 2], group: 1 },
      },
    ];
    for (const { x, w, c } of cases) {
      const X = randT(x, next);
      const W = randT(w, next);
      const b = randT([w[0]], next);
      const got = ref("Conv", [X, W, b], { ...c })[0];
      assertClose(got, naiveConv2d(X, W, b, c), 1e-6, `conv ${JSON.stringify(c)}`);
      assert.deepEqual(inferStr("Conv", [ty(`f32[${x.join(", ")}]`), ty(`f32[${w.join(", ")}]`)], { ...c }), [
        `f32[${got.shape.join(", ")}]`,
      ]);
    }
    // 1-D equals 2-D over a height-1 image.
    const X = randT([2, 4, 9], next);
    const W = randT([2, 2, 3], next);
    const c1 = { strides: [2], pads: [1, 2], dilations: [2], group: 2 };
    const got = ref("Conv", [X, W], c1)[0];
    const want = naiveConv2d(
      makeTensor("f32", [2, 4, 1, 9], X.data),
      makeTensor("f32", [2, 2, 1, 3], W.data),
      null,
      {
        strides: [1, 2],
        pads: [0, 1, 0, 2],
        dilations: [1, 2],
        group: 2,
      },
    );
    assertClose(got, makeTensor("f32", [2, 2, want.shape[3]], want.data));
  });

  it("infers symbolic output dims", () => {
    const attrs = { pads: [1, 1, 1, 1], strides: [2, 2] };
    const [y] = infer("Conv", [ty("f32[B@batch, 3@channel, H, W]"), ty("f32[8, 3, 3, 3]")], attrs);
    // floor((H + 2 - 3) / 2) + 1
    assert.ok(dimEquals(y.dims[2], parseDim("floordiv(H - 1, 2) + 1")));
    assert.ok(dimEquals(y.dims[3], parseDim("floordiv(W - 1, 2) + 1")));
    assert.deepEqual(y.axes, ["batch", "channel", null, null]);
    const [same] = infer("Conv", [ty("f32[1, 3, H, W]"), ty("f32[8, 3, 3, 3]")], {
      auto_pad: "SAME_LOWER",
      strides: [2, 2],
    });
    assert.ok(dimEquals(same.dims[2], parseDim("ceildiv(H, 2)")));
    const [valid] = infer("Conv", [ty("f32[1, 3, H, 20]"), ty("f32[8, 3, K, 5]")], {
      auto_pad: "VALID",
      dilations: [2, 1],
    });
    assert.ok(dimEquals(valid.dims[2], parseDim("H - 2*K + 2")));
    assert.equal(valid.dims[3], 16);
    // A length-preserving 1-D conv keeps the time role; a strided one drops it.
    assert.deepEqual(
      inferStr("Conv", [ty("f32[B@batch, 4@channel, T@time]"), ty("f32[4, 4, 3]")], { pads: [1, 1] }),
      ["f32[B@batch, 4@channel, T@time]"],
    );
    assert.deepEqual(
      inferStr("Conv", [ty("f32[B@batch, 4@channel, T@time]"), ty("f32[4, 4, 3]")], {
        pads: [1, 1],
        strides: [2],
      }),
      [printType(ty("f32[B@batch, 4@channel, floordiv(T - 1, 2) + 1]"))], // canonical form of the same dim
    );
  });

  it("counts flops for a ViT patch embedding", () => {
    const g = new Graph("t");
    const x = g.addInput(tensorType("f32", [1, 3, 224, 224]), "x");
    const w = g.addInput(tensorType("f32", [64, 3, 16, 16]), "w");
    const def = opDef("Conv");
    const node = { op: "Conv", attrs: { strides: [16, 16] }, inputs: [x, w] };
    const ctx = makeInferCtx(g, def, node, 1, { known: new Map(), dataDims: "mint" });
    const outs = def.infer(ctx);
    assert.deepEqual(outs[0].dims, [1, 64, 14, 14]);
    assert.equal(def.flops!(ctx, outs), 2 * 64 * 196 * 3 * 16 * 16);
  });

  it("rejects inconsistent uses", () => {
    const x = ty("f32[1, 4, 8, 8]");
    assert.throws(() => infer("Conv", [x, ty("f32[6, 3, 3, 3]")]), /4 channels .*group 1 expects 3/);
    assert.throws(() => infer("Conv", [x, ty("f32[6, 2, 3, 3]")], { group: 4 }), /expects 8/);
    assert.throws(() => infer("Conv", [x, ty("f32[6, 1, 3, 3]")], { group: 4 }), /not divisible by group/);
    assert.throws(() => infer("Conv", [x, ty("f32[6, 4, 3, 3]"), ty("f32[4]")]), /bias must be \[6\]/);
    assert.throws(() => infer("Conv", [x, ty("f32[6, 4, 3, 3]")], { kernel_shape: [3, 2] }), /kernel_shape/);
    assert.throws(() => infer("Conv", [x, ty("f32[6, 4, 3, 3]")], { pads: [1, 1] }), /pads has 2 entries/);
    assert.throws(
      () => infer("Conv", [x, ty("f32[6, 4, 3, 3]")], { strides: [0, 1] }),
      /strides must be >= 1/,
    );
    assert.throws(
      () => infer("Conv", [x, ty("f32[6, 4, 3, 3]")], { auto_pad: "VALID", pads: [1, 1, 1, 1] }),
      /auto_pad/,
    );
    assert.throws(() => infer("Conv", [x, ty("f32[6, 4, 9, 3]")]), /too small/);
    assert.throws(() => infer("Conv", [ty("i32[1, 4, 8, 8]"), ty("i32[6, 4, 3, 3]")]), /float/);
    assert.throws(
      () => infer("Conv", [ty("f32[1, 4, 8, 8, 8]"), ty("f32[6, 4, 3, 3, 3]")]),
      /rank 3 \(1-D\) or 4/,
    );
  });
});

describe("linalg in a graph", () => {
  it("runs MatMul with a symbolic batch on the CPU interpreter", () => {
    const g = new Graph("t");
    g.declareSymbol({ name: "N" });
    const x = g.addInput(ty("f32[N@token, 2]"), "x");
    const w = g.addConstant(ty("f32[2, 3]"), "w", t("f32", [2, 3], [1, 0, 1, 0, 1, 1]));
    const [y] = g.addNode("MatMul", [x, w], [ty("f32[N@token, 3]")], {}, { names: ["y"] }).outputs;
    g.outputs.push(y);
    const out = runGraph(g, new Map([["x", t("f32", [2, 2], [1, 2, 3, 4])]])).get("y")!;
    assertClose(out, t("f32", [2, 3], [1, 2, 3, 3, 4, 7]));
  });
});
