/**
 * The imported Fashion-MNIST ViT schedules without the exporter's data movement around attention
 * (compiler/kir/views.ts): its 18 Slices and 30 of its 31 Transposes fold into strided reads and
 * writes. Only the patch embedding's Transpose, read by a Concat, is still a copy.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Program } from "../../compiler/kir/program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { PassManager } from "../../passes/manager.js";
import "../../passes/index.js";
import { repoRoot } from "../util/helpers.js";
import { fmnistVit, reduce } from "../passes/reduce-fixtures.js";

function stepsOf(p: Program, g: Graph, op: string): number {
  const names = new Set(g.nodes.filter((n) => n.op === op).map((n) => n.outputs[0].name));
  return p.steps.filter((s) => s.nodes.some((n) => names.has(n))).length;
}

test("fmnist ViT (ONNX import): no Slice and one Transpose dispatch, 56 steps instead of 104", () => {
  const file = join(repoRoot, "examples", "fmnist-vit", "vit_fmnist_opset17.onnx");
  const g = importOnnxFile(file, "vit_fmnist_opset17.onnx");
  new PassManager("onnx-structure").run(g);
  const plain = buildProgram(g, DEFAULT_TARGET, { stridedViews: false });
  assert.equal(stepsOf(plain, g, "Slice"), 18);
  assert.equal(stepsOf(plain, g, "Transpose"), 31);
  for (const target of [DEFAULT_TARGET, { ...DEFAULT_TARGET, matmul: "tiled" as const }]) {
    const p = buildProgram(g, target);
    assert.equal(stepsOf(p, g, "Slice"), 0);
    assert.equal(stepsOf(p, g, "Transpose"), 1);
    assert.equal(p.steps.length, plain.steps.length - 48);
    // Every attention reads q, k and v from one buffer (the QKV projection) and writes the out-projection's input.
    const atts = p.steps.filter((s) => p.kernels[s.kernel].name.includes("attn"));
    assert.equal(atts.length, 6);
    for (const s of atts) assert.equal(new Set(s.args.slice(0, 3)).size, 1);
    assert.equal(p.batchSymbol, "batch", p.batchRefusal);
  }
});

test("fmnist ViT with token reduction: the unreduced program's one Transpose, no Slice (were 12/6 and 26/15)", () => {
  // The default target (8 storage buffers per stage): the merge kernels fit within it.
  const target = DEFAULT_TARGET;
  const policies: readonly [string, number][] = [
    // ToMe r = 16: the metric's ReduceMean reads k strided; the size bias's Transpose aliases.
    ["blocks[0..5]: merge(r: 16)", 6],
    // Adaptive prune: views cross the capacity-padded values of blocks 1-5.
    ["blocks[1..5]: prune(threshold: 0.0003, keep: 0.85, score: cls, protect: 1)", 0],
  ];
  for (const [rule, means] of policies) {
    const g = fmnistVit();
    reduce(g, rule);
    const p = buildProgram(g, target);
    assert.equal(stepsOf(p, g, "Transpose"), 1, rule);
    assert.equal(stepsOf(p, g, "Slice"), 0, rule);
    assert.equal(stepsOf(p, g, "ReduceMean"), means, rule);
    assert.equal(stepsOf(p, g, "attention"), means ? 6 : 11, rule);
  }
});
