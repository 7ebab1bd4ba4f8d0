// ONNX import + `onnx-structure` fusion speed and peak memory on one model.
// Usage: npm run bench:import [-- MODEL.onnx [RUNS]]
// Default model: bench/models/vit_b_16_opset17.onnx (made by bench/export_vit_b_16.py); falls back to the
// Fashion-MNIST ViT when it is absent. Goal (issue #4): vit_b_16 import+fuse < 10 s, peak RSS < 2x file size.
import { existsSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import type { Graph } from "../compiler/ir/graph.js";
import { importOnnxFile } from "../compiler/onnx/import.js";
import { findBlocks } from "../passes/discover-blocks.js";
import { PassManager } from "../passes/manager.js";
import { repoRootFrom } from "../scripts/paths.js";

const root = repoRootFrom(import.meta.url);
const vitB16 = join(root, "bench", "models", "vit_b_16_opset17.onnx");
const fallback = join(root, "examples", "fmnist-vit", "vit_fmnist_opset17.onnx");
let model = process.argv[2] ?? vitB16;
if (process.argv[2] === undefined && !existsSync(model)) {
  console.log(`note: ${relative(root, vitB16)} is absent (run /usr/bin/python3 bench/export_vit_b_16.py);`);
  console.log(`      measuring ${relative(root, fallback)} instead`);
  model = fallback;
}
const runs = Number(process.argv[3] ?? 3);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// Drop the previous run's graph before the next one so peak RSS reflects one model in memory.
const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collects garbage and waits (up to 10 s) until array buffers are back near `base`: V8 frees their
 * memory on a background thread, which lags on a loaded machine, and the next run's file buffer would
 * otherwise be counted on top of the previous run's.
 */
async function settle(base: number): Promise<void> {
  for (let i = 0; i < 1000 && process.memoryUsage().arrayBuffers > base + 2 ** 24; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 10));
  }
}

const fileBytes = statSync(model).size;
const baseRss = process.resourceUsage().maxRSS * 1024; // Node itself plus loaded modules
const importMs: number[] = [];
const fuseMs: number[] = [];
let nodesBefore = 0;
let nodesAfter = 0;
let attention = 0;
let blocks = 0;
const baseBuffers = process.memoryUsage().arrayBuffers;
for (let i = 0; i < runs; i++) {
  await settle(baseBuffers);
  let t = performance.now();
  let g: Graph | undefined = importOnnxFile(model);
  importMs.push(performance.now() - t);
  nodesBefore = g.nodes.length;
  t = performance.now();
  new PassManager("onnx-structure").run(g);
  fuseMs.push(performance.now() - t);
  nodesAfter = g.nodes.length;
  attention = g.nodes.filter((n) => n.op === "attention").length;
  blocks = findBlocks(g).length;
  g = undefined;
}

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MB`;
const rssBytes = process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
const total = median(importMs) + median(fuseMs);
console.log(
  `model: ${relative(root, model)} (${mb(fileBytes)})${gc ? "" : "  [run with --expose-gc for a fair peak RSS]"}`,
);
console.log(`nodes: ${nodesBefore} imported -> ${nodesAfter} after onnx-structure`);
console.log(`attention nodes: ${attention}, blocks: ${blocks}`);
console.log(`| step | median of ${runs} (ms) |`);
console.log(`|---|---|`);
console.log(`| import | ${median(importMs).toFixed(1)} |`);
console.log(`| onnx-structure | ${median(fuseMs).toFixed(1)} |`);
console.log(`| total | ${total.toFixed(1)} |`);
console.log(`peak RSS: ${mb(rssBytes)} = ${(rssBytes / fileBytes).toFixed(2)}x the file size`);
console.log(`RSS before the first import: ${mb(baseRss)} (Node and modules; dominates small models)`);
console.log(
  `goal (import+fuse < 10 s, peak RSS < 2x file): ${total < 10_000 ? "time met" : "time MISSED"}, ` +
    `${rssBytes < 2 * fileBytes ? "memory met" : "memory MISSED"}`,
);
