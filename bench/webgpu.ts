/// <reference types="@webgpu/types" />
// tokr WGSL (WebGPU runtime, npm `webgpu` Dawn) vs onnxruntime-node's `webgpu` execution provider (its own
// bundled Dawn), side by side in one process on the same machine. Usage:
//   npm run bench [-- --runs N] [--profile] [--only matmul,vit,vit_b_16,compile]
// Every timed run includes uploading the activation and reading the result back, for both sides; tokr and
// onnxruntime runs alternate so that load from other jobs hits both alike. See bench/README.md.
import { mkdtempSync, rmSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import ort from "onnxruntime-node";
import { renderWgsl } from "../backends/wgsl/render.js";
import { GraphBuilder } from "../compiler/builder.js";
import type { Graph } from "../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../compiler/ir/tensor.js";
import { buildProgram } from "../compiler/kir/schedule.js";
import type { Target } from "../compiler/kir/types.js";
import { importOnnxFile } from "../compiler/onnx/import.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../examples/fmnist-vit/idx.js";
import "../passes/index.js";
import { PassManager } from "../passes/manager.js";
import { compileProgram, writeProgramArtifact } from "../runtime/artifact.js";
import { tunedTarget, tuneMatmul } from "../runtime/webgpu/autotune.js";
import { nodeGpu } from "../runtime/webgpu/node.js";
import type { GpuProgram } from "../runtime/webgpu/program.js";
import { WebGpuRuntime } from "../runtime/webgpu/runtime.js";
import { repoRootFrom } from "../scripts/paths.js";
import { firstLine, maxAbsDiff, median, randomF32 } from "./fmnist-eval.js";
import { printProfile, profileDispatches } from "./profile.js";
import { matmulModel } from "./onnx-models.js";

const SECTIONS = ["matmul", "vit", "vit_b_16", "compile"] as const;
type Section = (typeof SECTIONS)[number];

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    profile: { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const RUNS = Number(opts.runs);
if (!Number.isInteger(RUNS) || RUNS < 5) throw new Error(`--runs ${opts.runs}: need an integer >= 5`);
const only = new Set((opts.only ?? SECTIONS.join(",")).split(","));
for (const s of only)
  if (!(SECTIONS as readonly string[]).includes(s))
    throw new Error(`--only: unknown section '${s}' (sections: ${SECTIONS.join(", ")})`);
const want = (s: Section): boolean => only.has(s);

const root = repoRootFrom(import.meta.url);
const fmnistDir = join(root, "examples", "fmnist-vit");
const fmnistOnnx = join(fmnistDir, "vit_fmnist_opset17.onnx");
const vitB16Onnx = join(root, "bench", "models", "vit_b_16_opset17.onnx");
const scratch = mkdtempSync(join(tmpdir(), "tokr-bench-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));

// ---------- small helpers ----------

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Largest error of 64 sampled entries of `y = x @ w` (all n x n) against an f64 dot product. */
function spotCheck(x: Float32Array, w: Float32Array, n: number, y: ArrayLike<number>): number {
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % n;
    const j = (s * 104729 + 13) % n;
    let acc = 0;
    for (let k = 0; k < n; k++) acc += x[i * n + k] * w[k * n + j];
    worst = Math.max(worst, Math.abs(acc - y[i * n + j]));
  }
  return worst;
}

type Runner = () => Promise<unknown>;
const SLOW_MS = 60_000;

/** Warm-up of each side, then RUNS timed runs alternating tokr and onnxruntime; medians in ms. */
async function timeSideBySide(
  tokr: Runner | undefined,
  theirs: Runner,
  runs = RUNS,
): Promise<{ tokr?: number; ort: number; tokrRuns: number }> {
  const t0 = performance.now();
  await tokr?.();
  const tokrWarm = performance.now() - t0;
  await theirs();
  // A tokr run slower than SLOW_MS gets one timed run (said in the output) so the benchmark finishes.
  const tokrRuns = tokrWarm > SLOW_MS ? 1 : runs;
  const tt: number[] = [];
  const to: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (tokr && i < tokrRuns) {
      const t = performance.now();
      await tokr();
      tt.push(performance.now() - t);
    }
    const t = performance.now();
    await theirs();
    to.push(performance.now() - t);
  }
  if (tokr && tokrRuns < runs)
    console.log(
      `  note: tokr's warm-up took ${(tokrWarm / 1000).toFixed(1)} s: tokr timed once, not ${runs} times`,
    );
  return { ...(tokr ? { tokr: median(tt) } : {}), ort: median(to), tokrRuns };
}

const fmt = (ms: number | undefined, digits = 1): string => (ms === undefined ? "n/a" : ms.toFixed(digits));
const ratio = (a: number | undefined, b: number): string =>
  a === undefined ? "n/a" : `${(a / b).toFixed(2)}x`;

function ortSession(path: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, { executionProviders: ["webgpu"] });
}

async function ortRun(s: ort.InferenceSession, x: Tensor): Promise<Float32Array> {
  const feeds = { [s.inputNames[0]]: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) };
  const out = await s.run(feeds);
  return out[s.outputNames[0]].data as Float32Array;
}

// ---------- tokr ----------

/** Capabilities assumed for the compile-time measurement when there is no device (lavapipe's). */
const LAVAPIPE_TARGET: Target = {
  f16: false,
  subgroups: true,
  subgroupSize: 8,
  maxWorkgroupInvocations: 1024,
  maxWorkgroupStorageBytes: 32768,
  maxStorageBuffersPerStage: 16,
  maxStorageBindingBytes: 134217728,
  matmul: "register",
};

let rt: WebGpuRuntime | undefined;
let noTokr = "";
try {
  rt = await WebGpuRuntime.create(await nodeGpu());
} catch (e) {
  noTokr = `no WebGPU runtime: ${firstLine(e)}`;
}

/** ONNX file -> graph after the `onnx-structure` pipeline. */
function importStructured(path: string): Graph {
  const g = importOnnxFile(path, relative(root, path));
  new PassManager("onnx-structure").run(g);
  return g;
}

/** A graph loaded on the device. */
interface Loaded {
  readonly g: Graph;
  readonly prog: GpuProgram;
  /** The autotuned matmul style, for the report. */
  readonly tuned: string;
}

/** Like `tokr compile --target wgsl`: the matmul style is autotuned on the adapter (largest matmul). */
async function loadGraph(g: Graph, what: string): Promise<Loaded> {
  if (!rt) throw new Error(noTokr);
  const tuning = await tuneMatmul(rt, g);
  const target: Target = tunedTarget(rt.target, tuning);
  const tuned = tuning
    ? `tokr ${what}: matmul ${tuning.choice} ${tuning.variant ?? ""} (autotuned on ${tuning.node}: ` +
      `${Object.entries(tuning.variants ?? tuning.ms)
        .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
        .join(", ")})`
    : `tokr ${what}: no matmul to tune`;
  const cp = compileProgram(buildProgram(g, target), "wgsl", target, renderWgsl);
  const prog = await rt.load(cp);
  return {
    g,
    prog,
    tuned,
  };
}

async function tokrRun(l: Loaded, x: Tensor): Promise<Float32Array> {
  const out = await l.prog.run(new Map([[l.g.inputs[0].name, x]]));
  return out.get(l.g.outputs[0].name)!.data as Float32Array;
}

/** Per-dispatch GPU time (bench/profile.ts); every graph symbol is the batch of `x` (for FLOPs). */
async function profile(l: Loaded, x: Tensor, title: string, reps = 3): Promise<void> {
  if (!rt) return;
  const env = new Map([...l.g.symbols.keys()].map((s) => [s, x.shape[0]]));
  const inputs = new Map([[l.g.inputs[0].name, x]]);
  printProfile(title, await profileDispatches(l.g, l.prog, env, reps, inputs), reps);
}

// ---------- header ----------

const cpu = cpus();
console.log(`# tokr WGSL vs onnxruntime-node ${ort.env.versions.common} webgpu EP`);
console.log(`date: ${new Date().toISOString()}`);
console.log(
  `machine: ${cpu.length}x ${cpu[0]?.model ?? "?"}, Linux ${release()}, Node ${process.version}, ` +
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
);
console.log(
  `command: npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(" ")}` : ""}`,
);
console.log(`tokr adapter (npm webgpu Dawn): ${rt ? rt.ctx.description : noTokr}`);
console.log(
  "onnxruntime adapter: its bundled Dawn on the same Vulkan ICDs (lavapipe is the only device here)",
);
console.log(
  `timing: median of ${RUNS} runs after one warm-up each, tokr and onnxruntime alternating; every run ` +
    "includes the activation upload and the output readback on both sides",
);

// ---------- matmul ----------

if (want("matmul")) {
  console.log("\n## matmul f32, y[M,N] = x[M,K] @ w[K,N] (w a weight, x uploaded per run)");
  console.log(
    "| size | tokr (ms) | onnxruntime (ms) | tokr GFLOP/s | onnxruntime GFLOP/s | tokr/ort GFLOP/s | max |tokr-ort| | max |err| vs f64, 64 entries: tokr / ort |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  const notes: string[] = [];
  for (const n of [512, 1024]) {
    const w = randomF32(n * n, 1);
    const x = makeTensor("f32", [n, n], randomF32(n * n, 2));
    const file = join(scratch, `matmul_${n}.onnx`);
    writeFileSync(file, matmulModel(n, n, n, w));
    const sess = await ortSession(file);
    let l: Loaded | undefined;
    let why = noTokr;
    if (rt)
      try {
        const b = new GraphBuilder(`matmul_${n}`);
        const xi = b.input("x", "f32", [n, n]);
        const wc = b.constant(makeTensor("f32", [n, n], w), "w");
        l = await loadGraph(b.output(b.op("MatMul", [xi, wc])), `matmul ${n}`);
      } catch (e) {
        why = firstLine(e);
      }
    const theirs = await ortRun(sess, x);
    const ours = l ? await tokrRun(l, x) : undefined;
    const diff = ours ? maxAbsDiff(ours, theirs) : undefined;
    const spot = `${ours ? spotCheck(x.data as Float32Array, w, n, ours).toExponential(1) : "n/a"} / ${spotCheck(x.data as Float32Array, w, n, theirs).toExponential(1)}`;
    const t = await timeSideBySide(l && (() => tokrRun(l, x)), () => ortRun(sess, x));
    const gf = (ms: number | undefined): number | undefined =>
      ms === undefined ? undefined : (2 * n ** 3) / (ms * 1e6);
    const [g1, g2] = [gf(t.tokr), gf(t.ort)!];
    console.log(
      `| ${n}^3 | ${fmt(t.tokr)} | ${fmt(t.ort)} | ${fmt(g1, 2)} | ${fmt(g2, 2)} | ` +
        `${g1 === undefined ? "n/a" : `${(g1 / g2).toFixed(2)}x`} | ${diff === undefined ? "n/a" : diff.toExponential(1)} | ${spot} |`,
    );
    if (!l) console.log(`  tokr: not available (${why})`);
    else notes.push(l.tuned);
    await sess.release();
    l?.prog.destroy();
  }
  for (const n of notes) console.log(`  ${n}`);
  console.log("goal: matmul 1024^3 tokr >= 1.2x onnxruntime GFLOP/s");
}

// ---------- Fashion-MNIST ViT ----------

if (want("vit")) {
  console.log("\n## Fashion-MNIST ViT (197 tokens, 6 layers), real test images");
  const imgs = readIdxImages(join(fmnistDir, "t500-images-idx3-ubyte.gz"));
  const sess = await ortSession(fmnistOnnx);
  let l: Loaded | undefined;
  let why = noTokr;
  if (rt)
    try {
      l = await loadGraph(importStructured(fmnistOnnx), "fmnist ViT");
    } catch (e) {
      why = firstLine(e);
    }
  console.log("| batch | tokr (ms) | onnxruntime (ms) | tokr/ort | goal | max |logit diff| | same argmax |");
  console.log("|---|---|---|---|---|---|---|");
  const goals: Record<number, number> = { 1: 0.25, 32: 0.7 };
  const xs: Record<number, Tensor> = {};
  for (const batch of [1, 32]) {
    const x = fmnistBatch(imgs, 0, batch);
    xs[batch] = x;
    const theirs = await ortRun(sess, x);
    let check = "n/a | n/a";
    if (l) {
      const ours = await tokrRun(l, x);
      const shape = [batch, theirs.length / batch];
      const same = argmaxRows(makeTensor("f32", shape, ours)).filter(
        (c, i) => c === argmaxRows(makeTensor("f32", shape, theirs))[i],
      ).length;
      const d = maxAbsDiff(ours, theirs);
      if (!(d <= 1e-2))
        console.log(
          `  tokr batch ${batch}: WRONG RESULT (logits differ from onnxruntime's by ${d}); its time does not count`,
        );
      check = `${d.toExponential(1)} (max |logit| ${maxAbs(theirs).toFixed(1)}) | ${same}/${batch}`;
    }
    const t = await timeSideBySide(l && (() => tokrRun(l, x)), () => ortRun(sess, x));
    const r = t.tokr === undefined ? undefined : t.tokr / t.ort;
    const met = r === undefined ? "n/a" : r <= goals[batch] ? "met" : "MISSED";
    console.log(
      `| ${batch} | ${fmt(t.tokr)} | ${fmt(t.ort)} | ${ratio(t.tokr, t.ort)} | <= ${goals[batch]}x ${met} | ${check} |`,
    );
  }
  console.log(`  ${l ? l.tuned : `tokr: not available (${why})`}`);
  if (l && opts.profile)
    for (const batch of [1, 32]) await profile(l, xs[batch], `fmnist ViT batch ${batch}`);
  await sess.release();
  l?.prog.destroy();
}

// ---------- vit_b_16 ----------

if (want("vit_b_16")) {
  console.log("\n## torchvision vit_b_16 (197 tokens, 12 layers, random weights), batch 1");
  if (!existsSync(vitB16Onnx))
    console.log(
      `skipped: ${relative(root, vitB16Onnx)} is absent (make it with /usr/bin/python3 bench/export_vit_b_16.py)`,
    );
  else {
    const x = makeTensor("f32", [1, 3, 224, 224], randomF32(3 * 224 * 224, 3));
    const sess = await ortSession(vitB16Onnx);
    let l: Loaded | undefined;
    let why = noTokr;
    if (rt)
      try {
        l = await loadGraph(importStructured(vitB16Onnx), "vit_b_16");
      } catch (e) {
        why = firstLine(e);
      }
    const theirs = await ortRun(sess, x);
    const diff = l ? maxAbsDiff(await tokrRun(l, x), theirs) : undefined;
    if (diff !== undefined && !(diff <= 1e-2))
      console.log(
        `  tokr: WRONG RESULT (logits differ from onnxruntime's by ${diff}); its time does not count`,
      );
    const t = await timeSideBySide(l && (() => tokrRun(l, x)), () => ortRun(sess, x), 5);
    console.log("| batch | tokr (ms) | onnxruntime (ms) | tokr/ort | goal | max |logit diff| |");
    console.log("|---|---|---|---|---|---|");
    const met = t.tokr === undefined ? "n/a" : t.tokr <= t.ort ? "met" : "MISSED";
    console.log(
      `| 1 | ${fmt(t.tokr)} | ${fmt(t.ort)} | ${ratio(t.tokr, t.ort)} | <= 1.0x ${met} | ` +
        `${diff === undefined ? "n/a" : `${diff.toExponential(1)} (max |logit| ${maxAbs(theirs).toFixed(2)})`} |`,
    );
    console.log(`  ${l ? l.tuned : `tokr: not available (${why})`}`);
    if (l && opts.profile) await profile(l, x, "vit_b_16 batch 1");
    await sess.release();
    l?.prog.destroy();
  }
}

// ---------- compile time ----------

if (want("compile")) {
  console.log("\n## compile time: fmnist ViT ONNX -> WGSL artifact (median of 3)");
  const target = rt?.target ?? LAVAPIPE_TARGET;
  const phases = ["import", "onnx-structure", "buildProgram", "render WGSL", "write artifact", "total"];
  const times: number[][] = phases.map(() => []);
  let failed: string | undefined;
  for (let i = 0; i < 3 && !failed; i++) {
    const out = join(scratch, `artifact_${i}`);
    try {
      const t0 = performance.now();
      const g = importOnnxFile(fmnistOnnx, relative(root, fmnistOnnx));
      const t1 = performance.now();
      new PassManager("onnx-structure").run(g);
      const t2 = performance.now();
      const p = buildProgram(g, target);
      const t3 = performance.now();
      const cp = compileProgram(p, "wgsl", target, renderWgsl);
      const t4 = performance.now();
      for (const [name, bytes] of writeProgramArtifact(cp, relative(root, fmnistOnnx))) {
        mkdirSync(dirname(join(out, name)), { recursive: true });
        writeFileSync(join(out, name), bytes);
      }
      const t5 = performance.now();
      [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0].forEach((d, j) => times[j].push(d));
    } catch (e) {
      failed = firstLine(e);
    }
  }
  if (failed) console.log(`tokr: not available (${failed})`);
  else {
    console.log(`| ${phases.join(" | ")} |`);
    console.log(`|${phases.map(() => "---|").join("")}`);
    console.log(`| ${times.map((t) => median(t).toFixed(0)).join(" | ")} |`);
    const total = median(times[phases.length - 1]);
    console.log(`goal: < 2000 ms: ${total < 2000 ? "met" : "MISSED"} (ms above)`);
  }
}

rt?.destroy();
// Dawn keeps the event loop alive: exit explicitly, once stdout (a pipe writes asynchronously) is flushed.
await new Promise<void>((done) => process.stdout.write("", () => done()));
process.exit(0);
