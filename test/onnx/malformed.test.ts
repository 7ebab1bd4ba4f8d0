/**
 * Malformed ONNX files: each must fail with an OnnxImportError naming the file and saying what is
 * wrong — never a crash, a hang or an allocation sized by the file's claims.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { importOnnx, OnnxImportError } from "../../compiler/onnx/import.js";
import { onnx } from "../../compiler/onnx/reader.js";
import { attr, DataType as D, floatTensor, model, node, rawFloatTensor, vi } from "./build.js";

/** A valid model (Add of an input and a raw_data initializer) that the corrupt variants start from. */
function good(): Uint8Array {
  return model({
    name: "g",
    input: [vi("x", D.FLOAT, ["N", 3])],
    initializer: [rawFloatTensor("b", [3], [1, 2, 3])],
    node: [node("Add", "/add", ["x", "b"], ["y"])],
    output: [vi("y", D.FLOAT, ["N", 3])],
  });
}

/** One input `x: f32[3]` feeding `nodes`, with graph output `out`. */
function graphOf(
  nodes: ReturnType<typeof node>[],
  out = "y",
  extra: Parameters<typeof model>[0] = {},
): Uint8Array {
  return model({ input: [vi("x", D.FLOAT, [3])], node: nodes, output: [vi(out, D.FLOAT, [3])], ...extra });
}

/** Raw protobuf: a field tag of `field` with wire type `wire`. */
const tag = (field: number, wire: number): number => (field << 3) | wire;

/** Importing `bytes` as `file` throws an OnnxImportError whose message matches `re` (and names the file). */
function rejects(bytes: Uint8Array, file: string, re: RegExp): void {
  assert.throws(
    () => importOnnx(bytes, file),
    (e: unknown) => {
      assert.ok(e instanceof OnnxImportError, `expected OnnxImportError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${file}: `), e.message);
      assert.match(e.message, re);
      return true;
    },
  );
}

const CASES: readonly { name: string; bytes: () => Uint8Array; re: RegExp }[] = [
  ...[1, 7, 20, 41].map((cut) => ({
    name: `truncated after ${cut} bytes`,
    bytes: () => good().subarray(0, cut),
    re: /not a valid ONNX model \(protobuf decoding failed: /,
  })),
  {
    name: "truncated one byte short",
    bytes: () => good().subarray(0, good().length - 1),
    re: /not a valid ONNX model \(protobuf decoding failed: /,
  },
  {
    name: "graph field (7) written as a varint",
    bytes: () => new Uint8Array([tag(1, 0), 8, tag(7, 0), 5]),
    re: /protobuf decoding failed: index out of range: 4 \+ 10 > 4\)$/,
  },
  {
    name: "ir_version (1) written as a length-delimited field",
    bytes: () => new Uint8Array([tag(1, 2), 3, 1, 2, 3]),
    re: /protobuf decoding failed: index out of range: 3 \+ 8 > 5\)$/,
  },
  {
    name: "opset_import (8) written as a fixed64",
    bytes: () => new Uint8Array([tag(8, 1), 1, 2, 3, 4, 5, 6, 7, 8]),
    re: /protobuf decoding failed: invalid wire type 7 at offset 8\)$/,
  },
  {
    name: "a two-node cycle",
    bytes: () => graphOf([node("Add", "/a", ["x", "q"], ["p"]), node("Add", "/b", ["p", "x"], ["q"])], "q"),
    re: /node '\/a' \(Add\): input 'q' is not a graph input, initializer or earlier node output$/,
  },
  {
    name: "a node reading its own output",
    bytes: () => graphOf([node("Relu", "/r", ["y"], ["y"])]),
    re: /node '\/r' \(Relu\): input 'y' is not a graph input, initializer or earlier node output$/,
  },
  {
    name: "a dangling input",
    bytes: () => graphOf([node("Add", "/a", ["x", "nowhere"], ["y"])]),
    re: /node '\/a' \(Add\): input 'nowhere' is not a graph input/,
  },
  {
    name: "two nodes writing the same output name",
    bytes: () => graphOf([node("Relu", "/r", ["x"], ["y"]), node("Neg", "/n", ["x"], ["y"])]),
    re: /node '\/n' \(Neg\): output 'y' is already defined/,
  },
  {
    name: "a node output shadowing a graph input",
    bytes: () => graphOf([node("Relu", "/r", ["x"], ["x"]), node("Neg", "/n", ["x"], ["y"])]),
    re: /node '\/r' \(Relu\): output 'x' is already defined/,
  },
  {
    name: "a negative input dim",
    bytes: () =>
      model({
        input: [vi("x", D.FLOAT, [-4])],
        node: [node("Relu", "/r", ["x"], ["y"])],
        output: [vi("y", D.FLOAT, [4])],
      }),
    re: /graph input 'x': dim 0 of \[-4\] is -4, not a valid size$/,
  },
  {
    name: "an input dim of 2^62",
    bytes: () =>
      model({
        input: [vi("x", D.FLOAT, [2 ** 62])],
        node: [node("Relu", "/r", ["x"], ["y"])],
        output: [vi("y", D.FLOAT, [1])],
      }),
    re: /graph input 'x': dim 0 of \[4611686018427388000\] is 4611686018427388000, not a valid size$/,
  },
  {
    name: "an initializer with negative dims",
    bytes: () =>
      graphOf([node("Add", "/a", ["x", "w"], ["y"])], "y", {
        initializer: [floatTensor("w", [-2, -3], [1, 2, 3, 4, 5, 6])],
      }),
    re: /initializer 'w': dim 0 of \[-2, -3\] is -2, not a valid size$/,
  },
  {
    name: "an initializer claiming 10^12 elements with 4 bytes of data",
    bytes: () =>
      graphOf([node("Add", "/a", ["x", "w"], ["y"])], "y", {
        initializer: [{ name: "w", dims: [1e6, 1e6], dataType: D.FLOAT, rawData: new Uint8Array(4) }],
      }),
    re: /initializer 'w': raw_data holds 4 bytes, expected 4000000000000$/,
  },
  {
    name: "an initializer claiming 2^62 x 2^62 elements and no data",
    bytes: () =>
      graphOf([node("Add", "/a", ["x", "w"], ["y"])], "y", {
        initializer: [{ name: "w", dims: [2 ** 62, 2 ** 62], dataType: D.FLOAT }],
      }),
    re: /initializer 'w': dim 0 of \[4611686018427388000, 4611686018427388000\] is 4611686018427388000, not a valid size$/,
  },
  {
    name: "raw_data length not a multiple of the shape",
    bytes: () =>
      graphOf([node("Add", "/a", ["x", "w"], ["y"])], "y", {
        initializer: [{ name: "w", dims: [3], dataType: D.FLOAT, rawData: new Uint8Array(10) }],
      }),
    re: /initializer 'w': raw_data holds 10 bytes, expected 12$/,
  },
  {
    name: "no graph",
    bytes: () =>
      onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }] }).finish(),
    re: /: the ONNX model has no graph$/,
  },
  {
    name: "no opset import",
    bytes: () => onnx.ModelProto.encode({ irVersion: 8, graph: { node: [] } }).finish(),
    re: /: the model imports no opset of the default ONNX domain$/,
  },
  {
    name: "an input of unknown element type 999",
    bytes: () => model({ input: [vi("x", 999, [3])], node: [], output: [vi("x", D.FLOAT, [3])] }),
    re: /graph input 'x' has element type 999, which is not supported$/,
  },
  {
    name: "an initializer of unknown element type 77",
    bytes: () =>
      graphOf([node("Add", "/a", ["x", "w"], ["y"])], "y", {
        initializer: [{ name: "w", dims: [3], dataType: 77, rawData: new Uint8Array(12) }],
      }),
    re: /initializer 'w': element type 77 is not supported$/,
  },
  {
    name: "a node with no op_type",
    bytes: () => graphOf([{ name: "/anon", input: ["x"], output: ["y"] }]),
    re: /: node '\/anon' has no op_type$/,
  },
  {
    name: "an If node with subgraphs",
    bytes: () =>
      graphOf([
        node(
          "If",
          "/if",
          ["c"],
          ["y"],
          [attr.graph("then_branch", { node: [] }), attr.graph("else_branch", { node: [] })],
        ),
      ]),
    re: /: control flow with subgraphs is not supported: If node '\/if'$/,
  },
  {
    name: "a Relu carrying a graph attribute",
    bytes: () =>
      graphOf([
        node("Relu", "/r", ["x"], ["y"], [attr.graph("body", { node: [node("Neg", "/n", ["x"], ["z"])] })]),
      ]),
    re: /node '\/r' \(Relu\): attribute 'body' of type GRAPH is not supported$/,
  },
  {
    name: "a Constant without a value",
    bytes: () => graphOf([node("Constant", "/c", [], ["c"]), node("Add", "/a", ["x", "c"], ["y"])]),
    re: /node '\/c' \(Constant\): Constant needs exactly one value attribute$/,
  },
  {
    name: "a Constant with two values",
    bytes: () =>
      graphOf([
        node("Constant", "/c", [], ["c"], [attr.float("value_float", 1), attr.ints("value_ints", [1])]),
        node("Add", "/a", ["x", "c"], ["y"]),
      ]),
    re: /node '\/c' \(Constant\): Constant needs exactly one value attribute$/,
  },
  {
    name: "a Constant with no output",
    bytes: () =>
      graphOf([
        node("Constant", "/c", [], [], [attr.float("value_float", 1)]),
        node("Relu", "/r", ["x"], ["y"]),
      ]),
    re: /node '\/c' \(Constant\): Constant needs one output, got 0$/,
  },
  {
    name: "ConstantOfShape of a 10^12-element shape",
    bytes: () =>
      graphOf([
        node("Constant", "/s", [], ["s"], [attr.ints("value_ints", [1e6, 1e6])]),
        node("ConstantOfShape", "/k", ["s"], ["k"]),
        node("Add", "/a", ["x", "k"], ["y"]),
      ]),
    re: /node '\/a' \(Add\): Add: cannot broadcast shapes \[3\] and \[1000000, 1000000\]$/,
  },
  {
    name: "a float Range of 10^12 elements with constant bounds",
    bytes: () =>
      graphOf([
        node("Constant", "/s", [], ["s"], [attr.float("value_float", 0)]),
        node("Constant", "/e", [], ["e"], [attr.float("value_float", 1e12)]),
        node("Constant", "/d", [], ["d"], [attr.float("value_float", 1)]),
        node("Range", "/r", ["s", "e", "d"], ["y"]),
      ]),
    re: /node '\/r' \(Range\): Range\(0, 999999995904, 1\) has 999999995904 elements, over the 16777216/,
  },
  {
    name: "Reshape to a negative shape",
    bytes: () =>
      graphOf([
        node("Constant", "/s", [], ["s"], [attr.ints("value_ints", [-3, -1])]),
        node("Reshape", "/r", ["x", "s"], ["y"]),
      ]),
    re: /node '\/r' \(Reshape\): Reshape: invalid target dimension -3 in \[-3, -1\]$/,
  },
  {
    name: "Cast to an unknown type",
    bytes: () => graphOf([node("Cast", "/c", ["x"], ["y"], [attr.int("to", 12345)])]),
    re: /node '\/c' \(Cast\): Cast to 12345 is not supported$/,
  },
];

for (const c of CASES)
  test(`malformed: ${c.name}`, () => {
    const t0 = Date.now();
    rejects(c.bytes(), "bad.onnx", c.re);
    assert.ok(Date.now() - t0 < 2000, "took over 2 s");
  });
