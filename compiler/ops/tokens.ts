import { isFloat } from "../ir/dtype.js";
import {
  type Dim,
  add,
  ceildiv,
  compareLE,
  dimEquals,
  evalDim,
  floordiv,
  mul,
  printDim,
  sub,
} from "../ir/sym.js";
import { makeTensor, type Tensor } from "../ir/tensor.js";
import { tensorType, type TensorType } from "../ir/types.js";
import { liveCounts } from "../kir/live.js";
import { lowerMerge, lowerPrune, lowerTokenCombine, lowerTokenGather } from "./tokens-lower.js";
import { type InferCtx, OpError, type RefCtx, registerOp } from "./registry.js";
import { input, shapeStr } from "./util.js";

// Token-reduction ops. Their output orders are a contract with later passes and kernels:
// docs/token-ops.md restates them.

/** Input `i` as a rank-3 `[B, N, C]` token tensor. */
export function tokens3(ctx: InferCtx, i: number, name: string): TensorType {
  const t = input(ctx, i);
  if (t.dims.length !== 3) ctx.fail(`${name} must have rank 3 [B, N, C], got ${shapeStr(t.dims)}`);
  return t;
}

/** Fails unless `t` has exactly the dims `want`. */
export function requireDims(ctx: InferCtx, name: string, t: TensorType, want: readonly Dim[]): void {
  if (t.dims.length !== want.length || !t.dims.every((d, i) => dimEquals(d, want[i])))
    ctx.fail(`${name} has shape ${shapeStr(t.dims)}, expected ${shapeStr(want)}`);
}

/** Fails when `a <= b` is provably false. */
export function requireLE(ctx: InferCtx, a: Dim, b: Dim, message: string): void {
  if (compareLE(a, b) === false) ctx.fail(message);
}

/** A dim attribute's value in this run (symbolic ones need the interpreter's bindings). */
function dimValue(ctx: RefCtx, name: string): number {
  const d = ctx.attr<Dim>(name);
  if (typeof d === "number") return d;
  if (!ctx.env) throw new OpError(`attribute '${name}' is symbolic and no symbol bindings were given`);
  return evalDim(d, ctx.env);
}

/** Sort key for scores: NaN ranks as -inf. */
export function rankScore(s: number): number {
  return Number.isNaN(s) ? -Infinity : s;
}

/**
 * `tokens.prune(x, scores, protect?) -> y, index?, count?`: keeps the important tokens of
 * x `[B, N, C]` (token axis 1) given scores `[B, N]` (float).
 *
 * Protected tokens: positions `< protect_first` plus those where `protect` (bool `[N]` or `[B, N]`)
 * is true. Every token is ranked: protected ones first (by position), then the others by
 * descending score (NaN counts as -inf; ties: lower position first).
 * - Static (`keep`, a dim such as `ceildiv(7*N, 10)`): the first `keep` tokens of the ranking.
 * - Adaptive (`threshold` + `capacity`): the protected tokens and those with `score >= threshold`,
 *   cut to the first `capacity` of the ranking. `count[b]` (i32 `[B]`) is example b's kept count;
 *   the token axis is a data-dependent symbol K (capacity `capacity`, +1 with `fuse`); the
 *   reference makes K the max count over the batch (+1 with `fuse`). The count is always computed.
 *
 * When x's token axis is itself capacity-padded (an earlier adaptive prune), example b ranks and
 * fuses only its own live tokens (`kir/live.ts`); it keeps at most that many, also in static mode.
 *
 * Kept tokens are emitted in their ORIGINAL order (CLS stays at row 0); `index[b, r]` (i64) is the
 * original position of row r, ascending. With `fuse` (EViT) one more row follows the kept rows of
 * each example (row `count[b]`): the average of the dropped tokens weighted by their scores
 * normalised to sum 1 (a plain mean if those scores sum to 0; zeros if nothing was dropped).
 * Adaptive rows past an example's live rows are 0 in y and -1 in index.
 *
 * Shapes: static y `[B, keep (+1), C]`, index `[B, keep]`; adaptive y `[B, K, C]`, index
 * `[B, K]` (or `[B, K - 1]` with fuse, as the symbol then counts the fused row).
 */
export const pruneDef = registerOp({
  name: "tokens.prune",
  doc: "Keeps the highest-scoring tokens (plus protected ones) in original order; optional EViT fusion of the rest and adaptive threshold mode.",
  inputs: [{ name: "x" }, { name: "scores" }, { name: "protect", optional: true }],
  outputs: [{ name: "y" }, { name: "index", optional: true }, { name: "count", optional: true }],
  attrs: {
    keep: { kind: "dim", optional: true, doc: "Tokens kept (static mode)." },
    threshold: { kind: "float", optional: true, doc: "Adaptive mode: keep tokens with score >= threshold." },
    capacity: { kind: "dim", optional: true, doc: "Adaptive mode: at most this many tokens kept." },
    fuse: { kind: "bool", default: false, doc: "Append the score-weighted average of dropped tokens." },
    protect_first: { kind: "int", default: 0, doc: "The first k positions are always kept." },
  },
  pure: true,
  // Static mode: the lowering keeps y's rows (minus the fused one); adaptive mode has no keep (the
  // lowering reads capacity).
  attrsFromDims: (attrs) => (attrs.threshold === undefined ? ["keep"] : []),
  infer(ctx) {
    const x = tokens3(ctx, 0, "x");
    const [B, N, C] = x.dims;
    const s = input(ctx, 1);
    if (!isFloat(s.dtype)) ctx.fail(`scores must be a float tensor, got ${s.dtype}`);
    requireDims(ctx, "scores", s, [B, N]);
    const protect = ctx.inputs[2];
    if (protect) {
      if (protect.dtype !== "bool") ctx.fail(`protect must be bool, got ${protect.dtype}`);
      requireDims(ctx, "protect", protect, protect.dims.length === 1 ? [N] : [B, N]);
    }
    const fuse = ctx.attr<boolean>("fuse");
    if (fuse && !isFloat(x.dtype)) ctx.fail(`fuse needs a float x, got ${x.dtype}`);
    const pf = ctx.attr<number>("protect_first");
    if (pf < 0) ctx.fail(`protect_first must be >= 0, got ${pf}`);
    const keep = ctx.optAttr<Dim>("keep");
    const threshold = ctx.optAttr<number>("threshold");
    const capacity = ctx.optAttr<Dim>("capacity");
    const adaptive = threshold !== undefined || capacity !== undefined;
    if (keep !== undefined && adaptive) ctx.fail("give either keep or threshold + capacity, not both");
    if (adaptive && (threshold === undefined || capacity === undefined))
      ctx.fail("adaptive pruning needs both threshold and capacity");
    const limit = keep ?? capacity;
    if (limit === undefined) return ctx.fail("missing attribute 'keep' (or threshold + capacity)");
    const what = keep !== undefined ? "keep" : "capacity";
    requireLE(ctx, 0, limit, `${what} = ${printDim(limit)} is negative`);
    requireLE(ctx, limit, N, `${what} = ${printDim(limit)} is greater than the ${printDim(N)} tokens`);
    requireLE(ctx, pf, limit, `${what} = ${printDim(limit)} is less than protect_first = ${pf}`);
    if (!adaptive && ctx.numOutputs === 3) ctx.fail("the count output exists only in adaptive mode");
    const extra = fuse ? 1 : 0;
    // One data-dependent symbol, read from y's token axis, so verification finds the same one.
    const rows = adaptive ? ctx.dataDim(0, 1, add(limit, extra), "K") : add(limit, extra);
    const kept = sub(rows, extra);
    const batchAx = x.axes?.[0] ?? null;
    const tokenAx = x.axes?.[1] ?? null;
    return [
      tensorType(x.dtype, [B, rows, C], x.axes),
      tensorType("i64", [B, kept], [batchAx, tokenAx]),
      tensorType("i32", [B], [batchAx]),
    ].slice(0, ctx.numOutputs);
  },
  reference([x, scores, protect], ctx) {
    const adaptive = ctx.optAttr<number>("threshold") !== undefined;
    return pruneReference(x!, scores!, protect ?? null, {
      keep: adaptive ? undefined : dimValue(ctx, "keep"),
      threshold: ctx.optAttr<number>("threshold"),
      capacity: adaptive ? dimValue(ctx, "capacity") : undefined,
      fuse: ctx.attr<boolean>("fuse"),
      protectFirst: ctx.attr<number>("protect_first"),
      // The interpreter reads the count of every adaptive prune (the live lengths of its symbol).
      count: adaptive || ctx.numOutputs === 3,
      live: liveCounts(ctx, 0, 1, x!.shape[0]),
    });
  },
  flops(ctx) {
    const [B, N, C] = input(ctx, 0).dims;
    // Ranking ~B*N; the fused average reads every token once (2 per element).
    return ctx.attr<boolean>("fuse") ? add(mul(B, N), mul(2, B, N, C)) : mul(B, N);
  },
  lower: lowerPrune,
});

export interface PruneOptions {
  readonly keep?: number;
  readonly threshold?: number;
  readonly capacity?: number;
  readonly fuse: boolean;
  readonly protectFirst: number;
  /** Also return the count output. */
  readonly count: boolean;
  /** Live tokens per example (a capacity-padded x): tokens past them are neither ranked nor fused. */
  readonly live?: Int32Array;
}

/** The reference semantics of `tokens.prune` on concrete tensors. */
export function pruneReference(x: Tensor, scores: Tensor, protect: Tensor | null, o: PruneOptions): Tensor[] {
  const [B, N, C] = x.shape;
  if (o.keep !== undefined && (o.keep > N || o.keep < 0))
    throw new OpError(`keep = ${o.keep} is outside [0, ${N}]`);
  const sel: number[][] = [];
  const nLive = (b: number): number => Math.min(N, o.live ? o.live[b] : N);
  for (let b = 0; b < B; b++) {
    const sc = (j: number): number => rankScore(scores.data[b * N + j]);
    const prot = (j: number): boolean =>
      j < o.protectFirst ||
      (protect !== null && protect.data[protect.shape.length === 1 ? j : b * N + j] !== 0);
    const order = Array.from({ length: nLive(b) }, (_, j) => j).sort((i, j) => {
      const pi = prot(i);
      if (pi !== prot(j)) return pi ? -1 : 1;
      if (!pi && sc(i) !== sc(j)) return sc(j) - sc(i) > 0 ? 1 : -1;
      return i - j;
    });
    const cand = o.keep !== undefined ? order : order.filter((j) => prot(j) || sc(j) >= o.threshold!);
    sel.push(cand.slice(0, o.keep ?? o.capacity).sort((i, j) => i - j));
  }
  // Static mode keeps `keep` rows; an example with fewer live tokens leaves its last rows padding.
  const K = o.keep ?? Math.max(0, ...sel.map((s) => s.length));
  const rows = K + (o.fuse ? 1 : 0);
  const y = new Float64Array(B * rows * C);
  const index = new Float64Array(B * K).fill(-1);
  for (let b = 0; b < B; b++) {
    const s = sel[b];
    s.forEach((j, r) => {
      index[b * K + r] = j;
      for (let c = 0; c < C; c++) y[(b * rows + r) * C + c] = x.data[(b * N + j) * C + c];
    });
    if (!o.fuse) continue;
    const keptSet = new Set(s);
    const dropped = Array.from({ length: nLive(b) }, (_, j) => j).filter((j) => !keptSet.has(j));
    const wsum = dropped.reduce((acc, j) => acc + scores.data[b * N + j], 0);
    const row = (b * rows + s.length) * C;
    for (const j of dropped) {
      const w = wsum !== 0 ? scores.data[b * N + j] / wsum : 1 / dropped.length;
      for (let c = 0; c < C; c++) y[row + c] += w * x.data[(b * N + j) * C + c];
    }
  }
  const out = [makeTensor(x.dtype, [B, rows, C], y), makeTensor("i64", [B, K], index)];
  const counts = sel.map((k) => k.length);
  if (o.count) out.push(makeTensor("i32", [B], counts));
  return out;
}

/** How `tokens.merge` weighs its bipartite edges. */
export type MergeMethod = "bipartite" | "multi_criteria";

/** Default weights of `method = "multi_criteria"`. */
export const MC_DEFAULTS = { wSim: 1, wInfo: 0.25, wSize: 0.25 } as const;

/**
 * `tokens.merge(x, metric, size?, importance?) -> y, size_out?, source?`: ToMe bipartite soft
 * matching that removes `r` tokens of x `[B, N, C]` by merging them into similar ones.
 *
 * Let P = `protect_first` (CLS; never merged) and U = N - P. Unprotected token u (position P + u)
 * is in set A when u is even and in set B when u is odd: |A| = ceil(U/2), |B| = floor(U/2), and
 * `r <= floor(U/2)` is required. Similarity is the cosine of the `metric` rows `[B, N, Cm]`
 * (0 when either row has norm 0). Each a in A picks its best b (max similarity; ties: lowest b).
 * The r A tokens whose best similarity is highest (NaN lowest; ties: lower a) are merged into their
 * b: `y_b = (size_b x_b + sum size_a x_a) / (size_b + sum size_a)` and `size_b += sum size_a`;
 * sizes come from `size` `[B, N, 1]` (f32, positive) or are all 1. Tokens nothing merged into
 * are copied unchanged.
 *
 * Output rows (N - r): every token that survives (protected, unmerged A, all of B) in ORIGINAL
 * order, so r = 0 is the identity and CLS stays at row 0. `size_out` (f32 `[B, N - r, 1]`) holds
 * the sizes of those rows; `source` (i64 `[B, N]`) maps each input token to its output row (a
 * merged a -> its b's row): for survivors it is the position minus the merged A tokens before it.
 *
 * Differs from the ToMe code, which emits [unmerged A, B] and puts CLS in A (the split counting
 * from position 0); here the alternation starts after the protected prefix.
 *
 * `method = "multi_criteria"` (MCTF-style) replaces the cosine by the edge weight
 * `w_sim * cos(a, b) - w_info * (inf_a + inf_b) / 2 - w_size * (sz_a + sz_b) / 2`, with
 * `inf` = the `importance` input `[B, N]` min-max normalised over the example's unprotected tokens
 * (0 when absent or constant; NaN stays NaN and so ranks lowest) and `sz` = size / max size over
 * them: less informative and smaller pairs merge first. Everything else is as above.
 */
export const mergeDef = registerOp({
  name: "tokens.merge",
  doc: "ToMe bipartite soft matching: merges the r most similar A tokens into B tokens (size-weighted mean); optional MCTF-style multi-criteria edges.",
  inputs: [
    { name: "x" },
    { name: "metric" },
    { name: "size", optional: true },
    { name: "importance", optional: true },
  ],
  outputs: [{ name: "y" }, { name: "size_out", optional: true }, { name: "source", optional: true }],
  attrs: {
    r: { kind: "int", doc: "Tokens removed." },
    protect_first: { kind: "int", default: 1, doc: "The first k tokens are never merged." },
    mode: { kind: "string", default: "mean", oneOf: ["mean"], doc: "Merge rule: size-weighted mean." },
    method: {
      kind: "string",
      default: "bipartite",
      oneOf: ["bipartite", "multi_criteria"],
      doc: "Edge weight: cosine (ToMe) or cosine, informativeness and size (MCTF).",
    },
    w_sim: { kind: "float", default: MC_DEFAULTS.wSim, doc: "multi_criteria: weight of the cosine." },
    w_info: { kind: "float", default: MC_DEFAULTS.wInfo, doc: "multi_criteria: weight of the importance." },
    w_size: { kind: "float", default: MC_DEFAULTS.wSize, doc: "multi_criteria: weight of the size." },
  },
  pure: true,
  // The lowering merges input rows - output rows.
  attrsFromDims: () => ["r"],
  infer(ctx) {
    const x = tokens3(ctx, 0, "x");
    const [B, N, C] = x.dims;
    if (!isFloat(x.dtype)) ctx.fail(`x must be a float tensor, got ${x.dtype}`);
    const metric = tokens3(ctx, 1, "metric");
    if (!isFloat(metric.dtype)) ctx.fail(`metric must be a float tensor, got ${metric.dtype}`);
    requireDims(ctx, "metric", metric, [B, N, metric.dims[2]]);
    const size = ctx.inputs[2];
    if (size) {
      if (size.dtype !== "f32") ctx.fail(`size must be f32, got ${size.dtype}`);
      requireDims(ctx, "size", size, [B, N, 1]);
    }
    const method = ctx.attr<MergeMethod>("method");
    const importance = ctx.inputs[3];
    if (method === "bipartite") {
      if (importance) ctx.fail(`the importance input is used only by method "multi_criteria"`);
      for (const w of ["w_sim", "w_info", "w_size"])
        if (ctx.attrs[w] !== undefined) ctx.fail(`${w} applies only to method "multi_criteria"`);
    }
    if (importance) {
      if (!isFloat(importance.dtype)) ctx.fail(`importance must be a float tensor, got ${importance.dtype}`);
      requireDims(ctx, "importance", importance, [B, N]);
    }
    const r = ctx.attr<number>("r");
    const pf = ctx.attr<number>("protect_first");
    if (r < 0) ctx.fail(`r must be >= 0, got ${r}`);
    if (pf < 0) ctx.fail(`protect_first must be >= 0, got ${pf}`);
    requireLE(ctx, pf, N, `protect_first = ${pf} is greater than the ${printDim(N)} tokens`);
    const maxR = floordiv(sub(N, pf), 2);
    requireLE(
      ctx,
      r,
      maxR,
      `r = ${r} is greater than the ${printDim(maxR)} mergeable tokens (floor((N - protect_first) / 2))`,
    );
    const M = sub(N, r);
    const batchAx = x.axes?.[0] ?? null;
    const tokenAx = x.axes?.[1] ?? null;
    return [
      tensorType(x.dtype, [B, M, C], x.axes),
      tensorType("f32", [B, M, 1], [batchAx, tokenAx, null]),
      tensorType("i64", [B, N], [batchAx, tokenAx]),
    ].slice(0, ctx.numOutputs);
  },
  reference([x, metric, size, importance], ctx) {
    const mc: MultiCriteria | undefined =
      ctx.attr<MergeMethod>("method") === "multi_criteria"
        ? {
            importance: importance ?? null,
            wSim: ctx.attr<number>("w_sim"),
            wInfo: ctx.attr<number>("w_info"),
            wSize: ctx.attr<number>("w_size"),
          }
        : undefined;
    return mergeReference(
      x!,
      metric!,
      size ?? null,
      ctx.attr<number>("r"),
      ctx.attr<number>("protect_first"),
      mc,
    );
  },
  flops(ctx) {
    const [B, N, C] = input(ctx, 0).dims;
    const Cm = input(ctx, 1).dims[2];
    const U = sub(N, ctx.attr<number>("protect_first"));
    // The A x B similarity matmul, plus the weighted average over every token.
    const pairs = mul(B, ceildiv(U, 2), floordiv(U, 2));
    const base = add(mul(2, pairs, Cm), mul(2, B, N, C));
    if (ctx.attr<MergeMethod>("method") === "bipartite") return base;
    // multi_criteria: normalising importance and sizes (~2 per token), ~6 per edge to combine.
    return add(base, mul(2, B, N), mul(6, pairs));
  },
  lower: lowerMerge,
});

/** The inputs and weights of `method = "multi_criteria"`. */
export interface MultiCriteria {
  readonly importance: Tensor | null;
  readonly wSim: number;
  readonly wInfo: number;
  readonly wSize: number;
}

/**
 * Per-token terms of the multi-criteria edge for example b: importance min-max normalised and
 * size / max size over the unprotected tokens (0 where undefined).
 */
function mcTerms(
  mc: MultiCriteria,
  size: Tensor | null,
  b: number,
  N: number,
  pf: number,
): [number[], number[]] {
  const imp = Array.from({ length: N }, (_, j) => (mc.importance ? mc.importance.data[b * N + j] : 0));
  const sz = Array.from({ length: N }, (_, j) => (size ? size.data[b * N + j] : 1));
  let lo = Infinity;
  let hi = -Infinity;
  let top = -Infinity;
  for (let j = pf; j < N; j++) {
    if (!Number.isNaN(imp[j])) [lo, hi] = [Math.min(lo, imp[j]), Math.max(hi, imp[j])];
    top = Math.max(top, sz[j]);
  }
  const info = imp.map((v) => (Number.isNaN(v) ? NaN : hi > lo ? (v - lo) / (hi - lo) : 0));
  return [info, sz.map((v) => (top > 0 ? v / top : 0))];
}

/** The reference semantics of `tokens.merge` on concrete tensors (all three outputs). */
export function mergeReference(
  x: Tensor,
  metric: Tensor,
  size: Tensor | null,
  r: number,
  pf: number,
  mc?: MultiCriteria,
): Tensor[] {
  const [B, N, C] = x.shape;
  const Cm = metric.shape[2];
  const U = N - pf;
  if (U < 0 || r > Math.floor(U / 2)) throw new OpError(`r = ${r} is greater than floor((${N} - ${pf}) / 2)`);
  const nA = Math.ceil(U / 2);
  const nB = Math.floor(U / 2);
  const M = N - r;
  const y = new Float64Array(B * M * C);
  const sizeOut = new Float64Array(B * M);
  const source = new Float64Array(B * N);
  const sz = (b: number, j: number): number => (size ? size.data[b * N + j] : 1);
  for (let b = 0; b < B; b++) {
    const row = (j: number): number => b * N + j;
    const norm = (j: number): number => {
      let acc = 0;
      for (let c = 0; c < Cm; c++) acc += metric.data[row(j) * Cm + c] ** 2;
      return Math.sqrt(acc);
    };
    const norms = Array.from({ length: N }, (_, j) => norm(j));
    const cos = (i: number, j: number): number => {
      if (norms[i] === 0 || norms[j] === 0) return 0;
      let dot = 0;
      for (let c = 0; c < Cm; c++) dot += metric.data[row(i) * Cm + c] * metric.data[row(j) * Cm + c];
      return dot / (norms[i] * norms[j]);
    };
    const [info, rel] = mc ? mcTerms(mc, size, b, N, pf) : [[], []];
    const edge = (i: number, j: number): number =>
      mc
        ? mc.wSim * cos(i, j) - (mc.wInfo * (info[i] + info[j])) / 2 - (mc.wSize * (rel[i] + rel[j])) / 2
        : cos(i, j);
    const aPos = (a: number): number => pf + 2 * a;
    const bPos = (k: number): number => pf + 2 * k + 1;
    const best = new Array<number>(nA).fill(0);
    const bestSim = new Array<number>(nA).fill(-Infinity);
    for (let a = 0; a < nA; a++)
      for (let k = 0; k < nB; k++) {
        const s = rankScore(edge(aPos(a), bPos(k)));
        if (s > bestSim[a] || k === 0) [best[a], bestSim[a]] = [k, s];
      }
    const order = Array.from({ length: nA }, (_, a) => a).sort((i, j) =>
      bestSim[i] !== bestSim[j] ? (bestSim[j] - bestSim[i] > 0 ? 1 : -1) : i - j,
    );
    // Survivors keep their original order; a merged A token goes to its b's row.
    const merged = new Set(order.slice(0, r));
    const rowOf = new Array<number>(N).fill(-1);
    let next = 0;
    for (let j = 0; j < N; j++) {
      const u = j - pf;
      if (!(u >= 0 && u % 2 === 0 && merged.has(u / 2))) rowOf[j] = next++;
    }
    for (const a of merged) rowOf[aPos(a)] = rowOf[bPos(best[a])];
    for (let j = 0; j < N; j++) source[row(j)] = rowOf[j];
    // Sizes per output row, then each row is the size-weighted mean of its sources.
    for (let j = 0; j < N; j++) sizeOut[b * M + rowOf[j]] += sz(b, j);
    const fanIn = new Array<number>(M).fill(0);
    for (let j = 0; j < N; j++) fanIn[rowOf[j]]++;
    for (let j = 0; j < N; j++) {
      const o = rowOf[j];
      for (let c = 0; c < C; c++) {
        const w = fanIn[o] === 1 ? 1 : sz(b, j) / sizeOut[b * M + o];
        y[(b * M + o) * C + c] += w * x.data[row(j) * C + c];
      }
    }
  }
  return [
    makeTensor(x.dtype, [B, M, C], y),
    makeTensor("f32", [B, M, 1], sizeOut),
    makeTensor("i64", [B, N], source),
  ];
}

/** Checks a `[B, K]` integer index/source input of a companion op against x `[B, N, C]`. */
function rowsIndex(ctx: InferCtx, i: number, name: string, B: Dim): TensorType {
  const t = input(ctx, i);
  if (t.dtype !== "i64" && t.dtype !== "i32") ctx.fail(`${name} must be i64 or i32, got ${t.dtype}`);
  if (t.dims.length !== 2 || !dimEquals(t.dims[0], B))
    ctx.fail(`${name} has shape ${shapeStr(t.dims)}, expected [${printDim(B)}, K]`);
  return t;
}

/**
 * `tokens.gather(x, index) -> y`: per example, the rows of x `[B, N, C]` named by index `[B, K]`
 * (i64 or i32): `y[b, k] = x[b, index[b, k]]`, zeros where the index is negative (the -1 padding of
 * a prune's index). Given a `tokens.prune`'s index output it prunes a companion tensor (sizes, a
 * mask column) exactly like the stream, without ranking again. Indices >= N are an error.
 */
export const tokenGatherDef = registerOp({
  name: "tokens.gather",
  doc: "Rows of x picked per example by an index [B, K] (a tokens.prune index output); -1 gives zeros.",
  inputs: [{ name: "x" }, { name: "index" }],
  outputs: [{ name: "y" }],
  attrs: {},
  pure: true,
  infer(ctx) {
    const x = tokens3(ctx, 0, "x");
    const [B, , C] = x.dims;
    const index = rowsIndex(ctx, 1, "index", B);
    return [tensorType(x.dtype, [B, index.dims[1], C], x.axes)];
  },
  reference([x, index]) {
    const [B, N, C] = x!.shape;
    const K = index!.shape[1];
    const y = new Float64Array(B * K * C);
    for (let b = 0; b < B; b++)
      for (let k = 0; k < K; k++) {
        const j = index!.data[b * K + k];
        if (j < 0) continue;
        if (j >= N) throw new OpError(`index[${b}, ${k}] = ${j} is out of range for ${N} tokens`);
        for (let c = 0; c < C; c++) y[(b * K + k) * C + c] = x!.data[(b * N + j) * C + c];
      }
    return [makeTensor(x!.dtype, [B, K, C], y)];
  },
  lower: lowerTokenGather,
});

/**
 * `tokens.combine(x, source) -> y` (attribute `rows` M): per example, the sum of the rows of x
 * `[B, N, C]` that source `[B, N]` (i64 or i32) maps to each output row: `y[b, m] = sum of x[b, j]
 * over source[b, j] = m`; rows nothing maps to are 0, negative sources are skipped, sources >= M
 * are an error. Given a `tokens.merge`'s source output it merges a companion tensor (scores) with
 * the same matching, summing each group, without matching again.
 */
export const tokenCombineDef = registerOp({
  name: "tokens.combine",
  doc: "Sums the rows of x into the output rows a source map [B, N] names (a tokens.merge source output).",
  inputs: [{ name: "x" }, { name: "source" }],
  outputs: [{ name: "y" }],
  attrs: { rows: { kind: "dim", doc: "Output rows M (the merge's N - r)." } },
  pure: true,
  infer(ctx) {
    const x = tokens3(ctx, 0, "x");
    const [B, N, C] = x.dims;
    if (!isFloat(x.dtype)) ctx.fail(`x must be a float tensor, got ${x.dtype}`);
    const source = rowsIndex(ctx, 1, "source", B);
    requireDims(ctx, "source", source, [B, N]);
    const M = ctx.attr<Dim>("rows");
    requireLE(ctx, 0, M, `rows = ${printDim(M)} is negative`);
    return [tensorType(x.dtype, [B, M, C], x.axes)];
  },
  reference([x, source], ctx) {
    const [B, N, C] = x!.shape;
    const M = dimValue(ctx, "rows");
    const y = new Float64Array(B * M * C);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < N; j++) {
        const m = source!.data[b * N + j];
        if (m < 0) continue;
        if (m >= M) throw new OpError(`source[${b}, ${j}] = ${m} is out of range for ${M} rows`);
        for (let c = 0; c < C; c++) y[(b * M + m) * C + c] += x!.data[(b * N + j) * C + c];
      }
    return [makeTensor(x!.dtype, [B, M, C], y)];
  },
  flops(ctx) {
    const [B, N, C] = input(ctx, 0).dims;
    return mul(B, N, C);
  },
  lower: lowerTokenCombine,
});
