import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { printType } from "../../compiler/ir/types.js";
import { importOnnx, importOnnxFile, OnnxImportError } from "../../compiler/onnx/import.js";
import { assertValid } from "../../compiler/verify.js";
import { assertClose, t } from "../util/helpers.js";
import { attr, DataType as D, floatTensor, model, node, rawFloatTensor, vi } from "./build.js";

const types = (vs: readonly { name: string; type: Parameters<typeof printType>[0] }[]) =>
  vs.map((v) => `${v.name}: ${printType(v.type)}`);

function matmulAdd(): Uint8Array {
  return model({
    name: "mm",
    input: [vi("x", D.FLOAT, ["N", 2]), vi("u", D.FLOAT, [null, 4]), vi("W", D.FLOAT, [2, 3])],
    initializer: [floatTensor("W", [2, 3], [1, 2, 3, 4, 5, 6]), rawFloatTensor("b", [3], [0.5, -1, 2])],
    node: [node("MatMul", "/mm", ["x", "W"], ["xw"]), node("Add", "/add", ["xw", "b"], ["y"])],
    output: [vi("y", D.FLOAT, ["N", 3])],
  });
}

test("a dynamic-dim MatMul+Add imports with its symbols, names and locs, and computes x@W + b", () => {
  const g = importOnnx(matmulAdd(), "mm.onnx");
  assertValid(g);
  // W is listed as an input but has an initializer: it is a constant. `u`'s first dim has no value or param.
  assert.deepEqual(types(g.inputs), ["x: f32[N, 2]", "u: f32[unk0, 4]"]);
  assert.deepEqual([...g.symbols.keys()], ["N", "unk0"]);
  assert.deepEqual(types(g.outputs), ["y: f32[N, 3]"]);
  assert.deepEqual(
    g.nodes.map((n) => [n.op, n.loc?.file, n.loc?.node]),
    [
      ["MatMul", "mm.onnx", "/mm"],
      ["Add", "mm.onnx", "/add"],
    ],
  );
  const y = runGraph(
    g,
    new Map([
      ["x", t("f32", [2, 2], [1, 1, 2, 0])],
      ["u", t("f32", [1, 4], [0, 0, 0, 0])],
    ]),
  );
  // [1,1]@W = [5,7,9], [2,0]@W = [2,4,6]; plus b = [0.5,-1,2].
  assertClose(y.get("y")!, t("f32", [2, 3], [5.5, 6, 11, 2.5, 3, 8]));
});

test("Constant nodes (value_ints, value_float, value tensor) become constants feeding shape inference", () => {
  const bytes = model({
    input: [vi("x", D.FLOAT, [6])],
    node: [
      node("Constant", "/shape", [], ["s"], [attr.ints("value_ints", [2, 3])]),
      node("Constant", "/two", [], ["two"], [attr.float("value_float", 2)]),
      node("Constant", "/one", [], ["one"], [attr.tensor("value", { dataType: D.FLOAT, floatData: [1] })]),
      node("Reshape", "/reshape", ["x", "s"], ["r"]),
      node("Mul", "/mul", ["r", "two"], ["m"]),
      node("Add", "/add", ["m", "one"], ["y"]),
    ],
    output: [vi("y", D.FLOAT, [2, 3])],
  });
  const g = importOnnx(bytes, "c.onnx");
  assertValid(g);
  assert.deepEqual(types(g.outputs), ["y: f32[2, 3]"]);
  assert.deepEqual(
    g.nodes.map((n) => n.op),
    ["Reshape", "Mul", "Add"],
  );
  const y = runGraph(g, new Map([["x", t("f32", [6], [1, 2, 3, 4, 5, 6])]])).get("y")!;
  assertClose(y, t("f32", [2, 3], [3, 5, 7, 9, 11, 13]));
});

test("initializers of every supported dtype, from raw_data and typed fields", () => {
  const le16 = (...bits: number[]) => new Uint8Array(new Uint16Array(bits).buffer);
  const bytes = model({
    initializer: [
      { name: "i64", dims: [2], dataType: D.INT64, int64Data: [-3, 5] },
      {
        name: "i64raw",
        dims: [1],
        dataType: D.INT64,
        rawData: new Uint8Array(new BigInt64Array([-7n]).buffer),
      },
      { name: "i32", dims: [2], dataType: D.INT32, int32Data: [7, -8] },
      { name: "u8", dims: [2], dataType: D.UINT8, rawData: new Uint8Array([1, 255]) },
      { name: "bool", dims: [2], dataType: D.BOOL, int32Data: [0, 1] },
      { name: "f16raw", dims: [2], dataType: D.FLOAT16, rawData: le16(0x3c00, 0xc000) },
      { name: "f16", dims: [1], dataType: D.FLOAT16, int32Data: [0x3800] },
      { name: "f64", dims: [1], dataType: D.DOUBLE, doubleData: [0.1] },
    ],
    output: ["i64", "i64raw", "i32", "u8", "bool", "f16raw", "f16", "f64"].map((n) => vi(n, D.FLOAT, [])),
  });
  const g = importOnnx(bytes, "d.onnx");
  const got = Object.fromEntries(
    [...g.constants.values()].map((c) => [c.value.name, [c.data!.dtype, [...c.data!.data]]]),
  );
  assert.deepEqual(got, {
    i64: ["i64", [-3, 5]],
    i64raw: ["i64", [-7]],
    i32: ["i32", [7, -8]],
    u8: ["u8", [1, 255]],
    bool: ["bool", [0, 1]],
    f16raw: ["f16", [1, -2]],
    f16: ["f16", [0.5]],
    f64: ["f64", [0.1]],
  });
});

test("opset 11 forms: Unsqueeze axes attribute, ConstantOfShape value tensor, Cast enum, Softmax on the last axis", () => {
  const bytes = model(
    {
      input: [vi("x", D.FLOAT, [3])],
      node: [
        node("Unsqueeze", "/unsq", ["x"], ["u"], [attr.ints("axes", [0])]),
        node("Softmax", "/sm", ["u"], ["y"], [attr.int("axis", 1)]),
        node("Shape", "/shape", ["x"], ["s"]),
        node(
          "ConstantOfShape",
          "/cos",
          ["s"],
          ["c"],
          [attr.tensor("value", { dims: [1], dataType: D.INT64, int64Data: [7] })],
        ),
        node("Cast", "/cast", ["c"], ["k"], [attr.int("to", D.INT32)]),
      ],
      output: [vi("y", D.FLOAT, [1, 3]), vi("k", D.INT32, [3])],
    },
    11,
  );
  const g = importOnnx(bytes, "o.onnx");
  assertValid(g);
  assert.deepEqual(types(g.outputs), ["y: f32[1, 3]", "k: i32[3]"]);
  const out = runGraph(g, new Map([["x", t("f32", [3], [0, Math.log(2), Math.log(3)])]]));
  assertClose(out.get("y")!, t("f32", [1, 3], [1 / 6, 2 / 6, 3 / 6]));
  assert.deepEqual([...out.get("k")!.data], [7, 7, 7]);
});

test("Softmax before opset 13 over a non-last axis is refused, naming the node", () => {
  const bytes = model(
    {
      input: [vi("x", D.FLOAT, [2, 3])],
      node: [node("Softmax", "/sm", ["x"], ["y"], [attr.int("axis", 0)])],
      output: [vi("y", D.FLOAT, [2, 3])],
    },
    12,
  );
  assert.throws(
    () => importOnnx(bytes, "s.onnx"),
    (e: unknown) =>
      e instanceof OnnxImportError &&
      /^s\.onnx: node '\/sm' \(Softmax\): Softmax before opset 13 normalises over all axes from 0/.test(
        e.message,
      ),
  );
});

test("unsupported ops are all listed at once with op type, opset, node names and counts", () => {
  const bytes = model({
    input: [vi("x", D.FLOAT, [2])],
    node: [
      node("Foo", "/a", ["x"], ["a"]),
      node("Relu", "/r", ["a"], ["r"]),
      node("Foo", "/b", ["r"], ["b"]),
      node("Bar", "/c", ["b"], ["y"], [], "com.example"),
    ],
    output: [vi("y", D.FLOAT, [2])],
  });
  assert.throws(() => importOnnx(bytes, "u.onnx"), {
    name: "OnnxImportError",
    message: [
      "u.onnx: 3 node(s) use 2 unsupported op type(s):",
      "  Foo (opset 17): 2 node(s): /a, /b",
      "  com.example::Bar (opset 17): 1 node(s): /c",
    ].join("\n"),
  });
});

test("an If node is refused with its name", () => {
  const branch = { name: "b", node: [], output: [vi("x", D.FLOAT, [2])] };
  const bytes = model({
    input: [vi("x", D.FLOAT, [2]), vi("p", D.BOOL, [])],
    node: [
      node(
        "If",
        "/branch",
        ["p"],
        ["y"],
        [attr.graph("then_branch", branch), attr.graph("else_branch", branch)],
      ),
    ],
    output: [vi("y", D.FLOAT, [2])],
  });
  assert.throws(() => importOnnx(bytes, "if.onnx"), {
    name: "OnnxImportError",
    message: "if.onnx: control flow with subgraphs is not supported: If node '/branch'",
  });
});

test("a truncated file is an OnnxImportError naming the file", () => {
  const bytes = matmulAdd();
  assert.throws(
    () => importOnnx(bytes.subarray(0, Math.floor(bytes.length / 2)), "cut.onnx"),
    (e: unknown) =>
      e instanceof OnnxImportError &&
      /^cut\.onnx: not a valid ONNX model \(protobuf decoding failed: /.test(e.message),
  );
  assert.throws(() => importOnnx(new Uint8Array(), "empty.onnx"), {
    message: "empty.onnx: empty file, not an ONNX model",
  });
  assert.throws(() => importOnnx(bytes, "big.onnx", { maxBytes: 10 }), {
    message: `big.onnx: ${bytes.length} bytes is over the 10-byte limit for ONNX models`,
  });
});

test("a dangling input and a missing graph output are named", () => {
  const dangling = model({
    input: [vi("x", D.FLOAT, [2])],
    node: [node("Add", "/add", ["x", "ghost"], ["y"])],
    output: [vi("y", D.FLOAT, [2])],
  });
  assert.throws(() => importOnnx(dangling, "g.onnx"), {
    message:
      "g.onnx: node '/add' (Add): input 'ghost' is not a graph input, initializer or earlier node output",
  });
  const noOut = model({ input: [vi("x", D.FLOAT, [2])], node: [], output: [vi("y", D.FLOAT, [2])] });
  assert.throws(() => importOnnx(noOut, "o.onnx"), {
    message: "o.onnx: graph output 'y' is not produced by any node",
  });
});

test("a shape error from type inference names the ONNX node", () => {
  const bytes = model({
    input: [vi("x", D.FLOAT, [2, 3]), vi("w", D.FLOAT, [4, 5])],
    node: [node("MatMul", "/bad", ["x", "w"], ["y"])],
    output: [vi("y", D.FLOAT, [2, 5])],
  });
  assert.throws(
    () => importOnnx(bytes, "m.onnx"),
    (e: unknown) =>
      e instanceof OnnxImportError && e.message.startsWith("m.onnx: node '/bad' (MatMul): MatMul"),
  );
});

test("axes as attribute or input must match the opset (Unsqueeze 13, ReduceMean 18)", () => {
  const unsq = (opset: number, asInput: boolean) =>
    model(
      {
        input: [vi("x", D.FLOAT, [3])],
        initializer: asInput ? [{ name: "ax", dims: [1], dataType: D.INT64, int64Data: [0] }] : [],
        node: [
          node(
            "Unsqueeze",
            "/u",
            asInput ? ["x", "ax"] : ["x"],
            ["y"],
            asInput ? [] : [attr.ints("axes", [0])],
          ),
        ],
        output: [vi("y", D.FLOAT, [1, 3])],
      },
      opset,
    );
  assert.deepEqual(types(importOnnx(unsq(13, true), "a.onnx").outputs), ["y: f32[1, 3]"]);
  assert.throws(() => importOnnx(unsq(13, false), "a.onnx"), {
    message: "a.onnx: node '/u' (Unsqueeze): Unsqueeze in opset 13 takes axes as an input, not an attribute",
  });
  assert.throws(() => importOnnx(unsq(11, true), "a.onnx"), {
    message: "a.onnx: node '/u' (Unsqueeze): Unsqueeze in opset 11 takes axes as an attribute, not an input",
  });
  // ReduceMean moved axes to an input only in opset 18: mean of [1, 2, 6] over axis 0 is 3.
  const mean = model({
    input: [vi("x", D.FLOAT, [3])],
    node: [node("ReduceMean", "/m", ["x"], ["y"], [attr.ints("axes", [0]), attr.int("keepdims", 0)])],
    output: [vi("y", D.FLOAT, [])],
  });
  const g = importOnnx(mean, "m.onnx");
  assertClose(runGraph(g, new Map([["x", t("f32", [3], [1, 2, 6])]])).get("y")!, t("f32", [], [3]));
});

test("dim_param names that are not identifiers become safe symbol names", () => {
  const bytes = model({
    input: [vi("x", D.FLOAT, ["batch size", "2seq", "min"])],
    node: [node("Relu", "/r", ["x"], ["y"])],
    output: [vi("y", D.FLOAT, ["batch size", "2seq", "min"])],
  });
  const g = importOnnx(bytes, "n.onnx");
  assertValid(g);
  assert.deepEqual(types(g.inputs), ["x: f32[batch_size, _2seq, _min]"]);
});

test("a float Range with constant bounds is folded to its value; with a runtime bound it is refused", () => {
  const consts = [
    node("Constant", "/s", [], ["s"], [attr.float("value_float", 1)]),
    node("Constant", "/l", [], ["l"], [attr.float("value_float", 2.5)]),
    node("Constant", "/d", [], ["d"], [attr.float("value_float", 0.5)]),
  ];
  const g = importOnnx(
    model({
      input: [vi("x", D.FLOAT, [3])],
      node: [
        ...consts,
        node("Range", "/range", ["s", "l", "d"], ["r"]),
        node("Add", "/add", ["x", "r"], ["y"]),
      ],
      output: [vi("y", D.FLOAT, [3])],
    }),
    "r.onnx",
  );
  assertValid(g);
  // ceil((2.5 - 1) / 0.5) = 3 elements: 1, 1.5, 2.
  assert.deepEqual(types(g.outputs), ["y: f32[3]"]);
  assert.deepEqual(
    g.nodes.map((n) => n.op),
    ["Identity", "Add"],
  );
  assertClose(
    runGraph(g, new Map([["x", t("f32", [3], [0, 10, 20])]])).get("y")!,
    t("f32", [3], [1, 11.5, 22]),
  );
  assert.throws(
    () =>
      importOnnx(
        model({
          input: [vi("lim", D.FLOAT, [])],
          node: [...consts, node("Range", "/range", ["s", "lim", "d"], ["r"])],
          output: [vi("r", D.FLOAT, [null])],
        }),
        "r2.onnx",
      ),
    /node '\/range' \(Range\): Range: Range start\/limit \(input 0\) must be known at compile time/,
  );
});

test("importOnnxFile views weights in its own file buffer (moved into alignment) with the same values as importOnnx", () => {
  // Every viewable and converted dtype, small (< 128 bytes: copied) and large, at every offset mod 8
  // (name lengths shift the raw_data start), so the in-place moves of one tensor cannot clobber another.
  const kinds: [number, (v: number[]) => Uint8Array, (i: number) => number][] = [
    [D.FLOAT, (v) => new Uint8Array(new Float32Array(v).buffer), (i) => Math.fround(i * 0.37 - 5)],
    [D.DOUBLE, (v) => new Uint8Array(new Float64Array(v).buffer), (i) => i * 0.1 - 3],
    [D.INT32, (v) => new Uint8Array(new Int32Array(v).buffer), (i) => i * 7919 - 40000],
    [D.INT64, (v) => new Uint8Array(new BigInt64Array(v.map(BigInt)).buffer), (i) => i * 3 - 50],
    [D.FLOAT16, (v) => new Uint8Array(new Uint16Array(v.map((x) => 0x3c00 + x)).buffer), (i) => i % 512],
    [D.INT8, (v) => new Uint8Array(new Int8Array(v).buffer), (i) => (i % 200) - 100],
    [D.UINT8, (v) => new Uint8Array(v), (i) => (i * 13) % 256],
  ];
  const inits: ReturnType<typeof rawFloatTensor>[] = [];
  const raws = new Map<string, [number, number[]]>();
  kinds.forEach(([dt, enc, val], k) => {
    for (const n of [3, 61])
      for (let pad = 0; pad < 8; pad++) {
        const name = `t${k}_${n}_${"x".repeat(pad)}`;
        const v = Array.from({ length: n }, (_, i) => val(i + pad));
        raws.set(name, [dt, v]);
        inits.push({ name, dims: [n], dataType: dt, rawData: enc(v) });
      }
  });
  const bytes = model({ initializer: inits, output: [...raws.keys()].map((n) => vi(n, D.FLOAT, [])) });
  const before = bytes.slice();
  const dir = mkdtempSync(join(tmpdir(), "tokr-align-"));
  try {
    writeFileSync(join(dir, "w.onnx"), bytes);
    const fromFile = importOnnxFile(join(dir, "w.onnx"));
    const fromBytes = importOnnx(bytes, "w.onnx");
    assert.deepEqual(bytes, before, "importOnnx leaves the caller's bytes alone");
    const f16 = (x: number) => (x === 0 ? 1 : 1 + x / 1024);
    for (const g of [fromFile, fromBytes]) {
      const got = new Map([...g.constants.values()].map((c) => [c.value.name, [...c.data!.data]]));
      for (const [name, [dt, v]] of raws)
        assert.deepEqual(got.get(name), dt === D.FLOAT16 ? v.map(f16) : v, name);
    }
    // The large f32 weights of the file import share one buffer: the file's.
    const big = [...fromFile.constants.values()].filter(
      (c) => c.data!.dtype === "f32" && c.data!.data.length === 61,
    );
    assert.equal(big.length, 8);
    assert.equal(new Set(big.map((c) => c.data!.data.buffer)).size, 1);
    assert.ok(big[0].data!.data.buffer.byteLength >= bytes.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
