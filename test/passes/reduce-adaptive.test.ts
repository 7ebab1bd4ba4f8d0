import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph, Node } from "../../compiler/ir/graph.js";
import { type Dim, printDim, symbolName } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { attachPolicyFile, compileTokr } from "../../compiler/lang/check.js";
import { graphReport, tokensText } from "../../compiler/report/layers.js";
import { PassManager } from "../../passes/manager.js";
import { assertClose, repoRoot } from "../util/helpers.js";
import { fmnistVit, nodesOf, reduce } from "./reduce-fixtures.js";

// Adaptive (ATS-style) pruning from the policy language: `prune(threshold: t, keep|budget: ...)`
// keeps the protected tokens and those scoring >= t, at most the keep/budget capacity.

/**
 * Two blocks `x + attention(x, x, x)` (one head, scale 1) over tokens of width 2: the CLS row of
 * block 0's attention is softmax_j(x_0 . x_j), so the scores of the prune at block 1 follow from
 * the input by hand.
 */
const MODEL = `dim = 2

block attn(x) {
  q = transpose(reshape(x, [0, 0, 1, dim]), perm: [0, 2, 1, 3])
  o = attention(q, q, q, scale: 1.0)
  return reshape(transpose(o, perm: [0, 2, 1, 3]), [0, 0, dim])
}

block layer(x) {
  return x + attn(x)
}

model m(x: f32[B, N@token, dim]) -> (y) {
  repeat 2 as i {
    x = layer(x)
  }
  y = x
}
`;

/** MODEL with `policy p { RULE }` appended and the `reduce` pipeline run. */
function model(rule: string, tail = ""): Graph {
  const g = compileTokr(
    MODEL.replace("  y = x\n", `  y = x${tail}\n`) + `policy p {\n  ${rule}\n}\n`,
    "m.tokr",
  );
  new PassManager("reduce").run(g);
  return g;
}

/**
 * Example 0: x_0 . x_j = [1, 0, 2, -1, 1] (the second channel is orthogonal to x_0 = [1, 0]), so the
 * CLS scores are e^[1, 0, 2, -1, 1] / S with S = 2e + 1 + e^2 + 1/e: [0.19, 0.07, 0.52, 0.03, 0.19].
 * Example 1: five equal tokens, every score 0.2.
 */
const X = makeTensor(
  "f32",
  [2, 5, 2],
  [1, 0, 0, 5, 2, 1, -1, 2, 1, 3, ...Array.from({ length: 5 }, () => [1, 0]).flat()],
);

function run(g: Graph, x: Tensor): { y: Tensor; index: number[]; count: number[] } {
  const [prune] = nodesOf(g, "tokens.prune");
  // A static prune has no count output.
  (g.outputs as unknown as unknown[]).push(...prune.outputs.slice(1));
  const out = runGraph(g, new Map([["x", x]]));
  const [y, index, count] = g.outputs.map((o) => out.get(o.name)!);
  return { y, index: Array.from(index.data), count: count ? Array.from(count.data) : [] };
}

describe("adaptive prune policy on a .tokr model (CPU reference)", () => {
  it("keeps CLS and the tokens scoring >= 0.1, at most ceil(0.8 * 5) = 4: [0, 2, 4] and [0, 1, 2, 3]", () => {
    const S = 2 * Math.E + 1 + Math.E ** 2 + 1 / Math.E;
    // Tokens 1 and 3 fall below the threshold; example 1 has 5 candidates and the capacity cuts the last.
    assert.ok(1 / S < 0.1 && Math.exp(-1) / S < 0.1 && Math.E / S >= 0.1);
    const g = model("blocks.1.layer: prune(threshold: 0.1, keep: 0.8, protect: 1)");
    const [prune] = nodesOf(g, "tokens.prune");
    assert.deepEqual(
      {
        threshold: prune.attrs.threshold,
        capacity: printDim(prune.attrs.capacity as Dim),
        outputs: prune.outputs.length,
      },
      { threshold: 0.1, capacity: "ceildiv(4*N, 5)", outputs: 3 },
    );
    const K = symbolName(g.outputs[0].type.dims[1]);
    const cap = K !== undefined ? g.symbols.get(K)?.capacity : undefined;
    assert.ok(cap !== undefined && printDim(cap) === "ceildiv(4*N, 5)", `y's token axis is the symbol ${K}`);
    const { y, index, count } = run(g, X);
    assert.deepEqual(count, [3, 4]);
    assert.deepEqual(index, [0, 2, 4, -1, 0, 1, 2, 3]);
    assert.deepEqual(y.shape, [2, 4, 2], "the reference makes K the largest count of the batch");
  });

  it("each example's rows equal a static prune keeping exactly its count, run on that example alone", () => {
    const { y } = run(model("blocks.1.layer: prune(threshold: 0.1, keep: 0.8, protect: 1)"), X);
    for (const [b, budget] of [
      [0, 3],
      [1, 4],
    ] as const) {
      const xb = makeTensor("f32", [1, 5, 2], X.data.slice(b * 10, b * 10 + 10));
      const { y: want, index } = run(model(`blocks.1.layer: prune(budget: ${budget}, protect: 1)`), xb);
      assert.deepEqual(index, b === 0 ? [0, 2, 4] : [0, 1, 2, 3]);
      const got = makeTensor("f32", [1, budget, 2], y.data.slice(b * 8, b * 8 + budget * 2));
      assertClose(got, want, 1e-6, `example ${b}`);
    }
  });

  it("fuse appends the score-weighted mean of the dropped tokens after each example's kept rows", () => {
    const g = model("blocks.1.layer: prune(threshold: 0.1, keep: 0.8, protect: 1, fuse: true)");
    const [prune] = nodesOf(g, "tokens.prune");
    const [x1, scores] = prune.inputs;
    (g.outputs as unknown as unknown[]).push(x1, scores, prune.outputs[0]);
    const out = runGraph(g, new Map([["x", X]]));
    const [stream, s, pruned] = [x1!, scores!, prune.outputs[0]].map((v) => out.get(v.name)!);
    assert.deepEqual(pruned.shape, [2, 5, 2], "K = 4 kept + 1 fused row");
    const tok = (t: Tensor, b: number, j: number): number[] =>
      Array.from(t.data.slice((b * t.shape[1] + j) * 2, (b * t.shape[1] + j) * 2 + 2));
    // Example 0: rows 0..2 are tokens 0, 2, 4 of the stream entering block 1; row 3 fuses tokens 1 and 3.
    const [s1, s3] = [s.data[1], s.data[3]];
    const fused = [0, 1].map((c) => (s1 * tok(stream, 0, 1)[c] + s3 * tok(stream, 0, 3)[c]) / (s1 + s3));
    const want0 = [...tok(stream, 0, 0), ...tok(stream, 0, 2), ...tok(stream, 0, 4), ...fused, 0, 0];
    assertClose(
      makeTensor("f32", [1, 5, 2], want0),
      makeTensor("f32", [1, 5, 2], pruned.data.slice(0, 10)),
      1e-6,
      "example 0",
    );
    // Example 1 keeps 4 of 5 equal-scoring tokens: row 4 is token 4 (the only one dropped).
    assert.deepEqual(tok(pruned, 1, 4), tok(stream, 1, 4));
  });

  it("tokr's layer report counts the adaptive layer at its capacity and says so", () => {
    const r = graphReport(
      model("blocks.1.layer: prune(threshold: 0.1, keep: 0.8, protect: 1)"),
      new Map([
        ["B", 1],
        ["N", 5],
      ]),
    );
    const b1 = r.layers.find((l) => l.layer === "blocks.1")!;
    assert.deepEqual([b1.tokens, b1.atMost], [4, true]);
    assert.equal(r.layers.find((l) => l.layer === "blocks.0")!.atMost, undefined);
  });
});

describe("what refuses an adaptive prune names the policy rule", () => {
  it("ReduceMax over the tokens after the prune: the pass error has the rule's file:line:col", () => {
    assert.throws(
      () =>
        model(
          "blocks.1.layer: prune(threshold: 0.1, keep: 0.8, protect: 1)",
          "\n  y = ReduceMax(y, axes: [1])",
        ),
      (e: unknown) => {
        const m = e instanceof Error ? e.message : "";
        return (
          m.includes("prune @p.0 on scope 'blocks.1.layer' at m.tokr:21:3") &&
          /'threshold' makes the token count data-dependent/.test(m) &&
          /ReduceMax at m\.tokr:18:7/.test(m) &&
          /reduces over the padded axis/.test(m)
        );
      },
    );
  });

  it("a static prune after an adaptive one (hand-written IR policy) is refused naming its rule", () => {
    const src =
      MODEL.replace("repeat 2", "repeat 3") +
      "policy p {\n  blocks.1.layer: prune(threshold: 0.1, keep: 0.8, protect: 1)\n}\n";
    const g = compileTokr(src, "m.tokr");
    // The policy checker refuses this composition; an IR policy object skips it.
    const site = g.nodes.find((n) => n.scope === "blocks.2.layer")!;
    const params = {
      kind: "prune",
      keep: 0.5,
      protect: 1,
      score: "cls",
      fuse: false,
      sites: ["blocks.2.layer"],
    };
    g.policies.set("q.0", { name: "q.0", params, loc: { file: "q.tokr", line: 4, col: 5 } });
    g.setPolicy(site, "q.0");
    assert.throws(
      () => new PassManager("reduce").run(g),
      /prune @q\.0 on scope 'blocks\.2\.layer' at q\.tokr:4:5: a static prune after an adaptive one .*give it a 'threshold'/,
    );
  });

  it("the same model with a static prune is accepted", () => {
    const g = model("blocks.1.layer: prune(keep: 0.8, protect: 1)", "\n  y = ReduceMax(y, axes: [1])");
    assert.equal(printDim(nodesOf(g, "tokens.prune")[0].attrs.keep as Dim), "ceildiv(4*N, 5)");
  });
});

describe("adaptive prune policy on the imported Fashion-MNIST ViT (ONNX)", () => {
  /** Reshapes after `from` whose constant target still spells `count`. */
  function stale(g: Graph, from: Node, count: number): string[] {
    const order = new Map(g.nodes.map((n, i) => [n, i]));
    return nodesOf(g, "Reshape")
      .filter((n) => order.get(n)! > order.get(from)!)
      .filter((n) => Array.from(g.constants.get(n.inputs[1]!)?.data?.data ?? []).includes(count))
      .map((n) => n.outputs[0].name);
  }

  it("constant Reshape targets that spell 197 read the data-dependent count from a Shape", () => {
    const g = fmnistVit();
    reduce(g, "blocks.3: prune(threshold: 0.005, keep: 0.5, protect: 1)");
    const [prune] = nodesOf(g, "tokens.prune");
    const K = symbolName(prune.outputs[0].type.dims[1])!;
    assert.equal(g.symbols.get(K)?.capacity, 99);
    assert.deepEqual(stale(g, prune, 197), []);
    // Blocks 3..5 each split heads and join them back: their targets read K from a Shape.
    assert.ok(nodesOf(g, "Shape").length >= 3);
    const r = graphReport(g, new Map([["batch", 1]]));
    assert.deepEqual(r.layers.filter((l) => l.layer.startsWith("blocks")).map(tokensText), [
      "197",
      "197",
      "197",
      "<= 99",
      "<= 99",
      "<= 99",
    ]);
  });

  it("bench/policies/prune-adaptive.tokr (blocks 1..5): each block's targets follow its own count", () => {
    const g = fmnistVit();
    const file = join(repoRoot, "bench", "policies", "prune-adaptive.tokr");
    attachPolicyFile(g, readFileSync(file, "utf8"), file);
    new PassManager("reduce").run(g);
    const prunes = nodesOf(g, "tokens.prune");
    assert.equal(prunes.length, 5);
    const r = graphReport(g, new Map([["batch", 1]]));
    // ceil(197 * 0.85) = 168, then ceil(168 * 0.85) = 143, 122, 104, 89.
    assert.deepEqual(r.layers.filter((l) => l.layer.startsWith("blocks")).map(tokensText), [
      "197",
      "<= 168",
      "<= 143",
      "<= 122",
      "<= 104",
      "<= 89",
    ]);
    assert.deepEqual(stale(g, prunes[0], 197), []);
  });
});
