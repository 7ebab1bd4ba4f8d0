import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { parseSafetensors, SafetensorsError, serializeSafetensors } from "../../runtime/safetensors.js";
import { sharedDir, t } from "../util/helpers.js";

/** A file from raw header text and data bytes; `len` overrides the header length field. */
function file(header: string, data: number[] = [], len?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function sameTensor(a: Tensor | undefined, b: Tensor, what: string): void {
  assert.ok(a, `${what}: missing`);
  assert.equal(a.dtype, b.dtype, `${what}: dtype`);
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  assert.deepEqual([...a.data], [...b.data], `${what}: data`);
}

describe("safetensors writer", () => {
  it("writes the documented layout byte for byte", () => {
    const bytes = serializeSafetensors(new Map([["a", t("f32", [2], [1, -2])]]));
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; // 54 bytes -> padded to 56
    assert.equal(header.length, 54);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    assert.equal(dv.getBigUint64(0, true), 56n);
    assert.equal(new TextDecoder().decode(bytes.subarray(8, 64)), header + "  ");
    // 1.0f = 0x3f800000, -2.0f = 0xc0000000, little-endian.
    assert.deepEqual([...bytes.subarray(64)], [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
  });

  it("pads the header with spaces to a multiple of 8 and puts metadata first", () => {
    const bytes = serializeSafetensors([["x", t("u8", [3], [1, 2, 3])]], { format: "pt" });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{"__metadata__":\{"format":"pt"\},"x":\{.*\}\} *$/);
    assert.deepEqual([...bytes.subarray(8 + n)], [1, 2, 3]);
  });

  it("encodes f16, i64 and bool by hand-checked bit patterns", () => {
    const bytes = serializeSafetensors([
      ["h", t("f16", [2], [1, -0.5])], // 0x3c00, 0xb800
      ["q", t("i64", [1], [-1])], // two's complement: all ones
      ["b", t("bool", [2], [0, 1])],
    ]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.deepEqual([...bytes.subarray(8 + n)], [0x00, 0x3c, 0x00, 0xb8, ...new Array(8).fill(0xff), 0, 1]);
  });

  it("refuses what it cannot write", () => {
    const cases: [Parameters<typeof serializeSafetensors>[0], RegExp][] = [
      [
        [
          ["x", t("f32", [1], [1])],
          ["x", t("f32", [1], [2])],
        ],
        /duplicate tensor name 'x'/,
      ],
      [[["__metadata__", t("f32", [1], [1])]], /may not be named '__metadata__'/],
      [[["x", { dtype: "f32", shape: [3], data: new Float32Array(2) }]], /2 values for shape \[3\]/],
      [
        [["x", { dtype: "i64", shape: [1], data: new Float64Array([0.5]) }]],
        /i64 element 0 \(0.5\) is not an integer/,
      ],
      [[["x", { dtype: "f32", shape: [-1], data: new Float32Array(0) }]], /invalid shape \[-1\]/],
    ];
    for (const [input, re] of cases) {
      assert.throws(
        () => serializeSafetensors(input, undefined, "out.safetensors"),
        (e: unknown) =>
          e instanceof SafetensorsError && re.test(e.message) && e.message.startsWith("out.safetensors: "),
      );
    }
  });
});

describe("safetensors round trip", () => {
  it("round-trips every dtype, empty tensors, scalars and metadata, keeping insertion order", () => {
    const tensors = new Map<string, Tensor>([
      ["f32", t("f32", [2, 2], [1.5, -0, Infinity, 3.25])],
      ["f16", t("f16", [3], [65504, -0.00006097555160522461, 0.333251953125])], // max, -largest subnormal, 0x3555
      ["f64", t("f64", [2], [Math.PI, -1e300])],
      ["i32", t("i32", [2], [-2147483648, 2147483647])],
      ["i64", t("i64", [3], [2 ** 53, -(2 ** 53), -7])],
      ["i8", t("i8", [2], [-128, 127])],
      ["u8", t("u8", [2], [0, 255])],
      ["bool", t("bool", [3], [1, 0, 1])],
      ["10", t("f32", [0], [])], // integer-like names would be reordered by a plain JS object
      ["2", t("i64", [2, 0, 3], [])],
      ["scalar", t("f32", [], [42])],
      ["a", t("f32", [1], [7])],
    ]);
    const back = parseSafetensors(serializeSafetensors(tensors, { format: "pt", note: "π ✓" }), "rt");
    assert.deepEqual([...back.keys()], [...tensors.keys()]);
    for (const [k, v] of tensors) sameTensor(back.get(k), v, k);
    assert.deepEqual(
      [...back.metadata],
      [
        ["format", "pt"],
        ["note", "π ✓"],
      ],
    );
    // A TensorFile carries its metadata into the next write.
    const again = parseSafetensors(serializeSafetensors(back));
    assert.equal(again.metadata.get("note"), "π ✓");
  });

  it("writes and reads files through node-io", () => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-st-"));
    try {
      const p = join(dir, "w.safetensors");
      writeSafetensorsFile(p, new Map([["w", t("f32", [2], [0.5, 2])]]), { k: "v" });
      const back = readSafetensorsFile(p);
      sameTensor(back.get("w"), t("f32", [2], [0.5, 2]), "w");
      assert.equal(back.metadata.get("k"), "v");
      assert.throws(
        () => readSafetensorsFile(join(dir, "missing.safetensors")),
        /missing\.safetensors: cannot read file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("safetensors reader", () => {
  it("widens BF16 to f32 and reads any non-zero BOOL byte as true", () => {
    const h =
      '{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BOOL","shape":[2],"data_offsets":[6,8]}}';
    // bf16 0x3f80 = 1.0, 0xc040 = -3.0, 0x7f80 = +inf (the top half of the f32 bits).
    const f = parseSafetensors(file(h, [0x80, 0x3f, 0x40, 0xc0, 0x80, 0x7f, 2, 0]));
    sameTensor(f.get("x"), makeTensor("f32", [3], [1, -3, Infinity]), "x");
    sameTensor(f.get("b"), makeTensor("bool", [2], [1, 0]), "b");
  });

  it("accepts several empty tensors at one offset", () => {
    const h =
      '{"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"e2":{"dtype":"I8","shape":[0,4],"data_offsets":[0,0]},"x":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}';
    const f = parseSafetensors(file(h, [0xfe]));
    assert.deepEqual([...f.keys()], ["e1", "e2", "x"]);
    sameTensor(f.get("x"), makeTensor("i8", [1], [-2]), "x");
  });

  // Each case: a file, and the problem its error must name.
  const f32x1 = (name: string, begin: number, end: number) =>
    `"${name}":{"dtype":"F32","shape":[1],"data_offsets":[${begin},${end}]}`;
  const corpus: [string, Uint8Array, RegExp][] = [
    ["shorter than 8 bytes", new Uint8Array(5), /5 bytes, too short for the 8-byte header length/],
    [
      "header length beyond the file",
      file("{}", [], 1000n),
      /header length 1000 is larger than the 2 bytes after it/,
    ],
    [
      "absurd header length",
      file("{}", [], 2n ** 40n),
      /header length 1099511627776 exceeds the 100000000-byte limit/,
    ],
    ["header length below 2", file("{}", [], 0n), /header length 0 is too small/],
    ["header not UTF-8", (() => { const b = file("{}  "); b[9] = 0xff; return b; })(), /not valid UTF-8/], // prettier-ignore
    ["header not an object", file("[1, 2]"), /header does not start with '\{'/],
    ["header not JSON", file('{"a": '), /header is not valid JSON/],
    ["entry not an object", file('{"a": 3}'), /tensor 'a': entry is not an object/],
    [
      "missing dtype",
      file('{"a":{"shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      /tensor 'a': dtype is missing/,
    ],
    [
      "unknown dtype",
      file('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', [0]),
      /unsupported dtype "F8_E4M3"/,
    ],
    [
      "shape not a list",
      file('{"a":{"dtype":"U8","shape":3,"data_offsets":[0,3]}}', [0, 0, 0]),
      /shape 3 is not a list/,
    ],
    [
      "negative dim",
      file('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'),
      /shape \[-1\] is not a list of non-negative/,
    ],
    [
      "fractional dim",
      file('{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,0]}}'),
      /shape \[1.5\] is not a list/,
    ],
    [
      "huge shape",
      file(
        '{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}',
        new Array(8).fill(0),
      ),
      /shape \[4294967296, 4294967296\] is too large/,
    ],
    [
      "offsets not integers",
      file('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,0.5]}}', [0]),
      /data_offsets \[0,0.5\] are not two non-negative integers/,
    ],
    [
      "three offsets",
      file('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', [0, 0]),
      /are not two non-negative integers/,
    ],
    [
      "offsets reversed",
      file('{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', [0, 0, 0, 0]),
      /data_offsets \[4, 0\] end before they begin/,
    ],
    [
      "offsets not matching the shape",
      file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      /span 4 bytes, but F32 \[2\] needs 8/,
    ],
    [
      "offsets past the buffer",
      file(`{${f32x1("a", 0, 4)},${f32x1("b", 4, 8)}}`, [0, 0, 0, 0]),
      /tensor 'b' data_offsets \[4, 8\] run past the 4-byte data section/,
    ],
    [
      "overlapping tensors",
      file(`{${f32x1("a", 0, 4)},${f32x1("b", 2, 6)}}`, new Array(6).fill(0)),
      /tensor 'b' .* overlap the previous tensor \(ends at 4\)/,
    ],
    [
      "gap between tensors",
      file(`{${f32x1("a", 0, 4)},${f32x1("b", 6, 10)}}`, new Array(10).fill(0)),
      /gap in the data section: bytes 4\.\.6/,
    ],
    [
      "gap at the start",
      file(`{${f32x1("a", 4, 8)}}`, new Array(8).fill(0)),
      /bytes 0\.\.4 belong to no tensor/,
    ],
    [
      "trailing bytes",
      file(`{${f32x1("a", 0, 4)}}`, new Array(7).fill(0)),
      /3 trailing bytes after the last tensor/,
    ],
    [
      "duplicate names",
      file(`{${f32x1("a", 0, 4)},${f32x1("a", 4, 8)}}`, new Array(8).fill(0)),
      /duplicate tensor name 'a'/,
    ],
    [
      "duplicate inner key",
      file('{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', [0]),
      /duplicate key 'dtype'/,
    ],
    ["metadata not strings", file('{"__metadata__":{"n":1}}'), /__metadata__ entry 'n' is not a string/],
    ["metadata not an object", file('{"__metadata__":[]}'), /__metadata__ is not an object of strings/],
    [
      "i64 beyond 2^53",
      file('{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', [1, 0, 0, 0, 0, 0, 0x20, 0]),
      /I64 element 0 \(9007199254740993\) is beyond ±2\^53/,
    ],
  ];
  for (const [what, bytes, re] of corpus) {
    it(`rejects a malformed file: ${what}`, () => {
      assert.throws(
        () => parseSafetensors(bytes, "bad.safetensors"),
        (e: unknown) => {
          assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
          assert.equal(e.file, "bad.safetensors");
          assert.ok(e.message.startsWith("bad.safetensors: "), e.message);
          assert.match(e.problem, re);
          return true;
        },
      );
    });
  }
});

describe("safetensors on the real fmnist ViT", () => {
  const path = join(sharedDir, "models", "fmnist-vit", "vit_fmnist.safetensors");
  const skip = existsSync(path) ? false : `${path} is absent (shared models not mounted)`;
  it("parses the torchvision state dict", { skip }, () => {
    const f = readSafetensorsFile(path);
    // 80 tensors (81 header entries minus __metadata__); 214,602 parameters per the model README.
    assert.equal(f.size, 80);
    let params = 0;
    for (const v of f.values()) params += v.data.length;
    assert.equal(params, 214602);
    assert.equal(f.metadata.get("format"), "pt");
    const shape = (k: string) => [...(f.get(k)?.shape ?? [])];
    assert.deepEqual(shape("class_token"), [1, 1, 64]);
    assert.deepEqual(shape("conv_proj.weight"), [64, 1, 2, 2]);
    assert.deepEqual(shape("encoder.pos_embedding"), [1, 197, 64]);
    assert.deepEqual(shape("encoder.layers.encoder_layer_0.self_attention.in_proj_weight"), [192, 64]);
    assert.deepEqual(shape("encoder.layers.encoder_layer_5.mlp.3.weight"), [64, 128]);
    assert.deepEqual(shape("heads.head.bias"), [10]);
    assert.equal([...f.keys()][0], "class_token");
    // heads.head.bias occupies the last 40 bytes of the file: compare with Buffer's own float decoding.
    const raw = readFileSync(path);
    const bias = f.get("heads.head.bias")!;
    for (let i = 0; i < 10; i++) assert.equal(bias.data[i], raw.readFloatLE(raw.length - 40 + 4 * i));
    // Re-serialising gives back the same tensors.
    const back = parseSafetensors(serializeSafetensors(f));
    for (const [k, v] of f) sameTensor(back.get(k), v, k);
  });
});
