// Combines `bench/fidelity.ts --preds FILE` outputs of several runs on their common first N images: per
// policy, accuracy and top-1 agreement with onnxruntime's top-1 of the unreduced model (the reference of
// `--base-every`), the FLOPs-budget comparison of issue #6's frontier goal, and the frontier plot. Usage:
//   node --import tsx bench/fidelity-combine.ts a.json b.json [--images N] [--svg bench/fidelity-frontier.svg]
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { frontierSvg, isConstantR, type FrontierPoint } from "./frontier-svg.js";

interface PredsFile {
  /** Index of the run's first test image (`--first`; absent in older files: 0). */
  readonly first?: number;
  readonly images: number;
  readonly labels: readonly number[];
  readonly onnxruntime: readonly number[];
  readonly flopsRatio: Readonly<Record<string, number>>;
  readonly top1: Readonly<Record<string, readonly number[]>>;
}

const { values: opts, positionals } = parseArgs({
  options: { images: { type: "string" }, svg: { type: "string" } },
  allowPositionals: true,
});
if (positionals.length === 0) throw new Error("usage: fidelity-combine.ts a.json [b.json ...] [--images N]");
const runs = positionals.map((f) => ({ file: f, p: JSON.parse(readFileSync(f, "utf8")) as PredsFile }));
const common = Math.min(...runs.map((r) => r.p.images));
const N = opts.images === undefined ? common : Number(opts.images);
if (!Number.isInteger(N) || N < 1 || N > common)
  throw new Error(`--images ${opts.images}: need an integer in 1..${common} (images every run covers)`);
const ref = runs[0].p;
const first = ref.first ?? 0;
for (const r of runs)
  if ((r.p.first ?? 0) !== first)
    throw new Error(`${r.file} starts at image ${r.p.first ?? 0}, ${runs[0].file} at ${first}`);
for (const r of runs)
  for (let i = 0; i < N; i++)
    if (r.p.onnxruntime[i] !== ref.onnxruntime[i] || r.p.labels[i] !== ref.labels[i])
      throw new Error(`${r.file}: image ${i} has another onnxruntime top-1 or label than ${runs[0].file}`);

const pct = (k: number): number => (100 * k) / N;
const hits = (p: readonly number[], q: readonly number[]): number => {
  let k = 0;
  for (let i = 0; i < N; i++) if (p[i] === q[i]) k++;
  return k;
};
const baseAcc = pct(hits(ref.onnxruntime, ref.labels));
const points = new Map<string, FrontierPoint & { acc: number; file: string }>();
for (const r of runs)
  for (const [name, top1] of Object.entries(r.p.top1)) {
    if (name === "unreduced" || points.has(name)) continue;
    if (top1.slice(0, N).some((c) => c < 0)) throw new Error(`${r.file}: ${name} did not run on every image`);
    points.set(name, {
      name,
      f: r.p.flopsRatio[name],
      a: pct(hits(top1, ref.onnxruntime)),
      c: isConstantR(name),
      acc: pct(hits(top1, ref.labels)),
      file: r.file,
    });
  }

console.log(
  `# ${runs.length} runs combined on their first N = ${N} images (test images ${first}..${first + N - 1}; ` +
    "reference: onnxruntime top-1)",
);
console.log(`unreduced accuracy ${baseAcc.toFixed(2)}%`);
console.log("| policy | FLOPs ratio | accuracy | Δ acc (points) | agreement | run |");
console.log("|---|---|---|---|---|---|");
const all = [...points.values()].sort((a, b) => b.f - a.f);
for (const p of all)
  console.log(
    `| ${p.name} | ${p.f.toFixed(3)} | ${p.acc.toFixed(2)}% | ${(p.acc - baseAcc).toFixed(2)} | ${p.a.toFixed(2)}% | ${p.file} |`,
  );
console.log("\n| FLOPs budget | best constant-r (agreement) | best other (agreement) | verdict |");
console.log("|---|---|---|---|");
const best = (c: boolean, budget: number): FrontierPoint | undefined =>
  all.filter((p) => p.c === c && p.f <= budget + 1e-9).sort((a, b) => b.a - a.a)[0];
const show = (p: FrontierPoint | undefined): string =>
  p ? `${p.name} (${p.a.toFixed(2)}%)` : "none reaches it";
for (const budget of [0.8, 0.7, 0.6, 0.5, 0.4, 0.3]) {
  const [c, o] = [best(true, budget), best(false, budget)];
  const verdict =
    o === undefined
      ? c === undefined
        ? "no policy"
        : "only constant r"
      : c === undefined || o.a > c.a
        ? "other better"
        : o.a === c.a
          ? "equal"
          : "constant r better";
  console.log(`| <= ${budget} | ${show(c)} | ${show(o)} | ${verdict} |`);
}
// Issue #6's goal 2 per constant-r point: the most faithful other policy with no more FLOPs, and the
// paired standard error of the agreement difference (per image: agrees with onnxruntime or not).
const top1Of = (name: string): readonly number[] => runs.find((r) => name in r.p.top1)!.p.top1[name];
const agrees = (name: string, i: number): number => (top1Of(name)[i] === ref.onnxruntime[i] ? 1 : 0);
console.log(
  "\n| constant r (FLOPs) | agreement | accuracy | best other with <= FLOPs (FLOPs) | agreement | accuracy | " +
    "Δ agreement ± SE (points) | images only other / only constant r agrees |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const c of all.filter((p) => p.c)) {
  const o = all.filter((p) => !p.c && p.f <= c.f + 1e-9).sort((a, b) => b.a - a.a || a.f - b.f)[0];
  const head = `| ${c.name} (${c.f.toFixed(3)}) | ${c.a.toFixed(2)}% | ${c.acc.toFixed(2)}% |`;
  if (!o) {
    console.log(`${head} none | | | | |`);
    continue;
  }
  let [won, lost, sum2] = [0, 0, 0];
  for (let i = 0; i < N; i++) {
    const d = agrees(o.name, i) - agrees(c.name, i);
    if (d > 0) won++;
    if (d < 0) lost++;
    sum2 += d * d;
  }
  const mean = (won - lost) / N;
  const se = Math.sqrt((sum2 / N - mean * mean) / (N - 1));
  console.log(
    `${head} ${o.name} (${o.f.toFixed(3)}) | ${o.a.toFixed(2)}% | ${o.acc.toFixed(2)}% | ` +
      `${(100 * mean).toFixed(2)} ± ${(100 * se).toFixed(2)} | ${won} / ${lost} |`,
  );
}
if (opts.svg) {
  writeFileSync(opts.svg, frontierSvg(all, N));
  console.log(`\nfrontier plot: ${opts.svg}`);
}
