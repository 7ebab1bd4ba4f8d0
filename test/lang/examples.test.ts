import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { printGraph } from "../../compiler/ir/text/printer.js";
import { attachPolicyFile, checkTokr, compileTokr } from "../../compiler/lang/check.js";
import { assertClose, repoRoot } from "../util/helpers.js";

/**
 * The example models in examples/: each checks cleanly, takes its policy, lowers to the golden IR
 * and runs on the CPU interpreter at a small size.
 * Regenerate goldens: `UPDATE_GOLDEN=1 node --import tsx --test test/lang/examples.test.ts`.
 */
const read = (p: string): string => readFileSync(join(repoRoot, p), "utf8");

/** Checks `examples/NAME.tokr` with no diagnostics and attaches `examples/NAME.policy.tokr`. */
function withPolicy(name: string): Graph {
  const file = `examples/${name}.tokr`;
  const r = checkTokr(read(file), file);
  assert.deepEqual(r.diagnostics, []);
  const pfile = `examples/${name}.policy.tokr`;
  attachPolicyFile(r.graph!, read(pfile), pfile);
  return r.graph!;
}

/** Compares the printed graph (constants over 16 elements elided) with test/lang/golden/NAME.ir. */
function checkGolden(name: string, g: Graph): void {
  const text = printGraph(g, { elideConstantsOver: 16 });
  const golden = join(repoRoot, "test/lang/golden", `${name}.ir`);
  if (process.env.UPDATE_GOLDEN) writeFileSync(golden, text);
  assert.equal(text, readFileSync(golden, "utf8"));
}

/** Policy params of `g` as [kind, sites], and the scopes of the nodes carrying each policy. */
function policySummary(g: Graph): { kind: unknown; sites: unknown; nodeScopes: (string | undefined)[] }[] {
  return [...g.policies.values()].map((p) => ({
    kind: p.params.kind,
    sites: p.params.sites,
    nodeScopes: g.nodes.filter((n) => n.policy === p.name).map((n) => n.scope),
  }));
}

/** The example compiled with some constants replaced (e.g. a smaller image), without its policy. */
function small(name: string, subst: [string, string][]): Graph {
  let src = read(`examples/${name}.tokr`);
  for (const [from, to] of subst) {
    assert.ok(src.includes(from), `examples/${name}.tokr has '${from}'`);
    src = src.replace(from, to);
  }
  return compileTokr(src, `examples/${name}.tokr`);
}

/** Deterministic pseudo-random floats in [-1, 1). */
function floats(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function run(g: Graph, inputs: Record<string, Tensor>): Map<string, Tensor> {
  return runGraph(g, new Map(Object.entries(inputs)));
}

function out(m: Map<string, Tensor>, name: string): Tensor {
  const t = m.get(name);
  assert.ok(t, `output ${name}`);
  return t;
}

function assertFinite(t: Tensor, what: string): void {
  for (let i = 0; i < t.data.length; i++) assert.ok(Number.isFinite(t.data[i]), `${what}[${i}] is finite`);
}

/** Row `r` (of `rows` equal rows along axis 0) of `t`'s flat data. */
function row(t: Tensor, r: number, rows: number): number[] {
  const n = t.data.length / rows;
  return Array.from(t.data.slice(r * n, (r + 1) * n), Number);
}

const sites = (n: number, suffix: string): string[] =>
  Array.from({ length: n }, (_, i) => `blocks.${i}.${suffix}`);

test("vit-tiny: checks, ToMe merge on every block, golden IR (197 tokens of 192)", () => {
  const g = withPolicy("vit-tiny");
  assert.deepEqual(policySummary(g), [
    { kind: "merge", sites: sites(12, "layer"), nodeScopes: sites(12, "layer") },
  ]);
  assert.equal(printGraph(g).includes("f32[B, 197, 192]"), true);
  checkGolden("vit-tiny", g);
});

test("vit-tiny at 32x32 runs: 4 patches + CLS, finite, and batch rows are independent", () => {
  const g = small("vit-tiny", [["img = 224", "img = 32"]]);
  const a = floats(3 * 32 * 32, 1);
  const b = floats(3 * 32 * 32, 2);
  const both = run(g, { image: makeTensor("f32", [2, 3, 32, 32], [...a, ...b]) });
  const y = out(both, "y");
  assert.deepEqual([...y.shape], [2, 5, 192]);
  assert.deepEqual([...out(both, "cls").shape], [2, 192]);
  assertFinite(y, "y");
  // Nothing mixes batch rows: image b alone gives row 1 of the batched run.
  const yb = out(run(g, { image: makeTensor("f32", [1, 3, 32, 32], b) }), "y");
  assertClose(yb, makeTensor("f32", [1, 5, 192], row(y, 1, 2)), 1e-5, "row 1");
});

test("bert: checks, prune on blocks 1..3, golden IR", () => {
  const g = withPolicy("bert");
  assert.deepEqual(policySummary(g), [
    // Post-norm: the first node of each layer scope is the attention's QKV MatMul.
    { kind: "prune", sites: sites(4, "layer").slice(1), nodeScopes: sites(4, "layer.attn").slice(1) },
  ]);
  checkGolden("bert", g);
});

test("bert runs: shapes, finite, and masked positions do not influence unmasked ones", () => {
  const g = compileTokr(read("examples/bert.tokr"), "examples/bert.tokr");
  const N = 6;
  const positions = makeTensor("i64", [1, N], [0, 1, 2, 3, 4, 5]);
  // The last two positions are padding.
  const mask = makeTensor("bool", [1, N], [1, 1, 1, 1, 0, 0]);
  const go = (ids: number[]): Tensor =>
    out(run(g, { ids: makeTensor("i64", [1, N], ids), positions, mask }), "y");
  const y1 = go([101, 7, 42, 999, 0, 0]);
  const y2 = go([101, 7, 42, 999, 555, 3]);
  assert.deepEqual([...y1.shape], [1, N, 128]);
  assertFinite(y1, "y");
  // Masked keys get probability exactly 0 and the rest is per token, so rows 0..3 are identical.
  const unmasked = 4 * 128;
  assert.deepEqual([...y1.data.slice(0, unmasked)], [...y2.data.slice(0, unmasked)]);
  // The masked rows themselves do change (their own embeddings differ).
  assert.notDeepEqual([...y1.data.slice(unmasked)], [...y2.data.slice(unmasked)]);
});

test("gpt: checks, kv policy on every attention node, golden IR", () => {
  const g = withPolicy("gpt");
  const attnNodes = g.nodes.filter((n) => n.op === "attention");
  assert.equal(attnNodes.length, 4);
  assert.deepEqual(policySummary(g), [
    { kind: "kv", sites: sites(4, "layer.attn"), nodeScopes: sites(4, "layer.attn") },
  ]);
  assert.ok(attnNodes.every((n) => n.policy === "kv.0"));
  checkGolden("gpt", g);
});

test("gpt runs: logits shape, finite, and causality (a later token never changes earlier logits)", () => {
  const g = compileTokr(read("examples/gpt.tokr"), "examples/gpt.tokr");
  const N = 5;
  const positions = makeTensor("i64", [1, N], [0, 1, 2, 3, 4]);
  const go = (ids: number[]): Tensor =>
    out(run(g, { ids: makeTensor("i64", [1, N], ids), positions }), "logits");
  const l1 = go([1, 2, 3, 4, 5]);
  const l2 = go([1, 2, 3, 900, 5]);
  assert.deepEqual([...l1.shape], [1, N, 1000]);
  assertFinite(l1, "logits");
  // Token 3 changed: positions 0..2 are bit-identical, 3 and 4 differ.
  const V = 1000;
  assert.deepEqual([...l1.data.slice(0, 3 * V)], [...l2.data.slice(0, 3 * V)]);
  assert.notDeepEqual([...l1.data.slice(3 * V, 4 * V)], [...l2.data.slice(3 * V, 4 * V)]);
  assert.notDeepEqual([...l1.data.slice(4 * V)], [...l2.data.slice(4 * V)]);
});

test("whisper: checks, temporal pool at block 2, golden IR (3000 frames -> 1500 tokens)", () => {
  const g = withPolicy("whisper");
  assert.deepEqual(policySummary(g), [
    { kind: "pool", sites: ["blocks.2.layer"], nodeScopes: ["blocks.2.layer"] },
  ]);
  assert.equal(printGraph(g).includes("f32[B, 1500, 384]"), true);
  checkGolden("whisper", g);
});

test("whisper at 16 frames runs: 8 tokens, finite, and each token row is layer-normalized", () => {
  const g = small("whisper", [["ctx = 1500", "ctx = 8"]]);
  const y = out(run(g, { mel: makeTensor("f32", [1, 80, 16], floats(80 * 16, 3)) }), "y");
  assert.deepEqual([...y.shape], [1, 8, 384]);
  assertFinite(y, "y");
  // The final LayerNorm has scale 1 and bias 0: each row has mean 0 and (biased) variance 1.
  for (let r = 0; r < 8; r++) {
    const v = row(y, r, 8);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length;
    assert.ok(Math.abs(mean) < 1e-4, `row ${r} mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 1e-3, `row ${r} variance ${variance}`);
  }
});
