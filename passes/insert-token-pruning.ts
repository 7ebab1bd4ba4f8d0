import type { Attrs } from "../compiler/ir/attrs.js";
import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import { compareLE, dimEquals, printDim, type Dim } from "../compiler/ir/sym.js";
import { PaddedAxes } from "../compiler/kir/padding.js";
import { getOp } from "../compiler/ops/registry.js";
import type { Pass } from "./manager.js";
import { nodeLabel } from "./rewrite.js";
import {
  applySite,
  atCapacity,
  blockOfSite,
  intParam,
  keepCount,
  markApplied,
  opAccepts,
  importance,
  insertNode,
  type PendingSite,
  pendingSites,
  replaceUsesAfter,
  siteLabel,
  streamTokens,
  stringParam,
  finishSizes,
  followMasks,
  type TokenBlock,
  tokenBlocks,
  withOutputs,
} from "./token-sites.js";

/**
 * `prune` policies: at the entry of the site's block the residual stream goes through
 * `tokens.prune`, so the attention branch and the skip connection see the same tokens. Scores
 * come from the previous block: `cls` and `attention_graph` from its fused attention's importance
 * output (attention `scores = "cls" | "graph"`), `transition` and `key_norm` from `tokens.score`.
 * `keep` r gives `ceil(N * r)` kept tokens (exact; symbolic N stays symbolic), `budget` a fixed count.
 * With `threshold` the prune is adaptive: the protected tokens and those scoring >= threshold, at
 * most that count (the capacity); later shapes follow its data-dependent token symbol.
 */
export const insertTokenPruningPass: Pass = {
  name: "insert-token-pruning",
  description: "apply prune policies: tokens.prune at each site block's entry, scored by the previous block",
  run(g, ctx) {
    let changed = false;
    for (const s of pendingSites(g, "prune")) {
      const blocks = tokenBlocks(g);
      const b = blockOfSite(g, blocks, s);
      const x = b.input;
      const n = streamTokens(s, x);
      const protect = intParam(s, "protect") ?? 0;
      const budget = intParam(s, "budget");
      const keepRatio = s.params.keep;
      const threshold = thresholdParam(s);
      // After an adaptive prune n is its data-dependent K: ratios apply to K's capacity, so the
      // count is one number on every backend (not the batch's largest count, which the CPU
      // reference binds K to) and an example's result does not depend on its batch.
      const bound = atCapacity(g, n);
      if (bound !== n && threshold === undefined)
        throw new Error(
          `${siteLabel(s)}: a static prune after an adaptive one keeps a fixed count of the ${printDim(n)} ` +
            `(data-dependent) tokens: an example with fewer gets zero rows that later layers read as tokens; give it a 'threshold'`,
        );
      let keep: Dim;
      if (budget !== undefined) keep = budget;
      else if (typeof keepRatio === "number") keep = keepCount(bound, keepRatio);
      else throw new Error(`${siteLabel(s)}: needs 'keep' or 'budget'`);
      if (compareLE(keep, bound) === false)
        throw new Error(
          `${siteLabel(s)}: keeps ${printDim(keep)} tokens, but only ${printDim(bound)} enter` +
            (bound === n ? "" : ` (at most: the capacity of ${printDim(n)})`),
        );
      if (compareLE(protect, keep) === false)
        throw new Error(`${siteLabel(s)}: protects ${protect} tokens but keeps only ${printDim(keep)}`);
      // Keeping every token leaves nothing to fuse: no fused row, so keep 1.0 is the identity
      // (an adaptive prune may still drop tokens below its threshold).
      const fuse = s.params.fuse === true && (threshold !== undefined || !dimEquals(keep, n));
      const first = g.nodes.find((m) => m.inputs.includes(x))!;
      const opts = { scope: s.scope, ...(s.policy.loc ? { loc: s.policy.loc } : {}) };
      let inserted: Node | undefined;
      applySite(g, ctx, s, () => {
        const scores = throughMerges(g, scoreTokens(g, s, blocks, b, first, opts), first, opts);
        if (!dimEquals(scores.type.dims[1], n))
          throw new Error(
            `${siteLabel(s)}: the scores cover ${printDim(scores.type.dims[1])} tokens but ${printDim(n)} enter the block ` +
              `(a reduction between the previous block's attention and this site changed them)`,
          );
        const attrs: Attrs =
          threshold === undefined
            ? { keep, fuse, protect_first: protect }
            : { threshold, capacity: keep, fuse, protect_first: protect };
        // The index output lets companions (sizes, masks) follow the prune without ranking again;
        // an adaptive prune's count output is what device kernels mask the padding rows by.
        const prune = insertNode(
          g,
          { before: first },
          "tokens.prune",
          [x, scores],
          threshold === undefined ? 2 : 3,
          attrs,
          { ...opts, names: [`${x.name}_pruned`, `${x.name}_index`, `${x.name}_count`] },
        );
        inserted = prune;
        replaceUsesAfter(g, x, prune.outputs[0], prune);
        // Key-padding masks of later attentions lose the same tokens (a fused row has no mask entry).
        followMasks(
          g,
          prune,
          n,
          siteLabel(s),
          fuse
            ? "fuse cannot carry a mask (the fused row has no mask entry)"
            : (col, after) =>
                insertNode(
                  g,
                  { after },
                  "tokens.gather",
                  [col, prune.outputs[1]],
                  1,
                  {},
                  { ...opts, names: [`${col.name}_pruned`] },
                ),
        );
        markApplied(g, s, prune);
      });
      if (threshold !== undefined && inserted) refusePaddedReaders(g, s, inserted);
      ctx.remarks.push(
        threshold === undefined
          ? `${siteLabel(s)}: keep ${printDim(keep)} of ${printDim(n)}`
          : `${siteLabel(s)}: keep score >= ${threshold}, at most ${printDim(keep)} of ${printDim(n)}`,
      );
      changed = true;
    }
    return finishSizes(g, ctx) || changed;
  },
};

/** The adaptive mode's `threshold` (validated by the policy schema; re-checked for hand-written IR). */
function thresholdParam(s: PendingSite): number | undefined {
  const v = s.params.threshold;
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !(v > 0))
    throw new Error(`${siteLabel(s)}: parameter 'threshold' must be a number > 0, got ${JSON.stringify(v)}`);
  return v;
}

/** Ops that read only a tensor's shape, never its rows (as the CPU reference skips them). */
const SHAPE_ONLY: ReadonlySet<string> = new Set(["Shape", "Size"]);

/**
 * After an adaptive prune every later reader of its padded token axis must keep the rows apart or
 * mask them by each example's count (`compiler/kir/padding.ts`): the reference interpreter and the
 * devices refuse anything else. Refusing here names the policy rule that made the count
 * data-dependent, not only the node.
 */
function refusePaddedReaders(g: Graph, s: PendingSite, prune: Node): void {
  const padded = new PaddedAxes(g);
  for (const n of g.nodes.slice(g.nodes.indexOf(prune) + 1)) {
    const def = getOp(n.op);
    if (!def || def.pointwise || def.view || SHAPE_ONLY.has(n.op)) continue;
    const why = padded.referenceRefusal(n);
    if (why)
      throw new Error(
        `${siteLabel(s)}: 'threshold' makes the token count data-dependent, but ${nodeLabel(n)} ${why}`,
      );
  }
}

type Opts = { readonly scope: string; readonly loc?: Node["loc"] };

/**
 * Scores computed before merges that precede the site (the previous block merged after its
 * attention) follow the same merges: `tokens.combine` of the scores as `[B, N, 1]` by the merge's
 * source output (added if missing) sums each group, a merged token's importance, with the merge's
 * own matching (no second one).
 */
function throughMerges(g: Graph, scores: Value, before: Node, opts: Opts): Value {
  const prod = g.producerMap();
  const from = prod.get(scores);
  const order = new Map(g.nodes.map((n, i) => [n, i]));
  const lo = from ? order.get(from)! : -1;
  const hi = order.get(before)!;
  const merges = g.nodes.filter(
    (n, i) => i > lo && i < hi && n.op === "tokens.merge" && n.policy !== undefined,
  );
  let cur = scores;
  for (const m of merges) {
    const merge = withOutputs(g, m, 3, [`${m.inputs[0]!.name}_source`]);
    const at = { before };
    const col = insertNode(g, at, "Unsqueeze", [cur], 1, { axes: [2] }, opts);
    const rows = { rows: merge.outputs[0].type.dims[1] };
    const sum = insertNode(g, at, "tokens.combine", [col.outputs[0], merge.outputs[2]], 1, rows, opts);
    cur = insertNode(g, at, "Squeeze", [sum.outputs[0]], 1, { axes: [2] }, opts).outputs[0];
  }
  return cur;
}

/** The [B, N] scores of the tokens entering block b, per the policy's `score`. */
function scoreTokens(
  g: Graph,
  s: PendingSite,
  blocks: readonly TokenBlock[],
  b: TokenBlock,
  before: Node,
  opts: Opts,
): Value {
  const score = stringParam(s, "score") ?? "cls";
  const prev = blocks[b.index - 1];
  if (!prev)
    throw new Error(
      `${siteLabel(s)}: score '${score}' is computed by the previous block, but '${s.scope}' is the first block`,
    );
  switch (score) {
    case "cls":
      return importance(g, s, prev.attention, "cls");
    case "attention_graph":
      if (!opAccepts("attention", "scores", "graph"))
        throw new Error(
          `${siteLabel(s)}: score 'attention_graph' needs attention scores = "graph", which this build's op lacks`,
        );
      return importance(g, s, prev.attention, "graph");
    case "transition":
    case "key_norm": {
      const method = score;
      if (!getOp("tokens.score") || !opAccepts("tokens.score", "method", method))
        throw new Error(
          `${siteLabel(s)}: score '${score}' needs op tokens.score with method = "${method}", which this build lacks`,
        );
      // transition: the change of each token across the previous block (its input vs its output);
      // key_norm: the previous block's keys, heads joined into channels ([B, N, H*D]).
      const ins: Value[] =
        method === "transition"
          ? [prev.input, b.input]
          : [joinHeads(g, prev.attention.inputs[1]!, before, opts)];
      const names = [`${b.input.name}_score`];
      return insertNode(g, { before }, "tokens.score", ins, 1, { method }, { ...opts, names }).outputs[0];
    }
    default:
      throw new Error(`${siteLabel(s)}: unknown score '${score}'`);
  }
}

/** keys [B, H, N, D] -> [B, N, H*D]. */
function joinHeads(g: Graph, k: Value, before: Node, opts: Opts): Value {
  const t = insertNode(g, { before }, "Transpose", [k], 1, { perm: [0, 2, 1, 3] }, opts);
  const shape = g.addConstant({ dtype: "i64", dims: [3] }, `${k.name}_join_shape`, {
    dtype: "i64",
    shape: [3],
    data: new Float64Array([0, 0, -1]),
  });
  return insertNode(g, { before }, "Reshape", [t.outputs[0], shape], 1, {}, opts).outputs[0];
}
