/**
 * The Fashion-MNIST ViT end to end on WebGPU (Dawn + lavapipe in CI): the graph written as IR
 * from the safetensors, and the exported ONNX model after the onnx-structure pipeline, scheduled
 * with `buildProgram` for the device and run on a fixed batch of test images; the logits match
 * the CPU reference interpreter and the predictions are identical. Skips (with the reason) only
 * when there is no adapter; an op without a kernel fails with the scheduler's error.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { F16Error, toF16 } from "../../backends/wgsl/f16.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { main } from "../../compiler/cli/main.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { assertValid } from "../../compiler/verify.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { buildVit } from "../../examples/fmnist-vit/vit-ir.js";
import { PassManager } from "../../passes/manager.js";
import "../../passes/index.js";
import { compileProgram } from "../../runtime/artifact.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import {
  largestMatmul,
  type MatmulTuning,
  type TuningCache,
  tuneMatmul,
  tuningKey,
} from "../../runtime/webgpu/autotune.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
/** Images 0..7 of the bundled test subset, one batch of 8. */
const FIRST = 0;
const BATCH = 8;

function irVit(): Graph {
  return buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")));
}

function onnxVit(): Graph {
  const g = importOnnxFile(join(ex, "vit_fmnist_opset17.onnx"), "vit_fmnist_opset17.onnx");
  new PassManager("onnx-structure").run(g);
  return g;
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

/** Schedules `g` for the device, runs the batch, returns the logits. */
async function runOnGpu(rt: WebGpuRuntime, g: Graph, x: Tensor, f16 = false): Promise<Tensor> {
  const p = buildProgram(f16 ? toF16(g) : g, rt.target);
  if (f16) {
    // The conversion reached the device: weights and activations are stored as f16.
    const stored = p.buffers.filter((b) => b.kind === "constant" || b.kind === "intermediate");
    const half = stored.filter((b) => b.storage === "f16").length;
    assert.ok(half > stored.length / 2, `${half} of ${stored.length} buffers stored as f16`);
  }
  const program = await rt.load(compileProgram(p, "wgsl", rt.target, renderWgsl));
  try {
    const out = await program.run(new Map([[g.inputs[0].name, x]]));
    return out.get(g.outputs[0].name)!;
  } finally {
    program.destroy();
  }
}

let rt: WebGpuRuntime | string = "not started";
const pixels = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), FIRST, BATCH);

describe("Fashion-MNIST ViT on WebGPU", () => {
  before(async () => {
    rt = await gpuRuntime({ f16: true });
    if (typeof rt === "string") console.log(`# skipping the WGSL ViT: ${rt}`);
  });

  for (const [name, load] of [
    ["IR from safetensors (vit-ir.ts)", irVit],
    ["ONNX import + onnx-structure", onnxVit],
  ] as const)
    it(`${name}: logits within 1e-3 of the CPU reference, same predictions`, async (t) => {
      if (typeof rt === "string") return t.skip(rt);
      const g = load();
      const want = runGraph(g, new Map([[g.inputs[0].name, pixels]])).get(g.outputs[0].name)!;
      const got = await runOnGpu(rt, g, pixels);
      const diff = maxAbsDiff(got, want);
      console.log(`# ${name}: max |logit diff| vs CPU ${diff.toExponential(2)} (batch ${BATCH})`);
      assert.ok(diff <= 1e-3, `max |diff| ${diff}`);
      assert.deepEqual(argmaxRows(got), argmaxRows(want));
    });

  // f16 storage and arithmetic (11-bit significands) against the f32 CPU logits: errors of
  // ~5e-4 relative per rounding accumulate over 6 blocks; measured max |diff| ~3e-3 for logits
  // of magnitude up to ~10, so 2e-2 leaves room for other f16 adapters.
  for (const [name, load] of [
    ["IR from safetensors (vit-ir.ts)", irVit],
    ["ONNX import + onnx-structure", onnxVit],
  ] as const)
    it(`${name} in f16: logits within 2e-2 of the f32 CPU reference, same predictions`, async (t) => {
      if (typeof rt === "string") return t.skip(rt);
      if (!rt.target.f16) return t.skip(`the adapter (${rt.ctx.description}) lacks shader-f16`);
      const g = load();
      const want = runGraph(g, new Map([[g.inputs[0].name, pixels]])).get(g.outputs[0].name)!;
      const got = await runOnGpu(rt, g, pixels, true);
      assert.equal(got.dtype, "f32");
      const diff = maxAbsDiff(got, want);
      console.log(`# ${name} f16: max |logit diff| vs CPU f32 ${diff.toExponential(2)} (batch ${BATCH})`);
      assert.ok(diff > 0 && diff <= 2e-2, `max |diff| ${diff}`);
      assert.deepEqual(argmaxRows(got), argmaxRows(want));
    });
});

describe("toF16 (the --f16 graph conversion)", () => {
  it("keeps the signature, converts weights, and runs on the CPU reference close to f32", () => {
    const g = irVit();
    const h = toF16(g);
    assertValid(h);
    assert.deepEqual(
      h.inputs.map((v) => [v.name, v.type.dtype]),
      g.inputs.map((v) => [v.name, v.type.dtype]),
    );
    assert.deepEqual(
      h.outputs.map((v) => [v.name, v.type.dtype]),
      g.outputs.map((v) => [v.name, v.type.dtype]),
    );
    for (const [v, c] of h.constants) if (c.data) assert.notEqual(c.data.dtype, "f32", `constant %${v.name}`);
    const a = runGraph(g, new Map([[g.inputs[0].name, pixels]])).get(g.outputs[0].name)!;
    const b = runGraph(h, new Map([[h.inputs[0].name, pixels]])).get(h.outputs[0].name)!;
    const diff = maxAbsDiff(a, b);
    assert.ok(diff > 0 && diff < 2e-2, `CPU f16 vs f32: ${diff}`);
    assert.deepEqual(argmaxRows(a), argmaxRows(b));
  });

  it("rewrites f32 dtype attributes and rejects constants without data", () => {
    const b = new GraphBuilder("t");
    const x = b.input("x", "i32", [3]);
    const y = b.op("Cast", [x], { to: "f32" });
    const g = b.output(b.op("Add", [y, b.const("f32", [3], [0.1, 0.2, 0.3])]));
    const h = toF16(g);
    assert.equal(h.nodes[0].attrs.to, "f16");
    assert.equal(h.outputs[0].type.dtype, "f32");
    const out = runGraph(h, new Map([["x", makeTensor("i32", [3], [1, 2, 3])]])).get(h.outputs[0].name)!;
    // 1 + f16(0.1) = 1.0996..., rounded to f16 (1.0996), then widened.
    assert.deepEqual([...out.data], [1.099609375, 2.19921875, 3.30078125]);
    const ref = new GraphBuilder("ref");
    const v = ref.input("v", "f32", [2]);
    const c = ref.g.addConstant(v.type, "weight", undefined, "weight.key");
    const rg = ref.output(ref.op("Add", [v, c]));
    assert.throws(() => toF16(rg), F16Error);
    assert.throws(() => toF16(rg), /constant %weight has no data .*bind its weights/);
  });
});

function memoryCache(): TuningCache & { entries: Map<string, MatmulTuning> } {
  const entries = new Map<string, MatmulTuning>();
  return { entries, get: (k) => entries.get(k), set: (k, v) => void entries.set(k, v) };
}

describe("matmul autotune and the wgsl compile options", () => {
  it("largestMatmul picks the ViT matmul with the most flops (symbols at 1)", () => {
    const p = largestMatmul(irVit())!;
    assert.ok(p);
    const flops = (a: readonly number[], b: readonly number[]): number =>
      2 * a.reduce((x, y) => x * y, 1) * b[b.length - 1];
    const shapes = p.types.map((t) => t!.dims as number[]);
    assert.equal(p.flops, flops(shapes[0], shapes[1]));
    assert.equal(shapes[0][0], 1, "batch bound to 1");
  });

  it("times both matmul styles on the device, picks the faster, caches per adapter", async (t) => {
    if (typeof rt === "string") return t.skip(rt);
    const b = new GraphBuilder("mm");
    const g = b.output(b.op("MatMul", [b.input("a", "f32", [64, 128]), b.input("b", "f32", [128, 96])]));
    const cache = memoryCache();
    const first = (await tuneMatmul(rt, g, cache))!;
    console.log(`# 64x128x96 on ${first.adapter}: ${JSON.stringify(first.ms)} -> ${first.choice}`);
    assert.equal(first.cached, false);
    assert.ok(first.ms.register > 0 && first.ms.tiled > 0);
    assert.equal(first.choice, first.ms.register <= first.ms.tiled ? "register" : "tiled");
    assert.deepEqual(
      [...cache.entries.keys()],
      [tuningKey(rt.ctx.description, largestMatmul(g)!, rt.target.f16)],
    );
    assert.ok(cache.entries.keys().next().value!.startsWith(rt.ctx.description));
    const again = (await tuneMatmul(rt, g, cache))!;
    assert.equal(again.cached, true);
    assert.equal(again.choice, first.choice);
  });

  it("tokr compile --target wgsl --f16 records the (cached) choice; the artifact runs close to f32", async (t) => {
    if (typeof rt === "string") return t.skip(rt);
    if (!rt.target.f16) return t.skip(`the adapter (${rt.ctx.description}) lacks shader-f16`);
    const dir = mkdtempSync(join(tmpdir(), "tokr-wgsl-vit-"));
    const saved = process.env.TOKR_CACHE_DIR;
    process.env.TOKR_CACHE_DIR = join(dir, "cache");
    try {
      const onnx = join(ex, "vit_fmnist_opset17.onnx");
      // Seed the cache with the style the adapter heuristic would not pick: the cache decides.
      const p = largestMatmul(toF16(importOnnxFile(onnx, "vit.onnx")))!;
      const choice = rt.target.matmul === "register" ? "tiled" : "register";
      const seeded: MatmulTuning = {
        adapter: rt.ctx.description,
        node: "seeded",
        op: p.node.op,
        shapes: [],
        flops: p.flops,
        ms: { register: 1, tiled: 1 },
        choice,
        cached: false,
      };
      mkdirSync(join(dir, "cache"));
      const key = tuningKey(rt.ctx.description, p, true);
      writeFileSync(join(dir, "cache", "wgsl-autotune.json"), JSON.stringify({ [key]: seeded }));
      // Two images keep this CLI round trip short (the batch-8 checks are above).
      const two = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), FIRST, 2);
      writeSafetensorsFile(join(dir, "in.safetensors"), new Map([["pixels", two]]));
      const log: string[] = [];
      const io = {
        stdout: (s: string) => void log.push(s),
        stderr: (s: string) => void log.push(s),
        cwd: dir,
      };
      assert.equal(
        await main(["compile", onnx, "--target", "wgsl", "--f16", "-o", "art"], io),
        0,
        log.join(""),
      );
      assert.match(log.join(""), new RegExp(`-> ${choice} \\(cached\\)`));
      const m = JSON.parse(readFileSync(join(dir, "art", "manifest.json"), "utf8")) as {
        program: { target: { matmul: string; f16: boolean } };
        autotune: { matmul: { choice: string } };
      };
      assert.equal(m.program.target.matmul, choice);
      assert.equal(m.program.target.f16, true);
      assert.equal(m.autotune.matmul.choice, choice);
      const run = ["run", "art", "--inputs", "in.safetensors", "-o", "gpu.safetensors"];
      assert.equal(await main(run, io), 0, log.join(""));
      const g = importOnnxFile(onnx, "vit.onnx");
      const got = readSafetensorsFile(join(dir, "gpu.safetensors")).get(g.outputs[0].name)!;
      const want = runGraph(g, new Map([["pixels", two]])).get(g.outputs[0].name)!;
      assert.ok(maxAbsDiff(got, want) <= 2e-2);
      assert.deepEqual(argmaxRows(got), argmaxRows(want));
      // --portable: the default limits, no tuning.
      assert.equal(await main(["compile", onnx, "--target", "wgsl", "--portable", "-o", "port"], io), 0);
      const mp = JSON.parse(readFileSync(join(dir, "port", "manifest.json"), "utf8")) as {
        program: { target: unknown };
        autotune?: unknown;
      };
      assert.deepEqual(mp.program.target, DEFAULT_TARGET);
      assert.equal(mp.autotune, undefined);
    } finally {
      if (saved === undefined) delete process.env.TOKR_CACHE_DIR;
      else process.env.TOKR_CACHE_DIR = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
