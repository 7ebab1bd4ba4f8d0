// Token-reduction policies on torchvision vit_b_16 (bench/models/vit_b_16_opset17.onnx, random weights,
// 197 tokens, 12 blocks): FLOPs ratio (graphReport, batch 1) and WGSL latency ratio at batch 1, measured
// side by side. Random weights give no accuracy, so only cost is reported (issue #6). Usage:
//   node --import tsx bench/vit-b16-policies.ts [--runs 3] [--policies a,b] [--profile [--profile-out F.json]]
//   [--matmul tune|NAME]
// Policies are bench/policies/vit_b_16/*.tokr. Every round runs each variant once (unreduced included),
// in an order rotated every round; the latency ratio is the median over rounds of (variant time /
// unreduced time) in the same round, so load from other jobs hits all variants of a round alike.
// The matmul variant is autotuned once on the unreduced model (as `tokr compile --target wgsl` does;
// every policy keeps block 0's largest matmul) unless `--matmul NAME` fixes it. `--profile` times
// every dispatch of every variant (bench/profile.ts) after the rounds.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { renderWgsl } from "../backends/wgsl/render.js";
import { makeTensor } from "../compiler/ir/tensor.js";
import { buildProgram } from "../compiler/kir/schedule.js";
import type { Target } from "../compiler/kir/types.js";
import { MATMUL_VARIANTS } from "../compiler/ops/linalg-lower.js";
import { compileProgram } from "../runtime/artifact.js";
import { tunedTarget, tuneMatmul } from "../runtime/webgpu/autotune.js";
import type { GpuProgram } from "../runtime/webgpu/program.js";
import { repoRootFrom } from "../scripts/paths.js";
import { compileVariant, firstLine, median, openBackend, randomF32, type Variant } from "./fmnist-eval.js";
import { printProfile, profileDispatches } from "./profile.js";

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    policies: { type: "string" },
    profile: { type: "boolean", default: false },
    matmul: { type: "string", default: "tune" },
    "profile-out": { type: "string" },
  },
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
const rt = backend.rt;

// One variant at a time is imported, compiled and loaded (each holds its own 330 MiB of weights).
interface Loaded {
  readonly name: string;
  readonly v: Variant;
  readonly prog: GpuProgram;
  run(): Promise<void>;
}
const loaded: Loaded[] = [];
let target: Target | undefined;
if (opts.matmul !== "tune") {
  const v = MATMUL_VARIANTS.find((m) => m.name === opts.matmul);
  if (!v) throw new Error(`--matmul ${opts.matmul}: known ${MATMUL_VARIANTS.map((m) => m.name).join(", ")}`);
  target = { ...rt.target, matmul: v.style, matmulVariant: v.name };
}
const secs = (t: number): string => ((performance.now() - t) / 1000).toFixed(1);
for (const name of ["unreduced", ...names]) {
  const file = join(policyDir, `${name}.tokr`);
  try {
    let t = performance.now();
    const v =
      name === "unreduced"
        ? compileVariant(onnxPath, name)
        : compileVariant(onnxPath, name, { source: readFileSync(file, "utf8"), file: relative(root, file) });
    if (!target) {
      const tuning = await tuneMatmul(rt, v.graph);
      target = tunedTarget(rt.target, tuning);
      console.log(
        `  matmul ${target.matmulVariant ?? target.matmul}, autotuned on ${tuning?.node ?? "-"} in ${secs(t)} s (` +
          `${Object.entries(tuning?.variants ?? {})
            .map(([k, ms]) => `${k} ${ms.toFixed(1)} ms`)
            .join(", ")})`,
      );
      t = performance.now();
    }
    const cp = compileProgram(buildProgram(v.graph, target), "wgsl", target, renderWgsl);
    const compiled = secs(t);
    t = performance.now();
    const prog = await rt.load(cp);
    const pipelines = secs(t);
    t = performance.now();
    const feeds = new Map([[v.graph.inputs[0].name, x]]);
    const run = async (): Promise<void> => void (await prog.run(feeds));
    await run(); // warm-up: buffers
    loaded.push({ name, v, prog, run });
    const distinct = new Set(cp.kernels.map((k) => k.source)).size;
    console.log(
      `  loaded ${name}: import+reduce+schedule+render ${compiled} s, ${distinct} distinct kernels ` +
        `(${cp.steps.length} dispatches) compiled in ${pipelines} s, first run ${secs(t)} s`,
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
    await l.run();
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
  const fr = l.v.flops / base.v.flops;
  const lr = median(ratios.get(l.name)!);
  console.log(
    `| ${l.name} | ${l.v.tokens.join(", ")} | ${(l.v.flops / 1e9).toFixed(2)} | ${fr.toFixed(3)} | ` +
      `${median(times.get(l.name)!).toFixed(0)} | ${lr.toFixed(3)} | ${l === base ? "-" : (fr / lr).toFixed(2)} |`,
  );
}
const profiles: Record<string, unknown> = {};
if (opts.profile)
  for (const l of loaded) {
    await l.run(); // prepares this program's dispatches
    const env = new Map(
      [...l.v.graph.symbols.values()].map((s) => [s.name, typeof s.capacity === "number" ? s.capacity : 1]),
    );
    const rows = await profileDispatches(l.v.graph, l.prog, env);
    printProfile(`${l.name} batch 1`, rows, 3, 12);
    profiles[l.name] = rows;
  }
if (opts["profile-out"]) writeFileSync(opts["profile-out"], JSON.stringify(profiles));
for (const l of loaded) l.prog.destroy();
backend.rt.destroy();
process.exit(0);
