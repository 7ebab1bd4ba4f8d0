import { ceildiv, mul, sub, sym } from "../../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { pruneReference, type PruneOptions } from "../../../compiler/ops/tokens.js";
import { type OpCase, randTensor } from "./types.js";

const N = sym("N");
const r = (shape: number[], seed: number, lo = -1, hi = 1): Tensor => randTensor("f32", shape, seed, lo, hi);
const f = (shape: number[], v: number[]): Tensor => makeTensor("f32", shape, v);
const bool = (shape: number[], v: number[]): Tensor => makeTensor("bool", shape, v);

/** The adaptive token count K0 the reference picks (cases bind the data-dependent symbol to it). */
function adaptiveK(x: Tensor, s: Tensor, protect: Tensor | null, o: Omit<PruneOptions, "count">): number {
  return pruneReference(x, s, protect, { ...o, count: true })[0].shape[1];
}

/** Scores [2, 6] with ties (0.5 three times, 0.2 twice) and a NaN (ranks lowest). */
const tied = f([2, 6], [0.5, 0.2, 0.5, NaN, 0.2, 0.5, 0.1, 0.9, 0.9, 0.9, -1, 0.9]);
const x26 = r([2, 6, 3], 1);
const xA = r([2, 7, 2], 5);
const sA = f([2, 7], [0.9, 0.1, 0.5, 0.3, 0.7, 0.05, 0.6, 0.2, 0.25, 0.1, 0.8, 0.2, NaN, 0.4]);
const xF = r([1, 6, 3], 9);
const sF = f([1, 6], [0.4, 0.1, 0.3, 0.2, 0.9, 0.5]);

const prune: OpCase[] = [
  {
    name: "tokens.prune/static-protect-first",
    op: "tokens.prune",
    attrs: { keep: 3, protect_first: 1 },
    numOutputs: 2,
    inputs: [x26, r([2, 6], 2)],
  },
  {
    name: "tokens.prune/ties-and-nan",
    op: "tokens.prune",
    attrs: { keep: 4 },
    numOutputs: 2,
    inputs: [x26, tied],
  },
  {
    name: "tokens.prune/protect-input-per-example",
    op: "tokens.prune",
    attrs: { keep: 3 },
    numOutputs: 2,
    inputs: [x26, tied, bool([2, 6], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1])],
  },
  {
    name: "tokens.prune/protect-input-shared-fuse",
    op: "tokens.prune",
    attrs: { keep: 2, fuse: true, protect_first: 1 },
    numOutputs: 2,
    inputs: [x26, r([2, 6], 3, 0, 1), bool([6], [0, 0, 0, 0, 1, 0])],
  },
  {
    name: "tokens.prune/fuse-zero-scores-mean",
    op: "tokens.prune",
    attrs: { keep: 2, fuse: true },
    numOutputs: 2,
    inputs: [xF, f([1, 6], [0, 0, 1, 0, 0, 2])],
  },
  {
    name: "tokens.prune/symbolic-keep",
    op: "tokens.prune",
    attrs: { keep: ceildiv(mul(7, N), 10), protect_first: 1 },
    numOutputs: 2,
    inputs: [r([2, 9, 3], 4), r([2, 9], 6)],
    types: [tensorType("f32", [2, N, 3]), tensorType("f32", [2, N])],
    env: { N: 9 },
  },
  {
    name: "tokens.prune/adaptive-count",
    op: "tokens.prune",
    attrs: { threshold: 0.3, capacity: 4, protect_first: 1 },
    numOutputs: 3,
    inputs: [xA, sA],
    env: { K0: adaptiveK(xA, sA, null, { threshold: 0.3, capacity: 4, fuse: false, protectFirst: 1 }) },
  },
  {
    name: "tokens.prune/adaptive-fuse-symbolic",
    op: "tokens.prune",
    attrs: { threshold: 0.35, capacity: 5, fuse: true },
    numOutputs: 3,
    inputs: [xA, sA],
    types: [tensorType("f32", [2, N, 2]), tensorType("f32", [2, N])],
    env: { N: 7, K0: adaptiveK(xA, sA, null, { threshold: 0.35, capacity: 5, fuse: true, protectFirst: 0 }) },
  },
  {
    name: "tokens.prune/adaptive-tight-capacity",
    op: "tokens.prune",
    attrs: { threshold: 0, capacity: 2 },
    numOutputs: 3,
    inputs: [xF, sF],
    env: { K0: adaptiveK(xF, sF, null, { threshold: 0, capacity: 2, fuse: false, protectFirst: 0 }) },
  },
];

// Edge paths of the three-launch prune: nothing kept, nothing dropped, counts that differ per example.
const xC = r([3, 11, 2], 48);
const sC = f(
  [3, 11],
  [
    [0.9, 0.1, 0.2, 0.1, 0, 0.3, 0.2, 0.1, 0.25, 0.1, 0.05],
    [0.1, 0.8, 0.7, 0.9, 0.6, 0.75, 0.8, NaN, 0.65, 0.9, 0.7],
    [0.5, 0.5, 0.1, 0.5, 0.4, 0.5, 0.2, 0.45, 0.5, 0.1, 0.49],
  ].flat(),
);
prune.push(
  {
    name: "tokens.prune/keep-zero-fuse-all",
    op: "tokens.prune",
    attrs: { keep: 0, fuse: true },
    numOutputs: 2,
    inputs: [r([2, 5, 3], 49), r([2, 5], 50, 0, 1)],
  },
  {
    name: "tokens.prune/keep-all-fuse-nothing",
    op: "tokens.prune",
    attrs: { keep: 5, fuse: true, protect_first: 1 },
    numOutputs: 2,
    inputs: [r([2, 5, 3], 51), r([2, 5], 52)],
  },
  {
    name: "tokens.prune/adaptive-counts-per-example",
    op: "tokens.prune",
    attrs: { threshold: 0.5, capacity: 6, protect_first: 1 },
    numOutputs: 3,
    inputs: [xC, sC],
    env: { K0: adaptiveK(xC, sC, null, { threshold: 0.5, capacity: 6, fuse: false, protectFirst: 1 }) },
  },
);

/** Metric [1, 8, 2] with exact ties (norms exact in f32 and f64) and a zero row. */
const tiedMetric = f([1, 8, 2], [1, 0, 1, 0, 1, 0, 0, 0, 3, 4, 6, 8, 1, 0, 2, 0]);

/**
 * Metric [B, T, 2] whose rows come from a palette with exact norms (0, 1, 2, 5, 10): every cosine
 * is one rounding of a small rational in f32 and f64 alike, so ties (and fan-in of several A
 * tokens into one B token) are the same on every backend.
 */
function paletteMetric(b: number, t: number, seed: number): Tensor {
  const palette = [
    [1, 0],
    [0, 1],
    [3, 4],
    [4, 3],
    [0, 0],
    [-1, 0],
    [0, 2],
    [6, 8],
  ];
  const pick = randTensor("f32", [b * t], seed, 0, palette.length).data;
  return f([b, t, 2], Array.from(pick, (u) => palette[Math.floor(u)]).flat());
}

const merge: OpCase[] = [
  {
    name: "tokens.merge/bipartite-all-outputs",
    op: "tokens.merge",
    attrs: { r: 2 },
    numOutputs: 3,
    inputs: [r([2, 7, 4], 10), r([2, 7, 3], 11)],
  },
  {
    name: "tokens.merge/sizes-max-r",
    op: "tokens.merge",
    attrs: { r: 3, protect_first: 1 },
    numOutputs: 3,
    inputs: [r([2, 7, 3], 12), r([2, 7, 3], 13), r([2, 7, 1], 14, 0.5, 3)],
  },
  {
    name: "tokens.merge/ties-zero-norm-no-protect",
    op: "tokens.merge",
    attrs: { r: 3, protect_first: 0 },
    numOutputs: 3,
    inputs: [r([1, 8, 2], 15), tiedMetric],
  },
  {
    name: "tokens.merge/identity-r0",
    op: "tokens.merge",
    attrs: { r: 0 },
    numOutputs: 3,
    inputs: [r([1, 5, 2], 16), r([1, 5, 2], 17)],
  },
  {
    name: "tokens.merge/symbolic-tokens",
    op: "tokens.merge",
    attrs: { r: 2 },
    numOutputs: 3,
    inputs: [r([1, 9, 3], 18), r([1, 9, 2], 19)],
    types: [tensorType("f32", [1, N, 3]), tensorType("f32", [1, N, 2])],
    env: { N: 9 },
  },
  {
    name: "tokens.merge/multi-criteria-importance-nan",
    op: "tokens.merge",
    attrs: { r: 2, method: "multi_criteria", w_info: 0.5 },
    numOutputs: 3,
    inputs: [
      r([2, 7, 3], 20),
      r([2, 7, 2], 21),
      r([2, 7, 1], 22, 1, 4),
      f([2, 7], [9, 0.1, 0.5, NaN, 0.2, 0.9, 0.4, 9, 1, 1, 1, 1, 1, 1]),
    ],
  },
  {
    name: "tokens.merge/multi-criteria-no-importance",
    op: "tokens.merge",
    attrs: { r: 2, method: "multi_criteria" },
    numOutputs: 3,
    inputs: [r([1, 7, 3], 23), r([1, 7, 2], 24)],
  },
];

// The match kernel blocks 4 A x 4 B tokens: these have partial blocks in both sets.
merge.push(
  {
    name: "tokens.merge/blocked-tails-fan-in",
    op: "tokens.merge",
    attrs: { r: 7, protect_first: 1 },
    numOutputs: 3,
    // U = 19: |A| = 10, |B| = 9.
    inputs: [r([2, 20, 3], 25), paletteMetric(2, 20, 26), r([2, 20, 1], 27, 0.5, 3)],
  },
  {
    name: "tokens.merge/blocked-max-r-no-protect",
    op: "tokens.merge",
    attrs: { r: 9, protect_first: 0 },
    numOutputs: 3,
    inputs: [r([1, 18, 2], 28), paletteMetric(1, 18, 29)],
  },
  {
    name: "tokens.merge/blocked-identity-r0",
    op: "tokens.merge",
    attrs: { r: 0, protect_first: 2 },
    numOutputs: 3,
    inputs: [r([2, 13, 2], 34), r([2, 13, 3], 35)],
  },
  {
    name: "tokens.merge/blocked-symbolic-odd",
    op: "tokens.merge",
    attrs: { r: 5 },
    numOutputs: 3,
    // N = 14, U = 13: |A| = 7, |B| = 6.
    inputs: [r([2, 14, 3], 36), paletteMetric(2, 14, 37)],
    types: [tensorType("f32", [2, N, 3]), tensorType("f32", [2, N, 2])],
    env: { N: 14 },
  },
  {
    name: "tokens.merge/blocked-multi-criteria",
    op: "tokens.merge",
    attrs: { r: 4, method: "multi_criteria" },
    numOutputs: 3,
    inputs: [r([2, 12, 2], 38), paletteMetric(2, 12, 39), r([2, 12, 1], 46, 1, 3), r([2, 12], 47)],
  },
  {
    // The plan ranks 32 lanes x 4 A tokens per pass: |A| = 130 needs a second, partial pass; the
    // palette metric ties many best edges around the cut.
    name: "tokens.merge/plan-rank-passes-ties",
    op: "tokens.merge",
    attrs: { r: 100, protect_first: 1 },
    numOutputs: 3,
    inputs: [r([2, 260, 2], 48), paletteMetric(2, 260, 49), r([2, 260, 1], 50, 0.5, 3)],
  },
);

const score: OpCase[] = [
  {
    name: "tokens.score/transition-zero-rows",
    op: "tokens.score",
    attrs: { method: "transition", w_mag: 0.5, w_dir: 2 },
    inputs: [f([1, 3, 2], [0, 0, 1, 2, 0, 0]), f([1, 3, 2], [0, 0, -2, 1, 3, 4])],
  },
  {
    name: "tokens.score/transition-symbolic",
    op: "tokens.score",
    attrs: { method: "transition" },
    inputs: [r([2, 5, 4], 30), r([2, 5, 4], 31)],
    types: [tensorType("f32", [2, N, 4]), tensorType("f32", [2, N, 4])],
    env: { N: 5 },
  },
  {
    name: "tokens.score/key-norm-rank3",
    op: "tokens.score",
    attrs: { method: "key_norm" },
    inputs: [r([2, 4, 3], 32)],
  },
  {
    name: "tokens.score/key-norm-heads",
    op: "tokens.score",
    attrs: { method: "key_norm" },
    inputs: [r([2, 3, 4, 5], 33)],
  },
];

const pool: OpCase[] = [
  {
    name: "tokens.pool/stride-ragged-sizes",
    op: "tokens.pool",
    attrs: { mode: "stride", size: 3, protect_first: 1 },
    numOutputs: 2,
    inputs: [r([2, 8, 3], 40), f([2, 8, 1], [1, 0, 0, 0, 2, 1, 1, 3, 1, 1, 2, 3, 0, 0, 5, 1])],
  },
  {
    name: "tokens.pool/spatial-grid-edges",
    op: "tokens.pool",
    attrs: { mode: "spatial", size: 2, protect_first: 1, grid: [3, 5] },
    numOutputs: 2,
    inputs: [r([1, 16, 2], 41)],
  },
  {
    name: "tokens.pool/spatial-square",
    op: "tokens.pool",
    attrs: { mode: "spatial", size: 2 },
    numOutputs: 2,
    inputs: [r([1, 16, 3], 42)],
  },
  {
    name: "tokens.pool/temporal-sizes",
    op: "tokens.pool",
    attrs: { mode: "temporal", size: 2, frames: 3, protect_first: 1 },
    numOutputs: 2,
    inputs: [r([1, 7, 2], 43), r([1, 7, 1], 44, 0.5, 2)],
  },
  {
    name: "tokens.pool/stride-symbolic",
    op: "tokens.pool",
    attrs: { mode: "stride", size: 2, protect_first: 1 },
    numOutputs: 2,
    inputs: [r([2, 8, 2], 45)],
    types: [tensorType("f32", [2, N, 2])],
    env: { N: 8 },
  },
];

const companion: OpCase[] = [
  {
    name: "tokens.gather/prune-index-padding",
    op: "tokens.gather",
    inputs: [r([2, 5, 2], 50), makeTensor("i64", [2, 3], [0, 2, 4, 1, 3, -1])],
  },
  {
    name: "tokens.gather/bool-mask-column",
    op: "tokens.gather",
    inputs: [bool([1, 4, 1], [1, 0, 1, 1]), makeTensor("i64", [1, 2], [1, 3])],
  },
  {
    name: "tokens.gather/symbolic-i32",
    op: "tokens.gather",
    inputs: [r([2, 4, 3], 51), makeTensor("i32", [2, 2], [3, 0, 2, 2])],
    types: [tensorType("f32", [2, N, 3]), tensorType("i32", [2, 2])],
    env: { N: 4 },
  },
  {
    name: "tokens.combine/merge-source-empty-row",
    op: "tokens.combine",
    attrs: { rows: 4 },
    inputs: [r([2, 5, 2], 52), makeTensor("i64", [2, 5], [0, 1, 1, 3, 2, 0, 2, 1, 2, -1])],
  },
  {
    name: "tokens.combine/symbolic-rows",
    op: "tokens.combine",
    attrs: { rows: sub(N, 2) },
    inputs: [r([1, 5, 1], 53), makeTensor("i64", [1, 5], [0, 0, 1, 2, 2])],
    types: [tensorType("f32", [1, N, 1]), tensorType("i64", [1, N])],
    env: { N: 5 },
  },
];

// The references return every output, so cases request them all.

/** tokens.prune / merge / score / pool / gather / combine: ties, NaN scores, protection, fusion, adaptive counts, symbolic N. */
export const cases: OpCase[] = [...prune, ...merge, ...score, ...pool, ...companion];
