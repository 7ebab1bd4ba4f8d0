import { type Dim, ceildiv, dimEquals, floordiv, mul as dimMul, printDim } from "../ir/sym.js";
import { KernelBuilder, broadcastOffset, elementwiseKernel, unravel } from "../kir/builder.js";
import {
  NEG_INF,
  add,
  and,
  builtin,
  cast,
  dimExpr,
  div,
  eq,
  f32,
  ge,
  gt,
  i32,
  le,
  lt,
  max,
  min,
  mul,
  or,
  select,
  sub,
  unary,
} from "../kir/expr.js";
import { type LiveLength, liveLength } from "../kir/live.js";
import { loadAs, toStorage } from "../kir/lower.js";
import type { TensorType } from "../ir/types.js";
import type { Binding, Expr, Kernel, Launch, Lowering, Scratch } from "../kir/types.js";
import { storageType } from "../kir/types.js";
import type { ScoreKind } from "./attention.js";
import { iadd, imul } from "./linalg-lower.js";
import { barrierAverse } from "./lower-util.js";
import { stridedOffset } from "../kir/views.js";
import type { ElementStrides, LowerCtx } from "./registry.js";

/**
 * Lowering of the fused `attention` op, in two variants of the main kernel: `rows` (R query
 * rows per invocation, scores in registers / private arrays, no barriers: CPU drivers) and
 * `workgroup` (one workgroup per query row, tree reductions, staged P·V: GPUs). With importance
 * scores, probabilities go to a scratch ([B, Hq, Nq, Nk]; the rows variant keeps only query row 0
 * for "cls", [B, Hq, Nk]); an invocation only reads back the entries it wrote itself (workgroup
 * barriers do not order storage writes), and later launches reduce them into the importance output.
 */

const WG = 64;

/** Workgroup tree reduction of `arr[0..WG)` in place; the result is left in arr[0]. */
function treeReduce(kb: KernelBuilder, arr: string, t: Expr, op: (a: Expr, b: Expr) => Expr): void {
  for (let stride = WG / 2; stride >= 1; stride /= 2) {
    kb.if(lt(t, stride), () => kb.store(arr, t, op(kb.load(arr, t), kb.load(arr, iadd(t, stride)))));
    kb.barrier();
  }
}

function staticDim(ctx: LowerCtx, d: Dim, what: string): number {
  if (typeof d !== "number") return ctx.fail(`attention lowering needs a static ${what}, got a symbolic one`);
  return d;
}

/** Kernel style of the main attention launch (the importance launches are the same for both). */
export type AttentionVariant = "rows" | "workgroup";

/** Every variant, for tests and autotuners (`attentionLowering(ctx, variant)`). */
export const ATTENTION_VARIANTS: readonly AttentionVariant[] = ["rows", "workgroup"];

/**
 * Query rows per workgroup of the `rows` variant (all of one (b, h)): one 8-lane SIMD row of
 * lavapipe, which measured faster than 16 lanes (more, smaller workgroups to spread over threads).
 */
const ROWS_WG_DEFAULT = 8;

/** Scratch of the full probabilities [B, Hq, Nq, Nk] and of query row 0's only [B, Hq, Nk]. */
const PROBS = "probs";
const CLS = "cls";

/** Largest static key count whose scores the `rows` variant keeps in private arrays (two passes). */
export const ROWS_MAX_PRIVATE_KEYS = 512;

/** Largest static head dims (D, Dv) the `rows` variant keeps in registers (unrolled). */
export const ROWS_MAX_HEAD_DIM = 64;

/** What both variants need: dims and attributes of the node. */
interface AttnParts {
  readonly ctx: LowerCtx;
  readonly q: TensorType;
  readonly k: TensorType;
  readonly v: TensorType;
  readonly mask: TensorType | null;
  readonly bias: TensorType | null;
  readonly out: TensorType;
  readonly B: Dim;
  readonly Hq: Dim;
  readonly Nq: Dim;
  readonly Hkv: Dim;
  readonly Nk: Dim;
  readonly D: number;
  readonly Dv: number;
  readonly scores: ScoreKind;
  readonly scale: number;
  readonly causal: boolean;
  /** Live lengths of capacity-padded query / key axes (adaptive tokens.prune; `kir/live.ts`). */
  readonly liveQ: LiveLength | undefined;
  readonly liveK: LiveLength | undefined;
  /** Strided q, k, v and output (`LowerCtx.inputViews` / `outputView`); absent: row-major. */
  readonly views: {
    readonly q?: ElementStrides;
    readonly k?: ElementStrides;
    readonly v?: ElementStrides;
    readonly out?: ElementStrides;
  };
}

/** Offset of element (x0, x1, x2, 0) of a strided 4-D operand: the base of one head row. */
function viewRow(view: ElementStrides, dims: readonly Dim[], x: readonly Expr[]): Expr {
  return stridedOffset(x, dims.slice(0, 3), { offset: view.offset, strides: view.strides.slice(0, 3) });
}

/** Element d of the head row at `base`: row-major rows are contiguous, views step by their stride. */
function rowElem(view: ElementStrides | undefined, base: Expr, d: Expr | number): Expr {
  const s = view?.strides[3] ?? 1;
  if (s === 1) return iadd(base, d);
  return iadd(base, typeof s === "number" ? imul(d, s) : mul(typeof d === "number" ? i32(d) : d, dimExpr(s)));
}

/** Loop bounds of one example: its own live lengths where padded, else the dims. */
interface Lens {
  readonly nq: Expr;
  readonly nk: Expr;
}

/** Declares the count buffers (in `liveArgs` order); the result gives example b's bounds. */
function liveLens(kb: KernelBuilder, p: AttnParts): (b: Expr) => Lens {
  const loaders = new Map<string, (b: Expr) => Expr>();
  for (const l of [p.liveQ, p.liveK]) if (l && !loaders.has(l.symbol)) loaders.set(l.symbol, l.load(kb));
  return (b) => {
    const seen = new Map<string, Expr>();
    const len = (l: LiveLength | undefined, d: Dim): Expr => {
      if (!l) return dimExpr(d);
      const e = seen.get(l.symbol) ?? loaders.get(l.symbol)!(b);
      seen.set(l.symbol, e);
      return e;
    };
    const nq = len(p.liveQ, p.Nq);
    return { nq, nk: len(p.liveK, p.Nk) };
  };
}

/** Bindings of the count buffers `liveLens` declares, in its order. */
function liveArgs(p: AttnParts): Binding[] {
  const ls = [p.liveQ, p.liveK].filter((l): l is LiveLength => l !== undefined);
  return ls.filter((l, i) => ls.findIndex((m) => m.symbol === l.symbol) === i).map((l) => l.binding);
}

/**
 * `attention` lowering: `rows` on barrier-averse (CPU driver) targets when the head dims fit in
 * registers, else `workgroup`.
 */
export function lowerAttention(ctx: LowerCtx): Lowering {
  const p = attnParts(ctx);
  const rows = barrierAverse(ctx.target) && p.D <= ROWS_MAX_HEAD_DIM && p.Dv <= ROWS_MAX_HEAD_DIM;
  return attentionLowering(ctx, rows ? "rows" : "workgroup");
}

/**
 * Knobs of the `rows` kernel, for benchmarks (bench/attention.ts) and tests; absent fields take
 * the defaults the lowering picks.
 */
export interface RowsTuning {
  /** Query rows per invocation (default `rowsPerInvocation(D, Dv)`). */
  readonly rows?: number;
  /** Invocations per workgroup (default 8, `ROWS_WG_DEFAULT`). */
  readonly wg?: number;
  /** One-pass online softmax even when the scores would fit the private arrays. */
  readonly online?: boolean;
}

/** The lowering with an explicit variant of the main kernel. */
export function attentionLowering(
  ctx: LowerCtx,
  variant: AttentionVariant,
  tuning: RowsTuning = {},
): Lowering {
  const p = attnParts(ctx);
  // The workgroup variant stages exponentials in the full probability scratch (and keeps row 0's
  // probabilities there for "cls"); rows only needs it for colsum / graph, and for "cls" keeps
  // query row 0 of each (b, h) in its own [B, Hq, Nk] scratch (a second buffer would push the
  // workgroup variant past 8 storage buffers with a mask, a bias and a live count).
  const full = variant === "workgroup" || p.scores === "colsum" || p.scores === "graph";
  const cls = p.scores === "cls" && variant === "rows";
  const scratch: Scratch[] = [
    ...(full ? [{ name: PROBS, t: "f32" as const, size: dimMul(p.B, p.Hq, p.Nq, p.Nk) }] : []),
    ...(cls ? [{ name: CLS, t: "f32" as const, size: dimMul(p.B, p.Hq, p.Nk) }] : []),
  ];
  const kernel = variant === "rows" ? rowsKernel(p, tuning) : workgroupKernel(p);
  const present = [0, 1, 2, 3, 4].filter((x) => ctx.inputs[x]);
  const mainArgs: Binding[] = [
    ...present.map((index) => ({ kind: "input" as const, index })),
    { kind: "output", index: 0 },
    ...scratch.map((sc) => ({ kind: "scratch" as const, name: sc.name })),
    ...liveArgs(p),
  ];
  const launches: Launch[] = [{ kernel, args: mainArgs }];
  if (p.scores !== "none") {
    const imp = importanceLaunches(p, p.scores, cls ? CLS : PROBS);
    launches.push(...imp.launches);
    scratch.push(...imp.scratch);
  }
  return { launches, scratch };
}

function attnParts(ctx: LowerCtx): AttnParts {
  const [q, k, v, mask, bias] = [0, 1, 2, 3, 4].map((i) => ctx.inputs[i] ?? null);
  if (!q || !k || !v) return ctx.fail("attention needs q, k and v");
  const [B, Hq, Nq] = q.dims;
  const D = staticDim(ctx, q.dims[3], "head dim D");
  const [, Hkv, Nk] = k.dims;
  const [liveQ, liveK] = [liveLength(ctx, Nq), liveLength(ctx, Nk)];
  // The counts are per example of the prune's batch: the attention batch must be that batch.
  for (const l of [liveQ, liveK])
    if (l && !dimEquals(l.batch, B))
      ctx.fail(
        `the padded token axis ${l.symbol} has counts for a batch of ${printDim(l.batch)}, but attention's batch is ${printDim(B)}`,
      );
  return {
    ctx,
    q,
    k,
    v,
    mask,
    bias,
    out: ctx.outputs[0],
    B,
    Hq,
    Nq,
    Hkv,
    Nk,
    D,
    Dv: staticDim(ctx, v.dims[3], "value head dim Dv"),
    scores: ctx.attr<ScoreKind>("scores"),
    scale: ctx.optAttr<number>("scale") ?? 1 / Math.sqrt(D),
    causal: ctx.attr<boolean>("causal"),
    liveQ,
    liveK,
    views: {
      ...(ctx.inputViews?.[0] ? { q: ctx.inputViews[0] } : {}),
      ...(ctx.inputViews?.[1] ? { k: ctx.inputViews[1] } : {}),
      ...(ctx.inputViews?.[2] ? { v: ctx.inputViews[2] } : {}),
      ...(ctx.outputView ? { out: ctx.outputView } : {}),
    },
  };
}

/**
 * The score of key j for query row (b, h, i): scaled dot product plus bias, -inf where the mask
 * or the causal rule disallows the key (shared by both variants, so they round alike).
 */
function scoreOf(kb: KernelBuilder, p: AttnParts, bufs: Bufs, idx: Expr[], dot: Expr, lens: Lens): Expr {
  const { mask, bias, causal, target } = { ...p, target: p.ctx.target };
  const [, , i, j] = idx;
  let allowed: Expr | null = null;
  if (mask && bufs.mask) allowed = loadAs(kb, bufs.mask, broadcastOffset(idx, mask.dims), "bool", target);
  if (causal) {
    const c = le(j, iadd(i, sub(lens.nk, lens.nq)));
    allowed = allowed ? and(allowed, c) : c;
  }
  let s = mul(dot, f32(p.scale));
  if (bias && bufs.bias)
    s = add(s, cast(loadAs(kb, bufs.bias, broadcastOffset(idx, bias.dims), bias.dtype, target), "f32"));
  return allowed ? select(allowed, s, NEG_INF()) : s;
}

interface Bufs {
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly mask: string | null;
  readonly bias: string | null;
  readonly out: string;
}

/** The node's buffers in binding order (inputs present, then out). */
function declareBufs(kb: KernelBuilder, p: AttnParts): Bufs {
  const t = p.ctx.target;
  return {
    q: kb.buffer("q", storageType(p.q.dtype, t), "read"),
    k: kb.buffer("k", storageType(p.k.dtype, t), "read"),
    v: kb.buffer("v", storageType(p.v.dtype, t), "read"),
    mask: p.mask ? kb.buffer("mask", storageType(p.mask.dtype, t), "read") : null,
    bias: p.bias ? kb.buffer("bias", storageType(p.bias.dtype, t), "read") : null,
    out: kb.buffer("out", storageType(p.out.dtype, t), "read_write"),
  };
}

/**
 * `rows`: each invocation owns R query rows of one (b, h) (R = `rowsPerInvocation`), with no
 * workgroup memory or barriers. The q rows and the Dv output accumulators live in registers
 * (unrolled); every key's k and v vectors are loaded once for the R rows. (b, h) and the key
 * index are the same in every lane, so a CPU driver (lavapipe) loads k and v as scalars instead
 * of per-lane gathers. With a static key count of at most `ROWS_MAX_PRIVATE_KEYS`, a first pass
 * keeps every score in a private array and takes the row max, and a second pass exponentiates
 * against that final max: no data-dependent branch. Otherwise keys are visited once with an
 * online softmax that rescales a row when its running max grows. With importance scores, the
 * two-pass path writes probabilities at the end from the private scores; the one-pass path stores
 * raw scores during the pass and turns them into probabilities with the final max and sum.
 */
function rowsKernel(p: AttnParts, tuning: RowsTuning): Kernel {
  const target = p.ctx.target;
  const { D, Dv } = p;
  const R = tuning.rows ?? rowsPerInvocation(D, Dv);
  const wg = tuning.wg ?? ROWS_WG_DEFAULT;
  const kb = new KernelBuilder(`${p.ctx.name}_attn_rows`, [wg, 1, 1]);
  const bufs = declareBufs(kb, p);
  const cls = p.scores === "cls";
  const sb = p.scores === "none" ? null : kb.buffer(cls ? CLS : PROBS, "f32", "read_write");
  const lensAt = liveLens(kb, p);
  // (b, h) come from the workgroup, so key and value addresses are the same for every lane.
  kb.setGrid([ceildiv(p.Nq, wg * R), p.Hq, p.B]);
  const h = kb.let("h", builtin("group_id", 1));
  const b = kb.let("b", builtin("group_id", 2));
  const lens = lensAt(b);
  const first = kb.let("first_row", imul(builtin("group_id", 0), wg * R));
  const i0 = kb.let("i0", iadd(first, builtin("local_id", 0)));
  // A workgroup whose rows are all padding (past the example's live query count) visits no key:
  // its rows come out 0 like rows with no allowed key. The bound is uniform per workgroup.
  const nkLoop = p.liveQ ? kb.let("nk_wg", select(lt(first, lens.nq), lens.nk, i32(0))) : lens.nk;
  const nq = dimExpr(p.Nq);
  const nk = dimExpr(p.Nk);
  const g = kb.let("g", div(h, dimExpr(floordiv(p.Hq, p.Hkv))));
  const kBase = kb.let("k_base", imul(iadd(imul(b, dimExpr(p.Hkv)), g), nk));
  const rowBase = kb.let("row_base", imul(iadd(imul(b, dimExpr(p.Hq)), h), nq));
  // Rows past Nq compute a copy of the last row (no branch around the key loop) and store nothing.
  const rows = Array.from({ length: R }, (_, r) => {
    const i = kb.let(`i${r}_`, min(iadd(i0, r * wg), sub(nq, 1)));
    const row = kb.let(`row${r}_`, iadd(rowBase, i));
    const qv = p.views.q;
    const qOff = kb.let(`q_off${r}_`, qv ? viewRow(qv, p.q.dims, [b, h, i]) : imul(row, D));
    return {
      i,
      row,
      valid: kb.let(`valid${r}_`, lt(iadd(i0, r * wg), nq)),
      q: Array.from({ length: D }, (_, d) =>
        kb.let(`q${r}_${d}`, cast(loadAs(kb, bufs.q, rowElem(qv, qOff, d), p.q.dtype, target), "f32")),
      ),
      // Where this row's probabilities go: its own scratch row, or only row 0 for "cls".
      sRow:
        !sb || (cls && r > 0)
          ? null
          : kb.let(`s_row${r}_`, imul(cls ? iadd(imul(b, dimExpr(p.Hq)), h) : row, nk)),
      sKeep: cls && r === 0 ? and(lt(i0, nq), eq(i0, i32(0))) : null,
      m: kb.var(`m${r}_`, NEG_INF()),
      l: kb.var(`l${r}_`, f32(0)),
      acc: Array.from({ length: Dv }, (_, e) => kb.var(`acc${r}_${e}`, f32(0))),
    };
  });
  const kRow = (j: Expr): Expr[] => {
    const kv = p.views.k;
    const kOff = kb.let("k_off", kv ? viewRow(kv, p.k.dims, [b, g, j]) : imul(iadd(kBase, j), D));
    return Array.from({ length: D }, (_, d) =>
      kb.let(`k${d}`, cast(loadAs(kb, bufs.k, rowElem(kv, kOff, d), p.k.dtype, target), "f32")),
    );
  };
  const scoreAt = (rw: (typeof rows)[number], r: number, kv: Expr[], j: Expr): Expr => {
    const dot = treeSum(rw.q.map((qd, d) => mul(qd, kv[d])));
    return kb.let(`s${r}_`, scoreOf(kb, p, bufs, [b, h, rw.i, j], kb.let(`dot${r}_`, dot ?? f32(0)), lens));
  };
  const vRow = (j: Expr, ws: Expr[]): void => {
    const vw = p.views.v;
    const vOff = kb.let("v_off", vw ? viewRow(vw, p.v.dims, [b, g, j]) : imul(iadd(kBase, j), Dv));
    for (let e = 0; e < Dv; e++) {
      const vv = kb.let(`v${e}`, cast(loadAs(kb, bufs.v, rowElem(vw, vOff, e), p.v.dtype, target), "f32"));
      rows.forEach((rw, r) => kb.set(rw.acc[e], add(rw.acc[e], mul(ws[r], vv))));
    }
  };
  // Only valid rows write the scratch: a clamped copy would race with the row it copies.
  const keep = (rw: (typeof rows)[number], j: Expr, s: Expr): void => {
    const sRow = rw.sRow;
    if (sb && sRow) kb.if(rw.sKeep ?? rw.valid, () => kb.store(sb, iadd(sRow, j), s));
  };
  // Probability numerator of row r at key j for the final writes (set by the path taken).
  let numer = (r: number, j: Expr): Expr => {
    const rw = rows[r];
    const sRow = rw.sRow;
    if (!sb || !sRow) throw new Error("attention rows: no probability scratch row");
    return select(eq(rw.m, NEG_INF()), f32(0), unary("exp", sub(kb.load(sb, iadd(sRow, j)), rw.m)));
  };
  // m = -inf means every key so far is disallowed: weight 0 (not exp(-inf + inf)).
  const weight = (rw: (typeof rows)[number], r: number, s: Expr): Expr => {
    const w = kb.let(`w${r}_`, select(eq(rw.m, NEG_INF()), f32(0), unary("exp", sub(s, rw.m))));
    kb.set(rw.l, add(rw.l, w));
    return w;
  };
  // Keys past the live length are padding: never visited.
  // Generic kernels (one for several static key counts) size the arrays by the largest count.
  const nkMax = typeof p.Nk === "number" ? p.Nk : p.ctx.bound?.(p.Nk);
  if (!tuning.online && nkMax !== undefined && nkMax <= ROWS_MAX_PRIVATE_KEYS) {
    const nkStatic = nkMax;
    const sc = rows.map((_, r) => kb.array(`sc${r}_`, "f32", Math.max(1, nkStatic), "private"));
    kb.for("j", 0, nkLoop, (j) => {
      const kv = kRow(j);
      rows.forEach((rw, r) => {
        const s = scoreAt(rw, r, kv, j);
        kb.store(sc[r], j, s);
        kb.set(rw.m, max(rw.m, s));
      });
    });
    // A row with no allowed key has only -inf scores: exp(-inf - 0) = 0 with no per-key test.
    const mSafe = rows.map((rw, r) => kb.let(`m_safe${r}_`, select(eq(rw.m, NEG_INF()), f32(0), rw.m)));
    // The scores are still in the private arrays: probabilities are written once, at the end.
    numer = (r, j) => unary("exp", sub(kb.load(sc[r], j), mSafe[r]));
    kb.for("j", 0, nkLoop, (j) =>
      vRow(
        j,
        rows.map((rw, r) => {
          const w = kb.let(`w${r}_`, numer(r, j));
          kb.set(rw.l, add(rw.l, w));
          return w;
        }),
      ),
    );
  } else
    kb.for("j", 0, nkLoop, (j) => {
      const kv = kRow(j);
      const ws = rows.map((rw, r) => {
        const s = scoreAt(rw, r, kv, j);
        keep(rw, j, s);
        // A larger max rescales what was accumulated (exp(-inf) = 0 for the first allowed key).
        kb.if(gt(s, rw.m), () => {
          const corr = kb.let("corr", unary("exp", sub(rw.m, s)));
          kb.set(rw.l, mul(rw.l, corr));
          for (const a of rw.acc) kb.set(a, mul(a, corr));
          kb.set(rw.m, s);
        });
        return weight(rw, r, s);
      });
      vRow(j, ws);
    });
  rows.forEach((rw, r) => {
    kb.if(rw.valid, () => {
      // Padding query rows (past the example's live length) are 0, like rows with no allowed key.
      const none = p.liveQ ? or(eq(rw.l, f32(0)), ge(rw.i, lens.nq)) : eq(rw.l, f32(0));
      const inv = kb.let(`inv${r}_`, select(none, f32(0), div(f32(1), rw.l)));
      const ov = p.views.out;
      const oOff = kb.let(`o_off${r}_`, ov ? viewRow(ov, p.out.dims, [b, h, rw.i]) : imul(rw.row, Dv));
      rw.acc.forEach((a, e) =>
        kb.store(bufs.out, rowElem(ov, oOff, e), toStorage(mul(a, inv), p.out.dtype, target)),
      );
      const sRow = rw.sRow;
      const write = (): void => {
        if (sb && sRow) kb.for("j", 0, nkLoop, (j) => kb.store(sb, iadd(sRow, j), mul(numer(r, j), inv)));
      };
      if (rw.sKeep) kb.if(rw.sKeep, write);
      else write();
    });
  });
  return kb.build();
}

/** Pairwise sum (short dependency chains: the products of a dot are independent). */
function treeSum(xs: readonly Expr[]): Expr | null {
  if (xs.length === 0) return null;
  let level = [...xs];
  while (level.length > 1) {
    const next: Expr[] = [];
    for (let x = 0; x < level.length; x += 2)
      next.push(x + 1 < level.length ? add(level[x], level[x + 1]) : level[x]);
    level = next;
  }
  return level[0];
}

/**
 * Query rows per `rows` invocation: up to 4 while q and the accumulators stay within ~128
 * registers, but at least 2 (each k / v load serves R rows; bench/attention.ts on lavapipe: head
 * dim 16, 4 rows beat 8, 2 and 1; head dim 64, 2 rows ran in 0.5-0.6x the time of 1, and 3 or 4
 * rows, a little faster still, took LLVM 100+ s to compile).
 */
export function rowsPerInvocation(D: number, Dv: number): number {
  return Math.max(2, Math.min(4, Math.floor(128 / Math.max(1, D + Dv))));
}

/**
 * `workgroup`: one workgroup of WG invocations per (b, h, query row): two-pass softmax with
 * workgroup tree reductions, then P·V in chunks of WG keys staged in workgroup memory.
 */
function workgroupKernel(p: AttnParts): Kernel {
  const { ctx, q, k, v, out, B, Hq, Nq, Hkv, Nk, D, Dv } = p;
  const target = ctx.target;
  const kb = new KernelBuilder(`${ctx.name}_attn`, [WG, 1, 1]);
  const bufs = declareBufs(kb, p);
  const { q: qb, k: kbuf, v: vb, out: ob } = bufs;
  const sb = kb.buffer(PROBS, "f32", "read_write");
  const qw = kb.array("q_row", "f32", Math.max(D, 1), "workgroup");
  const red = kb.array("red", "f32", WG, "workgroup");
  const pw = kb.array("p_chunk", "f32", WG, "workgroup");
  const lensAt = liveLens(kb, p);
  kb.setGrid([Nq, Hq, B]);
  const i = kb.let("i", builtin("group_id", 0));
  const h = kb.let("h", builtin("group_id", 1));
  const b = kb.let("b", builtin("group_id", 2));
  const lens = lensAt(b);
  // A padding query row visits no key, so it comes out 0 (uniform per workgroup: barriers stay safe).
  const nkRow = p.liveQ ? kb.let("nk_row", select(lt(i, lens.nq), lens.nk, i32(0))) : lens.nk;
  const t = kb.let("t", builtin("local_id", 0));
  const nk = dimExpr(Nk);
  const g = kb.let("g", div(h, dimExpr(floordiv(Hq, Hkv))));
  const row = kb.let("row", iadd(imul(iadd(imul(b, dimExpr(Hq)), h), dimExpr(Nq)), i));
  const sRow = kb.let("s_row", imul(row, nk));
  const kBase = kb.let("k_base", imul(iadd(imul(b, dimExpr(Hkv)), g), nk));
  const { q: qv, k: kv, v: vw, out: ov } = p.views;
  const qRow = kb.let("q_off", qv ? viewRow(qv, q.dims, [b, h, i]) : imul(row, D));
  kb.for(
    "d",
    t,
    D,
    (d) => kb.store(qw, d, cast(loadAs(kb, qb, rowElem(qv, qRow, d), q.dtype, target), "f32")),
    WG,
  );
  kb.barrier();

  // Pass 1: scores of this invocation's keys (j = t, t + WG, ...) and their max.
  const mt = kb.var("m_t", NEG_INF());
  const idx4 = (j: Expr): Expr[] => [b, h, i, j];
  kb.for(
    "j",
    t,
    nkRow,
    (j) => {
      const dot = kb.var("dot", f32(0));
      const kOff = kb.let("k_off", kv ? viewRow(kv, k.dims, [b, g, j]) : imul(iadd(kBase, j), D));
      kb.for("d", 0, D, (d) => {
        const kd = cast(loadAs(kb, kbuf, rowElem(kv, kOff, d), k.dtype, target), "f32");
        kb.set(dot, add(dot, mul(kb.load(qw, d), kd)));
      });
      const sj = kb.let("s", scoreOf(kb, p, bufs, idx4(j), dot, lens));
      kb.store(sb, iadd(sRow, j), sj);
      kb.set(mt, max(mt, sj));
    },
    WG,
  );
  kb.store(red, t, mt);
  kb.barrier();
  treeReduce(kb, red, t, max);
  const m = kb.let("m", kb.load(red, i32(0)));
  kb.barrier();

  // Pass 2: exponentials (0 for disallowed keys and rows with nothing allowed) and their sum.
  const lt_ = kb.var("l_t", f32(0));
  kb.for(
    "j",
    t,
    nkRow,
    (j) => {
      const e = kb.let(
        "e",
        select(eq(m, NEG_INF()), f32(0), unary("exp", sub(kb.load(sb, iadd(sRow, j)), m))),
      );
      kb.store(sb, iadd(sRow, j), e);
      kb.set(lt_, add(lt_, e));
    },
    WG,
  );
  kb.store(red, t, lt_);
  kb.barrier();
  treeReduce(kb, red, t, add);
  const l = kb.let("l", kb.load(red, i32(0)));
  const inv = kb.let("inv", select(eq(l, f32(0)), f32(0), div(f32(1), l)));

  // Pass 3: out = P V, WG keys at a time through workgroup memory.
  const nd = Math.ceil(Dv / WG);
  const acc = Array.from({ length: nd }, (_, e) => kb.var(`acc${e}`, f32(0)));
  kb.for(
    "c0",
    0,
    nkRow,
    (c0) => {
      const j = kb.let("j", iadd(c0, t));
      const inRange = kb.let("in_range", lt(j, nkRow));
      // Only this invocation's own entries of the scratch row are read (j = c0 + t).
      const pj = kb.var("p", f32(0));
      kb.if(inRange, () => {
        kb.set(pj, mul(kb.load(sb, iadd(sRow, j)), inv));
        // "cls" reads only row 0 (a uniform test: one workgroup is one query row).
        if (p.scores === "cls") kb.if(eq(i, i32(0)), () => kb.store(sb, iadd(sRow, j), pj));
        else if (p.scores !== "none") kb.store(sb, iadd(sRow, j), pj);
      });
      kb.store(pw, t, pj);
      kb.barrier();
      const cnt = kb.let("cnt", min(i32(WG), sub(nkRow, c0)));
      for (let e = 0; e < nd; e++) {
        const body = (): void => {
          const d = iadd(t, e * WG);
          kb.for("jj", 0, cnt, (jj) => {
            const vOff = vw ? viewRow(vw, v.dims, [b, g, iadd(c0, jj)]) : imul(iadd(kBase, c0, jj), Dv);
            const vv = cast(loadAs(kb, vb, rowElem(vw, vOff, d), v.dtype, target), "f32");
            kb.set(acc[e], add(acc[e], mul(kb.load(pw, jj), vv)));
          });
        };
        if ((e + 1) * WG <= Dv) body();
        else kb.if(lt(t, Dv - e * WG), body);
      }
      kb.barrier();
    },
    WG,
  );
  const oRow = ov ? kb.let("o_off", viewRow(ov, out.dims, [b, h, i])) : imul(row, Dv);
  acc.forEach((a, e) => {
    const store = (): void =>
      kb.store(ob, rowElem(ov, oRow, iadd(t, e * WG)), toStorage(a, out.dtype, target));
    if ((e + 1) * WG <= Dv) store();
    else kb.if(lt(t, Dv - e * WG), store);
  });

  return kb.build();
}

/**
 * Head-averaged probability sums into the importance output [B, Nk] (and the graph rank). Only
 * live query rows and keys are read (the probabilities of padding keys were never written);
 * importance is 0 at padding keys.
 */
function importanceLaunches(p: AttnParts, scores: Exclude<ScoreKind, "none">, probs: string): Lowering {
  const { ctx, B, Hq, Nq, Nk } = p;
  const invH = (x: Expr): Expr => div(x, cast(dimExpr(Hq), "f32"));
  const nk = dimExpr(Nk);
  const nq = dimExpr(Nq);
  const pAt = (bh: Expr, i: Expr, j: Expr): Expr => iadd(imul(iadd(imul(bh, nq), i), nk), j);
  const scratchArg = (name: string): Binding => ({ kind: "scratch", name });
  const live = liveArgs(p);
  // Sums run in f32; the output is stored as its dtype's storage (f16, or bf16 for f32 on --bf16).
  const impT = ctx.outputs[1];
  const impStorage = storageType(impT.dtype, ctx.target);
  if (scores === "cls" || scores === "colsum") {
    const kernel = elementwiseKernel(`${ctx.name}_importance`, dimMul(B, Nk), 64, (kb) => {
      const pb = kb.buffer("probs", "f32", "read");
      const ib = kb.buffer("importance", impStorage, "read_write");
      const lensAt = liveLens(kb, p);
      return (o) => {
        const [b, j] = unravel(kb, o, [B, Nk]);
        const lens = lensAt(b);
        const acc = kb.var("acc", f32(0));
        const sum = (): void =>
          kb.for("h", 0, dimExpr(Hq), (h) => {
            const bh = kb.let("bh", iadd(imul(b, dimExpr(Hq)), h));
            // "cls" reads row 0: the rows variant's [B, Hq, Nk] scratch or the full [B, Hq, Nq, Nk] one.
            if (scores === "cls")
              kb.set(acc, add(acc, kb.load(pb, probs === CLS ? iadd(imul(bh, nk), j) : pAt(bh, i32(0), j))));
            else kb.for("i", 0, lens.nq, (i) => kb.set(acc, add(acc, kb.load(pb, pAt(bh, i, j)))));
          });
        // Padding keys have no probabilities: their importance stays 0.
        if (p.liveK) kb.if(lt(j, lens.nk), sum);
        else sum();
        kb.store(ib, o, toStorage(invH(acc), impT.dtype, ctx.target));
      };
    });
    return {
      launches: [{ kernel, args: [scratchArg(probs), { kind: "output", index: 1 }, ...live] }],
      scratch: [],
    };
  }
  // Graph rank: A = head average [B, Nq, Nk]; u_1 = A^T (1/Nq); u_{t+1} = A^T normalize(u_t); out = normalize(u_T).
  const iters = ctx.attr<number>("graph_iters");
  const launches: Launch[] = [];
  const avg = elementwiseKernel(`${ctx.name}_graph_avg`, dimMul(B, Nq, Nk), 64, (kb) => {
    const pb = kb.buffer("probs", "f32", "read");
    const ab = kb.buffer("graph", "f32", "read_write");
    const lensAt = liveLens(kb, p);
    return (o) => {
      const [b, i, j] = unravel(kb, o, [B, Nq, Nk]);
      const lens = lensAt(b);
      const acc = kb.var("acc", f32(0));
      const sum = (): void =>
        kb.for("h", 0, dimExpr(Hq), (h) =>
          kb.set(acc, add(acc, kb.load(pb, pAt(iadd(imul(b, dimExpr(Hq)), h), i, j)))),
        );
      if (p.liveQ || p.liveK) kb.if(and(lt(i, lens.nq), lt(j, lens.nk)), sum);
      else sum();
      kb.store(ab, o, invH(acc));
    };
  });
  launches.push({ kernel: avg, args: [scratchArg(probs), scratchArg("graph"), ...live] });
  /** Sum of the first n entries of row b of a [B, stride] vector buffer. */
  const rowSum = (kb: KernelBuilder, buf: string, b: Expr, stride: Expr, n: Expr): Expr => {
    const s = kb.var("sum", f32(0));
    kb.for("x", 0, n, (x) => kb.set(s, add(s, kb.load(buf, iadd(imul(b, stride), x)))));
    return s;
  };
  const normalized = (v: Expr, sum: Expr): Expr => select(gt(sum, f32(0)), div(v, sum), f32(0));
  const vec = ["rank_a", "rank_b"];
  for (let it = 0; it < iters; it++) {
    const first = it === 0;
    const kernel = elementwiseKernel(`${ctx.name}_graph_step${it}`, dimMul(B, Nk), 64, (kb) => {
      const ab = kb.buffer("graph", "f32", "read");
      const prev = first ? null : kb.buffer("prev", "f32", "read");
      const nb = kb.buffer("next", "f32", "read_write");
      const lensAt = liveLens(kb, p);
      return (o) => {
        const [b, j] = unravel(kb, o, [B, Nk]);
        const lens = lensAt(b);
        // Nq == Nk (same tokens): prev has the layout [B, Nk] and Nq live entries per row.
        const sum = prev ? kb.let("prev_sum", rowSum(kb, prev, b, nq, lens.nq)) : null;
        const acc = kb.var("acc", f32(0));
        kb.for("i", 0, lens.nq, (i) => {
          const si =
            prev && sum
              ? normalized(kb.load(prev, iadd(imul(b, nq), i)), sum)
              : div(f32(1), cast(lens.nq, "f32"));
          kb.set(acc, add(acc, mul(kb.load(ab, iadd(imul(iadd(imul(b, nq), i), nk), j)), si)));
        });
        kb.store(nb, o, acc);
      };
    });
    const args: Binding[] = [scratchArg("graph")];
    if (!first) args.push(scratchArg(vec[(it + 1) % 2]));
    args.push(scratchArg(vec[it % 2]), ...live);
    launches.push({ kernel, args });
  }
  const last = vec[(iters - 1) % 2];
  const fin = elementwiseKernel(`${ctx.name}_graph_norm`, dimMul(B, Nk), 64, (kb) => {
    const ub = kb.buffer("rank", "f32", "read");
    const ib = kb.buffer("importance", impStorage, "read_write");
    const lensAt = liveLens(kb, p);
    return (o) => {
      const b = kb.let("b", div(o, nk));
      const lens = lensAt(b);
      const sum = kb.let("sum_all", rowSum(kb, ub, b, nk, lens.nk));
      kb.store(ib, o, toStorage(normalized(kb.load(ub, o), sum), impT.dtype, ctx.target));
    };
  });
  launches.push({ kernel: fin, args: [scratchArg(last), { kind: "output", index: 1 }, ...live] });
  const vsize = dimMul(B, Nk);
  return {
    launches,
    scratch: [
      { name: "graph", t: "f32", size: dimMul(B, Nq, Nk) },
      { name: "rank_a", t: "f32", size: vsize },
      { name: "rank_b", t: "f32", size: vsize },
    ],
  };
}
