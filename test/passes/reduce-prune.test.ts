import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { printDim } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { printType } from "../../compiler/ir/types.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { assertClose, repoRoot } from "../util/helpers.js";
import {
  attentionTokens,
  fmnistDir,
  fmnistVit,
  images,
  nodesOf,
  reduce,
  vitTiny,
} from "./reduce-fixtures.js";

describe("insert-token-pruning on examples/vit-tiny.tokr (17 tokens, 4 blocks)", () => {
  it("keep 0.7 at blocks 1..3, CLS-scored by the previous block: 17 -> 12 -> 9 -> 7 (ceil)", () => {
    const g = vitTiny(64, 4);
    reduce(g, "blocks[1..3].layer: prune(keep: 0.7, protect: 1)");
    assert.deepEqual(attentionTokens(g), [17, 12, 9, 7]);
    assert.equal(printType(g.outputs[0].type), "f32[B, 7, 192]");
    const atts = nodesOf(g, "attention");
    const prunes = nodesOf(g, "tokens.prune");
    assert.deepEqual(
      prunes.map((p) => [p.attrs.keep, p.attrs.protect_first, p.attrs.fuse, p.scope]),
      [1, 2, 3].map((k, i) => [[12, 9, 7][i], 1, false, `blocks.${k}.layer`]),
    );
    // Scores: the previous block's fused attention emits its CLS row; no second attention.
    assert.equal(atts.length, 4);
    assert.deepEqual(
      atts.map((a) => a.attrs.scores ?? "none"),
      ["cls", "cls", "cls", "none"],
    );
    prunes.forEach((p, i) => assert.equal(p.inputs[1], atts[i].outputs[1]));
    // Both the attention branch and the skip connection read the pruned stream.
    const add = g.users(prunes[0].outputs[0]);
    assert.ok(add.some((n) => n.op === "Add") && add.some((n) => n.op === "LayerNormalization"));
    const out = runGraph(g, new Map([["image", images(2, 64)]]));
    assert.deepEqual(out.get("y")!.shape, [2, 7, 192]);
  });

  it("budget + fuse (EViT): 5 kept + 1 fused row", () => {
    const g = vitTiny(64, 4);
    reduce(g, "blocks.2.layer: prune(budget: 5, protect: 1, fuse: true)");
    assert.deepEqual(attentionTokens(g), [17, 17, 6, 6]);
    assert.equal(runGraph(g, new Map([["image", images(1, 64)]])).get("y")!.shape[1], 6);
  });

  it("keep 1.0 (even with fuse) is exactly the identity", () => {
    const g0 = vitTiny(32, 3);
    const g = vitTiny(32, 3);
    reduce(g, "blocks[1..2].layer: prune(keep: 1.0, protect: 1, fuse: true)");
    assert.deepEqual(
      nodesOf(g, "tokens.prune").map((p) => [p.attrs.keep, p.attrs.fuse]),
      [
        [5, false],
        [5, false],
      ],
    );
    const x = images(2, 32);
    const a = runGraph(g0, new Map([["image", x]]));
    const b = runGraph(g, new Map([["image", x]]));
    for (const k of ["y", "cls"]) assert.deepEqual(Array.from(b.get(k)!.data), Array.from(a.get(k)!.data));
  });

  it("the first block has no previous attention to score with: an error naming the site", () => {
    assert.throws(
      () => reduce(vitTiny(32, 2), "blocks.0.layer: prune(keep: 0.5)"),
      /prune @p\.0 on scope 'blocks\.0\.layer' at p\.tokr:2:3: score 'cls' is computed by the previous block, but 'blocks\.0\.layer' is the first block/,
    );
  });

  // multi_criteria matches by sizes and importance too: a second matching of the scores alone would differ.
  for (const method of ["bipartite", "multi_criteria"])
    it(`after ${method} merges, scores and sizes follow them through the merge's source and the prune's index (no second matching or ranking)`, () => {
      const g = vitTiny(64, 4);
      reduce(
        g,
        `blocks[0..1].layer: merge(r: 2, method: ${method})`,
        "blocks.2.layer: prune(keep: 0.5, protect: 1, fuse: true)",
      );
      // 17 -> 15 (merge in block 0) -> 13 (block 1) -> ceil(13 / 2) = 7 kept + 1 fused.
      assert.deepEqual(attentionTokens(g), [17, 15, 8, 8]);
      // One prune and the two policy merges: the companions reuse their index and source outputs.
      const [prune, ...morePrunes] = nodesOf(g, "tokens.prune");
      assert.equal(morePrunes.length, 0);
      const merges = nodesOf(g, "tokens.merge");
      assert.equal(merges.length, 2);
      const [combine, ...moreCombines] = nodesOf(g, "tokens.combine");
      assert.equal(moreCombines.length, 0);
      assert.equal(combine.inputs[1], merges[1].outputs[2]);
      assert.equal(combine.attrs.rows, 13);
      const [gather] = nodesOf(g, "tokens.gather");
      assert.equal(gather.inputs[0], merges[1].outputs[1]);
      assert.equal(gather.inputs[1], prune.outputs[1]);
      assert.equal(printType(gather.outputs[0].type), "f32[B, 7, 1]");
      // The last attention's proportional bias covers the 8 rows (7 kept + fused, whose size is the dropped sum).
      assert.equal(printType(nodesOf(g, "attention")[3].inputs[4]!.type), "f32[B, 1, 1, 8]");
      // Observe the scores, the importance they come from, the merge's source and the sizes entering the last attention.
      const imp = nodesOf(g, "attention")[1].outputs[1];
      g.outputs.push(prune.inputs[1]!, imp, merges[1].outputs[2], nodesOf(g, "Log").at(-1)!.inputs[0]!);
      const out = [...runGraph(g, new Map([["image", images(2, 64)]])).values()];
      const [scores, importance, source, sizes] = out.slice(-4);
      assert.deepEqual([...scores.shape], [2, 13]);
      for (let b = 0; b < 2; b++) {
        // A merged token's score is the sum of its members' importance.
        const want = new Array<number>(13).fill(0);
        for (let j = 0; j < 15; j++) want[source.data[b * 15 + j]] += importance.data[b * 15 + j];
        want.forEach((w, m) => assert.ok(Math.abs(scores.data[b * 13 + m] - w) < 1e-6, `row ${m}`));
        const s = want.reduce((p, q) => p + q, 0);
        assert.ok(Math.abs(s - 1) < 1e-5, `CLS attention over merged tokens sums to ${s}`);
        const z = Array.from(sizes.data.subarray(b * 8, b * 8 + 8)).reduce((p, q) => p + q, 0);
        assert.equal(z, 17);
      }
    });

  it("attention_graph, transition and key_norm wire the attention graph rank and tokens.score", () => {
    const g = vitTiny(64, 4);
    reduce(
      g,
      "blocks.1.layer: prune(keep: 0.8, score: attention_graph)",
      "blocks.2.layer: prune(keep: 0.8, score: transition, protect: 1)",
      "blocks.3.layer: prune(keep: 0.8, score: key_norm, protect: 1)",
    );
    const atts = nodesOf(g, "attention");
    assert.equal(atts[0].attrs.scores, "graph");
    const scores = nodesOf(g, "tokens.score");
    assert.deepEqual(
      scores.map((s) => s.attrs.method),
      ["transition", "key_norm"],
    );
    assert.equal(printType(scores[1].inputs[0]!.type), "f32[B, 12, 192]");
    assert.deepEqual(attentionTokens(g), [17, 14, 12, 10]);
    assert.equal(runGraph(g, new Map([["image", images(1, 64)]])).get("y")!.shape[1], 10);
  });
});

const SYMBOLIC = `
dim = 8
block attn(x) {
  param wqkv: f32[dim, 3 * dim] = normal(std: 0.3)
  qkv = transpose(reshape(matmul(x, wqkv), [0, 0, 3, 2, 4]), perm: [2, 0, 3, 1, 4])
  o = attention(qkv[0], qkv[1], qkv[2])
  return reshape(transpose(o, perm: [0, 2, 1, 3]), [0, 0, dim])
}
block layer(x) {
  x = x + attn(x)
  return x
}
model m(x: f32[B, N@token, dim]) -> (y) {
  repeat 3 as i {
    x = layer(x)
  }
  y = x
}
`;

describe("insert-token-pruning with a symbolic token count", () => {
  it("keep 0.5 gives ceildiv(N, 2), then ceildiv(ceildiv(N, 2), 2); runs with N = 11 -> 6 -> 3", () => {
    const g = compileTokr(SYMBOLIC, "sym.tokr");
    reduce(g, "blocks[1..2].layer: prune(keep: 0.5, protect: 1)");
    const counts = attentionTokens(g).map((d) => printDim(d as never));
    assert.equal(counts[0], "N");
    assert.match(counts[1], /ceildiv\(N, 2\)/);
    const x = makeTensor(
      "f32",
      [2, 11, 8],
      Float32Array.from({ length: 176 }, (_, i) => Math.cos(i)),
    );
    assert.deepEqual(runGraph(g, new Map([["x", x]])).get("y")!.shape, [2, 3, 8]);
  });
});

describe("insert-token-pruning on the imported Fashion-MNIST ViT", () => {
  const imgs = readIdxImages(join(fmnistDir, "t500-images-idx3-ubyte.gz"));
  const x = fmnistBatch(imgs, 0, 8);
  const want = argmaxRows(runGraph(fmnistVit(), new Map([["pixels", x]])).get("logits")!);

  it("keep 0.9 at blocks 3..5: 197 -> 178 -> 161 -> 145 and predictions agree with the unreduced model", () => {
    const g = fmnistVit();
    reduce(g, "blocks[3..5]: prune(keep: 0.9, protect: 1)");
    assert.deepEqual(attentionTokens(g), [197, 197, 197, 178, 161, 145]);
    const got = argmaxRows(runGraph(g, new Map([["pixels", x]])).get("logits")!);
    const agree = got.filter((p, i) => p === want[i]).length;
    // Measured: 8 of 8 here, 48 of 48 on images 0..47.
    assert.ok(agree >= 7, `agreement ${agree}/8`);
  });
});

describe("insert-token-pruning with a key-padding mask (examples/bert.tokr)", () => {
  it("the mask loses the same tokens: pruning 3 padded tokens at block 1 leaves CLS's output unchanged", () => {
    const src = readFileSync(join(repoRoot, "examples", "bert.tokr"), "utf8");
    const N = 10;
    const inputs = new Map([
      ["ids", makeTensor("i64", [1, N], [101, 7, 42, 999, 5, 17, 0, 0, 0, 0])],
      [
        "positions",
        makeTensor(
          "i64",
          [1, N],
          Array.from({ length: N }, (_, i) => i),
        ),
      ],
      // Six real tokens, four padding: their CLS attention is exactly 0, so they rank last.
      ["mask", makeTensor("bool", [1, N], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0])],
    ]);
    const g0 = compileTokr(src, "bert.tokr");
    const g = compileTokr(src, "bert.tokr");
    reduce(g, "blocks.1.layer: prune(keep: 0.7, protect: 1)");
    const masks = nodesOf(g, "attention").map((a) => printType(a.inputs[3]!.type));
    assert.deepEqual(masks, [
      "bool[B, 1, 1, N@token]",
      "bool[B, 1, 1, ceildiv(7*N, 10)]",
      "bool[B, 1, 1, ceildiv(7*N, 10)]",
      "bool[B, 1, 1, ceildiv(7*N, 10)]",
    ]);
    const want = runGraph(g0, inputs).get("pooled")!;
    const got = runGraph(g, inputs);
    assert.deepEqual(got.get("y")!.shape, [1, 7, 128]);
    assertClose(got.get("pooled")!, want, 1e-5, "pooled CLS");
    assert.throws(
      () => reduce(compileTokr(src, "bert.tokr"), "blocks.1.layer: prune(keep: 0.7, protect: 1, fuse: true)"),
      /has a mask over the N tokens; fuse cannot carry a mask/,
    );
  });
});
