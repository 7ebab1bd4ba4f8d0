import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { parseAndVerify } from "../../compiler/ir/text/parser.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { assertClose, repoRoot, t } from "../util/helpers.js";
import { DataType as D, floatTensor, model, node, vi } from "./build.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
let dir = "";

async function tokr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: dir });
  return { code, out, err };
}

describe("tokr with .onnx inputs", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-onnx-"));
    copyFileSync(join(ex, "vit_fmnist_opset17.onnx"), join(dir, "vit.onnx"));
    const small = model({
      name: "small",
      input: [vi("x", D.FLOAT, ["B", 2])],
      initializer: [floatTensor("w", [2], [10, 20])],
      node: [node("Mul", "/mul", ["x", "w"], ["y"])],
      output: [vi("y", D.FLOAT, ["B", 2])],
    });
    writeFileSync(join(dir, "small.onnx"), small);
    writeFileSync(join(dir, "cut.onnx"), small.subarray(0, 20));
    writeSafetensorsFile(join(dir, "x.safetensors"), new Map([["x", t("f32", [1, 2], [1, 2])]]));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("import --print-ir prints the graph; -o writes IR that parses, verifies and keeps the weights", async () => {
    const r = await tokr("import", "small.onnx", "--print-ir", "-o", "small.ir");
    assert.equal(r.code, 0, r.err);
    const expected = [
      "graph @small(%x: f32[B, 2]) {",
      "  sym B",
      "  const %w: f32[2] = dense<[10, 20]>",
      '  %y = Mul(%x, %w) loc("small.onnx" node "/mul") : f32[B, 2]',
      "  return %y",
      "}",
      "",
    ].join("\n");
    assert.equal(r.out, expected);
    assert.equal(readFileSync(join(dir, "small.ir"), "utf8"), expected);
    parseAndVerify(expected, "small.ir");
  });

  it("run, inspect and compile --target cpu take a .onnx INPUT", async () => {
    const run = await tokr("run", "small.onnx", "--inputs", "x.safetensors");
    assert.equal(run.code, 0, run.err);
    assert.equal(run.out, "%y: f32[1, 2] = [10, 40]\n");
    const ins = await tokr("inspect", "small.onnx");
    assert.equal(ins.code, 0, ins.err);
    assert.match(ins.out, /Mul/);
    const comp = await tokr("compile", "small.onnx", "--target", "cpu", "-o", "art");
    assert.equal(comp.code, 0, comp.err);
    const again = await tokr("run", "art", "--inputs", "x.safetensors");
    assert.equal(again.out, run.out);
  });

  it("import errors name the file; usage errors exit 2", async () => {
    const cut = await tokr("import", "cut.onnx", "--print-ir");
    assert.equal(cut.code, 1);
    assert.match(cut.err, /^tokr: error: cut\.onnx: not a valid ONNX model \(protobuf decoding failed: /);
    assert.equal((await tokr("import", "small.onnx")).code, 2);
    assert.equal(
      (await tokr("import", "nothere.onnx", "--print-ir")).err,
      "tokr: error: nothere.onnx: no such file or directory\n",
    );
  });

  it("the ViT imports to an IR file that runs like the model itself", async () => {
    const r = await tokr("import", "vit.onnx", "-o", "vit.ir");
    assert.equal(r.code, 0, r.err);
    const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 7, 1);
    writeSafetensorsFile(join(dir, "pixels.safetensors"), new Map([["pixels", x]]));
    assert.equal(
      (await tokr("run", "vit.ir", "--inputs", "pixels.safetensors", "-o", "a.safetensors")).code,
      0,
    );
    assert.equal(
      (await tokr("run", "vit.onnx", "--inputs", "pixels.safetensors", "-o", "b.safetensors")).code,
      0,
    );
    const a = readSafetensorsFile(join(dir, "a.safetensors")).get("logits")!;
    const b = readSafetensorsFile(join(dir, "b.safetensors")).get("logits")!;
    assert.deepEqual([...a.shape], [1, 10]);
    assertClose(a, b, 0, "logits via vit.ir vs via vit.onnx");
  });
});
