import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { parseDim } from "../../compiler/ir/sym.js";
import { printType } from "../../compiler/ir/types.js";
import { assertClose, t } from "../util/helpers.js";
import { c, i64, inferOne, iota, runOp } from "./shape-util.js";

/** Transpose, Concat, Split, Slice, Gather. */

/** INT64 max/min as an ONNX exporter writes them (held as the nearest double). */
const I64_MAX = Number(2n ** 63n - 1n);
const I64_MIN = -(2 ** 63);

test("Transpose: default reverses the axes", () => {
  const [y] = runOp("Transpose", [t("f32", [2, 3], [1, 2, 3, 4, 5, 6])]);
  assertClose(y, t("f32", [3, 2], [1, 4, 2, 5, 3, 6]));
});

test("Transpose: perm [2, 0, 1] (out[k][i][j] = x[i][j][k])", () => {
  const [y] = runOp("Transpose", [c(t("i64", [2, 1, 3], iota(6)))], { perm: [2, 0, 1] });
  assertClose(y, t("i64", [3, 2, 1], [0, 3, 1, 4, 2, 5]));
  assert.deepEqual(inferOne("Transpose", ["f32[B@batch, N@token, 64@channel]"], { perm: [0, 2, 1] }), [
    "f32[B@batch, 64@channel, N@token]",
  ]);
  assert.throws(() => inferOne("Transpose", ["f32[2, 3]"], { perm: [0, 0] }), /not a permutation of 2 axes/);
});

test("Concat: along an axis, negative axis, symbolic sum", () => {
  const a = t("f32", [2, 2], [1, 2, 3, 4]);
  const b = t("f32", [2, 1], [5, 6]);
  assertClose(runOp("Concat", [a, b], { axis: 1 })[0], t("f32", [2, 3], [1, 2, 5, 3, 4, 6]));
  assertClose(
    runOp("Concat", [a, t("f32", [1, 2], [7, 8])], { axis: -2 })[0],
    t("f32", [3, 2], [1, 2, 3, 4, 7, 8]),
  );
  assertClose(runOp("Concat", [i64([3]), i64([]), i64([4, 5])], { axis: 0 })[0], t("i64", [3], [3, 4, 5]));
  // cls token prepended: N + 1 tokens.
  assert.deepEqual(inferOne("Concat", ["f32[B@batch, 1, 64]", "f32[B, N@token, 64]"], { axis: 1 }), [
    "f32[B@batch, N + 1@token, 64]",
  ]);
  assert.throws(() => inferOne("Concat", ["f32[2, 3]", "f32[3, 3]"], { axis: 1 }), /does not match input 0/);
  assert.throws(() => inferOne("Concat", ["f32[2]", "i64[2]"], { axis: 0 }), /input 1 has dtype i64/);
  assert.throws(() => inferOne("Concat", ["f32[2]"], { axis: 1 }), /axis 1 is out of range for rank 1/);
});

test("Split: equal parts with a smaller last one, or explicit sizes", () => {
  const x = t("f32", [5], [1, 2, 3, 4, 5]);
  // ceil(5 / 2) = 3, then the remaining 2.
  const [p, q] = runOp("Split", [x], {}, 2);
  assertClose(p, t("f32", [3], [1, 2, 3]));
  assertClose(q, t("f32", [2], [4, 5]));
  const [u, v] = runOp("Split", [x, i64([1, 4])], {}, 2);
  assertClose(u, t("f32", [1], [1]));
  assertClose(v, t("f32", [4], [2, 3, 4, 5]));
  const [l, r] = runOp(
    "Split",
    [t("f32", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8])],
    { axis: -1, num_outputs: 2 },
    2,
  );
  assertClose(l, t("f32", [2, 2], [1, 2, 5, 6]));
  assertClose(r, t("f32", [2, 2], [3, 4, 7, 8]));
  const outs = runOp("Split", [t("f32", [6], iota(6))], {}, 3);
  assert.deepEqual(
    outs.map((o) => Array.from(o.data)),
    [
      [0, 1],
      [2, 3],
      [4, 5],
    ],
  );
});

test("Split: symbolic sizes and errors", () => {
  assert.deepEqual(inferOne("Split", ["f32[B@batch, N, 192]"], { axis: 2 }, 3), [
    "f32[B@batch, N, 64]",
    "f32[B@batch, N, 64]",
    "f32[B@batch, N, 64]",
  ]);
  assert.deepEqual(inferOne("Split", ["f32[2*N]"], {}, 2), ["f32[N]", "f32[N]"]);
  assert.throws(() => inferOne("Split", ["f32[5]", [2, 2]], {}, 2), /add up to 4, not 5/);
  assert.throws(() => inferOne("Split", ["f32[5]", [1, 1, 3]], {}, 2), /3 sizes for 2 outputs/);
  assert.throws(
    () => inferOne("Split", ["f32[6]"], { num_outputs: 3 }, 2),
    /num_outputs is 3 but the node has 2/,
  );
  assert.throws(
    () => inferOne("Split", ["f32[6]", "i64[2]"], {}, 2),
    /Split sizes \(input 1\) must be known/,
  );
});

test("Slice: ranges, steps, negative bounds and clamping on a vector", () => {
  const x = c(t("i64", [10], iota(10)));
  const sl = (starts: number[], ends: number[], steps?: number[]) =>
    Array.from(runOp("Slice", [x, i64(starts), i64(ends), null, steps ? i64(steps) : null])[0].data);
  assert.deepEqual(sl([2], [7]), [2, 3, 4, 5, 6]);
  assert.deepEqual(sl([2], [7], [2]), [2, 4, 6]);
  assert.deepEqual(sl([-3], [I64_MAX]), [7, 8, 9]);
  assert.deepEqual(sl([-100], [100]), iota(10));
  assert.deepEqual(sl([12], [20]), []);
  assert.deepEqual(sl([7], [2]), []);
  // Negative steps: start clamps to d - 1, end to -1.
  assert.deepEqual(sl([-1], [I64_MIN], [-1]), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  assert.deepEqual(sl([100], [-11], [-1]), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  // 8, 5 (2 is the excluded end): ceil((2 - 8) / -3) = 2 elements.
  assert.deepEqual(sl([8], [2], [-3]), [8, 5]);
  assert.deepEqual(sl([2], [8], [-1]), []);
});

test("Slice: several axes, negative axes, negative steps on a matrix", () => {
  const x = t("f32", [3, 4], iota(12));
  // Columns 1..2 via axis -1.
  assertClose(runOp("Slice", [x, i64([1]), i64([3]), i64([-1])])[0], t("f32", [3, 2], [1, 2, 5, 6, 9, 10]));
  // Rows 2, 0 (end -5 + 3 = -2 clamps to -1) and columns 3, 1: [[x23, x21], [x03, x01]].
  const [y] = runOp("Slice", [x, i64([2, 3]), i64([-5, 0]), i64([0, 1]), i64([-2, -2])]);
  assertClose(y, t("f32", [2, 2], [11, 9, 3, 1]));
  assert.throws(
    () => runOp("Slice", [x, i64([0]), i64([1]), i64([0]), i64([0])]),
    /steps \[0\] must be non-zero/,
  );
  assert.throws(() => runOp("Slice", [x, i64([0, 0]), i64([1, 1]), i64([1, -1])]), /repeat an axis/);
});

test("Slice: symbolic dims (constant indices are assumed in range)", () => {
  // x[:, 1:] drops the cls token.
  assert.deepEqual(inferOne("Slice", ["f32[B@batch, N@token, 64]", [1], [I64_MAX], [1]]), [
    "f32[B@batch, N - 1@token, 64]",
  ]);
  assert.deepEqual(inferOne("Slice", ["f32[B, N, 64]", [0], [1], [1]]), ["f32[B, 1, 64]"]);
  assert.deepEqual(inferOne("Slice", ["f32[B, N, 64]", [-1], [I64_MAX], [1]]), ["f32[B, 1, 64]"]);
  assert.deepEqual(inferOne("Slice", ["f32[B, N]", [-1], [I64_MIN], [1], [-1]]), ["f32[B, N]"]);
  assert.deepEqual(inferOne("Slice", ["f32[N]", [0], [I64_MAX], [0], [2]]), ["f32[ceildiv(N, 2)]"]);
  assert.deepEqual(inferOne("Slice", ["f32[N, 8]", [0, 2], [-2, 100], [0, 1]]), ["f32[N - 2, 6]"]);
  // From N - 2 up to 3 is empty once N > 5.
  assert.deepEqual(inferOne("Slice", ["f32[N]", [-2], [3]]), ["f32[0]"]);
  assert.throws(() => inferOne("Slice", ["f32[N]", "i64[1]", [1]]), /Slice starts \(input 1\) must be known/);
  assert.throws(
    () => inferOne("Slice", ["f32[N]", [0], [1], "i64[1]"]),
    /Slice axes \(input 3\) must be known/,
  );
});

test("Slice: a symbolic end from the shape clamps exactly", () => {
  const b = new GraphBuilder("t");
  b.symbol("N");
  const x = b.input("x", "f32", [parseDim("N"), 4]);
  const end = b.op("Slice", [b.op("Shape", [x]), b.const("i64", [1], [0]), b.const("i64", [1], [1])]);
  const y = b.op("Slice", [x, b.const("i64", [1], [1]), end]);
  assert.equal(printType(y.type), "f32[N - 1, 4]");
});

test("Gather: ONNX examples on axis 0 and axis 1", () => {
  const data = t("f32", [3, 2], [1, 2, 3, 4, 5, 6]);
  const [y] = runOp("Gather", [data, c(t("i64", [2, 2], [0, 1, 1, 2]))]);
  assertClose(y, t("f32", [2, 2, 2], [1, 2, 3, 4, 3, 4, 5, 6]));
  const d2 = t("f32", [3, 3], [1, 1.2, 1.9, 2.3, 3.4, 3.9, 4.5, 5.7, 5.9]);
  const [z] = runOp("Gather", [d2, c(t("i64", [1, 2], [0, 2]))], { axis: 1 });
  assertClose(z, t("f32", [3, 1, 2], [1, 1.9, 2.3, 3.9, 4.5, 5.9]));
});

test("Gather: negative indices, scalar index drops the axis, out of range fails", () => {
  const data = t("f32", [3, 2], [1, 2, 3, 4, 5, 6]);
  assertClose(runOp("Gather", [data, c(t("i64", [2], [-1, 0]))])[0], t("f32", [2, 2], [5, 6, 1, 2]));
  assertClose(runOp("Gather", [data, c(t("i32", [], [-1]))], { axis: -1 })[0], t("f32", [3], [2, 4, 6]));
  // Integer data is also gathered at compile time (runOp checks those values against the run).
  const ints = c(t("i64", [2, 3], [0, 1, 2, 3, 4, 5]));
  assertClose(
    runOp("Gather", [ints, c(t("i64", [2], [2, -3]))], { axis: 1 })[0],
    t("i64", [2, 2], [2, 0, 5, 3]),
  );
  assert.throws(
    () => runOp("Gather", [data, c(t("i64", [1], [3]))]),
    /index 3 is out of range for axis 0 of size 3/,
  );
  assert.throws(() => runOp("Gather", [data, c(t("i64", [1], [-4]))]), /index -4 is out of range/);
});

test("Gather: symbolic types and axis roles", () => {
  // The cls token: x[:, 0].
  assert.deepEqual(inferOne("Gather", ["f32[B@batch, N@token, 64@channel]", "i64[]"], { axis: 1 }), [
    "f32[B@batch, 64@channel]",
  ]);
  // Selecting tokens with a plain index list keeps the token role.
  assert.deepEqual(inferOne("Gather", ["f32[B@batch, N@token, 64]", "i64[K]"], { axis: 1 }), [
    "f32[B@batch, K@token, 64]",
  ]);
  assert.deepEqual(inferOne("Gather", ["f32[V, 64]", "i64[B@batch, N@token]"]), [
    "f32[B@batch, N@token, 64]",
  ]);
  assert.throws(() => inferOne("Gather", ["f32[3]", "f32[1]"]), /indices must be i32 or i64/);
  assert.throws(() => inferOne("Gather", ["f32[3]", "i64[1]"], { axis: 1 }), /axis 1 is out of range/);
});
