// Token-reduction policies on torchvision vit_b_16 (bench/models/vit_b_16_opset17.onnx, random weights,
// 197 tokens, 12 blocks): FLOPs ratio (graphReport, batch 1) and WGSL latency ratio at batch 1, measured
// side by side. Random weights give no accuracy, so only cost is reported (issue #6). Usage:
//   node --import tsx bench/vit-b16-policies.ts [--runs 3] [--policies a,b]
// Policies are bench/policies/vit_b_16/*.tokr. Every round runs each variant once (unreduced included),
// in an order rotated every round; the latency ratio is the median over rounds of (variant time /
// unreduced time) in the same round, so load from other jobs hits all variants of a round alike.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { makeTensor } from "../compiler/ir/tensor.js";
import { repoRootFrom } from "../scripts/paths.js";
import {
  compileVariant,
  firstLine,
  loadRunner,
  median,
  openBackend,
  randomF32,
  type Runner,
} from "./fmnist-eval.js";

const { values: opts } = parseArgs({
  options: { runs: { type: "string", default: "3" }, policies: { type: "string" } },
});
const RUNS = Number(opts.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs ${opts.runs}: need an integer >= 1`);

const root = repoRootFrom(import.meta.url);
const onnxPath = join(root, "bench", "models", "vit_b_16_opset17.onnx");
const policyDir = join(root, "bench", "policies", "vit_b_16");
if (!existsSync(onnxPath))
  throw new Error(
    `${relative(root, onnxPath)} is absent (make it with /usr/bin/python3 bench/export_vit_b_16.py)`,
  );
const wanted = opts.policies?.split(",");
const names = readdirSync(policyDir)
  .filter((f) => f.endsWith(".tokr"))
  .map((f) => f.slice(0, -5))
  .filter((n) => !wanted || wanted.includes(n))
  .sort();
for (const w of wanted ?? [])
  if (!names.includes(w)) throw new Error(`--policies: no ${relative(root, policyDir)}/${w}.tokr`);

const backend = await openBackend();
if (backend.kind !== "wgsl") throw new Error(`no WebGPU adapter (${backend.why}): this bench times WGSL`);
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");
console.log("# Token reduction on vit_b_16 (random weights): FLOPs and WGSL latency, batch 1");
console.log(`date: ${new Date().toISOString()}`);
console.log(
  `machine: ${cpus().length}x ${cpus()[0]?.model ?? "?"}, Linux ${release()}, Node ${process.version}, load average ${load()}`,
);
console.log(`command: node --import tsx bench/vit-b16-policies.ts ${process.argv.slice(2).join(" ")}`);
console.log(`backend: WGSL on ${backend.description}`);

const x = makeTensor("f32", [1, 3, 224, 224], randomF32(3 * 224 * 224, 3));

// One variant at a time is imported, compiled and loaded (each holds its own 330 MiB of weights).
interface Loaded {
  readonly name: string;
  readonly flops: number;
  readonly tokens: readonly number[];
  readonly runner: Runner;
}
const loaded: Loaded[] = [];
for (const name of ["unreduced", ...names]) {
  const t = performance.now();
  const file = join(policyDir, `${name}.tokr`);
  try {
    const v =
      name === "unreduced"
        ? compileVariant(onnxPath, name)
        : compileVariant(onnxPath, name, { source: readFileSync(file, "utf8"), file: relative(root, file) });
    const runner = await loadRunner(backend, v);
    await runner.run(x); // warm-up: pipelines, buffers
    loaded.push({ name, flops: v.flops, tokens: v.tokens, runner });
    console.log(
      `  loaded ${name} in ${((performance.now() - t) / 1000).toFixed(1)} s (with one warm-up run)`,
    );
  } catch (e) {
    if (name === "unreduced") throw e;
    console.log(`  ${name}: cannot load (${firstLine(e)}); left out`);
  }
}
const base = loaded[0];

const times = new Map<string, number[]>(loaded.map((l) => [l.name, []]));
const ratios = new Map<string, number[]>(loaded.map((l) => [l.name, []]));
const loads: number[] = [];
for (let round = 0; round < RUNS; round++) {
  const ms = new Map<string, number>();
  for (let i = 0; i < loaded.length; i++) {
    const l = loaded[(i + round) % loaded.length];
    const t = performance.now();
    await l.runner.run(x);
    ms.set(l.name, performance.now() - t);
  }
  for (const l of loaded) {
    times.get(l.name)!.push(ms.get(l.name)!);
    ratios.get(l.name)!.push(ms.get(l.name)! / ms.get(base.name)!);
  }
  loads.push(loadavg()[0]);
  console.log(
    `  round ${round + 1}/${RUNS}: unreduced ${(ms.get(base.name)! / 1000).toFixed(1)} s, load ${load()}`,
  );
}

console.log(
  `\n## Results: ${RUNS} rounds at batch 1; load average during the rounds: median ${median(loads).toFixed(1)}, ` +
    `max ${Math.max(...loads).toFixed(1)} (on ${cpus().length} cores)`,
);
console.log(
  "| policy | tokens entering blocks 0-11 | GFLOPs | FLOPs ratio | WGSL ms (median) | latency ratio | speedup / FLOPs speedup |",
);
console.log("|---|---|---|---|---|---|---|");
for (const l of loaded) {
  const fr = l.flops / base.flops;
  const lr = median(ratios.get(l.name)!);
  console.log(
    `| ${l.name} | ${l.tokens.join(", ")} | ${(l.flops / 1e9).toFixed(2)} | ${fr.toFixed(3)} | ` +
      `${median(times.get(l.name)!).toFixed(0)} | ${lr.toFixed(3)} | ${l === base ? "-" : (fr / lr).toFixed(2)} |`,
  );
}
for (const l of loaded) l.runner.destroy();
backend.rt.destroy();
process.exit(0);
