// CPU reference backend on the Fashion-MNIST ViT vs onnxruntime-node's CPU EP, side by side in one run.
// Usage: npm run bench:cpu [-- RUNS]   (median of RUNS timed runs after one warm-up, default 5)
import { join } from "node:path";
import ort from "onnxruntime-node";
import { runGraph } from "../backends/cpu/interpreter.js";
import { fmnistBatch, readIdxImages } from "../examples/fmnist-vit/idx.js";
import { buildVit } from "../examples/fmnist-vit/vit-ir.js";
import { readSafetensorsFile } from "../runtime/node-io.js";
import { repoRootFrom } from "../scripts/paths.js";

const ex = join(repoRootFrom(import.meta.url), "examples", "fmnist-vit");
const runs = Number(process.argv[2] ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function time(f: () => unknown): Promise<number> {
  await f(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await f();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

const g = buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")));
const imgs = readIdxImages(join(ex, "t500-images-idx3-ubyte.gz"));
const session = await ort.InferenceSession.create(join(ex, "vit_fmnist_opset17.onnx"));
console.log(`| batch | tokr CPU reference (ms) | onnxruntime-node CPU (ms) | ratio |`);
console.log(`|---|---|---|---|`);
for (const batch of [1, 32]) {
  const x = fmnistBatch(imgs, 0, batch);
  const ours = await time(() => runGraph(g, new Map([["pixels", x]])));
  const feeds = { pixels: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) };
  const theirs = await time(() => session.run(feeds));
  console.log(`| ${batch} | ${ours.toFixed(1)} | ${theirs.toFixed(2)} | ${(ours / theirs).toFixed(0)}x |`);
}
