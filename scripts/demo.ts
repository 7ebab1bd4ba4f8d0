// `npm run demo`: builds the Fashion-MNIST ViT (real weights) as tokr IR, verifies it, writes it as
// IR text + safetensors, and classifies real test images on the CPU reference backend.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runGraph } from "../backends/cpu/interpreter.js";
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

// The reference interpreter favours clarity over speed: 100 images by default (`npm run demo -- 500` for all).
const count = Math.min(imgs.count, Number(process.argv[2] ?? 100));
const batch = 25;
let correct = 0;
const t1 = performance.now();
for (let s = 0; s < count; s += batch) {
  const n = Math.min(batch, count - s);
  const logits = runGraph(g, new Map([["pixels", fmnistBatch(imgs, s, n)]])).get("logits")!;
  argmaxRows(logits).forEach((p, i) => (correct += p === labels[s + i] ? 1 : 0));
}
const ms = performance.now() - t1;
console.log(
  `CPU reference backend: ${count} test images in ${(ms / 1000).toFixed(2)} s (${(ms / count).toFixed(1)} ms/image, batch ${batch})`,
);
console.log(
  `accuracy: ${correct}/${count} = ${((100 * correct) / count).toFixed(2)}% (the full 10k test set gives 84.17% in PyTorch)`,
);
console.log(
  `\nnext: npx tokr run demo-out/fmnist_vit.ir --weights demo-out/weights.safetensors --inputs demo-out/inputs.safetensors -o demo-out/logits.safetensors`,
);
