import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import { assertValid } from "../../compiler/verify.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { buildVit, FMNIST_VIT } from "../../examples/fmnist-vit/vit-ir.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { assertClose, repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
const weights = readSafetensorsFile(join(ex, "vit_fmnist.safetensors"));
const vit = (layers: number): Graph => {
  const g = buildVit(weights, { ...FMNIST_VIT, layers });
  assertValid(g);
  return g;
};

/** The scheduled program on the KIR interpreter against runGraph for images [0, n). */
function checkOnKir(g: Graph, n: number, target: Target = DEFAULT_TARGET): void {
  const p = buildProgram(g, target);
  const feeds = new Map([
    ["pixels", fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, n)],
  ]);
  const want = runGraph(g, feeds).get("logits")!;
  const got = runProgramOnKir(p, feeds, { target }).get("logits")!;
  assertClose(got, want, 1e-3, "logits");
  assert.deepEqual(argmaxRows(got), argmaxRows(want), "top-1");
}

test("Fashion-MNIST ViT schedule: blocks share kernels, shape arithmetic is not dispatched", () => {
  const one = buildProgram(vit(1), DEFAULT_TARGET);
  const g = vit(6);
  const six = buildProgram(g, DEFAULT_TARGET);
  // 139 nodes -> 20 kernels, 105 steps when written (see the report in docs/backends.md).
  assert.equal(six.kernels.length, one.kernels.length, "blocks 1..5 reuse block 0's kernels");
  const perBlock = (six.steps.length - one.steps.length) / 5;
  assert.ok(Number.isInteger(perBlock) && perBlock > 0, `${six.steps.length} vs ${one.steps.length} steps`);
  assert.ok(six.steps.length < g.nodes.length, `${six.steps.length} steps for ${g.nodes.length} nodes`);
  const dispatched = new Set(six.steps.flatMap((s) => s.nodes));
  const shapeNodes = g.nodes.filter((n) => n.op === "Shape" || n.outputs[0].type.dtype === "i64");
  assert.ok(shapeNodes.length > 0);
  for (const n of shapeNodes) assert.ok(!dispatched.has(n.outputs[0].name), `${n.op} %${n.outputs[0].name}`);
  // Fused: each block's first MLP MatMul + bias Add + Gelu is one step (a matmul epilogue).
  const gelu = g.nodes.find((n) => n.op === "Gelu")!;
  const step = six.steps.find((s) => s.nodes.includes(gelu.outputs[0].name))!;
  assert.deepEqual(
    step.nodes.map((name) => g.nodes.find((n) => n.outputs[0].name === name)!.op),
    ["MatMul", "Add", "Gelu"],
  );
});

// The whole 6-block model takes 80-300 s on the KIR interpreter (the attention kernel dominates),
// so the default run checks a 1-block truncation of the real model (real weights of block 0).
test("1-block Fashion-MNIST ViT: scheduled program on the KIR interpreter matches runGraph (1e-3)", () => {
  checkOnKir(vit(1), 1);
});

// Warp reductions lowered for 32 lanes (LayerNorm's per-warp partials) are wrong on 8-lane
// subgroups: runProgramOnKir must take the lane count from the program's target.
test("1-block Fashion-MNIST ViT for a 32-lane target with workgroup tiles matches runGraph on KIR", () => {
  const t32: Target = {
    ...DEFAULT_TARGET,
    subgroups: true,
    subgroupSize: 32,
    maxWorkgroupInvocations: 1024,
    maxWorkgroupStorageBytes: 48 * 1024,
    matmul: "tiled",
  };
  checkOnKir(vit(1), 1, t32);
});

test(
  "6-block Fashion-MNIST ViT on the KIR interpreter matches runGraph (1e-3)",
  { skip: process.env.TOKR_KIR_FULL_VIT ? false : "slow (over a minute); set TOKR_KIR_FULL_VIT=1" },
  () => {
    checkOnKir(vit(6), 1);
  },
);

// GPU memory is not zeroed and the WebGPU runtime reuses buffers: a step that reads what no step
// wrote must not pass the KIR check by reading zeros.
test("runProgramOnKir: a step reading a buffer no step wrote sees poison (NaN), not zeros", () => {
  const b = new GraphBuilder("two");
  const x = b.input("x", "f32", [4]);
  const y = b.op("MatMul", [
    b.op("Exp", [x]),
    b.constant(makeTensor("f32", [4, 2], new Float32Array(8).fill(1)), "w"),
  ]);
  const g = b.output(y);
  const p = buildProgram(g, DEFAULT_TARGET);
  const feeds = new Map([["x", makeTensor("f32", [4], Float32Array.of(0, 1, 2, 3))]]);
  const [out] = [...runProgramOnKir(p, feeds).values()];
  assertClose(out, runGraph(g, feeds).values().next().value!, 1e-5, "whole program");
  assert.ok(p.steps.length >= 2, `${p.steps.length} steps`);
  const broken = { ...p, steps: p.steps.slice(1) };
  const [bad] = [...runProgramOnKir(broken, feeds).values()];
  assert.ok(Array.from(bad.data).every(Number.isNaN), `got ${Array.from(bad.data).join(", ")}`);
});
