import { runGraph } from "../../../backends/cpu/interpreter.js";
import type { Attrs } from "../../../compiler/ir/attrs.js";
import { GraphBuilder } from "../../../compiler/builder.js";
import type { Graph, Value } from "../../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { randTensor } from "./types.js";

/**
 * Graph cases for capacity-padded token axes: an adaptive `tokens.prune` (live count below the
 * capacity, unequal across the batch) feeding the ops that must mask by its live length (fused
 * attention with every importance kind, causal, EViT fuse; ReduceMean, Softmax) and row-wise ops that must not read
 * padding into live rows. Every backend runs them against runGraph on the live rows.
 */
export interface AdaptiveCase {
  readonly name: string;
  readonly graph: Graph;
  readonly feeds: ReadonlyMap<string, Tensor>;
}

const B = 3;
const N = 8;
const C = 8;
const CAPACITY = 6;

/** Scores [3, 8] whose counts at threshold 0.5 (protect_first 1) are 4, 2 and 5: all below 6. */
const SCORES = makeTensor(
  "f32",
  [B, N],
  [
    0.1, 0.9, 0.2, 0.6, 0.55, 0.3, 0.05, 0.4, 0.2, 0.1, 0.3, 0.7, 0.2, 0.1, 0.0, 0.45, 0.9, 0.8, 0.7, 0.6,
    0.1, 0.2, 0.3, 0.5,
  ],
);

type AttnAttrs = { scores?: "cls" | "colsum" | "graph"; causal?: boolean; graph_iters?: number };

/**
 * x [3, 8, 8] -> adaptive prune -> MatMul to 2 heads of 8 -> attention (q = k = v) -> LayerNorm,
 * the Gather of row 0 (CLS), the mean and the Softmax over tokens: the attention output,
 * importance (when scored), the normalised rows, row 0, the mean, the Softmax and the count (last).
 */
function chain(b: GraphBuilder, x: Value, s: Value, attn: AttnAttrs, fuse: boolean, seed: number): Value[] {
  const [y, , count] = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0.5, capacity: CAPACITY, protect_first: 1, fuse },
    3,
  );
  const w = b.constant(randTensor("f32", [C, 16], seed));
  const qkv = b.op("MatMul", [y, w]);
  const heads = b.op("Transpose", [b.op("Reshape", [qkv, b.const("i64", [4], [0, 0, 2, 8])])], {
    perm: [0, 2, 1, 3],
  });
  const outs = b.ops("attention", [heads, heads, heads], attn, attn.scores !== undefined ? 2 : 1);
  const merged = b.op("Reshape", [
    b.op("Transpose", [outs[0]], { perm: [0, 2, 1, 3] }),
    b.const("i64", [3], [0, 0, 16]),
  ]);
  const ln = b.op("LayerNormalization", [
    merged,
    b.constant(randTensor("f32", [16], seed + 1)),
    b.constant(randTensor("f32", [16], seed + 2)),
  ]);
  const cls = b.op("Gather", [ln, b.const("i64", [], [0])], { axis: 1 });
  // Mean pooling over each example's own tokens (the LayerNorm of a padding row is its bias, not 0).
  const pooled = b.op("ReduceMean", [ln], { axes: [1] });
  // Softmax over each example's own tokens: strided rows (axis 1 of [B, K, 16]).
  const soft = b.op("Softmax", [ln], { axis: 1 });
  return [...outs, ln, cls, pooled, soft, count];
}

/**
 * Adaptive prune -> attention (cls importance) -> a second prune of the attention output by that
 * importance: static (keep 2, or 3 > the 2 live tokens of example 1: its last row stays padding) or
 * adaptive with EViT fuse. The second prune ranks each example's own live tokens only.
 */
function secondPrune(
  b: GraphBuilder,
  x: Value,
  s: Value,
  second: "static" | "adaptive",
  seed: number,
  keep = 2,
): Value[] {
  const [y, , count] = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0.5, capacity: CAPACITY, protect_first: 1 },
    3,
  );
  const t = b.op("Unsqueeze", [
    b.op("MatMul", [y, b.constant(randTensor("f32", [C, 8], seed))]),
    b.const("i64", [1], [1]),
  ]);
  const [o, imp] = b.ops("attention", [t, t, t], { scores: "cls" }, 2);
  const o3 = b.op("Squeeze", [o, b.const("i64", [1], [1])]);
  const attrs: Attrs =
    second === "static"
      ? { keep, protect_first: 1 }
      : { threshold: SECOND_THRESHOLD, capacity: 5, protect_first: 1, fuse: true };
  // 1 - importance: padding keys (importance 0) would rank first if the prune read them.
  const score = b.op("Sub", [b.const("f32", [], [1]), imp]);
  const outs = b.ops("tokens.prune", [o3, score], attrs, second === "static" ? 2 : 3);
  return [imp, ...outs, count];
}

/**
 * Adaptive prune -> key-norm scores per token (padding rows have norm 0) -> a static prune by the
 * negated norm, for which padding would rank first if it were read.
 */
function scoreThenPrune(b: GraphBuilder, x: Value, s: Value): Value[] {
  const [y, , count] = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0.5, capacity: CAPACITY, protect_first: 1 },
    3,
  );
  const norm = b.op("tokens.score", [y], { method: "key_norm" });
  const [z, index] = b.ops("tokens.prune", [y, b.op("Neg", [norm])], { keep: 2, protect_first: 1 }, 2);
  return [norm, z, index, count];
}

/** Threshold of the second adaptive prune (cls importances of 2..5 live keys). */
const SECOND_THRESHOLD = 0.9;

const CHAINS: readonly {
  name: string;
  attn: AttnAttrs;
  fuse: boolean;
  second?: "static" | "adaptive" | "score";
  keep?: number;
}[] = [
  { name: "attention-cls", attn: { scores: "cls" }, fuse: false },
  { name: "attention-colsum-causal", attn: { scores: "colsum", causal: true }, fuse: false },
  { name: "attention-graph-fuse", attn: { scores: "graph", graph_iters: 3 }, fuse: true },
  { name: "attention-plain-fuse", attn: {}, fuse: true },
  { name: "prune-after-adaptive-static", attn: {}, fuse: false, second: "static" },
  { name: "prune-after-adaptive-static-keep-above-live", attn: {}, fuse: false, second: "static", keep: 3 },
  { name: "prune-after-adaptive-adaptive-fuse", attn: {}, fuse: false, second: "adaptive" },
  { name: "key-norm-score-then-prune", attn: {}, fuse: false, second: "score" },
];

const FEEDS = new Map([
  ["x", randTensor("f32", [B, N, C], 5)],
  ["s", SCORES],
]);

function build(name: string, chains: typeof CHAINS): AdaptiveCase {
  const b = new GraphBuilder(name);
  const x = b.input("x", "f32", [B, N, C]);
  const s = b.input("s", "f32", [B, N]);
  const outs = chains.flatMap((c, i) =>
    c.second === "score"
      ? scoreThenPrune(b, x, s)
      : c.second
        ? secondPrune(b, x, s, c.second, 7 + 3 * i, c.keep)
        : chain(b, x, s, c.attn, c.fuse, 7 + 3 * i),
  );
  return { name, graph: b.output(...outs), feeds: FEEDS };
}

/** One graph per chain (the KIR tests run them one by one). */
export function adaptiveCases(): AdaptiveCase[] {
  return CHAINS.map((c) => build(`adaptive/${c.name}`, [c]));
}

/** Every chain in one graph (one emulator build, one artifact). */
export function allAdaptiveCases(): AdaptiveCase {
  return build("adaptive_all", CHAINS);
}

/** The reference outputs of a case, and its counts (checked to be below the capacity and unequal). */
export function adaptiveReference(c: AdaptiveCase): Map<string, Tensor> {
  const want = runGraph(c.graph, c.feeds);
  for (const o of c.graph.outputs.filter((v) => v.type.dtype === "i32")) {
    const count = Array.from(want.get(o.name)!.data);
    if (!(Math.max(...count) < CAPACITY && new Set(count).size > 1))
      throw new Error(`${c.name}: counts ${count} do not exercise padding (capacity ${CAPACITY})`);
  }
  return want;
}
