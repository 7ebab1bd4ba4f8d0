import { runGraph } from "../../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../../compiler/builder.js";
import type { Graph } from "../../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { randTensor } from "./types.js";

/**
 * Graph cases for capacity-padded token axes: an adaptive `tokens.prune` (live count below the
 * capacity, unequal across the batch) feeding the ops that must mask by its live length (fused
 * attention with every importance kind, causal, EViT fuse) and row-wise ops that must not read
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

/**
 * x [3, 8, 8] -> adaptive prune -> MatMul to 2 heads of 8 -> attention (q = k = v) -> LayerNorm,
 * and the Gather of row 0 (CLS): outputs the attention output, importance (when scored),
 * the normalised rows, row 0 and the count.
 */
function attentionAfterPrune(
  name: string,
  attn: { scores?: "cls" | "colsum" | "graph"; causal?: boolean; graph_iters?: number },
  fuse: boolean,
): AdaptiveCase {
  const b = new GraphBuilder(name);
  const x = b.input("x", "f32", [B, N, C]);
  const s = b.input("s", "f32", [B, N]);
  const [y, , count] = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0.5, capacity: CAPACITY, protect_first: 1, fuse },
    3,
  );
  const w = b.constant(randTensor("f32", [C, 16], 7), "w");
  const qkv = b.op("MatMul", [y, w]);
  const heads = b.op("Transpose", [b.op("Reshape", [qkv, b.const("i64", [4], [0, 0, 2, 8])])], {
    perm: [0, 2, 1, 3],
  });
  const scored = attn.scores !== undefined;
  const outs = b.ops("attention", [heads, heads, heads], attn, scored ? 2 : 1);
  const merged = b.op("Reshape", [
    b.op("Transpose", [outs[0]], { perm: [0, 2, 1, 3] }),
    b.const("i64", [3], [0, 0, 16]),
  ]);
  const ln = b.op("LayerNormalization", [
    merged,
    b.constant(randTensor("f32", [16], 8)),
    b.constant(randTensor("f32", [16], 9)),
  ]);
  const cls = b.op("Gather", [ln, b.const("i64", [], [0])], { axis: 1 });
  const g = b.output(outs[0], ...outs.slice(1), ln, cls, count);
  return {
    name,
    graph: g,
    feeds: new Map([
      ["x", randTensor("f32", [B, N, C], 5)],
      ["s", SCORES],
    ]),
  };
}

export function adaptiveCases(): AdaptiveCase[] {
  return [
    attentionAfterPrune("adaptive/attention-cls", { scores: "cls" }, false),
    attentionAfterPrune("adaptive/attention-colsum-causal", { scores: "colsum", causal: true }, false),
    attentionAfterPrune("adaptive/attention-graph-fuse", { scores: "graph", graph_iters: 3 }, true),
    attentionAfterPrune("adaptive/attention-plain-fuse", {}, true),
  ];
}

/** The reference outputs of a case, and its counts (checked to be below the capacity and unequal). */
export function adaptiveReference(c: AdaptiveCase): Map<string, Tensor> {
  const want = runGraph(c.graph, c.feeds);
  const count = Array.from(want.get(c.graph.outputs[c.graph.outputs.length - 1].name)!.data);
  if (!(Math.max(...count) < CAPACITY && new Set(count).size > 1))
    throw new Error(`${c.name}: counts ${count} do not exercise padding (capacity ${CAPACITY})`);
  return want;
}
