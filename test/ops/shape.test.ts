import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { parseDim, printDim } from "../../compiler/ir/sym.js";
import { printType } from "../../compiler/ir/types.js";
import { assertClose, t } from "../util/helpers.js";
import { c, i64, inferOne, iota, knownOf, opDef, refRun, runOp } from "./shape-util.js";

/** Reshape, Flatten, Identity, Unsqueeze, Squeeze, Expand, Shape, ConstantOfShape, Range. */

test("Reshape: -1 is inferred and data keeps row-major order", () => {
  const [y] = runOp("Reshape", [t("f32", [2, 3], iota(6)), i64([3, -1])]);
  assertClose(y, t("f32", [3, 2], iota(6)));
});

test("Reshape: 0 copies the input dim; allowzero keeps a literal 0", () => {
  assert.deepEqual([...runOp("Reshape", [t("f32", [2, 3, 4], iota(24)), i64([0, -1])])[0].shape], [2, 12]);
  // allowzero: [0, 3] -> [3, 0] is a real empty shape, not a copy of dim 1.
  assert.deepEqual(
    [...runOp("Reshape", [t("f32", [0, 3], []), i64([3, 0])], { allowzero: 1 })[0].shape],
    [3, 0],
  );
  // Without allowzero the same target copies dim 1 (3), which is an element-count error: 0 != 9.
  assert.throws(() => runOp("Reshape", [t("f32", [0, 3], []), i64([3, 0])]), /element counts differ/);
});

test("Reshape: symbolic -1 cancels common factors", () => {
  assert.deepEqual(inferOne("Reshape", ["f32[B@batch, 197@token, 64]", [0, -1, 4, 16]]), [
    "f32[B@batch, 197@token, 4, 16]",
  ]);
  assert.deepEqual(inferOne("Reshape", ["f32[B, N, 12, 64@channel]", [0, 0, -1]]), ["f32[B, N, 768]"]);
  assert.deepEqual(inferOne("Reshape", ["f32[B, N, 768@channel]", [-1, 768]]), ["f32[B*N, 768@channel]"]);
});

test("Reshape: inference errors", () => {
  assert.throws(() => inferOne("Reshape", ["f32[2, 6]", [-1, -1]]), /more than one -1/);
  assert.throws(() => inferOne("Reshape", ["f32[2, 6]", [5, -1]]), /cannot infer the -1 in \[5, -1\]/);
  assert.throws(() => inferOne("Reshape", ["f32[2, 6]", [4, 4]]), /element counts differ/);
  assert.throws(() => inferOne("Reshape", ["f32[2, 6]", [-2, 6]]), /invalid target dimension -2/);
  // A target computed at run time cannot size the output.
  assert.throws(
    () => inferOne("Reshape", ["f32[2, 6]", "i64[2]"]),
    /Reshape target shape \(input 1\) must be known at compile time/,
  );
  assert.throws(() => inferOne("Reshape", ["f32[B, 6]", [0, 4]]), /element counts differ/);
});

test("Flatten: axis splits the dims into two products", () => {
  const x = t("f32", [2, 3, 4], iota(24));
  assert.deepEqual([...runOp("Flatten", [x])[0].shape], [2, 12]);
  assert.deepEqual([...runOp("Flatten", [x], { axis: -1 })[0].shape], [6, 4]);
  assert.deepEqual([...runOp("Flatten", [x], { axis: 0 })[0].shape], [1, 24]);
  assert.deepEqual([...runOp("Flatten", [x], { axis: 3 })[0].shape], [24, 1]);
  assert.deepEqual(inferOne("Flatten", ["f32[B@batch, N@token, 4]"]), ["f32[B@batch, 4*N]"]);
  assert.throws(() => inferOne("Flatten", ["f32[2, 3]"], { axis: 3 }), /axis 3 is out of range/);
});

test("Identity passes type and values through", () => {
  const [y] = runOp("Identity", [c(t("i64", [3], [4, 5, 6]))]);
  assertClose(y, t("i64", [3], [4, 5, 6]));
  assert.deepEqual(inferOne("Identity", ["f32[B@batch, 3]"]), ["f32[B@batch, 3]"]);
});

test("Unsqueeze: axes index the output, negative axes count from its end", () => {
  // rank 1 + 2 inserted = 3: axes [0, -1] = [0, 2].
  const [y] = runOp("Unsqueeze", [c(t("i64", [3], [7, 8, 9])), i64([0, -1])]);
  assertClose(y, t("i64", [1, 3, 1], [7, 8, 9]));
  // opset 11 attribute form.
  assert.deepEqual(
    [...runOp("Unsqueeze", [t("f32", [2, 3], iota(6)), null], { axes: [1] })[0].shape],
    [2, 1, 3],
  );
  assert.deepEqual(inferOne("Unsqueeze", ["f32[B@batch, N@token]", [1]]), ["f32[B@batch, 1, N@token]"]);
  assert.deepEqual(inferOne("Unsqueeze", ["i64[]", [0]]), ["i64[1]"]);
  assert.throws(() => inferOne("Unsqueeze", ["f32[2]", [0, 0]]), /repeat an axis/);
  assert.throws(() => inferOne("Unsqueeze", ["f32[2]", [2]]), /axis 2 is out of range for rank 2/);
  assert.throws(() => inferOne("Unsqueeze", ["f32[2]", null]), /needs axes/);
  assert.throws(
    () => inferOne("Unsqueeze", ["f32[2]", "i64[1]"]),
    /Unsqueeze axes \(input 1\) must be known/,
  );
});

test("Squeeze: given axes, or every size-1 axis", () => {
  const x = t("f32", [1, 3, 1], [1, 2, 3]);
  assertClose(runOp("Squeeze", [x])[0], t("f32", [3], [1, 2, 3]));
  assertClose(runOp("Squeeze", [x, i64([-1])])[0], t("f32", [1, 3], [1, 2, 3]));
  assertClose(runOp("Squeeze", [x, null], { axes: [0] })[0], t("f32", [3, 1], [1, 2, 3]));
  assert.deepEqual(inferOne("Squeeze", ["f32[B@batch, 1, N@token]", [1]]), ["f32[B@batch, N@token]"]);
  assert.throws(() => inferOne("Squeeze", ["f32[1, 3]", [1]]), /cannot squeeze axis 1 of size 3/);
  assert.throws(() => inferOne("Squeeze", ["f32[B, 1]", null]), /cannot tell whether B .* is 1; give axes/);
});

test("Expand: numpy broadcasting to the target shape", () => {
  // [3, 1] to [2, 1, 2]: out[i][j][k] = x[j][0].
  const [y] = runOp("Expand", [t("f32", [3, 1], [1, 2, 3]), i64([2, 1, 2])]);
  assertClose(y, t("f32", [2, 3, 2], [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]));
  // Known integer values are broadcast at compile time too (checked by runOp).
  assertClose(runOp("Expand", [c(t("i64", [2], [4, 5])), i64([2, 1])])[0], t("i64", [2, 2], [4, 5, 4, 5]));
  assert.deepEqual(inferOne("Expand", ["f32[B@batch, 1, 8]", [1, 4, 1]]), ["f32[B@batch, 4, 8]"]);
  assert.throws(() => inferOne("Expand", ["f32[3]", [2]]), /cannot broadcast/);
  assert.throws(() => inferOne("Expand", ["f32[3]", "i64[1]"]), /Expand shape \(input 1\) must be known/);
});

test("Shape: i64 vector of dims, opset-15 start/end slice it", () => {
  const x = t("f32", [2, 3, 4], iota(24));
  assertClose(runOp("Shape", [x])[0], t("i64", [3], [2, 3, 4]));
  assertClose(runOp("Shape", [x], { start: 1 })[0], t("i64", [2], [3, 4]));
  assertClose(runOp("Shape", [x], { start: -1 })[0], t("i64", [1], [4]));
  assertClose(runOp("Shape", [x], { end: -2 })[0], t("i64", [1], [2]));
  assertClose(runOp("Shape", [x], { start: -10, end: 10 })[0], t("i64", [3], [2, 3, 4]));
  assertClose(runOp("Shape", [x], { start: 2, end: 1 })[0], t("i64", [0], []));
  const b = new GraphBuilder("t");
  b.symbol("B");
  const s = b.op("Shape", [b.input("x", "f32", [parseDim("B"), 197])]);
  assert.equal(printType(s.type), "i64[2]");
  assert.deepEqual(knownOf(b.output(s), s)!.map(printDim), ["B", "197"]);
});

test("ConstantOfShape: fills the shape with value in dtype", () => {
  assertClose(
    runOp("ConstantOfShape", [i64([2, 2])], { value: 7, dtype: "i64" })[0],
    t("i64", [2, 2], [7, 7, 7, 7]),
  );
  assertClose(runOp("ConstantOfShape", [i64([3])])[0], t("f32", [3], [0, 0, 0]));
  assertClose(runOp("ConstantOfShape", [i64([])], { value: 1.5 })[0], t("f32", [], [1.5]));
  assert.deepEqual(inferOne("ConstantOfShape", [[4, 0]], { value: 1 }), ["f32[4, 0]"]);
  assert.throws(() => inferOne("ConstantOfShape", [[2, -3]]), /invalid dimension -3/);
  assert.throws(
    () => inferOne("ConstantOfShape", ["i64[2]"]),
    /ConstantOfShape shape \(input 0\) must be known/,
  );
});

test("Range: integer and float sequences, length max(ceil((limit - start) / delta), 0)", () => {
  const s = (dt: "i64" | "i32" | "f32", v: number) => c(t(dt, [], [v]));
  // ceil(9 / 3) = 3.
  assertClose(runOp("Range", [s("i64", 1), s("i64", 10), s("i64", 3)])[0], t("i64", [3], [1, 4, 7]));
  // ceil((1 - 10) / -3) = 3.
  assertClose(runOp("Range", [s("i32", 10), s("i32", 1), s("i32", -3)])[0], t("i32", [3], [10, 7, 4]));
  // Empty: limit behind start.
  assertClose(runOp("Range", [s("i64", 5), s("i64", 0), s("i64", 1)])[0], t("i64", [0], []));
});

test("Range: float reference (values start + i * delta)", () => {
  // ceil(1 / 0.3) = 4: 0, 0.3, 0.6, 0.9 (f32).
  const [y] = refRun("Range", [t("f32", [], [0]), t("f32", [], [1]), t("f32", [], [0.3])]);
  assertClose(y, t("f32", [4], [0, 0.3, 0.6, 0.9]), 1e-6);
  // ceil((-1 - 1) / -0.5) = 4: 1, 0.5, 0, -0.5.
  assertClose(
    refRun("Range", [t("f64", [], [1]), t("f64", [], [-1]), t("f64", [], [-0.5])])[0],
    t("f64", [4], [1, 0.5, 0, -0.5]),
  );
  assert.ok(opDef("Range").pure);
  // Float bounds are not tracked at compile time, so the length cannot be inferred.
  assert.throws(
    () => inferOne("Range", ["f32[]", "f32[]", "f32[]"]),
    /Range start\/limit \(input 0\) must be known at compile time/,
  );
});

test("Range: symbolic limit from the shape gives a symbolic length", () => {
  const b = new GraphBuilder("t");
  b.symbol("N");
  const x = b.input("x", "f32", [2, parseDim("N")]);
  const n = b.op("Gather", [b.op("Shape", [x]), b.const("i64", [], [1])]);
  const r = b.op("Range", [b.const("i64", [], [0]), n, b.const("i64", [], [1])]);
  assert.equal(printType(r.type), "i64[N]");
  const r2 = b.op("Range", [b.const("i64", [], [1]), n, b.const("i64", [], [2])]);
  // Compared in canonical form (which prints as ceildiv(N + 1, 2) - 1).
  assert.equal(printType(r2.type), `i64[${printDim(parseDim("ceildiv(N - 1, 2)"))}]`);
  assert.throws(
    () => b.op("Range", [b.const("i64", [], [0]), n, b.const("i64", [], [0])]),
    /delta must be non-zero/,
  );
});
