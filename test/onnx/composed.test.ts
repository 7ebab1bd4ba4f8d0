// ONNX ops the importer writes out as IR ops, in forms the conformance suite (test/onnx/conformance.test.ts)
// does not cover: Clip attribute forms, AveragePool over symbolic lengths, dilations and ceil_mode,
// BatchNormalization output arities. Expected values are worked out by hand in the comments.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { onnx as P } from "onnx-proto";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { importOnnx } from "../../compiler/onnx/import.js";
import { assertValid } from "../../compiler/verify.js";
import { assertClose, t } from "../util/helpers.js";
import { attr, DataType as D, floatTensor, model, node, vi } from "./build.js";

type Dim = number | string;

/** Runs a one-node model with input x of `dims` (symbolic dims bound by `x`'s shape). */
function run1(n: P.INodeProto, dims: Dim[], x: number[], shape: number[], opset: number, outs = 1) {
  const bytes = model(
    {
      input: [vi("x", D.FLOAT, dims)],
      node: [n],
      output: (n.output ?? []).slice(0, outs).map((o) => vi(o, D.FLOAT, [])),
    },
    opset,
  );
  const g = importOnnx(bytes, "m.onnx");
  assertValid(g);
  return runGraph(g, new Map([["x", t("f32", shape, x)]]));
}

const pool = (attrs: P.IAttributeProto[]) => node("AveragePool", "/pool", ["x"], ["y"], attrs);

test("Clip in opsets 6-10 takes optional min/max attributes", () => {
  const x = [-3, -1, 0, 2, 5];
  const y = (attrs: P.IAttributeProto[]) => [
    ...run1(node("Clip", "/c", ["x"], ["y"], attrs), [5], x, [5], 6).get("y")!.data,
  ];
  assert.deepEqual(y([attr.float("min", -1)]), [-1, -1, 0, 2, 5]);
  assert.deepEqual(y([attr.float("max", 1)]), [-3, -1, 0, 1, 1]);
  assert.deepEqual(y([attr.float("min", 0), attr.float("max", 1)]), [0, 0, 0, 1, 1]);
  assert.deepEqual(y([]), x);
  // min > max gives max everywhere (ONNX Clip).
  assert.deepEqual(y([attr.float("min", 2), attr.float("max", 1)]), [1, 1, 1, 1, 1]);
});

test("Clip in opset 11+ with a non-scalar bound is an error naming the node", () => {
  const bytes = model(
    {
      input: [vi("x", D.FLOAT, [3])],
      initializer: [floatTensor("lo", [1], [0])],
      node: [node("Clip", "/c", ["x", "lo"], ["y"])],
      output: [vi("y", D.FLOAT, [3])],
    },
    13,
  );
  assert.throws(() => importOnnx(bytes, "c.onnx"), {
    message: "c.onnx: node '/c' (Clip): Clip min must be a f32 scalar",
  });
});

test("AveragePool over a symbolic length: counted pads work, uncounted pads are an error", () => {
  // x = [1, 2, 3], k 2, pads 1|1: windows (0,1) (1,2) (2,3) (3,0) over 2 elements each.
  const n = pool([
    attr.ints("kernel_shape", [2]),
    attr.ints("pads", [1, 1]),
    attr.int("count_include_pad", 1),
  ]);
  const y = run1(n, [1, 1, "L"], [1, 2, 3], [1, 1, 3], 11).get("y")!;
  assertClose(y, t("f32", [1, 1, 4], [0.5, 1.5, 2.5, 1.5]), 1e-6, "counted pads");
  // The same on a static length, pads not counted: 1, 1.5, 2.5, 3.
  const s = run1(
    pool([attr.ints("kernel_shape", [2]), attr.ints("pads", [1, 1])]),
    [1, 1, 3],
    [1, 2, 3],
    [1, 1, 3],
    11,
  );
  assertClose(s.get("y")!, t("f32", [1, 1, 4], [1, 1.5, 2.5, 3]), 1e-6, "uncounted pads");
  assert.throws(
    () =>
      run1(
        pool([attr.ints("kernel_shape", [2]), attr.ints("pads", [1, 1])]),
        [1, 1, "L"],
        [1, 2, 3],
        [1, 1, 3],
        11,
      ),
    {
      message:
        /^m\.onnx: node '\/pool' \(AveragePool\): AveragePool with ceil_mode, padding not counted .* needs static spatial dims$/,
    },
  );
});

test("AveragePool with dilations and with ceil_mode (the last window holds what is left)", () => {
  const x = [1, 2, 3, 4, 5];
  // k 2, dilation 2: (1,3) (2,4) (3,5).
  const dil = run1(
    pool([attr.ints("kernel_shape", [2]), attr.ints("dilations", [2])]),
    [1, 1, 5],
    x,
    [1, 1, 5],
    19,
  );
  assertClose(dil.get("y")!, t("f32", [1, 1, 3], [2, 3, 4]), 1e-6, "dilations");
  // k 2, stride 2: floor gives (1,2) (3,4); ceil adds the window (5).
  const strided = (ceil: number) =>
    run1(
      pool([attr.ints("kernel_shape", [2]), attr.ints("strides", [2]), attr.int("ceil_mode", ceil)]),
      [1, 1, 5],
      x,
      [1, 1, 5],
      11,
    ).get("y")!;
  assertClose(strided(0), t("f32", [1, 1, 2], [1.5, 3.5]), 1e-6, "floor");
  assertClose(strided(1), t("f32", [1, 1, 3], [1.5, 3.5, 5]), 1e-6, "ceil");
});

test("BatchNormalization: training mode with only Y named; statistics outputs before opset 14 are refused", () => {
  // x [2, 1] = [1, 3]: batch mean 2, variance 1; y = (x - 2) / sqrt(1 + 0) = [-1, 1].
  const bn = (opset: number, outs: string[], attrs: P.IAttributeProto[]) =>
    model(
      {
        input: [vi("x", D.FLOAT, [2, 1])],
        initializer: [
          floatTensor("s", [1], [1]),
          floatTensor("b", [1], [0]),
          floatTensor("m", [1], [10]),
          floatTensor("v", [1], [4]),
        ],
        node: [node("BatchNormalization", "/bn", ["x", "s", "b", "m", "v"], outs, attrs)],
        output: outs.map((o) => vi(o, D.FLOAT, [])),
      },
      opset,
    );
  const train = [attr.int("training_mode", 1), attr.float("epsilon", 0), attr.float("momentum", 0.5)];
  const g = importOnnx(bn(15, ["y"], train), "bn.onnx");
  const y = runGraph(g, new Map([["x", t("f32", [2, 1], [1, 3])]]));
  assertClose(y.get("y")!, t("f32", [2, 1], [-1, 1]), 1e-6, "y");
  // Running statistics: 10 * 0.5 + 2 * 0.5 = 6, 4 * 0.5 + 1 * 0.5 = 2.5.
  const g3 = importOnnx(bn(15, ["y", "rm", "rv"], train), "bn.onnx");
  const r = runGraph(g3, new Map([["x", t("f32", [2, 1], [1, 3])]]));
  assertClose(r.get("rm")!, t("f32", [1], [6]), 1e-6, "running mean");
  assertClose(r.get("rv")!, t("f32", [1], [2.5]), 1e-6, "running var");
  assert.throws(() => importOnnx(bn(9, ["y", "m1", "v1", "sm", "sv"], []), "bn.onnx"), {
    message:
      "bn.onnx: node '/bn' (BatchNormalization): BatchNormalization with 5 outputs (training statistics) is only supported from opset 14 (training_mode)",
  });
});
