// `npm run demo`: builds the Fashion-MNIST ViT (real weights) as tokr IR, verifies it, writes it as
// IR text + safetensors; then compiles the exported ONNX model with and without a ToMe policy to WGSL
// (or, without a WebGPU adapter, runs the CPU reference backend, and says so) and classifies real test
// images with both: accuracy, FLOPs saved and the measured speedup. `npm run demo -- [IMAGES] [POLICY.tokr]`.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import {
  compileVariant,
  loadRunner,
  median,
  openBackend,
  type Runner,
  type Variant,
} from "../bench/fmnist-eval.js";
import { makeInferCtx, computeKnown } from "../compiler/infer.js";
import { printGraph } from "../compiler/ir/text/printer.js";
import { evalDim, mul } from "../compiler/ir/sym.js";
import { getOp } from "../compiler/ops/registry.js";
import { assertValid } from "../compiler/verify.js";
import { argmaxRows, fmnistBatch, readIdxImages, readIdxLabels } from "../examples/fmnist-vit/idx.js";
import { buildVit } from "../examples/fmnist-vit/vit-ir.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../runtime/node-io.js";
import { repoRootFrom } from "./paths.js";

const root = repoRootFrom(import.meta.url);
const ex = join(root, "examples", "fmnist-vit");
const out = join(root, "demo-out");

const t0 = performance.now();
const weights = readSafetensorsFile(join(ex, "vit_fmnist.safetensors"));
const g = buildVit(weights);
assertValid(g);
const params = [...g.constants.values()].reduce(
  (s, c) => s + (c.data && c.data.dtype === "f32" ? c.data.data.length : 0),
  0,
);
console.log(
  `built ${g.name}: ${g.nodes.length} nodes, ${params.toLocaleString("en")} parameters, verified in ${(performance.now() - t0).toFixed(0)} ms`,
);

// FLOPs per image from the op definitions (symbolic in B, evaluated at B = 1).
const known = computeKnown(g);
let flops = 0;
const byOp = new Map<string, number>();
for (const n of g.nodes) {
  const def = getOp(n.op)!;
  if (!def.flops) continue;
  const ctx = makeInferCtx(g, def, n, n.outputs.length, { known, dataDims: "declared" });
  const f = evalDim(
    mul(
      1,
      def.flops(
        ctx,
        n.outputs.map((o) => o.type),
      ),
    ),
    { B: 1 },
  );
  flops += f;
  byOp.set(n.op, (byOp.get(n.op) ?? 0) + f);
}
console.log(
  `FLOPs per image: ${(flops / 1e6).toFixed(1)} M (${[...byOp]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([op, f]) => `${op} ${((100 * f) / flops).toFixed(0)}%`)
    .join(", ")})`,
);

mkdirSync(out, { recursive: true });
writeFileSync(join(out, "fmnist_vit.ir"), printGraph(g, { elideConstantsOver: 16 }));
writeSafetensorsFile(
  join(out, "weights.safetensors"),
  new Map([...g.constants.values()].filter((c) => c.data).map((c) => [c.ref ?? c.value.name, c.data!])),
);

const imgs = readIdxImages(join(ex, "t500-images-idx3-ubyte.gz"));
const labels = readIdxLabels(join(ex, "t500-labels-idx1-ubyte.gz"));
writeSafetensorsFile(join(out, "inputs.safetensors"), new Map([["pixels", fmnistBatch(imgs, 0, 4)]]));
console.log(
  `wrote ${join("demo-out", "fmnist_vit.ir")} (IR text), weights.safetensors and inputs.safetensors (4 images)`,
);

// ---------- token reduction: the exported ONNX model with and without a ToMe policy ----------

const onnx = join(ex, "vit_fmnist_opset17.onnx");
const policyFile = process.argv[3] ?? join(root, "bench", "policies", "tome-sched-48-40-16-8.tokr");
const policyName = relative(root, policyFile);
const plain = compileVariant(onnx, "unreduced");
const reduced = compileVariant(onnx, policyName, {
  source: readFileSync(policyFile, "utf8"),
  file: policyName,
});
console.log(`\npolicy ${policyName}:\n  ${readFileSync(policyFile, "utf8").trim().split("\n").join("\n  ")}`);
console.log(`tokens entering blocks 0-5: ${plain.tokens.join(", ")} -> ${reduced.tokens.join(", ")}`);
const saved = 1 - reduced.flops / plain.flops;
console.log(
  `FLOPs per image: ${(plain.flops / 1e6).toFixed(1)} M -> ${(reduced.flops / 1e6).toFixed(1)} M ` +
    `(${(100 * saved).toFixed(1)}% saved, ${(plain.flops / reduced.flops).toFixed(2)}x fewer)`,
);

const backend = await openBackend();
if (backend.kind === "wgsl") console.log(`backend: WGSL on WebGPU (${backend.description})`);
else
  console.log(
    `backend: CPU reference interpreter. There is no WebGPU adapter here, so the WGSL backend cannot run:\n  ${backend.why}`,
  );
// A few batches keep the demo near a minute (the CPU reference is the slow executable spec).
const batch = backend.kind === "wgsl" ? 32 : 16;
const count = Math.min(imgs.count, Number(process.argv[2] ?? (backend.kind === "wgsl" ? 96 : 48)));
if (!Number.isInteger(count) || count < 1)
  throw new Error(`images: '${process.argv[2]}' is not a count >= 1`);

const t1 = performance.now();
const runners: [Variant, Runner][] = [];
for (const v of [plain, reduced]) {
  const r = await loadRunner(backend, v);
  await r.run(fmnistBatch(imgs, 0, 1)); // warm-up: the driver compiles shaders on first use
  runners.push([v, r]);
}
console.log(`compiled and loaded both in ${((performance.now() - t1) / 1000).toFixed(1)} s`);

// Alternate the two on every batch so that load from other programs hits both alike.
const preds = runners.map(() => [] as number[]);
const ms = runners.map(() => [] as number[]);
for (let s = 0; s < count; s += batch) {
  const n = Math.min(batch, count - s);
  const x = fmnistBatch(imgs, s, n);
  for (const [i, [, r]] of runners.entries()) {
    const t = performance.now();
    preds[i].push(...argmaxRows(await r.run(x)));
    if (n === batch || s === 0) ms[i].push(performance.now() - t);
  }
}
const pct = (k: number): string => `${k}/${count} = ${((100 * k) / count).toFixed(2)}%`;
const right = preds.map((p) => p.filter((c, i) => c === labels[i]).length);
const same = preds[1].filter((c, i) => c === preds[0][i]).length;
const [t0ms, t1ms] = ms.map(median);
console.log(
  `\n${count} test images, batch ${Math.min(batch, count)}, ${backend.kind === "wgsl" ? "WGSL" : "CPU reference"}:`,
);
console.log(`  unreduced:   accuracy ${pct(right[0])}, ${t0ms.toFixed(0)} ms per batch (median)`);
console.log(`  with policy: accuracy ${pct(right[1])}, ${t1ms.toFixed(0)} ms per batch (median)`);
console.log(`  same prediction as unreduced on ${pct(same)}`);
console.log(
  `  FLOPs saved ${(100 * saved).toFixed(1)}%; measured speedup ${(t0ms / t1ms).toFixed(2)}x ` +
    `(FLOPs alone would give ${(plain.flops / reduced.flops).toFixed(2)}x)`,
);
console.log(
  "(on all 10k test images the default policy gives 83.97% vs 84.17% unreduced, 98.26% agreement; see bench/README.md)",
);
for (const [, r] of runners) r.destroy();
if (backend.kind === "wgsl") backend.rt.destroy();

console.log(
  `\nnext: npx tokr inspect examples/fmnist-vit/vit_fmnist_opset17.onnx --policy ${policyName}` +
    `\n      npx tokr run demo-out/fmnist_vit.ir --weights demo-out/weights.safetensors --inputs demo-out/inputs.safetensors -o demo-out/logits.safetensors`,
);
process.exit(0);
