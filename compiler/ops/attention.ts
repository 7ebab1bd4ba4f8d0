import { isFloat } from "../ir/dtype.js";
import { type Dim, add, dimEquals, mod, mul, printDim } from "../ir/sym.js";
import { makeTensor, type Tensor } from "../ir/tensor.js";
import { tensorType, type TensorType } from "../ir/types.js";
import { liveCounts } from "../kir/live.js";
import { lowerAttention } from "./attention-lower.js";
import { type InferCtx, registerOp } from "./registry.js";
import { asF64 } from "./numeric.js";
import { broadcastIndex, input, shapeStr } from "./util.js";

/** Which per-key importance score the fused attention also emits (see the `attention` doc). */
export type ScoreKind = "none" | "cls" | "colsum" | "graph";

/** Fails unless `dims` broadcasts to exactly `target` (numpy rules, aligned right). */
export function requireBroadcastableTo(
  ctx: InferCtx,
  what: string,
  dims: readonly Dim[],
  target: readonly Dim[],
): void {
  const off = target.length - dims.length;
  const ok = off >= 0 && dims.every((d, i) => d === 1 || dimEquals(d, target[off + i]));
  if (!ok) ctx.fail(`${what} of shape ${shapeStr(dims)} does not broadcast to ${shapeStr(target)}`);
}

function rank4(ctx: InferCtx, i: number, name: string): TensorType {
  const t = input(ctx, i);
  if (t.dims.length !== 4) ctx.fail(`${name} must have rank 4 [B, H, N, D], got ${shapeStr(t.dims)}`);
  if (!isFloat(t.dtype)) ctx.fail(`${name} must be a float tensor, got ${t.dtype}`);
  return t;
}

function same(ctx: InferCtx, what: string, a: Dim, b: Dim): void {
  if (!dimEquals(a, b)) ctx.fail(`${what} differ: ${printDim(a)} and ${printDim(b)}`);
}

/**
 * `attention(q, k, v, mask?, bias?) -> out, importance?`, fused scaled-dot-product attention.
 *
 * Shapes: q `[B, Hq, Nq, D]`, k `[B, Hkv, Nk, D]`, v `[B, Hkv, Nk, Dv]` (heads already split),
 * `Hq % Hkv == 0`; query head `h` reads kv head `floor(h / (Hq / Hkv))` (grouped-query attention).
 * `mask` (bool) and `bias` (float, any float dtype) broadcast to `[B, Hq, Nq, Nk]`.
 *
 * For each (b, h, i): `s_j = scale * dot(q[b,h,i], k[b,g,j]) + bias[b,h,i,j]` over the *allowed*
 * keys j: `mask[b,h,i,j]` is true (or no mask) and, when `causal`, `j <= i + (Nk - Nq)`.
 * `p_j = exp(s_j - m) / sum_j' exp(s_j' - m)` with `m` the max allowed score, 0 for other keys;
 * `out[b,h,i] = sum_j p_j v[b,g,j]`. A row with no allowed key, or whose allowed scores are all
 * -inf, has p = 0 and out = 0 (never NaN). `scale` defaults to `1/sqrt(D)`.
 *
 * `importance` (f32 `[B, Nk]`, present iff `scores != "none"`): `"cls"` gives
 * `(1/Hq) sum_h p[b,h,0,j]` (query 0 is the CLS token); `"colsum"` gives
 * `(1/Hq) sum_h sum_i p[b,h,i,j]` (H2O / SnapKV column sums); `"graph"` (Zero-TPrune-style
 * attention-graph rank, needs Nq == Nk) treats the head-averaged `A[i,j] = (1/Hq) sum_h p[b,h,i,j]`
 * as a graph over the tokens: `s_0 = 1/Nq` everywhere, `s_{t+1} = normalize(A^T s_t)` with
 * `normalize(v) = v / sum(v)` (all zeros when the sum is 0), and importance = `s_T`,
 * T = `graph_iters`. So `s_1` is colsum scaled to sum 1. `out` has q's dtype; the reference
 * accumulates in f64.
 *
 * Capacity-padded token axes (after an adaptive `tokens.prune`, `kir/live.ts`): with L_b live
 * queries / keys in example b, padding keys are disallowed, padding query rows are 0, the causal
 * offset is `L_b(k) - L_b(q)` and the graph rank runs over the L_b live tokens, as if example b
 * had run alone with its own token count.
 */
export const attentionDef = registerOp({
  name: "attention",
  doc: "Fused multi-head (grouped-query) scaled-dot-product attention with optional mask, additive bias, causal masking and per-key importance scores.",
  inputs: [
    { name: "q" },
    { name: "k" },
    { name: "v" },
    { name: "mask", optional: true },
    { name: "bias", optional: true },
  ],
  outputs: [{ name: "out" }, { name: "importance", optional: true }],
  attrs: {
    scale: { kind: "float", optional: true, doc: "Score multiplier; 1/sqrt(D) when absent." },
    causal: { kind: "bool", default: false, doc: "Query i attends keys j <= i + (Nk - Nq)." },
    scores: {
      kind: "string",
      default: "none",
      oneOf: ["none", "cls", "colsum", "graph"],
      doc: "Importance output kind.",
    },
    graph_iters: {
      kind: "int",
      default: 5,
      doc: 'scores = "graph": rank iterations T (>= 1).',
    },
  },
  pure: true,
  infer(ctx) {
    const q = rank4(ctx, 0, "q");
    const k = rank4(ctx, 1, "k");
    const v = rank4(ctx, 2, "v");
    const [B, Hq, Nq, D] = q.dims;
    const [, Hkv, Nk] = k.dims;
    if (k.dtype !== q.dtype || v.dtype !== q.dtype)
      ctx.fail(`q, k, v dtypes differ: ${q.dtype}, ${k.dtype}, ${v.dtype}`);
    same(ctx, "batch sizes of q and k", B, k.dims[0]);
    same(ctx, "batch sizes of q and v", B, v.dims[0]);
    same(ctx, "head dims of q and k", D, k.dims[3]);
    same(ctx, "kv head counts of k and v", Hkv, v.dims[1]);
    same(ctx, "key counts of k and v", Nk, v.dims[2]);
    if (Hkv === 0) ctx.fail("k has no heads");
    const rem = mod(Hq, Hkv);
    if (typeof rem === "number" && rem !== 0)
      ctx.fail(`Hq = ${printDim(Hq)} is not a multiple of Hkv = ${printDim(Hkv)}`);
    const target = [B, Hq, Nq, Nk];
    const mask = ctx.inputs[3];
    if (mask) {
      if (mask.dtype !== "bool") ctx.fail(`mask must be bool, got ${mask.dtype}`);
      requireBroadcastableTo(ctx, "mask", mask.dims, target);
    }
    const bias = ctx.inputs[4];
    if (bias) {
      if (!isFloat(bias.dtype)) ctx.fail(`bias must be a float tensor, got ${bias.dtype}`);
      requireBroadcastableTo(ctx, "bias", bias.dims, target);
    }
    const scores = ctx.attr<ScoreKind>("scores");
    if (ctx.numOutputs === 2 && scores === "none")
      ctx.fail(`the importance output needs scores = "cls", "colsum" or "graph"`);
    if (ctx.numOutputs === 1 && scores !== "none")
      ctx.fail(`scores = "${scores}" needs the importance output`);
    if (scores !== "graph" && ctx.attrs.graph_iters !== undefined)
      ctx.fail(`graph_iters applies only to scores = "graph", not "${scores}"`);
    if (scores === "graph") {
      const iters = ctx.attr<number>("graph_iters");
      if (iters < 1) ctx.fail(`graph_iters must be >= 1, got ${iters}`);
      // The rank iterates over one token set: queries and keys must be the same tokens.
      if (!dimEquals(Nq, Nk))
        ctx.fail(
          `scores = "graph" needs as many queries as keys, got Nq = ${printDim(Nq)}, Nk = ${printDim(Nk)}`,
        );
    }
    const out = tensorType(q.dtype, [B, Hq, Nq, v.dims[3]], q.axes);
    const importance = tensorType("f32", [B, Nk], k.axes ? [k.axes[0], k.axes[2]] : undefined);
    return ctx.numOutputs === 2 ? [out, importance] : [out];
  },
  reference([q, k, v, mask, bias], ctx) {
    return attentionReference(q!, k!, v!, mask ?? null, bias ?? null, {
      scale: ctx.optAttr<number>("scale"),
      causal: ctx.attr<boolean>("causal"),
      scores: ctx.attr<ScoreKind>("scores"),
      graphIters: ctx.attr<number>("graph_iters"),
      liveQ: liveCounts(ctx, 0, 2, q!.shape[0]),
      liveK: liveCounts(ctx, 1, 2, q!.shape[0]),
    });
  },
  flops(ctx, outs) {
    const [B, Hq, Nq, D] = input(ctx, 0).dims;
    const Nk = input(ctx, 1).dims[2];
    const Dv = outs[0].dims[3];
    const pairs = mul(B, Hq, Nq, Nk);
    // Two matmuls (2*D and 2*Dv per pair), plus ~5 per pair for scale/bias, max, exp, sum, divide.
    const base = add(mul(2, pairs, add(D, Dv)), mul(5, pairs));
    if (ctx.attr<ScoreKind>("scores") !== "graph") return base;
    // Head averaging (1 per pair), then T matrix-vector products A^T s (2*Nq*Nk) and normalisations.
    const iters = ctx.attr<number>("graph_iters");
    return add(base, pairs, mul(iters, B, add(mul(2, Nq, Nk), mul(2, Nk))));
  },
  lower: lowerAttention,
  // q, k and v may be strided views (the exporter's head split); the output may be stored strided.
  stridedInputs: [0, 1, 2],
  stridedOutput: true,
});

export interface AttentionOptions {
  readonly scale?: number;
  readonly causal: boolean;
  readonly scores: ScoreKind;
  /** Rank iterations for scores = "graph" (default 5). */
  readonly graphIters?: number;
  /** Live queries / keys per example on capacity-padded axes (rows past them are padding). */
  readonly liveQ?: Int32Array;
  readonly liveK?: Int32Array;
}

/** The reference semantics of `attention` on concrete tensors (exported for backends' tests). */
export function attentionReference(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  bias: Tensor | null,
  opts: AttentionOptions,
): Tensor[] {
  const [B, Hq, Nq, D] = q.shape;
  const [, Hkv, Nk] = k.shape;
  const Dv = v.shape[3];
  const group = Hq / Hkv;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const full = [B, Hq, Nq, Nk];
  const mIdx = mask ? broadcastIndex(mask.shape, full) : undefined;
  const bIdx = bias ? broadcastIndex(bias.shape, full) : undefined;
  const out = new Float64Array(B * Hq * Nq * Dv);
  const imp = new Float64Array(B * Nk);
  const s = new Float64Array(Nk);
  const allowed = new Uint8Array(Nk);
  // One array type in the hot loops (the tensor storage types differ by dtype).
  const qd = asF64(q.data);
  const kd = asF64(k.data);
  const vd = asF64(v.data);
  const md = mask ? asF64(mask.data) : undefined;
  const bd = bias ? asF64(bias.data) : undefined;
  const kt = new Float64Array(D * Nk); // K of one kv head transposed, so score loops run over keys
  // scores = "graph": the head-averaged attention matrix of one example, rows = queries.
  const graph = opts.scores === "graph" ? new Float64Array(Nq * Nk) : undefined;
  for (let b = 0; b < B; b++) {
    graph?.fill(0);
    const nq = Math.min(Nq, opts.liveQ ? opts.liveQ[b] : Nq);
    const nk = Math.min(Nk, opts.liveK ? opts.liveK[b] : Nk);
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / group);
      const kBase = (b * Hkv + g) * Nk;
      if (h % group === 0)
        for (let j = 0; j < Nk; j++) for (let d = 0; d < D; d++) kt[d * Nk + j] = kd[(kBase + j) * D + d];
      for (let i = 0; i < nq; i++) {
        const row = (b * Hq + h) * Nq + i;
        const qOff = row * D;
        s.fill(0);
        for (let d = 0; d < D; d++) {
          const qv = qd[qOff + d];
          const kOff = d * Nk;
          for (let j = 0; j < Nk; j++) s[j] += qv * kt[kOff + j];
        }
        let m = -Infinity;
        for (let j = 0; j < Nk; j++) {
          const flat = row * Nk + j;
          const ok = j < nk && (!md || md[mIdx![flat]] !== 0) && (!opts.causal || j <= i + (nk - nq));
          allowed[j] = ok ? 1 : 0;
          if (!ok) continue;
          const sj = scale * s[j] + (bd ? bd[bIdx![flat]] : 0);
          s[j] = sj;
          if (sj > m) m = sj;
        }
        if (m === -Infinity) continue; // nothing to attend: zeros
        let sum = 0;
        for (let j = 0; j < Nk; j++) if (allowed[j]) sum += s[j] = Math.exp(s[j] - m);
        const oOff = row * Dv;
        const scoreRow = opts.scores === "colsum" || (opts.scores === "cls" && i === 0);
        for (let j = 0; j < Nk; j++) {
          if (!allowed[j]) continue;
          const p = s[j] / sum;
          const vOff = (kBase + j) * Dv;
          for (let d = 0; d < Dv; d++) out[oOff + d] += p * vd[vOff + d];
          if (scoreRow) imp[b * Nk + j] += p / Hq;
          if (graph) graph[i * Nk + j] += p / Hq;
        }
      }
    }
    // Padding rows and columns of the graph are 0: the rank starts from the live queries only.
    if (graph) imp.set(graphRank(graph, nq, Nk, opts.graphIters ?? 5), b * Nk);
  }
  const res = [makeTensor(q.dtype, [B, Hq, Nq, Dv], out)];
  if (opts.scores !== "none") res.push(makeTensor("f32", [B, Nk], imp));
  return res;
}

/**
 * The attention-graph rank of `scores = "graph"`: `s_0 = 1/Nq`, `s_{t+1} = normalize(A^T s_t)`
 * over the row-major `a` `[Nq, Nk]` (Nq == Nk when iters > 1); a zero sum gives all zeros.
 */
export function graphRank(a: Float64Array, Nq: number, Nk: number, iters: number): Float64Array {
  let s = new Float64Array(Nq).fill(1 / Nq);
  for (let t = 0; t < iters; t++) {
    const next = new Float64Array(Nk);
    for (let i = 0; i < Nq; i++) {
      const si = s[i];
      if (si === 0) continue;
      for (let j = 0; j < Nk; j++) next[j] += a[i * Nk + j] * si;
    }
    let sum = 0;
    for (let j = 0; j < Nk; j++) sum += next[j];
    if (sum > 0) for (let j = 0; j < Nk; j++) next[j] /= sum;
    else next.fill(0);
    s = next;
  }
  return s;
}
