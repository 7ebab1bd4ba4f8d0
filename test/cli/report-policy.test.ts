import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { parseSafetensors, serializeSafetensors } from "../../runtime/safetensors.js";
import { repoRoot } from "../util/helpers.js";

let dir = "";

async function tokr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: dir });
  return { code, out, err };
}

// One-block-per-iteration attention model with 9 tokens (CLS + 8).
const MODEL = `
block layer(x) {
  param w: f32[8, 24] = normal(std: 0.3)
  qkv = transpose(reshape(matmul(x, w), [0, 0, 3, 2, 4]), perm: [2, 0, 3, 1, 4])
  o = reshape(transpose(attention(qkv[0], qkv[1], qkv[2]), perm: [0, 2, 1, 3]), [0, 0, 8])
  return x + o
}
model m(x: f32[B, 9@token, 8]) -> (y) {
  repeat 2 as i {
    x = layer(x)
  }
  y = x
}
`;

describe("--policy on compile and run applies the reduction passes", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-policy-apply-"));
    writeFileSync(join(dir, "m.tokr"), MODEL);
    writeFileSync(join(dir, "p.tokr"), "policy p {\n  blocks.*.layer: merge(r: 2)\n}\n");
    const x = makeTensor(
      "f32",
      [1, 9, 8],
      Float32Array.from({ length: 72 }, (_, i) => Math.sin(i)),
    );
    writeFileSync(join(dir, "in.safetensors"), serializeSafetensors(new Map([["x", x]])));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("compile writes the reduced graph (merges carrying the policy) into graph.ir", async () => {
    const r = await tokr("compile", "m.tokr", "--target", "cpu", "-o", "out", "--policy", "p.tokr");
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "tokr: note: p.tokr: 1 policy object(s) applied (2 reduction node(s))\n");
    const ir = readFileSync(join(dir, "out", "graph.ir"), "utf8");
    assert.equal(ir.match(/= tokens\.merge\([^)]*\) \{[^}]*r = 2[^}]*\} policy @p\.0/g)?.length, 2);
    // 9 -> 7 -> 5 tokens out.
    const run = await tokr("run", "out", "--inputs", "in.safetensors", "-o", "o1.safetensors");
    assert.equal(run.code, 0, run.err);
    const y = parseSafetensors(readFileSync(join(dir, "o1.safetensors")), "o1").get("y")!;
    assert.deepEqual([...y.shape], [1, 5, 8]);
  });

  it("run --policy reduces before running", async () => {
    const r = await tokr(
      "run",
      "m.tokr",
      "--policy",
      "p.tokr",
      "--inputs",
      "in.safetensors",
      "-o",
      "o2.safetensors",
    );
    assert.equal(r.code, 0, r.err);
    const y = parseSafetensors(readFileSync(join(dir, "o2.safetensors")), "o2").get("y")!;
    assert.deepEqual([...y.shape], [1, 5, 8]);
  });

  it("imported ONNX models are structured first, so blocks.K addresses them", async () => {
    writeFileSync(join(dir, "onnx.tokr"), "policy p {\n  blocks[4..5]: prune(budget: 64, protect: 1)\n}\n");
    const model = join(repoRoot, "examples", "fmnist-vit", "vit_fmnist_opset17.onnx");
    const r = await tokr("inspect", model, "--policy", "onnx.tokr", "--json");
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { layers: { layer: string; tokensAfter: number | null }[] };
    assert.deepEqual(
      j.layers.filter((l) => l.tokensAfter !== null).map((l) => l.tokensAfter),
      [197, 197, 197, 197, 64, 64],
    );
  });
});
