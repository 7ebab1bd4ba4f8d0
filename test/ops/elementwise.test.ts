import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Graph } from "../../compiler/ir/graph.js";
import { parseDim } from "../../compiler/ir/sym.js";
import { makeInferCtx } from "../../compiler/infer.js";
import { assertClose, t } from "../util/helpers.js";
import { infer, inferStr, opDef, ref, ty } from "./harness.js";

describe("binary arithmetic", () => {
  it("computes hand-checked values", () => {
    const a = t("f32", [3], [1, 2, 3]);
    const b = t("f32", [3], [10, 20, 30]);
    assertClose(ref("Add", [a, b])[0], t("f32", [3], [11, 22, 33]));
    assertClose(ref("Sub", [a, b])[0], t("f32", [3], [-9, -18, -27]));
    assertClose(ref("Mul", [a, b])[0], t("f32", [3], [10, 40, 90]));
    assertClose(ref("Div", [t("f32", [2], [7, 1]), t("f32", [2], [2, 4])])[0], t("f32", [2], [3.5, 0.25]));
    assertClose(ref("Pow", [t("f32", [2], [2, 3]), t("f32", [2], [3, 2])])[0], t("f32", [2], [8, 9]));
  });

  it("divides integers by truncation, and by zero to 0", () => {
    const [y] = ref("Div", [t("i32", [3], [7, -7, 5]), t("i32", [3], [2, 2, 0])]);
    assertClose(y, t("i32", [3], [3, -3, 0]));
  });

  it("broadcasts", () => {
    // [2, 1] + [3]: a column plus a row
    const [y] = ref("Add", [t("f32", [2, 1], [10, 20]), t("f32", [3], [1, 2, 3])]);
    assertClose(y, t("f32", [2, 3], [11, 12, 13, 21, 22, 23]));
    const [z] = ref("Mul", [t("f32", [], [2]), t("f32", [2, 2], [1, 2, 3, 4])]);
    assertClose(z, t("f32", [2, 2], [2, 4, 6, 8]));
  });

  it("infers symbolic broadcasting and carries roles", () => {
    assert.deepEqual(inferStr("Add", [ty("f32[B@batch, 1, 64]"), ty("f32[N@token, 1]")]), [
      "f32[B@batch, N@token, 64]",
    ]);
    assert.deepEqual(inferStr("Mul", [ty("f32[B, 2*N, 64]"), ty("f32[2*N, 1]")]), ["f32[B, 2*N, 64]"]);
    assert.deepEqual(inferStr("Add", [ty("f32[ceildiv(7*N, 10), 4]"), ty("f32[4]")]), [
      "f32[ceildiv(7*N, 10), 4]",
    ]);
    assert.throws(
      () => infer("Add", [ty("f32[B, N]"), ty("f32[M]")]),
      /cannot broadcast shapes \[B, N\] and \[M\]/,
    );
    assert.throws(() => infer("Add", [ty("f32[3]"), ty("f32[4]")]), /cannot broadcast/);
  });

  it("checks dtypes", () => {
    assert.throws(() => infer("Add", [ty("f32[3]"), ty("i32[3]")]), /operand dtypes differ: f32 and i32/);
    assert.throws(() => infer("Add", [ty("bool[3]"), ty("bool[3]")]), /bool/);
    // Pow takes its result dtype from the base.
    assert.deepEqual(inferStr("Pow", [ty("f32[3]"), ty("i32[]")]), ["f32[3]"]);
  });

  it("counts one flop per output element", () => {
    const g = new Graph("t");
    const a = g.addInput(ty("f32[B, 1, 64]"), "a");
    const b = g.addInput(ty("f32[N, 1]"), "b");
    const def = opDef("Add");
    const ctx = makeInferCtx(g, def, { op: "Add", attrs: {}, inputs: [a, b] }, 1, {
      known: new Map(),
      dataDims: "mint",
    });
    assert.deepEqual(def.flops!(ctx, def.infer(ctx)), parseDim("64*B*N"));
  });
});

describe("comparisons and logic", () => {
  it("give bool results", () => {
    const a = t("f32", [3], [1, 2, 3]);
    const b = t("f32", [3], [2, 2, 2]);
    assertClose(ref("Equal", [a, b])[0], t("bool", [3], [0, 1, 0]));
    assertClose(ref("Less", [a, b])[0], t("bool", [3], [1, 0, 0]));
    assertClose(ref("Greater", [a, b])[0], t("bool", [3], [0, 0, 1]));
    assertClose(ref("Not", [t("bool", [2], [1, 0])])[0], t("bool", [2], [0, 1]));
    assert.deepEqual(inferStr("Less", [ty("i64[B]"), ty("i64[]")]), ["bool[B]"]);
    assert.deepEqual(inferStr("Equal", [ty("bool[2]"), ty("bool[2]")]), ["bool[2]"]);
    assert.throws(() => infer("Not", [ty("f32[2]")]), /needs bool/);
  });

  it("Where selects with three-way broadcasting", () => {
    const c = t("bool", [3], [1, 0, 1]);
    assertClose(ref("Where", [c, t("f32", [3], [1, 2, 3]), t("f32", [], [0])])[0], t("f32", [3], [1, 0, 3]));
    // cond [2, 1] over a [3]: row 0 takes a, row 1 takes b.
    const [y] = ref("Where", [t("bool", [2, 1], [1, 0]), t("i32", [3], [1, 2, 3]), t("i32", [1], [-1])]);
    assertClose(y, t("i32", [2, 3], [1, 2, 3, -1, -1, -1]));
    assert.deepEqual(inferStr("Where", [ty("bool[B, 1]"), ty("f32[N]"), ty("f32[]")]), ["f32[B, N]"]);
    assert.throws(() => infer("Where", [ty("f32[3]"), ty("f32[3]"), ty("f32[3]")]), /condition must be bool/);
    assert.throws(() => infer("Where", [ty("bool[3]"), ty("f32[3]"), ty("f16[3]")]), /branch dtypes differ/);
  });
});

describe("unary ops", () => {
  it("compute hand-checked values", () => {
    const f = (op: string, xs: number[]) => Array.from(ref(op, [t("f64", [xs.length], xs)])[0].data);
    assert.deepEqual(f("Sqrt", [4, 9]), [2, 3]);
    assert.deepEqual(f("Exp", [0]), [1]);
    assert.deepEqual(f("Log", [1]), [0]);
    assert.deepEqual(f("Relu", [-1, 0, 2]), [0, 0, 2]);
    assert.deepEqual(f("Neg", [1, -2]), [-1, 2]);
    assert.deepEqual(f("Reciprocal", [4]), [0.25]);
    assert.deepEqual(f("Abs", [-3, 3]), [3, 3]);
    assert.deepEqual(f("Tanh", [0]), [0]);
    // 1 / (1 + e^-2) = 0.8807971; large negative inputs do not overflow to NaN
    assertClose(ref("Sigmoid", [t("f64", [3], [0, 2, -1000])])[0], t("f64", [3], [0.5, 0.8807971, 0]), 1e-7);
    // erf(0.5) = 0.5204999, erf(1) = 0.8427008 (tables)
    assertClose(
      ref("Erf", [t("f64", [3], [0.5, 1, -1])])[0],
      t("f64", [3], [0.5204999, 0.8427008, -0.8427008]),
      2e-7,
    );
  });

  it("Gelu: the erf form and the tanh approximation differ as expected", () => {
    const x = t("f64", [4], [1, -1, 2, 0.5]);
    // 0.5 x (1 + erf(x / sqrt 2))
    const erfForm = t("f64", [4], [0.841344746, -0.158655254, 1.954499736, 0.345731231]);
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const tanhForm = t("f64", [4], [0.841191991, -0.158808009, 1.954597694, 0.34571401]);
    assertClose(ref("Gelu", [x])[0], erfForm, 3e-7);
    assertClose(ref("Gelu", [x], { approximate: "tanh" })[0], tanhForm, 1e-9);
    assertClose(ref("Gelu", [t("f32", [1], [1])])[0], t("f32", [1], [0.8413447]));
  });

  it("keep dtype and reject non-floats where needed", () => {
    assert.deepEqual(inferStr("Exp", [ty("f16[B@batch, 4]")]), ["f16[B@batch, 4]"]);
    assert.deepEqual(inferStr("Relu", [ty("i32[4]")]), ["i32[4]"]);
    assert.throws(() => infer("Sqrt", [ty("i32[4]")]), /input 0 has dtype i32; Sqrt needs a float type/);
    assert.throws(() => infer("Gelu", [ty("i64[4]")]), /float/);
  });
});

describe("Cast", () => {
  it("truncates floats toward zero into integers", () => {
    const x = t("f32", [5], [1.7, -1.7, 2.5, NaN, 300.9]);
    assertClose(ref("Cast", [x], { to: "i32" })[0], t("i32", [5], [1, -1, 2, 0, 300]));
    assertClose(ref("Cast", [x], { to: "i64" })[0], t("i64", [5], [1, -1, 2, 0, 300]));
    assertClose(ref("Cast", [t("f32", [1], [3.9])], { to: "u8" })[0], t("u8", [1], [3]));
  });

  it("maps non-zero to true", () => {
    const [y] = ref("Cast", [t("f32", [4], [0, 0.1, -2, NaN])], { to: "bool" });
    assertClose(y, t("bool", [4], [0, 1, 1, 0]));
  });

  it("rounds to f16 and widens bool", () => {
    // 1 + 2^-11 lies halfway between f16 neighbours 1 and 1 + 2^-10; ties go to even (1).
    assertClose(
      ref("Cast", [t("f32", [2], [1 + 2 ** -11, 65504])], { to: "f16" })[0],
      t("f16", [2], [1, 65504]),
      0,
    );
    assertClose(ref("Cast", [t("bool", [2], [1, 0])], { to: "f32" })[0], t("f32", [2], [1, 0]));
  });

  it("infers the target dtype and passes known values through", () => {
    assert.deepEqual(inferStr("Cast", [ty("f32[B@batch, 3]")], { to: "i64" }), ["i64[B@batch, 3]"]);
    const g = new Graph("t");
    const c = g.addConstant(ty("i64[2]"), "c", t("i64", [2], [4, 5]));
    const def = opDef("Cast");
    const known = new Map([[c, [4, 5]]]);
    const ctx = makeInferCtx(g, def, { op: "Cast", attrs: { to: "i32" }, inputs: [c] }, 1, {
      known,
      dataDims: "mint",
    });
    assert.deepEqual(def.symbolic!(ctx), [4, 5]);
  });
});
