import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { onnx as P } from "onnx-proto";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { main } from "../../compiler/cli/main.js";
import { importOnnx, importOnnxFile, OnnxImportError } from "../../compiler/onnx/import.js";
import { assertValid } from "../../compiler/verify.js";
import { assertClose, t } from "../util/helpers.js";
import {
  attr,
  DataType as D,
  externalTensor,
  type ExternalKeys,
  f32Bytes,
  model,
  node,
  vi,
} from "./build.js";

let root = "";
let dir = "";
const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex");

// weights.bin: 4 bytes of padding, W (2x3 f32) at offset 4, then b (3 f32) at offset 28.
const W = [1, 2, 3, 4, 5, 6];
const B = [0.5, -1, 2];
const bin = new Uint8Array([9, 9, 9, 9, ...f32Bytes(W), ...f32Bytes(B)]);

/** y = x @ W + b with both weights external; `w`/`bias` override the tensors to test bad references. */
function mm(w: P.ITensorProto, bias: P.ITensorProto): Uint8Array {
  return model({
    name: "ext",
    input: [vi("x", D.FLOAT, ["N", 2])],
    initializer: [w],
    node: [
      node("Constant", "/bias", [], ["b"], [attr.tensor("value", bias)]),
      node("MatMul", "/mm", ["x", "W"], ["xw"]),
      node("Add", "/add", ["xw", "b"], ["y"]),
    ],
    output: [vi("y", D.FLOAT, ["N", 3])],
  });
}

const goodW = () => externalTensor("W", [2, 3], D.FLOAT, "data/weights.bin", { offset: 4, length: 24 });
const goodB = () =>
  externalTensor("b", [3], D.FLOAT, "data/weights.bin", { offset: 28, checksum: sha1(bin.subarray(28)) });

/** Writes `bytes` as `name` in the model directory and imports it from its path. */
function importAs(name: string, bytes: Uint8Array) {
  writeFileSync(join(dir, name), bytes);
  return importOnnxFile(join(dir, name), name);
}

function rejects(w: P.ITensorProto, message: RegExp): void {
  assert.throws(
    () => importAs("bad.onnx", mm(w, goodB())),
    (e: unknown) => {
      assert.ok(e instanceof OnnxImportError, String(e));
      assert.match(e.message, /^bad\.onnx: initializer 'W': /);
      assert.match(e.message, message);
      return true;
    },
  );
}

const ext = (location: string, keys: ExternalKeys = {}) =>
  externalTensor("W", [2, 3], D.FLOAT, location, keys);

describe("ONNX external data", () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), "tokr-ext-"));
    dir = join(root, "model");
    mkdirSync(join(dir, "data"), { recursive: true });
    writeFileSync(join(dir, "data", "weights.bin"), bin);
    writeFileSync(join(root, "outside.bin"), bin);
    symlinkSync(join(root, "outside.bin"), join(dir, "link.bin"));
    symlinkSync(join(dir, "data", "weights.bin"), join(dir, "inner-link.bin"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("initializers and Constant values are read from files next to the model and compute x@W + b", () => {
    const g = importAs("ext.onnx", mm(goodW(), goodB()));
    assertValid(g);
    const y = runGraph(g, new Map([["x", t("f32", [2, 2], [1, 1, 2, 0])]])).get("y")!;
    // [1,1]@W = [5,7,9] + b = [5.5,6,11]; [2,0]@W = [2,4,6] + b = [2.5,3,8]
    assertClose(y, t("f32", [2, 3], [5.5, 6, 11, 2.5, 3, 8]), 0, "y");
  });

  it("a symlink that stays inside the model's directory is followed", () => {
    const g = importAs("link.onnx", mm(ext("inner-link.bin", { offset: 4 }), goodB()));
    const w = [...g.constants.values()].find((c) => c.value.name === "W")!.data!;
    assert.deepEqual([...w.data], W);
  });

  it("bad references are errors naming the tensor", () => {
    rejects(ext("../outside.bin"), /location '\.\.\/outside\.bin' leaves the model's directory/);
    rejects(ext("data/../../outside.bin"), /leaves the model's directory/);
    rejects(ext(join(root, "outside.bin")), /is an absolute path; it must be relative to the model/);
    rejects(ext("link.bin"), /location 'link\.bin' leads outside the model's directory/);
    rejects(ext("data/missing.bin"), /external data file 'data\/missing\.bin' does not exist/);
    rejects(ext("data"), /location 'data' is not a file/);
    rejects(
      ext("data/weights.bin", { offset: 20 }),
      /range \[20, 44\) is past the end of 'data\/weights\.bin' \(40 bytes\)/,
    );
    rejects(ext("data/weights.bin", { offset: 4, length: 12 }), /length is 12 bytes but .* need 24/);
    rejects(ext("data/weights.bin", { offset: "-4" }), /'offset' is '-4', not a byte count/);
    rejects(ext("data/weights.bin", { offset: "1e3" }), /'offset' is '1e3', not a byte count/);
    rejects(
      ext("data/weights.bin", { offset: 4, checksum: sha1(bin) }),
      new RegExp(`checksum mismatch: .* hash to ${sha1(bin.subarray(4, 28))}, expected ${sha1(bin)}`),
    );
    rejects(ext("data/weights.bin", { checksum: "abc" }), /checksum 'abc' is not a SHA-1 digest/);
    rejects(ext("data/weights.bin", { sha256: "00" }), /unknown external data key 'sha256'/);
    rejects(ext(""), /external data has no 'location'/);
    rejects(
      { ...ext("data/weights.bin", { offset: 4 }), rawData: f32Bytes(W) },
      /both external data and raw_data/,
    );
  });

  it("a Constant node's external tensor error names the node", () => {
    const bias = externalTensor("b", [3], D.FLOAT, "../b.bin");
    assert.throws(() => importAs("c.onnx", mm(goodW(), bias)), {
      name: "OnnxImportError",
      message: /^c\.onnx: node '\/bias' \(Constant\): external data location '\.\.\/b\.bin' leaves/,
    });
  });

  it("model bytes need the model's directory (baseDir) to resolve external data", () => {
    const bytes = mm(goodW(), goodB());
    assert.throws(() => importOnnx(bytes, "m.onnx"), {
      message:
        /^m\.onnx: initializer 'W': keeps its data in external file 'data\/weights\.bin', but the model was given as bytes without its directory/,
    });
    const g = importOnnx(bytes, "m.onnx", { baseDir: dir });
    const w = [...g.constants.values()].find((c) => c.value.name === "W")!.data!;
    assert.deepEqual([...w.data], W);
  });

  it("tokr import resolves external data relative to the model, not the working directory", async () => {
    writeFileSync(join(dir, "cli.onnx"), mm(goodW(), goodB()));
    let out = "";
    let err = "";
    const code = await main(["import", "model/cli.onnx", "--print-ir"], {
      stdout: (s) => void (out += s),
      stderr: (s) => void (err += s),
      cwd: root,
    });
    assert.equal(code, 0, err);
    assert.match(
      out,
      /const %W: f32\[2, 3\] = dense<\[1, 2, 3, 4, 5, 6\]>\n {2}const %b: f32\[3\] = dense<\[0\.5, -1, 2\]>/,
    );
  });
});
