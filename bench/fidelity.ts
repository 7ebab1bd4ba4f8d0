// Token-reduction fidelity and speed on real material: the Fashion-MNIST ViT (197 tokens, 6 blocks, real
// weights) compiled with every policy in bench/policies/, on the Fashion-MNIST test images. Usage:
//   npm run bench:fidelity [-- --images N] [--batch 32] [--minutes M] [--policies a,b] [--cpu] [--check 2]
//                          [--base-every K] [--preds FILE] [--first K]
// Per policy: accuracy, top-1 agreement with the unreduced model, FLOPs ratio (graphReport), and the
// latency ratio at the batch size, measured side by side: images go in rounds of one batch, every
// variant runs each batch (in rotated order) so load from other jobs hits all alike; the latency ratio is
// the median over rounds of (variant time / unreduced time) in the same round. See bench/README.md.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import ort from "onnxruntime-node";
import { makeTensor, type Tensor } from "../compiler/ir/tensor.js";
import { argmaxRows, fmnistBatch } from "../examples/fmnist-vit/idx.js";
import { repoRootFrom } from "../scripts/paths.js";
import { frontierSvg, isConstantR } from "./frontier-svg.js";
import {
  compileVariant,
  firstLine,
  loadRunner,
  loadTestSet,
  maxAbsDiff,
  median,
  openBackend,
  type Runner,
  type Variant,
} from "./fmnist-eval.js";

const { values: opts } = parseArgs({
  options: {
    images: { type: "string", default: "10000" },
    batch: { type: "string", default: "32" },
    minutes: { type: "string" },
    policies: { type: "string" },
    cpu: { type: "boolean", default: false },
    check: { type: "string", default: "2" },
    svg: { type: "string" },
    accuracy: { type: "boolean", default: false },
    "base-every": { type: "string", default: "1" },
    preds: { type: "string" },
    first: { type: "string", default: "0" },
  },
});
const int = (name: string, s: string, min: number): number => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} ${s}: need an integer >= ${min}`);
  return n;
};
const BATCH = int("batch", opts.batch, 1);
const CHECK = int("check", opts.check, 0);
// K > 1: the unreduced model runs on WGSL every K-th round only (latency pairs and a top-1 check), and the
// reference top-1 for agreement is onnxruntime's on every image (same model; equal top-1 on all 10k, issue #4).
const BASE_EVERY = int("base-every", opts["base-every"], 1);
// Test images FIRST.. (a fresh sample to confirm what a run on the first images suggested).
const FIRST = int("first", opts.first, 0);
const MINUTES = opts.minutes === undefined ? Infinity : Number(opts.minutes);
if (!(MINUTES > 0)) throw new Error(`--minutes ${opts.minutes}: need a positive number`);

const root = repoRootFrom(import.meta.url);
const onnxPath = join(root, "examples", "fmnist-vit", "vit_fmnist_opset17.onnx");
const policyDir = join(root, "bench", "policies");
const svgPath = opts.svg ?? join(root, "bench", "fidelity-frontier.svg");
const data = loadTestSet(root);
if (FIRST >= data.images.count) throw new Error(`--first ${FIRST}: there are ${data.images.count} images`);
const N = Math.min(int("images", opts.images, 1), data.images.count - FIRST);
const t0 = performance.now();
const elapsedMin = (): number => (performance.now() - t0) / 60000;
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");

// ---------- variants ----------

// --accuracy: the unreduced model only, against onnxruntime-node (issue #4: same top-1 on the 10k images).
const wanted = opts.accuracy ? [] : opts.policies?.split(",");
const files = readdirSync(policyDir)
  .filter((f) => f.endsWith(".tokr"))
  .map((f) => f.slice(0, -5))
  .filter((n) => !wanted || wanted.includes(n))
  .sort();
for (const w of wanted ?? [])
  if (!files.includes(w)) throw new Error(`--policies: no ${relative(root, policyDir)}/${w}.tokr`);

const variants: Variant[] = [compileVariant(onnxPath, "unreduced")];
for (const f of files) {
  const file = join(policyDir, `${f}.tokr`);
  variants.push(
    compileVariant(onnxPath, f, { source: readFileSync(file, "utf8"), file: relative(root, file) }),
  );
}
const base = variants[0];

// ---------- header ----------

const backend = await openBackend(opts.cpu);
const cpu = cpus();
console.log("# Token reduction fidelity: Fashion-MNIST ViT");
console.log(`date: ${new Date().toISOString()}`);
console.log(
  `machine: ${cpu.length}x ${cpu[0]?.model ?? "?"}, Linux ${release()}, Node ${process.version}, load average ${load()}`,
);
console.log(
  `command: npm run bench:fidelity --${process.argv
    .slice(2)
    .map((a) => ` ${a}`)
    .join("")}`,
);
console.log(
  `images: ${data.source} (${FIRST ? `${FIRST}..${FIRST + N - 1}` : `first ${N}`}), batch ${BATCH}`,
);
if (backend.kind === "wgsl") console.log(`backend: WGSL on ${backend.description}`);
else console.log(`backend: CPU reference interpreter (no WGSL: ${backend.why}); slow, use a small --images`);

const runners = new Map<string, Runner>();
for (const v of variants) {
  const t = performance.now();
  try {
    runners.set(v.name, await loadRunner(backend, v));
    await runners.get(v.name)!.run(fmnistBatch(data.images, 0, 1)); // warm-up (driver JIT, buffers)
  } catch (e) {
    console.log(`  ${v.name}: cannot load (${firstLine(e)}); left out`);
    continue;
  }
  console.log(`  loaded ${v.name} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
if (!runners.has(base.name)) throw new Error("the unreduced model does not load; nothing to compare with");
const live = variants.filter((v) => runners.has(v.name));

// ---------- WGSL vs CPU reference on a few images ----------

const checkDiff = new Map<string, string>();
if (backend.kind === "wgsl" && CHECK > 0) {
  const x = fmnistBatch(data.images, 0, CHECK);
  const cpuBackend = await openBackend(true);
  for (const v of live) {
    const cpuRun = await loadRunner(cpuBackend, v);
    const ref = await cpuRun.run(x);
    const got = await runners.get(v.name)!.run(x);
    const same = argmaxRows(ref).every((c, i) => c === argmaxRows(got)[i]);
    checkDiff.set(
      v.name,
      `${maxAbsDiff(ref.data, got.data).toExponential(1)}${same ? "" : " (argmax differs)"}`,
    );
  }
}

// ---------- onnxruntime-node (CPU EP) on the same images ----------

const sess = await ort.InferenceSession.create(onnxPath);
async function ortLogits(x: Tensor): Promise<Tensor> {
  const feeds = { [sess.inputNames[0]]: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) };
  const y = (await sess.run(feeds))[sess.outputNames[0]];
  return makeTensor("f32", [...y.dims], y.data as Float32Array);
}

// ---------- rounds ----------

const preds = new Map<string, number[]>(live.map((v) => [v.name, []]));
const times = new Map<string, number[]>(live.map((v) => [v.name, []]));
const ratios = new Map<string, number[]>(live.map((v) => [v.name, []]));
const ortP: number[] = [];
let ortDiff = 0;
let lastBase: Tensor | undefined;
const labels = data.labels.subarray(FIRST);
const count = (p: readonly number[], f: (c: number, i: number) => boolean): number => p.filter(f).length;
/** The unreduced model's top-1 on WGSL; -1 where it did not run (`--base-every`). */
const baseWgsl = preds.get(base.name)!;
/** The reference top-1 that agreement is measured against. */
const basePred = BASE_EVERY === 1 ? baseWgsl : ortP;
const acc = (p: readonly number[]): number => (100 * count(p, (c, i) => c === labels[i])) / p.length;
const agreeWith = (p: readonly number[], q: readonly number[]): number =>
  (100 * count(p, (c, i) => c === q[i])) / p.length;
const agree = (p: readonly number[]): number => agreeWith(p, basePred);
const flopsRatio = (v: Variant): number => v.flops / base.flops;
let done = 0;
let round = 0;
const loads: number[] = [];
while (done < N && elapsedMin() < MINUTES) {
  const n = Math.min(BATCH, N - done);
  const x = fmnistBatch(data.images, FIRST + done, n);
  const runBase = round % BASE_EVERY === 0;
  const order = live.map((_, i) => live[(i + round) % live.length]).filter((v) => v !== base || runBase);
  const roundMs = new Map<string, number>();
  if (!runBase) baseWgsl.push(...new Array<number>(n).fill(-1));
  for (const v of order) {
    const t = performance.now();
    const y = await runners.get(v.name)!.run(x);
    roundMs.set(v.name, performance.now() - t);
    preds.get(v.name)!.push(...argmaxRows(y));
    if (v === base) lastBase = y;
  }
  const theirs = await ortLogits(x);
  ortP.push(...argmaxRows(theirs));
  if (runBase) ortDiff = Math.max(ortDiff, maxAbsDiff(lastBase!.data, theirs.data));
  if (n === BATCH) {
    const b = roundMs.get(base.name);
    for (const v of order) {
      times.get(v.name)!.push(roundMs.get(v.name)!);
      if (b !== undefined) ratios.get(v.name)!.push(roundMs.get(v.name)! / b);
    }
  }
  loads.push(loadavg()[0]);
  done += n;
  round++;
  console.log(
    `  round ${round}: ${done}/${N} images, ${elapsedMin().toFixed(1)} min, ` +
      (runBase ? `unreduced ${(roundMs.get(base.name)! / 1000).toFixed(1)} s/batch, ` : "") +
      `load ${load()}`,
  );
  if (!opts.accuracy && (round % 5 === 0 || done === N)) {
    writeSvg();
    writePreds(); // also mid-run: a run stopped early keeps its images
  }
}
if (done < N) console.log(`stopped after ${done} of ${N} images: --minutes ${MINUTES} reached`);
writePreds();

// ---------- results ----------

const timedRounds = times.get(base.name)!.length;
const latRatio = (v: Variant): number | undefined =>
  timedRounds > 0 ? median(ratios.get(v.name)!) : undefined;
const ranBase = count(baseWgsl, (c) => c >= 0);

console.log(`\n## Results: ${done} images, ${timedRounds} timed rounds of batch ${BATCH}`);
console.log(
  `load average during the rounds: median ${loads.length ? median(loads).toFixed(1) : "n/a"}, ` +
    `max ${loads.length ? Math.max(...loads).toFixed(1) : "n/a"} (on ${cpu.length} cores)`,
);
console.log(
  `unreduced vs onnxruntime-node ${ort.env.versions.common} CPU EP: same top-1 on ` +
    `${count(baseWgsl, (c, i) => c === ortP[i])}/${ranBase}; accuracy tokr ` +
    `${((100 * count(baseWgsl, (c, i) => c === labels[i])) / ranBase).toFixed(2)}%, ` +
    `onnxruntime ${acc(ortP).toFixed(2)}%; max |logit diff| ${ortDiff.toExponential(1)}`,
);
if (opts.accuracy) {
  // onnxruntime alone on every test image (fast), to tie the N above to the published accuracy.
  const all: number[] = [];
  for (let s = 0; s < data.images.count; s += 500)
    all.push(
      ...argmaxRows(await ortLogits(fmnistBatch(data.images, s, Math.min(500, data.images.count - s)))),
    );
  const right = count(all, (c, i) => c === labels[i]);
  console.log(
    `onnxruntime on all ${all.length} images: ${right}/${all.length} = ${((100 * right) / all.length).toFixed(2)}%`,
  );
  for (const r of runners.values()) r.destroy();
  await sess.release();
  if (backend.kind === "wgsl") backend.rt.destroy();
  process.exit(0);
}
if (BASE_EVERY > 1)
  console.log(
    `\n(--base-every ${BASE_EVERY}: the unreduced row's accuracy and every agreement are against onnxruntime's ` +
      `top-1; the unreduced WGSL model ran on ${ranBase} of the images)`,
  );
const speedupCol = backend.kind === "wgsl" ? "WGSL" : "CPU";
console.log(
  `\n| policy | tokens entering blocks 0-5 | FLOPs ratio | accuracy (N=${done}) | Δ acc (points) | agreement | ` +
    `${speedupCol} ms/batch ${BATCH} (median) | latency ratio | speedup / FLOPs speedup | max |logit diff| vs CPU (${CHECK} img) |`,
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const v of [...live].sort((a, b) => b.flops - a.flops)) {
  const p = v === base ? basePred : preds.get(v.name)!;
  const lr = latRatio(v);
  const eff = lr === undefined ? "n/a" : `${(flopsRatio(v) / lr).toFixed(2)}`;
  const ms = times.get(v.name)!;
  console.log(
    `| ${v.name} | ${v.tokens.join(", ")} | ${flopsRatio(v).toFixed(3)} | ${acc(p).toFixed(2)}% | ` +
      `${(acc(p) - acc(basePred)).toFixed(2)} | ${v === base && BASE_EVERY > 1 ? "-" : `${agree(p).toFixed(2)}%`} | ${ms.length ? median(ms).toFixed(0) : "n/a"} | ` +
      `${lr === undefined ? "n/a" : lr.toFixed(3)} | ${v === base ? "-" : eff} | ${checkDiff.get(v.name) ?? "n/a"} |`,
  );
}
if (timedRounds < 5)
  console.log(`note: only ${timedRounds} timed rounds (< 5): latency medians are indicative only`);

// ---------- goals ----------

const reduced = live.filter((v) => v !== base);
console.log("\n## Goals (issue #6)");
const g1 = reduced.filter(
  (v) =>
    flopsRatio(v) <= 0.5 &&
    acc(preds.get(v.name)!) - acc(basePred) >= -0.3 &&
    agree(preds.get(v.name)!) >= 98,
);
console.log(
  `1. >= 50% fewer FLOPs, <= 0.3 points accuracy lost, >= 98% agreement: ` +
    (g1.length ? `met by ${g1.map((v) => v.name).join(", ")}` : "NOT met by any policy"),
);
console.log(
  "2. agreement at equal FLOPs, constant-r bipartite ToMe vs the best other policy within the budget:",
);
console.log("| FLOPs budget | best constant-r (agreement) | best other (agreement) | verdict |");
console.log("|---|---|---|---|");
const bestWithin = (set: readonly Variant[], budget: number): Variant | undefined =>
  set
    .filter((v) => flopsRatio(v) <= budget + 1e-9)
    .sort((a, b) => agree(preds.get(b.name)!) - agree(preds.get(a.name)!))[0];
const show = (v: Variant | undefined): string =>
  v ? `${v.name} (${agree(preds.get(v.name)!).toFixed(2)}%)` : "none reaches it";
for (const budget of [0.8, 0.7, 0.6, 0.5, 0.4, 0.3]) {
  const c = bestWithin(
    reduced.filter((v) => isConstantR(v.name)),
    budget,
  );
  const o = bestWithin(
    reduced.filter((v) => !isConstantR(v.name)),
    budget,
  );
  const [ac, ao] = [c && agree(preds.get(c.name)!), o && agree(preds.get(o.name)!)];
  const verdict =
    ao === undefined
      ? ac === undefined
        ? "no policy"
        : "only constant r"
      : ac === undefined || ao > ac
        ? "other better"
        : ao === ac
          ? "equal"
          : "constant r better";
  console.log(`| <= ${budget} | ${show(c)} | ${show(o)} | ${verdict} |`);
}
if (timedRounds > 0) {
  const bad = reduced.filter((v) => flopsRatio(v) / latRatio(v)! < 0.8);
  console.log(
    `3. speedup >= 0.8x the FLOPs speedup: ${reduced.length - bad.length}/${reduced.length} policies` +
      (bad.length
        ? `; below: ${bad.map((v) => `${v.name} ${(flopsRatio(v) / latRatio(v)!).toFixed(2)}`).join(", ")}`
        : ""),
  );
}
writeSvg();
console.log(`\nfrontier plot: ${relative(root, svgPath)}`);
for (const r of runners.values()) r.destroy();
await sess.release();
if (backend.kind === "wgsl") backend.rt.destroy();
process.exit(0);

/** Per-image top-1 of every variant (-1: not run) and onnxruntime's, to combine runs on common images. */
function writePreds(): void {
  if (!opts.preds) return;
  writeFileSync(
    opts.preds,
    JSON.stringify({
      first: FIRST,
      images: done,
      labels: Array.from(labels.slice(0, done)),
      onnxruntime: ortP,
      flopsRatio: Object.fromEntries(live.map((v) => [v.name, flopsRatio(v)])),
      top1: Object.fromEntries(preds),
    }) + "\n",
  );
}

// ---------- the frontier plot ----------

/** Agreement vs FLOPs ratio of every policy so far (bench/frontier-svg.ts). */
function writeSvg(): void {
  const n = preds.get(base.name)!.length;
  if (n === 0) return;
  const pts = live
    .filter((v) => v !== base)
    .map((v) => ({ name: v.name, f: flopsRatio(v), a: agree(preds.get(v.name)!), c: isConstantR(v.name) }));
  writeFileSync(svgPath, frontierSvg(pts, n));
}
