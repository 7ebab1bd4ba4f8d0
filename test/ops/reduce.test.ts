import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertClose, t } from "../util/helpers.js";
import { infer, inferStr, ref, ty } from "./harness.js";

const x23 = t("f32", [2, 3], [1, 2, 3, 4, 5, 6]);
const x222 = t("f32", [2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]);

describe("ReduceSum", () => {
  it("reduces one axis with and without keepdims", () => {
    assertClose(ref("ReduceSum", [x23], { axes: [1] })[0], t("f32", [2, 1], [6, 15]));
    assertClose(ref("ReduceSum", [x23], { axes: [1], keepdims: 0 })[0], t("f32", [2], [6, 15]));
    assertClose(ref("ReduceSum", [x23], { axes: [0] })[0], t("f32", [1, 3], [5, 7, 9]));
    assertClose(ref("ReduceSum", [x23], { axes: [-1], keepdims: 0 })[0], t("f32", [2], [6, 15]));
  });

  it("reduces a middle axis and several axes", () => {
    assertClose(ref("ReduceSum", [x222], { axes: [1], keepdims: 0 })[0], t("f32", [2, 2], [2, 4, 10, 12]));
    // Over i and k: j = 0 holds 0, 1, 4, 5; j = 1 holds 2, 3, 6, 7.
    assertClose(ref("ReduceSum", [x222], { axes: [2, 0], keepdims: 0 })[0], t("f32", [2], [10, 18]));
    assertClose(ref("ReduceSum", [x222], { axes: [0, 2] })[0], t("f32", [1, 2, 1], [10, 18]));
  });

  it("reduces everything when axes are absent, unless noop_with_empty_axes", () => {
    assertClose(ref("ReduceSum", [x23])[0], t("f32", [1, 1], [21]));
    assertClose(ref("ReduceSum", [x23], { keepdims: 0 })[0], t("f32", [], [21]));
    assert.equal(ref("ReduceSum", [x23], { noop_with_empty_axes: 1 })[0], x23);
    assert.equal(ref("ReduceSum", [x23, t("i64", [0], [])], { noop_with_empty_axes: 1 })[0], x23);
    assertClose(ref("ReduceSum", [x23, t("i64", [0], [])])[0], t("f32", [1, 1], [21]));
  });

  it("takes axes as an input (opset 18)", () => {
    assertClose(ref("ReduceSum", [x23, t("i64", [1], [1])], { keepdims: 0 })[0], t("f32", [2], [6, 15]));
    assert.deepEqual(inferStr("ReduceSum", [ty("f32[B@batch, N@token, 64]"), t("i64", [1], [-1])]), [
      "f32[B@batch, N@token, 1]",
    ]);
    assert.deepEqual(
      inferStr("ReduceSum", [ty("f32[B, N, 64]"), t("i64", [0], [])], { noop_with_empty_axes: 1 }),
      ["f32[B, N, 64]"],
    );
  });

  it("accumulates in f64", () => {
    // In f32, 2^24 + 1 rounds back to 2^24 at each step; the exact sum 2^24 + 2 is representable.
    assertClose(
      ref("ReduceSum", [t("f32", [3], [16777216, 1, 1])], { keepdims: 0 })[0],
      t("f32", [], [16777218]),
      0,
    );
  });

  it("sums integers", () => {
    assertClose(ref("ReduceSum", [t("i64", [3], [1, 2, 3])], { keepdims: 0 })[0], t("i64", [], [6]));
  });
});

describe("ReduceMean", () => {
  it("averages", () => {
    assertClose(ref("ReduceMean", [x23], { axes: [1] })[0], t("f32", [2, 1], [2, 5]));
    assertClose(ref("ReduceMean", [x23], { keepdims: 0 })[0], t("f32", [], [3.5]));
    assertClose(ref("ReduceMean", [x222], { axes: [0, 1], keepdims: 0 })[0], t("f32", [2], [3, 4]));
  });

  it("truncates integer means toward zero", () => {
    assertClose(ref("ReduceMean", [t("i32", [2], [1, 2])], { keepdims: 0 })[0], t("i32", [], [1]));
    assertClose(ref("ReduceMean", [t("i32", [2], [-1, -2])], { keepdims: 0 })[0], t("i32", [], [-1]));
  });
});

describe("ReduceMax", () => {
  it("takes maxima and propagates NaN", () => {
    assertClose(ref("ReduceMax", [x23], { axes: [0], keepdims: 0 })[0], t("f32", [3], [4, 5, 6]));
    assertClose(ref("ReduceMax", [t("f32", [2], [-5, -2])], { keepdims: 0 })[0], t("f32", [], [-2]));
    const [y] = ref("ReduceMax", [t("f32", [3], [1, NaN, 3])], { keepdims: 0 });
    assert.ok(Number.isNaN(y.data[0]));
  });

  it("gives -inf over an empty axis", () => {
    const [y] = ref("ReduceMax", [t("f32", [2, 0], [])], { axes: [1], keepdims: 0 });
    assertClose(y, t("f32", [2], [-Infinity, -Infinity]));
  });
});

describe("Reduce inference", () => {
  it("infers shapes and drops roles of reduced axes", () => {
    const x = ty("f32[B@batch, N@token, 64@channel]");
    assert.deepEqual(inferStr("ReduceMean", [x], { axes: [-1] }), ["f32[B@batch, N@token, 1]"]);
    assert.deepEqual(inferStr("ReduceMean", [x], { axes: [1], keepdims: 0 }), ["f32[B@batch, 64@channel]"]);
    assert.deepEqual(inferStr("ReduceMax", [x], { keepdims: 0 }), ["f32[]"]);
    assert.deepEqual(inferStr("ReduceSum", [x], { noop_with_empty_axes: 1 }), [
      "f32[B@batch, N@token, 64@channel]",
    ]);
  });

  it("rejects bad axes", () => {
    const x = ty("f32[B, N, 64]");
    assert.throws(() => infer("ReduceSum", [x, ty("i64[1]")]), /known at compile time/);
    assert.throws(
      () => infer("ReduceSum", [x, t("i64", [1], [0])], { axes: [0] }),
      /both as attribute and as input/,
    );
    assert.throws(() => infer("ReduceSum", [x], { axes: [1, -2] }), /repeat an axis/);
    assert.throws(() => infer("ReduceSum", [x], { axes: [3] }), /axis 3 is out of range for rank 3/);
    assert.throws(() => infer("ReduceSum", [x, t("f32", [1], [0])]), /integer tensor/);
    assert.throws(() => infer("ReduceMax", [ty("bool[4]")]), /bool/);
    assert.throws(() => ref("ReduceSum", [x23], { axes: [2] }), /out of range/);
  });
});
