import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { toF16 } from "../../backends/wgsl/f16.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { makeTensor, roundF16 } from "../../compiler/ir/tensor.js";
import { verifyGraph } from "../../compiler/verify.js";

// backends/wgsl/f16.ts (`--f16`, also CUDA's): the signature stays f32, including outputs that are
// graph inputs or constants themselves.

test("toF16: outputs that are inputs or constants keep their names and f32 values", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "f32", [2]);
  const c = b.constant(makeTensor("f32", [2], [1.0001, 2]), "c");
  b.output(b.op("Add", [x, c]));
  b.output(x);
  const g = b.output(c);
  const h = toF16(g);
  assert.deepEqual(verifyGraph(h), []);
  assert.deepEqual(
    h.outputs.map((v) => [v.name, v.type.dtype]),
    g.outputs.map((v) => [v.name, "f32"]),
  );
  assert.deepEqual(
    h.inputs.map((v) => [v.name, v.type.dtype]),
    [["x", "f32"]],
  );
  const out = runGraph(h, new Map([["x", makeTensor("f32", [2], [0.1, 3])]]));
  assert.deepEqual(Array.from(out.get("x")!.data), [Math.fround(0.1), 3], "the input itself, not rounded");
  assert.deepEqual(Array.from(out.get("c")!.data), [roundF16(1.0001), 2], "the f16 constant, cast back");
  const sum = out.get(g.outputs[0].name)!;
  assert.equal(sum.dtype, "f32");
  assert.deepEqual(Array.from(sum.data), [roundF16(roundF16(0.1) + roundF16(1.0001)), 5]);
});
