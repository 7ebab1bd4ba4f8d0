import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { printType } from "../../compiler/ir/types.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import {
  attentionTokens,
  fmnistDir,
  fmnistVit,
  images,
  nodesOf,
  reduce,
  vitTiny,
} from "./reduce-fixtures.js";

describe("insert-token-pooling on examples/vit-tiny.tokr (CLS + 4x4 patches)", () => {
  it("spatial 2x2 at block 1: CLS passed through, 4x4 grid -> 2x2: 17 -> 5 tokens", () => {
    const g = vitTiny(64, 3);
    reduce(g, "blocks.1.layer: pool(mode: spatial)");
    const [pool] = nodesOf(g, "tokens.pool");
    assert.deepEqual(
      [pool.attrs.mode, pool.attrs.size, pool.attrs.protect_first, pool.attrs.grid],
      ["spatial", 2, 1, [4, 4]],
    );
    assert.deepEqual(attentionTokens(g), [17, 5, 5]);
    assert.equal(printType(g.outputs[0].type), "f32[B, 5, 192]");
    assert.deepEqual(runGraph(g, new Map([["image", images(2, 64)]])).get("y")!.shape, [2, 5, 192]);
  });

  it("stride and temporal (one token per frame) group consecutive tokens", () => {
    const s = vitTiny(64, 2);
    reduce(s, "blocks.1.layer: pool(mode: stride, size: 3)");
    assert.deepEqual(attentionTokens(s), [17, 6]);
    const t = vitTiny(64, 2);
    reduce(t, "blocks.1.layer: pool(mode: temporal, size: 2)");
    assert.deepEqual(nodesOf(t, "tokens.pool")[0].attrs.frames, 17);
    assert.deepEqual(attentionTokens(t), [17, 9]);
  });

  it("a later merge weighs by the pooled sizes; its proportional bias reaches the next attention", () => {
    const g = vitTiny(64, 4);
    reduce(g, "blocks.1.layer: pool(mode: spatial)", "blocks.2.layer: merge(r: 1)");
    const [pool] = nodesOf(g, "tokens.pool");
    const merge = nodesOf(g, "tokens.merge")[0];
    assert.equal(merge.inputs[2], pool.outputs[1]);
    assert.deepEqual(attentionTokens(g), [17, 5, 5, 4]);
    assert.equal(printType(nodesOf(g, "attention")[3].inputs[4]!.type), "f32[B, 1, 1, 4]");
    // Sizes entering the last attention: CLS 1, four pooled tokens of 4 patches with one pair merged.
    g.outputs.push(nodesOf(g, "Log")[0].inputs[0]!);
    const sizes = [...runGraph(g, new Map([["image", images(1, 64)]])).values()].at(-1)!;
    assert.equal(
      Array.from(sizes.data).reduce((a, b) => a + b, 0),
      17,
    );
    assert.equal(sizes.data[0], 1);
  });

  it("spatial pooling without a square grid is an error naming the site", () => {
    const src = `
block layer(x) {
  param w: f32[8, 24] = normal(std: 0.3)
  qkv = transpose(reshape(matmul(x, w), [0, 0, 3, 2, 4]), perm: [2, 0, 3, 1, 4])
  o = reshape(transpose(attention(qkv[0], qkv[1], qkv[2]), perm: [0, 2, 1, 3]), [0, 0, 8])
  return x + o
}
model m(x: f32[1, 7@token, 8]) -> (y) {
  repeat 2 as i {
    x = layer(x)
  }
  y = x
}
`;
    assert.throws(
      () => reduce(compileTokr(src, "m.tokr"), "blocks.1.layer: pool(mode: spatial)"),
      /pool @p\.0 on scope 'blocks\.1\.layer' at p\.tokr:2:3: spatial pooling needs a square patch grid \(N or N - 1 a perfect square\), but 7 tokens enter/,
    );
  });
});

describe("insert-token-pooling on the imported Fashion-MNIST ViT", () => {
  it("spatial 2x2 at block 3: 1 + 14x14 -> 1 + 7x7 = 50 tokens; predictions agree on most images", () => {
    const imgs = readIdxImages(join(fmnistDir, "t500-images-idx3-ubyte.gz"));
    const x = fmnistBatch(imgs, 0, 8);
    const want = argmaxRows(runGraph(fmnistVit(), new Map([["pixels", x]])).get("logits")!);
    const g = fmnistVit();
    reduce(g, "blocks.3: pool(mode: spatial)");
    assert.deepEqual(attentionTokens(g), [197, 197, 197, 50, 50, 50]);
    const got = argmaxRows(runGraph(g, new Map([["pixels", x]])).get("logits")!);
    const agree = got.filter((p, i) => p === want[i]).length;
    // Measured: 47 of 48 on images 0..47.
    assert.ok(agree >= 7, `agreement ${agree}/8`);
  });
});
