import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { join } from "node:path";
import { fmnistDir, fmnistVit, images, nodesOf, reduce } from "../passes/reduce-fixtures.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { assertClose } from "../util/helpers.js";
import { adaptiveCases, adaptiveReference } from "../backends/cases/adaptive.js";
import { leadingBox, smallVit, withCounts } from "./adaptive-fixtures.js";

// Adaptive pruning on devices: buffers at the capacity, attention masks each example's keys past
// its own live length (read from the prune's count buffer). Every output matches the
// CPU reference on its live rows, in both interpreter orders (docs/backends.md, "Adaptive token counts").

/** The 10-token ViT (48 px, 3 blocks) with an adaptive prune at block 1 (capacity 7), counts as outputs. */
function tinyAdaptive(threshold: number, fuse = false): Graph {
  const g = smallVit(3);
  reduce(
    g,
    `blocks.1.layer: prune(threshold: ${threshold}, keep: 0.7, protect: 1${fuse ? ", fuse: true" : ""})`,
  );
  return withCounts(g);
}

function checkKir(g: Graph, x: Tensor, tol = 1e-4): number[] {
  const feeds = new Map([[g.inputs[0].name, x]]);
  const want = runGraph(g, feeds);
  const p = buildProgram(g, DEFAULT_TARGET);
  for (const order of ["forward", "reverse"] as const) {
    const got = runProgramOnKir(p, feeds, { order });
    for (const [name, w] of want)
      assertClose(leadingBox(got.get(name)!, w.shape), w, tol, `${name} (${order})`);
  }
  const count = g.outputs.find((o) => o.type.dtype === "i32")!;
  return Array.from(want.get(count.name)!.data);
}

describe("adaptive tokens.prune on the KIR interpreter", () => {
  it("small ViT: counts below the capacity and unequal across the batch; outputs match runGraph", () => {
    const counts = checkKir(tinyAdaptive(0.08), images(3, 48));
    console.log(`# counts ${counts.join(", ")} (capacity 7)`);
    assert.ok(Math.max(...counts) < 7 && new Set(counts).size > 1, `counts ${counts}`);
  });
});

describe("two adaptive prunes in a row on the KIR interpreter", () => {
  it("the second prune's capacity is 70% of the first's capacity (7 -> 5), not of the batch's largest count", () => {
    const g = smallVit(3);
    // Counts 5, 4, 4 after the first prune: 70% of the batch's largest (5) would be 4, of the capacity 5.
    reduce(
      g,
      "blocks.1.layer: prune(threshold: 0.08, keep: 0.7, protect: 1)",
      "blocks.2.layer: prune(threshold: 0.01, keep: 0.7, protect: 1)",
    );
    const prunes = nodesOf(g, "tokens.prune");
    assert.deepEqual(
      prunes.map((p) => p.attrs.capacity),
      [7, 5],
    );
    const x = images(3, 48);
    const counts = checkKir(withCounts(g), x);
    console.log(`# first counts ${counts.join(", ")} (capacity 7, then 5)`);
    // Batch-independent: each example alone keeps the same tokens (the capacity does not follow the batch).
    const alone = runGraph(g, new Map([[g.inputs[0].name, leadingBox(x, [1, 3, 48, 48])]]));
    const batch = runGraph(g, new Map([[g.inputs[0].name, x]]));
    for (const o of g.outputs.filter((v) => v.type.dtype === "i32"))
      assert.equal(alone.get(o.name)!.data[0], batch.get(o.name)!.data[0], `${o.name} of example 0`);
    const logits = g.outputs[0].name;
    assertClose(leadingBox(batch.get(logits)!, alone.get(logits)!.shape), alone.get(logits)!, 1e-5, "logits");
  });
});

describe("adaptive prune after merging on the KIR interpreter", () => {
  it("merge (r = 2) then an adaptive prune: merged sizes follow the prune's index (tokens.gather)", () => {
    const g = smallVit(3);
    reduce(g, "blocks.0.layer: merge(r: 1)\nblocks.1.layer: prune(threshold: 0.08, keep: 0.7, protect: 1)");
    assert.ok(nodesOf(g, "tokens.gather").length > 0, "the sizes follow the prune by tokens.gather");
    const counts = checkKir(withCounts(g), images(3, 48));
    console.log(`# counts ${counts.join(", ")}`);
    assert.ok(new Set(counts).size > 1, `counts ${counts}`);
  });
});

describe("adaptive graph cases on the KIR interpreter (rows and workgroup attention)", () => {
  const wgTarget = { ...DEFAULT_TARGET, matmul: "tiled" as const };
  for (const c of adaptiveCases())
    it(c.name, () => {
      const want = adaptiveReference(c);
      for (const target of [DEFAULT_TARGET, wgTarget]) {
        const p = buildProgram(c.graph, target);
        for (const order of ["forward", "reverse"] as const) {
          const got = runProgramOnKir(p, c.feeds, { order, target });
          for (const [name, w] of want)
            assertClose(leadingBox(got.get(name)!, w.shape), w, 1e-4, `${name} (${target.matmul}, ${order})`);
        }
      }
    });
});

// The imported ViT runs 3 blocks at 197 tokens before the prune: minutes on the interpreter.
describe("adaptive prune in the imported Fashion-MNIST ViT on the KIR interpreter", () => {
  it(
    "prune at block 3 (capacity 99): logits and counts match runGraph in both orders",
    { skip: process.env.TOKR_KIR_ADAPTIVE_VIT ? false : "slow (minutes); set TOKR_KIR_ADAPTIVE_VIT=1" },
    () => {
      const g = fmnistVit();
      reduce(g, "blocks.3: prune(threshold: 0.005, keep: 0.5, protect: 1)");
      withCounts(g);
      const x = fmnistBatch(readIdxImages(join(fmnistDir, "t500-images-idx3-ubyte.gz")), 0, 2);
      const counts = checkKir(g, x, 1e-3);
      console.log(`# counts ${counts.join(", ")} (capacity 99)`);
      assert.ok(Math.max(...counts) < 99 && new Set(counts).size > 1, `counts ${counts}`);
    },
  );
});
