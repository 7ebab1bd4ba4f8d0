// Combines `bench/fidelity.ts --preds FILE` outputs of several runs on their common first N images: per
// policy, accuracy and top-1 agreement with onnxruntime's top-1 of the unreduced model (the reference of
// `--base-every`), the FLOPs-budget comparison of issue #6's frontier goal, and the frontier plot. Usage:
//   node --import tsx bench/fidelity-combine.ts a.json b.json [--images N] [--svg bench/fidelity-frontier.svg]
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { frontierSvg, isConstantR, type FrontierPoint } from "./frontier-svg.js";

interface PredsFile {
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

console.log(`# ${runs.length} runs combined on their first N = ${N} images (reference: onnxruntime top-1)`);
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
if (opts.svg) {
  writeFileSync(opts.svg, frontierSvg(all, N));
  console.log(`\nfrontier plot: ${opts.svg}`);
}
