import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { Graph } from "../../compiler/ir/graph.js";
import { parseDim, printDim } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { printType, tensorType } from "../../compiler/ir/types.js";
import { formatDiagnostic, verifyGraph } from "../../compiler/verify.js";
import { assertClose, t } from "../util/helpers.js";
import { knownValues } from "./shape-util.js";

/** Shape arithmetic as ONNX exporters emit it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape. */

const B = parseDim("B");
const N = parseDim("N");

function builder(...syms: string[]): GraphBuilder {
  const b = new GraphBuilder("g");
  for (const s of syms) b.symbol(s);
  return b;
}

test("Reshape f32[B, 197, 64] to [B, 197, 4, 16] through Shape/Gather/Unsqueeze/Concat", () => {
  const b = builder("B");
  const x = b.input("x", "f32", [B, 197, 64], ["batch", "token", null]);
  const batch = b.op("Gather", [b.op("Shape", [x]), b.const("i64", [], [0])]);
  const target = b.op(
    "Concat",
    [b.op("Unsqueeze", [batch, b.const("i64", [1], [0])]), b.const("i64", [3], [197, 4, 16])],
    { axis: 0 },
  );
  const y = b.op("Reshape", [x, target]);
  assert.equal(printType(y.type), "f32[B@batch, 197@token, 4, 16]");
  const g = b.output(y);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  assert.deepEqual(knownValues(g).get(target)!.map(printDim), ["B", "197", "4", "16"]);
  // Run with B = 2: the data is unchanged, the shape follows the symbolic type.
  const data = Array.from({ length: 2 * 197 * 64 }, (_, i) => i % 251);
  const out = runGraph(g, new Map([["x", makeTensor("f32", [2, 197, 64], data)]])).get(y.name)!;
  assertClose(out, makeTensor("f32", [2, 197, 4, 16], data));
});

test("Reshape(x, Concat(Gather(Shape(x), 0), [-1, 64])) infers the token count", () => {
  const b = builder("B", "N");
  const x = b.input("x", "f32", [B, N, 4, 16]);
  const batch = b.op("Unsqueeze", [
    b.op("Gather", [b.op("Shape", [x]), b.const("i64", [], [0])]),
    b.const("i64", [1], [0]),
  ]);
  const y = b.op("Reshape", [x, b.op("Concat", [batch, b.const("i64", [2], [-1, 64])], { axis: 0 })]);
  assert.equal(printType(y.type), "f32[B, N, 64]");
  assert.deepEqual(verifyGraph(b.output(y)).map(formatDiagnostic), []);
});

test("head split: the head dim is Div(Gather(Shape(x), 2), 12)", () => {
  const b = builder("B", "N");
  const x = b.input("x", "f32", [B, N, 768]);
  const shape = b.op("Shape", [x]);
  const dim = (i: number) =>
    b.op("Unsqueeze", [b.op("Gather", [shape, b.const("i64", [], [i])]), b.const("i64", [1], [0])]);
  const headDim = b.op("Div", [dim(2), b.const("i64", [1], [12])]);
  const target = b.op("Concat", [dim(0), dim(1), b.const("i64", [1], [12]), headDim], { axis: 0 });
  const y = b.op("Reshape", [x, target]);
  assert.equal(printType(y.type), "f32[B, N, 12, 64]");
  const g = b.output(y);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  assert.deepEqual(knownValues(g).get(headDim), [64]);
});

test("Mul of two dims merges batch and tokens; Sub and Add give N - 1 and N + 1", () => {
  const b = builder("B", "N");
  const x = b.input("x", "f32", [B, N, 8]);
  const shape = b.op("Shape", [x]);
  const first2 = b.op("Slice", [shape, b.const("i64", [1], [0]), b.const("i64", [1], [2])]);
  const bn = b.op("Mul", [
    b.op("Slice", [first2, b.const("i64", [1], [0]), b.const("i64", [1], [1])]),
    b.op("Slice", [first2, b.const("i64", [1], [1]), b.const("i64", [1], [2])]),
  ]);
  const flat = b.op("Reshape", [x, b.op("Concat", [bn, b.const("i64", [1], [8])], { axis: 0 })]);
  assert.equal(printType(flat.type), "f32[B*N, 8]");
  // Back again with a -1 whose value is B*N*8 / (B*8) = N.
  const back = b.op("Reshape", [
    flat,
    b.op(
      "Concat",
      [
        b.op("Slice", [first2, b.const("i64", [1], [0]), b.const("i64", [1], [1])]),
        b.const("i64", [2], [-1, 8]),
      ],
      { axis: 0 },
    ),
  ]);
  assert.equal(printType(back.type), "f32[B, N, 8]");
  const n = b.op("Gather", [shape, b.const("i64", [], [1])]);
  const one = b.const("i64", [], [1]);
  const g = b.output(flat, back);
  const known = knownValues(g);
  assert.deepEqual(known.get(bn)!.map(printDim), ["B*N"]);
  const b2 = b.op("Sub", [n, one]);
  const b3 = b.op("Add", [n, one]);
  const b4 = b.op("Div", [n, b.const("i64", [], [2])]);
  const k2 = knownValues(g);
  assert.deepEqual(
    [b2, b3, b4].map((v) => printDim(k2.get(v)![0])),
    ["N - 1", "N + 1", "floordiv(N, 2)"],
  );
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  const data = Array.from({ length: 3 * 5 * 8 }, (_, i) => i);
  const res = runGraph(g, new Map([["x", makeTensor("f32", [3, 5, 8], data)]]));
  assert.deepEqual([...res.get(flat.name)!.shape], [15, 8]);
  assert.deepEqual([...res.get(back.name)!.shape], [3, 5, 8]);
});

test("integer Div truncates like the reference on negative known values", () => {
  const b = builder();
  const q = b.op("Div", [b.const("i64", [2], [-7, 7]), b.const("i64", [], [2])]);
  const g = b.output(q);
  assert.deepEqual(knownValues(g).get(q), [-3, 3]);
  assert.deepEqual(Array.from(runGraph(g, new Map()).get(q.name)!.data), [-3, 3]);
});

test("verifyGraph propagates known values and checks declared types", () => {
  const g = new Graph("v");
  g.declareSymbol({ name: "B" });
  const x = g.addInput(tensorType("f32", [B, 6]), "x");
  const shape = g.addNode("Shape", [x], [tensorType("i64", [2])]).outputs[0];
  const tail = g.addConstant(tensorType("i64", [1]), "tail", t("i64", [1], [-1]));
  const head = g.addNode(
    "Slice",
    [
      shape,
      g.addConstant(tensorType("i64", [1]), "s", t("i64", [1], [0])),
      g.addConstant(tensorType("i64", [1]), "e", t("i64", [1], [1])),
    ],
    [tensorType("i64", [1])],
  ).outputs[0];
  const target = g.addNode(
    "Concat",
    [head, g.addConstant(tensorType("i64", [1]), "two", t("i64", [1], [2])), tail],
    [tensorType("i64", [3])],
    { axis: 0 },
  ).outputs[0];
  // Declared wrong on purpose: the op gives f32[B, 2, 3].
  const y = g.addNode("Reshape", [x, target], [tensorType("f32", [B, 3, 2])]).outputs[0];
  g.outputs.push(y);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), [
    `%${y.name}: error: Reshape: output %${y.name} is declared f32[B, 3, 2] but the op gives f32[B, 2, 3]`,
  ]);
});

test("inference errors name what must be constant", () => {
  const b = builder("B");
  const x = b.input("x", "f32", [B, 6]);
  const rt = b.input("shape", "i64", [2]);
  assert.throws(
    () => b.op("Reshape", [x, rt]),
    /Reshape target shape \(input 1\) must be known at compile time/,
  );
  const lim = b.input("lim", "i64", []);
  assert.throws(
    () => b.op("Range", [b.const("i64", [], [0]), lim, b.const("i64", [], [1])]),
    /Range start\/limit \(input 1\) must be known at compile time/,
  );
  // A symbolic delta cannot size the output.
  const bdim = b.op("Gather", [b.op("Shape", [x]), b.const("i64", [], [0])]);
  assert.throws(
    () => b.op("Range", [b.const("i64", [], [0]), b.const("i64", [], [8]), bdim]),
    /Range delta must be a constant, got B/,
  );
  assert.throws(() => b.op("ConstantOfShape", [rt]), /ConstantOfShape shape \(input 0\) must be known/);
  // B * 6 elements do not divide into 4-element rows for every B.
  assert.throws(() => b.op("Reshape", [x, b.const("i64", [2], [-1, 4])]), /cannot infer the -1 in \[-1, 4\]/);
  assert.throws(() => b.op("Squeeze", [x]), /cannot tell whether B/);
});

test("ConstantOfShape over a symbolic shape gives a symbolic type", () => {
  const b = builder("B", "N");
  const x = b.input("x", "f32", [B, N, 4]);
  const z = b.op("ConstantOfShape", [b.op("Shape", [x], { end: 2 })], { value: 1, dtype: "i64" });
  assert.equal(printType(z.type), "i64[B, N]");
});
