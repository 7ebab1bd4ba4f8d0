import type { DType } from "../ir/dtype.js";
import {
  type Dim,
  add as dimAdd,
  ceildiv,
  floordiv,
  max as dimMax,
  mul as dimMul,
  sub as dimSub,
} from "../ir/sym.js";
import { KernelBuilder, elementwiseKernel, flatGrid, unravel } from "../kir/builder.js";
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
  lit,
  lt,
  max,
  min,
  mod,
  mul,
  ne,
  or,
  select,
  sub,
  unary,
} from "../kir/expr.js";
import { liveLength } from "../kir/live.js";
import { loadAs, toStorage } from "../kir/lower.js";
import type { Binding, Expr, KType, Launch, Lowering, Scratch } from "../kir/types.js";
import { storageType } from "../kir/types.js";
import { iadd, imul } from "./linalg-lower.js";
import type { LowerCtx } from "./registry.js";
import type { PoolMode } from "./tokens-pool.js";
import type { ScoreMethod } from "./tokens-score.js";
import type { MergeMethod } from "./tokens.js";

/**
 * Kernel lowerings of the token ops. No float atomics and no scatter of float sums: rankings are
 * O(N) rank counts per token (ties to the lower position, as the references), compactions are a
 * serial O(N) walk per example (prune slots, merge plan), and every output row gathers its
 * sources. Launch order carries the dependencies.
 */

const WG = 64;
/** tokens.merge match: A tokens per invocation and B tokens per step (register blocking). */
const MATCH_A = 4;
const MATCH_B = 4;
/** Per-example serial launches: small workgroups, so a batch spreads over the cores. */
const PLAN_WG = 8;
/** tokens.merge plan: lanes of the one workgroup per example that rank the A tokens. */
const PLAN_LANES = 32;
/** tokens.merge plan: A tokens each lane ranks in one pass over the edges. */
const RANK_A = 4;
/** Merge/prune gathers: channels per invocation. */
const GATHER_C = 4;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const not = (e: Expr): Expr => unary("not", e);

/** Buffer parameters that remember their bindings. */
class Io {
  readonly args: Binding[] = [];
  constructor(
    readonly kb: KernelBuilder,
    readonly ctx: LowerCtx,
  ) {}

  input(i: number): string {
    const t = this.ctx.inputs[i];
    if (!t) return this.ctx.fail(`input ${i} is required`);
    this.args.push({ kind: "input", index: i });
    return this.kb.buffer(`in${i}`, storageType(t.dtype, this.ctx.target), "read");
  }

  output(i: number): string {
    const t = this.ctx.outputs[i];
    this.args.push({ kind: "output", index: i });
    return this.kb.buffer(`out${i}`, storageType(t.dtype, this.ctx.target), "read_write");
  }

  scratch(s: Scratch, access: "read" | "read_write"): string {
    this.args.push({ kind: "scratch", name: s.name });
    return this.kb.buffer(s.name, s.t, access);
  }

  /** Element of a buffer holding IR dtype `d`, as f32 (floats) or the register type. */
  read(buf: string, index: Expr, d: DType): Expr {
    const v = loadAs(this.kb, buf, index, d, this.ctx.target);
    return v.t === "f16" || v.t === "bf16" ? cast(v, "f32") : v;
  }

  write(buf: string, index: Expr, v: Expr, d: DType): void {
    this.kb.store(buf, index, toStorage(v, d, this.ctx.target));
  }
}

function launch(
  ctx: LowerCtx,
  suffix: string,
  total: Dim,
  setup: (io: Io) => (i: Expr) => void,
  wg = WG,
): Launch {
  let io: Io | undefined;
  const kernel = elementwiseKernel(`${ctx.name}_${suffix}`, total, wg, (kb) => {
    io = new Io(kb, ctx);
    return setup(io);
  });
  if (!io) return ctx.fail("internal: launch setup did not run");
  return { kernel, args: [...io.args] };
}

/** The two phases of a one-workgroup-per-example launch, split by a workgroup barrier. */
interface PlanPhases {
  /** Run by every lane of example b's workgroup. */
  readonly ranked: (b: Expr, lane: Expr) => void;
  /** Run by lane 0 after the barrier. */
  readonly serial: (b: Expr) => void;
}

/** One workgroup of PLAN_LANES lanes per example (grid folded past the per-axis limit). */
function planLaunch(ctx: LowerCtx, B: Dim, setup: (io: Io) => PlanPhases): Launch {
  const kb = new KernelBuilder(`${ctx.name}_plan`, [PLAN_LANES, 1, 1]);
  const io = new Io(kb, ctx);
  const phases = setup(io);
  const { grid } = flatGrid(B, 1);
  kb.setGrid(grid);
  const b = kb.let("b", add(builtin("group_id", 0), mul(builtin("group_id", 1), builtin("num_groups", 0))));
  const lane = kb.let("lane", builtin("local_id", 0));
  // b is uniform per workgroup, so the barrier stays in uniform control flow.
  kb.if(lt(b, dimExpr(B)), () => {
    phases.ranked(b, lane);
    kb.barrier();
    kb.if(eq(lane, 0), () => phases.serial(b));
  });
  return { kernel: kb.build(), args: [...io.args] };
}

/** A scratch buffer of at least one element (devices reject empty buffers). */
function scratch(name: string, t: Exclude<KType, "bool">, size: Dim): Scratch {
  return { name, t, size: dimMax(1, size) };
}

const isNaN_ = (v: Expr): Expr => ne(v, v);
/** Score for ranking: NaN ranks as -inf (`rankScore`). */
const rankScore = (v: Expr): Expr => select(isNaN_(v), NEG_INF(), v);
const fdiv = (a: Expr, b: Expr): Expr => div(a, b);
const toF = (e: Expr): Expr => cast(e, "f32");

// ---------- tokens.prune ----------

/**
 * `tokens.prune`, static and adaptive, three launches: (1) each token's rank by an O(N) count and
 * its kept flag (adaptive: the same scan counts the candidates, which gives the per-example
 * count), (2) the kept tokens' output slots, by one serial walk per example, (3) y rows gathered
 * from their source tokens (plus the EViT fused row) and, when C is a static positive size, the
 * index output from the same invocations (else a fourth launch). Static mode keeps exactly `keep`.
 */
export function lowerPrune(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0];
  const sc = ctx.inputs[1];
  if (!x || !sc) return ctx.fail("tokens.prune needs x and scores");
  const protect = ctx.inputs[2] ?? null;
  const [B, N, C] = x.dims;
  const fuse = ctx.attr<boolean>("fuse");
  const pf = ctx.attr<number>("protect_first");
  const threshold = ctx.optAttr<number>("threshold");
  const adaptive = threshold !== undefined;
  const y = ctx.outputs[0];
  const rows = y.dims[1];
  // Static keep is read from the dims (y's rows), so prunes keeping different counts share
  // generic kernels.
  const limit = adaptive ? ctx.attr<Dim>("capacity") : dimSub(rows, fuse ? 1 : 0);
  const lim = dimExpr(limit);
  const n = dimExpr(N);
  const keptS = scratch("kept", "i32", dimMul(B, N));
  const srcS = scratch("src", "i32", dimMul(B, limit));
  const cntS = scratch("cnt", "i32", B);
  // After an adaptive prune N is capacity-padded: tokens past example b's live length are never
  // ranked or fused, and it keeps at most that many (also with a static keep).
  const liveN = liveLength(ctx, N);
  const nLive = (io: Io): ((b: Expr) => Expr) => {
    if (!liveN) return () => n;
    io.args.push(liveN.binding);
    return liveN.load(io.kb);
  };

  const rank = launch(ctx, "rank", dimMul(B, N), (io) => {
    const xs = io.input(1);
    const pr = protect ? io.input(2) : null;
    const kept = io.scratch(keptS, "read_write");
    const cnt = adaptive ? io.scratch(cntS, "read_write") : null;
    const co = adaptive && ctx.outputs.length === 3 ? io.output(2) : null;
    const kb = io.kb;
    const nl = nLive(io);
    return (flat) => {
      const [b, j] = unravel(kb, flat, [B, N]);
      const nlb = nl(b);
      const prot = (t: Expr): Expr => {
        let p = lt(t, pf);
        if (protect && pr) {
          const at = protect.dims.length === 1 ? t : iadd(imul(b, n), t);
          p = or(p, io.read(pr, at, "bool"));
        }
        return p;
      };
      const score = (t: Expr): Expr => rankScore(io.read(xs, iadd(imul(b, n), t), sc.dtype));
      const candidate = (p: Expr, s: Expr): Expr => or(p, ge(s, f32(threshold ?? 0)));
      const pj = kb.let("pj", prot(j));
      const sj = kb.let("sj", score(j));
      const r = kb.var("rank", i32(0));
      const cands = kb.var("cands", i32(0));
      kb.for("i", 0, nlb, (i) => {
        const pi = kb.let("pi", prot(i));
        const si = kb.let("si", score(i));
        // i ranks before j: protected first (by position), then descending score, ties to the lower position.
        const samePrefix = eq(pi, pj);
        const byScore = or(gt(si, sj), and(eq(si, sj), lt(i, j)));
        const before = or(and(pi, ne(pj, pi)), and(samePrefix, select(pj, lt(i, j), byScore)));
        kb.set(r, add(r, select(before, i32(1), i32(0))));
        if (adaptive) kb.set(cands, add(cands, select(candidate(pi, si), i32(1), i32(0))));
      });
      // Candidates are a prefix of the ranking, so the kept ones are its first min(capacity, cands).
      let keep = lt(r, lim);
      if (adaptive) keep = and(keep, candidate(pj, sj));
      if (liveN) keep = and(keep, lt(j, nlb));
      kb.store(kept, flat, select(keep, i32(1), i32(0)));
      if (cnt)
        kb.if(eq(j, 0), () => {
          const c = kb.let("count", min(cands, lim));
          kb.store(cnt, b, c);
          if (co) io.write(co, b, c, "i32");
        });
    };
  });

  // One invocation per example lists its kept tokens in order (a serial O(N) walk).
  const slots = launch(
    ctx,
    "slots",
    B,
    (io) => {
      const kept = io.scratch(keptS, "read");
      const src = io.scratch(srcS, "read_write");
      const kb = io.kb;
      return (b) => {
        const r = kb.var("slot", i32(0));
        kb.for("j", 0, n, (j) =>
          kb.if(ne(kb.load(kept, iadd(imul(b, n), j)), 0), () => {
            kb.store(src, iadd(imul(b, lim), r), j);
            kb.set(r, add(r, 1));
          }),
        );
      };
    },
    PLAN_WG,
  );

  const idx = ctx.outputs.length >= 2 ? ctx.outputs[1] : null;
  const w = idx ? idx.dims[1] : 0;
  // The index rides on the gather's c = 0 invocations when every row has one.
  const indexInGather = idx !== null && typeof C === "number" && C > 0;
  /** Example b's kept count: static mode keeps `keep` (at most b's live tokens); no tokens: none counted. */
  const countOf = (io: Io, b: Expr, live?: (b: Expr) => Expr): Expr => {
    if (!adaptive) return liveN && live ? min(lim, live(b)) : lim;
    const c = io.kb.load(io.scratch(cntS, "read"), b);
    return typeof N === "number" && N > 0 ? c : select(gt(n, 0), c, i32(0));
  };

  // GATHER_C channels per invocation share the row's bookkeeping (and the fused row's weights).
  const nc = ceildiv(C, GATHER_C);
  const gather = launch(ctx, "gather", dimMul(B, rows, nc), (io) => {
    const xb = io.input(0);
    const sb = fuse ? io.input(1) : null;
    const kept = fuse ? io.scratch(keptS, "read") : null;
    const src = io.scratch(srcS, "read");
    const yb = io.output(0);
    const ib = indexInGather ? io.output(1) : null;
    const kb = io.kb;
    const c_ = dimExpr(C);
    const nl = fuse || !adaptive ? nLive(io) : () => n;
    return (flat) => {
      const [b, r, g] = unravel(kb, flat, [B, rows, nc]);
      const nlb = nl(b);
      const count = kb.let(
        "count",
        countOf(io, b, () => nlb),
      );
      const c0 = kb.let("c0", imul(g, i32(GATHER_C)));
      const c1 = typeof C === "number" && C % GATHER_C === 0 ? add(c0, GATHER_C) : min(add(c0, GATHER_C), c_);
      const yRow = kb.let("y_row", imul(iadd(imul(b, dimExpr(rows)), r), c_));
      const eachC = (f: (c: Expr, at: Expr) => void): void => kb.for("c", c0, c1, (c) => f(c, iadd(yRow, c)));
      const xAt = (j: Expr, c: Expr): Expr => io.read(xb, iadd(imul(iadd(imul(b, n), j), c_), c), x.dtype);
      const live = kb.let("live", lt(r, count));
      const j = kb.let(
        "j",
        select(live, kb.load(src, iadd(imul(b, lim), max(min(r, sub(lim, 1)), 0))), i32(-1)),
      );
      if (ib && idx)
        kb.if(and(eq(g, 0), lt(r, dimExpr(w))), () =>
          io.write(ib, iadd(imul(b, dimExpr(w)), r), j, idx.dtype),
        );
      const zeros = (): void => eachC((_c, at) => io.write(yb, at, f32(0), y.dtype));
      kb.if(
        live,
        () => eachC((c, at) => io.write(yb, at, xAt(j, c), y.dtype)),
        () => {
          if (!(fuse && sb && kept)) {
            eachC((_c, at) => io.write(yb, at, i32(0), y.dtype));
            return;
          }
          const fused = (): void => {
            // Weights: dropped scores normalised to sum 1, or a plain mean when they sum to 0.
            const wsum = kb.var("wsum", f32(0));
            const nd = kb.var("dropped", i32(0));
            const dropped = (t: Expr): Expr => eq(kb.load(kept, iadd(imul(b, n), t)), 0);
            const s = (t: Expr): Expr => io.read(sb, iadd(imul(b, n), t), sc.dtype);
            kb.for("t", 0, nlb, (t) =>
              kb.if(dropped(t), () => {
                kb.set(wsum, add(wsum, s(t)));
                kb.set(nd, add(nd, 1));
              }),
            );
            eachC((c, at) => {
              const acc = kb.var("acc", f32(0));
              kb.for("t", 0, nlb, (t) =>
                kb.if(dropped(t), () => {
                  const wt = select(ne(wsum, f32(0)), fdiv(s(t), wsum), fdiv(f32(1), toF(nd)));
                  kb.set(acc, add(acc, mul(wt, toF(xAt(t, c)))));
                }),
              );
              io.write(yb, at, acc, y.dtype);
            });
          };
          kb.if(eq(r, count), fused, zeros);
        },
      );
    };
  });

  const launches = [rank, slots, gather];
  if (idx && !indexInGather)
    launches.push(
      launch(ctx, "index", dimMul(B, w), (io) => {
        const src = io.scratch(srcS, "read");
        const ib = io.output(1);
        const kb = io.kb;
        const nl = adaptive ? undefined : nLive(io);
        return (flat) => {
          const [b, r] = unravel(kb, flat, [B, w]);
          const v = kb.var("v", i32(-1));
          kb.if(lt(r, countOf(io, b, nl)), () => kb.set(v, kb.load(src, iadd(imul(b, lim), r))));
          io.write(ib, flat, v, idx.dtype);
        };
      }),
    );
  return { launches, scratch: [keptS, srcS, ...(adaptive ? [cntS] : [])] };
}

// ---------- tokens.merge ----------

/**
 * `tokens.merge` (ToMe bipartite; MCTF multi-criteria edges), four launches: (1) per-token metric
 * norms (MCTF: each example's importance range and largest size, from one invocation per example),
 * (2) each A token's best B match, register blocked (MATCH_A x MATCH_B dot products per step),
 * (3) one workgroup per example plans the merge: its lanes rank the A tokens' best edges (O(|A|)
 * each) to find the r-th best, then after a barrier one lane, O(N): contributor runs by a counting
 * sort of the merged A tokens by (their b, a), then one walk over the tokens gives each its output
 * row (`source`) and each surviving row its token, size and run, (4) y rows as size-weighted means
 * over the row's token and its run, GATHER_C channels per invocation (loops as long as the fan-in).
 * r is read from the dims (N - output rows), so merges with different r share generic kernels.
 */
export function lowerMerge(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0];
  const metric = ctx.inputs[1];
  if (!x || !metric) return ctx.fail("tokens.merge needs x and metric");
  const size = ctx.inputs[2] ?? null;
  const importance = ctx.inputs[3] ?? null;
  const [B, N, C] = x.dims;
  const Cm = metric.dims[2];
  const pf = ctx.attr<number>("protect_first");
  const mc = ctx.attr<MergeMethod>("method") === "multi_criteria";
  const y = ctx.outputs[0];
  const M = y.dims[1];
  const rD = dimSub(N, M);
  const U = dimSub(N, pf);
  const nA = ceildiv(U, 2);
  const nB = floordiv(U, 2);
  const n = dimExpr(N);
  const r_ = dimExpr(rD);
  const per_ = (b: Expr): Expr => imul(b, dimExpr(dimAdd(dimMul(2, nB), rD)));
  const listAt = (b: Expr, q: Expr): Expr => iadd(iadd(per_(b), imul(dimExpr(nB), 2)), q);
  const normS = scratch("norm", "f32", dimMul(B, N));
  // Per example: lowest and highest importance, largest size (MCTF).
  const extS = scratch("extrema", "f32", dimMul(B, 3));
  const bestS = scratch("best", "i32", dimMul(B, nA));
  const simS = scratch("best_sim", "f32", dimMul(B, nA));
  // Per example (few buffers: targets allow 8 per kernel): per B token its contributor count
  // and next slot, then the merged A tokens sorted by (their b, a).
  const per = dimAdd(dimMul(2, nB), rD);
  const workS = scratch("merge_work", "i32", dimMul(B, per));
  // Per output row: its token, the start of its contributor run, the run's length.
  const metaS = scratch("row_meta", "i32", dimMul(B, M, 3));
  const tok = (b: Expr, j: Expr): Expr => iadd(imul(b, n), j);
  const aPos = (a: Expr): Expr => iadd(imul(a, 2), pf);
  const bPos = (k: Expr): Expr => iadd(imul(k, 2), pf + 1);
  const szOf = (io: Io, buf: string | null, b: Expr, j: Expr): Expr =>
    buf ? io.read(buf, tok(b, j), "f32") : f32(1);

  const norms = launch(ctx, "norms", dimMul(B, N), (io) => {
    const mb = io.input(1);
    const sb = mc && size ? io.input(2) : null;
    const ib = mc && importance ? io.input(3) : null;
    const nb = io.scratch(normS, "read_write");
    const ext = mc ? io.scratch(extS, "read_write") : null;
    const kb = io.kb;
    return (flat) => {
      const [b, j0] = unravel(kb, flat, [B, N]);
      const acc = kb.var("acc", f32(0));
      kb.for("c", 0, dimExpr(Cm), (c) => {
        const v = kb.let("v", io.read(mb, iadd(imul(flat, dimExpr(Cm)), c), metric.dtype));
        kb.set(acc, add(acc, mul(v, v)));
      });
      kb.store(nb, flat, unary("sqrt", acc));
      if (!ext) return;
      // Importance range and largest size over the example's unprotected tokens, once per example.
      kb.if(eq(j0, 0), () => {
        const lo = kb.var("lo", lit(Infinity, "f32"));
        const hi = kb.var("hi", NEG_INF());
        const top = kb.var("top", NEG_INF());
        kb.for("j", pf, n, (j) => {
          if (ib && importance) {
            const v = kb.let("imp", io.read(ib, tok(b, j), importance.dtype));
            kb.if(eq(v, v), () => {
              kb.set(lo, min(lo, v));
              kb.set(hi, max(hi, v));
            });
          }
          kb.set(top, max(top, szOf(io, sb, b, j)));
        });
        kb.store(ext, imul(b, i32(3)), lo);
        kb.store(ext, iadd(imul(b, i32(3)), i32(1)), hi);
        kb.store(ext, iadd(imul(b, i32(3)), i32(2)), top);
      });
    };
  });

  const wSim = ctx.attr<number>("w_sim");
  const wInfo = ctx.attr<number>("w_info");
  const wSize = ctx.attr<number>("w_size");
  const na_ = dimExpr(nA);
  const nb_ = dimExpr(nB);
  const cm = dimExpr(Cm);
  // Register blocking: MATCH_A A tokens per invocation against MATCH_B B tokens per step, so each
  // metric load feeds several dot products. Every pair still sums over c in order (same values).
  const gA = ceildiv(nA, MATCH_A);
  const match = launch(ctx, "match", dimMul(B, gA), (io) => {
    const mb = io.input(1);
    const sb = mc && size ? io.input(2) : null;
    const ib = mc && importance ? io.input(3) : null;
    const nb = io.scratch(normS, "read");
    const ext = mc ? io.scratch(extS, "read") : null;
    const best = io.scratch(bestS, "read_write");
    const sim = io.scratch(simS, "read_write");
    const kb = io.kb;
    return (flat) => {
      const [b, g] = unravel(kb, flat, [B, gA]);
      // MCTF terms of token t: importance min-max normalised (NaN stays NaN, constant gives 0) and
      // size / largest size, as the norms launch's extrema give them.
      let terms: ((t: Expr, s: string) => [Expr, Expr]) | undefined;
      if (ext) {
        const lo = kb.let("lo", kb.load(ext, imul(b, i32(3))));
        const hi = kb.let("hi", kb.load(ext, iadd(imul(b, i32(3)), i32(1))));
        const top = kb.let("top", kb.load(ext, iadd(imul(b, i32(3)), i32(2))));
        terms = (t, s) => {
          let info: Expr = f32(0);
          if (ib && importance) {
            const v = kb.let(`imp${s}`, io.read(ib, t, importance.dtype));
            info = select(ne(v, v), v, select(gt(hi, lo), div(sub(v, lo), sub(hi, lo)), f32(0)));
          }
          const own = sb ? io.read(sb, t, "f32") : f32(1);
          return [
            kb.let(`info${s}`, info),
            kb.let(`rel${s}`, select(gt(top, f32(0)), div(own, top), f32(0))),
          ];
        };
      }
      const ai = range(MATCH_A).map((i) => kb.let(`a${i}`, iadd(imul(g, MATCH_A), i32(i))));
      // Tail A slots compute on the last A token and store nothing.
      const ta = ai.map((a, i) => kb.let(`ta${i}`, tok(b, aPos(min(a, sub(na_, 1))))));
      const na = ta.map((t, i) => kb.let(`na${i}`, kb.load(nb, t)));
      const ta2 = terms ? ta.map((t, i) => terms(t, `a${i}`)) : [];
      const bi = ai.map((_, i) => kb.var(`bi${i}`, i32(0)));
      const bs = ai.map((_, i) => kb.var(`bs${i}`, NEG_INF()));
      kb.for(
        "k0",
        0,
        nb_,
        (k0) => {
          const ks = range(MATCH_B).map((j) => kb.let(`k${j}`, iadd(k0, i32(j))));
          const tb = ks.map((k, j) => kb.let(`tb${j}`, tok(b, bPos(min(k, sub(nb_, 1))))));
          const dots = ai.map((_, i) => ks.map((_k, j) => kb.var(`dot${i}_${j}`, f32(0))));
          kb.for("c", 0, cm, (c) => {
            const u = ta.map((t, i) => kb.let(`u${i}`, io.read(mb, iadd(imul(t, cm), c), metric.dtype)));
            const w = tb.map((t, j) => kb.let(`w${j}`, io.read(mb, iadd(imul(t, cm), c), metric.dtype)));
            for (const [i, row] of dots.entries())
              for (const [j, d] of row.entries()) kb.set(d, add(d, mul(u[i], w[j])));
          });
          // Ascending k with a strict > keeps the lowest b among equal best edges (bi starts at 0,
          // so an all-NaN row picks b = 0 as the reference does). Branch-free: selects, no ifs.
          for (const [j, k] of ks.entries()) {
            const nbk = kb.let(`nb${j}`, kb.load(nb, tb[j]));
            const inRange = kb.let(`in${j}`, lt(k, nb_));
            const tbj = terms ? terms(tb[j], `b${j}`) : undefined;
            for (const [i, row] of dots.entries()) {
              const cos = kb.let(
                `cos${i}`,
                select(or(eq(na[i], f32(0)), eq(nbk, f32(0))), f32(0), div(row[j], mul(na[i], nbk))),
              );
              let e = cos;
              if (tbj) {
                const [infoA, relA] = ta2[i];
                const [infoB, relB] = tbj;
                const half = (p: Expr, q: Expr): Expr => mul(add(p, q), f32(0.5));
                e = sub(
                  sub(mul(f32(wSim), cos), mul(f32(wInfo), half(infoA, infoB))),
                  mul(f32(wSize), half(relA, relB)),
                );
              }
              const s = kb.let(`s${i}`, rankScore(kb.let(`e${i}`, e)));
              const better = kb.let(`better${i}`, and(inRange, gt(s, bs[i])));
              kb.set(bi[i], select(better, k, bi[i]));
              kb.set(bs[i], select(better, s, bs[i]));
            }
          }
        },
        MATCH_B,
      );
      for (const [i, a] of ai.entries())
        kb.if(lt(a, na_), () => {
          const at = kb.let(`at${i}`, iadd(imul(b, na_), a));
          kb.store(best, at, bi[i]);
          kb.store(sim, at, bs[i]);
        });
    };
  });

  const wantSource = ctx.outputs.length >= 3;
  const m_ = dimExpr(M);
  const plan = planLaunch(ctx, B, (io) => {
    const sb = size ? io.input(2) : null;
    const best = io.scratch(bestS, "read");
    const sim = io.scratch(simS, "read");
    const work = io.scratch(workS, "read_write");
    const meta = io.scratch(metaS, "read_write");
    const [bcnt, bnext, list] = [work, work, work];
    const so = wantSource ? io.output(2) : null;
    const zo = ctx.outputs.length >= 2 ? io.output(1) : null;
    const kb = io.kb;
    // The r-th best edge (ps, pa) in workgroup memory (storage writes are not ordered by barriers).
    const cutS = kb.array("cut_sim", "f32", 1, "workgroup");
    const cutA = kb.array("cut_a", "i32", 1, "workgroup");
    return {
      // Each lane ranks its A tokens' best edges (descending similarity, ties to the lower a: the
      // scores are rankScore'd, so never NaN); the one ranked r - 1 is the cut.
      ranked: (b, lane) => {
        const A = (a: Expr): Expr => iadd(imul(b, na_), a);
        // RANK_A tokens per lane share each load of the other edges (register blocking).
        kb.for(
          "a0",
          0,
          na_,
          (a0) => {
            const as = range(RANK_A).map((i) => kb.let(`a${i}`, iadd(iadd(a0, lane), i32(i * PLAN_LANES))));
            const ss = as.map((a, i) => kb.let(`sa${i}`, kb.load(sim, A(min(a, sub(na_, 1))))));
            const ranks = as.map((_, i) => kb.var(`rank${i}`, i32(0)));
            kb.for("o", 0, na_, (o) => {
              const so_ = kb.let("so", kb.load(sim, A(o)));
              for (const [i, a] of as.entries()) {
                const before = or(gt(so_, ss[i]), and(eq(so_, ss[i]), lt(o, a)));
                kb.set(ranks[i], add(ranks[i], select(before, i32(1), i32(0))));
              }
            });
            for (const [i, a] of as.entries())
              kb.if(and(lt(a, na_), eq(ranks[i], sub(r_, 1))), () => {
                kb.store(cutS, i32(0), ss[i]);
                kb.store(cutA, i32(0), a);
              });
          },
          PLAN_LANES * RANK_A,
        );
      },
      serial: (b) => {
        const A = (a: Expr): Expr => iadd(imul(b, na_), a);
        const K = (k: Expr): Expr => iadd(per_(b), k);
        const Kn = (k: Expr): Expr => iadd(iadd(per_(b), nb_), k);
        // r = 0 merges nothing (no lane wrote the cut): pa = -1.
        const pa = kb.var("pa", i32(-1));
        const ps = kb.var("ps", NEG_INF());
        kb.if(gt(r_, 0), () => {
          kb.set(pa, kb.load(cutA, i32(0)));
          kb.set(ps, kb.load(cutS, i32(0)));
        });
        const mergedAt = (a: Expr): Expr => {
          const sa = kb.let("sa", kb.load(sim, A(a)));
          return kb.let("merged", and(ge(pa, 0), or(gt(sa, ps), and(eq(sa, ps), le(a, pa)))));
        };
        // Counting sort of the merged A tokens by (their b, a): runs [next - count, next) per b.
        kb.for("k", 0, nb_, (k) => kb.store(bcnt, K(k), i32(0)));
        kb.for("a", 0, na_, (a) =>
          kb.if(mergedAt(a), () => {
            const at = kb.let("at", K(kb.load(best, A(a))));
            kb.store(bcnt, at, add(kb.load(bcnt, at), 1));
          }),
        );
        const run = kb.var("run", i32(0));
        kb.for("k", 0, nb_, (k) => {
          kb.store(bnext, Kn(k), run);
          kb.set(run, add(run, kb.load(bcnt, K(k))));
        });
        kb.for("a", 0, na_, (a) =>
          kb.if(mergedAt(a), () => {
            const at = kb.let("at", Kn(kb.load(best, A(a))));
            const q = kb.let("q", kb.load(bnext, at));
            kb.store(list, listAt(b, q), a);
            kb.store(bnext, at, add(q, 1));
          }),
        );
        // Survivors in original order; a B token's row is kept in b_next for its merged A tokens.
        const next = kb.var("next", i32(0));
        kb.for("j", 0, n, (j) => {
          const u = kb.let("u", sub(j, pf));
          const odd = kb.let("odd", eq(mod(max(u, 0), 2), 1));
          const isA = kb.let("is_a", and(ge(u, 0), not(odd)));
          const gone = kb.var("gone", lit(0, "bool"));
          kb.if(isA, () => kb.set(gone, mergedAt(div(u, 2))));
          kb.if(not(gone), () => {
            const row = kb.let("row", next);
            kb.set(next, add(next, 1));
            const at = kb.let("row_at", iadd(imul(b, m_), row));
            const total = kb.var("total", szOf(io, sb, b, j));
            const start = kb.var("start", i32(0));
            const cnt = kb.var("cnt", i32(0));
            kb.if(and(ge(u, 0), odd), () => {
              const k = kb.let("k", div(u, 2));
              kb.set(cnt, kb.load(bcnt, K(k)));
              kb.set(start, sub(kb.load(bnext, Kn(k)), cnt));
              kb.for("q", start, add(start, cnt), (q) =>
                kb.set(total, add(total, szOf(io, sb, b, aPos(kb.load(list, listAt(b, q)))))),
              );
              kb.store(bnext, Kn(k), row);
            });
            kb.store(meta, imul(at, i32(3)), j);
            kb.store(meta, iadd(imul(at, i32(3)), i32(1)), start);
            kb.store(meta, iadd(imul(at, i32(3)), i32(2)), cnt);
            if (zo) io.write(zo, at, total, "f32");
            if (so) io.write(so, tok(b, j), row, "i32");
          });
        });
        if (so)
          kb.for("a", 0, na_, (a) =>
            kb.if(mergedAt(a), () =>
              io.write(so, tok(b, aPos(a)), kb.load(bnext, Kn(kb.load(best, A(a)))), "i32"),
            ),
          );
      },
    };
  });

  // GATHER_C channels per invocation share the row's bookkeeping loads.
  const nc = ceildiv(C, GATHER_C);
  const gather = launch(ctx, "gather", dimMul(B, M, nc), (io) => {
    const xb = io.input(0);
    const sb = size ? io.input(2) : null;
    const meta = io.scratch(metaS, "read");
    const list = io.scratch(workS, "read");
    const yb = io.output(0);
    const kb = io.kb;
    const c_ = dimExpr(C);
    return (flat) => {
      const [b, o, g] = unravel(kb, flat, [B, M, nc]);
      const row = kb.let("row", iadd(imul(b, m_), o));
      const j0 = kb.let("j0", kb.load(meta, imul(row, i32(3))));
      const c0 = kb.let("c0", imul(g, i32(GATHER_C)));
      const c1 = typeof C === "number" && C % GATHER_C === 0 ? add(c0, GATHER_C) : min(add(c0, GATHER_C), c_);
      const xAt = (j: Expr, c: Expr): Expr => io.read(xb, iadd(imul(tok(b, j), c_), c), x.dtype);
      const yAt = (c: Expr): Expr => iadd(imul(row, c_), c);
      const cnt = kb.let("cnt", kb.load(meta, iadd(imul(row, i32(3)), i32(2))));
      kb.if(
        eq(cnt, 0),
        // A row with one source is copied exactly.
        () => kb.for("c", c0, c1, (c) => io.write(yb, yAt(c), xAt(j0, c), y.dtype)),
        () => {
          const start = kb.let("start", listAt(b, kb.load(meta, iadd(imul(row, i32(3)), i32(1)))));
          // The row's size summed as the plan sums it (its token, then the run in order).
          const total = kb.var("total", szOf(io, sb, b, j0));
          kb.for("q", start, add(start, cnt), (q) =>
            kb.set(total, add(total, szOf(io, sb, b, aPos(kb.load(list, q))))),
          );
          const w0 = kb.let("w0", div(szOf(io, sb, b, j0), total));
          kb.for("c", c0, c1, (c) => {
            const acc = kb.var("acc", mul(w0, xAt(j0, c)));
            kb.for("q", start, add(start, cnt), (q) => {
              const t = kb.let("t", aPos(kb.load(list, q)));
              kb.set(acc, add(acc, mul(div(szOf(io, sb, b, t), total), xAt(t, c))));
            });
            io.write(yb, yAt(c), acc, y.dtype);
          });
        },
      );
    };
  });

  return {
    launches: [norms, match, plan, gather],
    scratch: [normS, ...(mc ? [extS] : []), bestS, simS, workS, metaS],
  };
}

// ---------- tokens.score ----------

/** `tokens.score` (transition, key_norm): one invocation per token. */
export function lowerScore(ctx: LowerCtx): Lowering {
  const a = ctx.inputs[0];
  if (!a) return ctx.fail("tokens.score needs a");
  const method = ctx.attr<ScoreMethod>("method");
  const out = ctx.outputs[0];
  const [B, N] = out.dims;
  switch (method) {
    case "transition": {
      const bT = ctx.inputs[1];
      if (!bT) return ctx.fail(`method "transition" needs b`);
      const C = a.dims[2];
      const wMag = ctx.attr<number>("w_mag");
      const wDir = ctx.attr<number>("w_dir");
      const l = launch(ctx, "transition", dimMul(B, N), (io) => {
        const ab = io.input(0);
        const bb = io.input(1);
        const ob = io.output(0);
        const kb = io.kb;
        return (t) => {
          const aa = kb.var("aa", f32(0));
          const bb2 = kb.var("bb", f32(0));
          const ab2 = kb.var("ab", f32(0));
          const c_ = dimExpr(C);
          kb.for("c", 0, c_, (c) => {
            const xa = kb.let("xa", io.read(ab, iadd(imul(t, c_), c), a.dtype));
            const xb = kb.let("xb", io.read(bb, iadd(imul(t, c_), c), bT.dtype));
            kb.set(aa, add(aa, mul(xa, xa)));
            kb.set(bb2, add(bb2, mul(xb, xb)));
            kb.set(ab2, add(ab2, mul(xa, xb)));
          });
          const na = kb.let("na", unary("sqrt", aa));
          const nb = kb.let("nb", unary("sqrt", bb2));
          const top = kb.let("top", max(na, nb));
          const mag = select(eq(top, f32(0)), f32(0), div(unary("abs", sub(nb, na)), top));
          const za = eq(na, f32(0));
          const zb = eq(nb, f32(0));
          const cos = select(and(za, zb), f32(1), select(or(za, zb), f32(0), div(ab2, mul(na, nb))));
          io.write(ob, t, add(mul(f32(wMag), mag), mul(f32(wDir), sub(f32(1), cos))), "f32");
        };
      });
      return { launches: [l], scratch: [] };
    }
    case "key_norm": {
      const rank4 = a.dims.length === 4;
      const H = rank4 ? a.dims[1] : 1;
      const D = a.dims[a.dims.length - 1];
      const l = launch(ctx, "key_norm", dimMul(B, N), (io) => {
        const kbuf = io.input(0);
        const ob = io.output(0);
        const kb = io.kb;
        return (t) => {
          const [b, nIdx] = unravel(kb, t, [B, N]);
          const acc = kb.var("acc", f32(0));
          const d_ = dimExpr(D);
          kb.for("h", 0, dimExpr(H), (h) => {
            const off = kb.let("off", imul(iadd(imul(iadd(imul(b, dimExpr(H)), h), dimExpr(N)), nIdx), d_));
            const ss = kb.var("ss", f32(0));
            kb.for("d", 0, d_, (d) => {
              const v = kb.let("v", io.read(kbuf, iadd(off, d), a.dtype));
              kb.set(ss, add(ss, mul(v, v)));
            });
            kb.set(acc, add(acc, div(unary("sqrt", ss), toF(dimExpr(H)))));
          });
          io.write(ob, t, acc, "f32");
        };
      });
      return { launches: [l], scratch: [] };
    }
  }
}

// ---------- tokens.pool ----------

/** `tokens.pool`: each output row enumerates its group's tokens (no group-of-token table). */
export function lowerPool(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0];
  if (!x) return ctx.fail("tokens.pool needs x");
  const size = ctx.inputs[1] ?? null;
  const [B, N, C] = x.dims;
  const y = ctx.outputs[0];
  const M = y.dims[1];
  const mode = ctx.attr<PoolMode>("mode");
  const s = ctx.attr<number>("size");
  const pf = ctx.attr<number>("protect_first");
  const U = dimSub(N, pf);
  const n = dimExpr(N);
  // Calls `each(u)` for the unprotected tokens u of group g, in ascending u.
  let members: (kb: KernelBuilder, g: Expr, each: (u: Expr) => void) => void;
  switch (mode) {
    case "stride":
      members = (kb, g, each) => kb.for("u", imul(g, s), min(iadd(imul(g, s), s), dimExpr(U)), each);
      break;
    case "spatial": {
      const grid = ctx.optAttr<readonly Dim[]>("grid");
      let hw: readonly Dim[];
      if (grid) hw = grid;
      else {
        if (typeof U !== "number")
          return ctx.fail("spatial pooling of a symbolic token count needs the grid attribute");
        const side = Math.round(Math.sqrt(U));
        hw = [side, side];
      }
      const H = dimExpr(hw[0]);
      const W = dimExpr(hw[1]);
      const Wp = dimExpr(ceildiv(hw[1], s));
      members = (kb, g, each) => {
        const gi = kb.let("gi", div(g, Wp));
        const gj = kb.let("gj", mod(g, Wp));
        kb.for("pi", imul(gi, s), min(iadd(imul(gi, s), s), H), (pi) =>
          kb.for("pj", imul(gj, s), min(iadd(imul(gj, s), s), W), (pj) => each(iadd(imul(pi, W), pj))),
        );
      };
      break;
    }
    case "temporal": {
      const frames = ctx.optAttr<number>("frames");
      if (frames === undefined) return ctx.fail(`mode "temporal" needs the frames attribute`);
      const T = dimExpr(floordiv(U, frames));
      members = (kb, g, each) => {
        const k = kb.let("k", div(g, T));
        const p = kb.let("p", mod(g, T));
        kb.for("f", imul(k, s), min(iadd(imul(k, s), s), frames), (f) => each(iadd(imul(f, T), p)));
      };
      break;
    }
  }
  const szOf = (io: Io, buf: string | null, b: Expr, j: Expr): Expr =>
    buf ? io.read(buf, iadd(imul(b, n), j), "f32") : f32(1);
  /** Summed size and member count of row o (a protected row is its own token). */
  const groupTotals = (io: Io, sb: string | null, b: Expr, o: Expr): { total: Expr; count: Expr } => {
    const kb = io.kb;
    const total = kb.var("total", f32(0));
    const count = kb.var("count", i32(0));
    kb.if(
      lt(o, pf),
      () => {
        kb.set(total, szOf(io, sb, b, o));
        kb.set(count, i32(1));
      },
      () =>
        members(kb, sub(o, pf), (u) => {
          kb.set(total, add(total, szOf(io, sb, b, iadd(u, pf))));
          kb.set(count, add(count, 1));
        }),
    );
    return { total, count };
  };
  const launches: Launch[] = [
    launch(ctx, "pool", dimMul(B, M, C), (io) => {
      const xb = io.input(0);
      const sb = size ? io.input(1) : null;
      const yb = io.output(0);
      const kb = io.kb;
      const c_ = dimExpr(C);
      return (flat) => {
        const [b, o, c] = unravel(kb, flat, [B, M, C]);
        const xAt = (j: Expr): Expr => io.read(xb, iadd(imul(iadd(imul(b, n), j), c_), c), x.dtype);
        const { total, count } = groupTotals(io, sb, b, o);
        const acc = kb.var("acc", f32(0));
        const w = (j: Expr): Expr =>
          select(ne(total, f32(0)), div(szOf(io, sb, b, j), total), div(f32(1), toF(count)));
        kb.if(
          lt(o, pf),
          () => kb.set(acc, mul(w(o), xAt(o))),
          () =>
            members(kb, sub(o, pf), (u) => {
              const j = kb.let("j", iadd(u, pf));
              kb.set(acc, add(acc, mul(w(j), xAt(j))));
            }),
        );
        io.write(yb, flat, acc, y.dtype);
      };
    }),
  ];
  if (ctx.outputs.length >= 2)
    launches.push(
      launch(ctx, "pool_sizes", dimMul(B, M), (io) => {
        const sb = size ? io.input(1) : null;
        const so = io.output(1);
        return (flat) => {
          const [b, o] = unravel(io.kb, flat, [B, M]);
          io.write(so, flat, groupTotals(io, sb, b, o).total, "f32");
        };
      }),
    );
  return { launches, scratch: [] };
}

// ---------- tokens.gather / tokens.combine ----------

/** `tokens.gather`: one invocation per output element reads its row's index (negative: zero). */
export function lowerTokenGather(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0];
  const index = ctx.inputs[1];
  if (!x || !index) return ctx.fail("tokens.gather needs x and index");
  const [B, N, C] = x.dims;
  const K = index.dims[1];
  const y = ctx.outputs[0];
  const n = dimExpr(N);
  const gather = launch(ctx, "gather", dimMul(B, K, C), (io) => {
    const xb = io.input(0);
    const ib = io.input(1);
    const yb = io.output(0);
    const kb = io.kb;
    const c_ = dimExpr(C);
    return (flat) => {
      const [b, k, c] = unravel(kb, flat, [B, K, C]);
      const j = kb.let("j", cast(io.read(ib, iadd(imul(b, dimExpr(K)), k), index.dtype), "i32"));
      // Out-of-range indices (a reference error) read nothing on devices.
      kb.if(
        and(ge(j, 0), lt(j, n)),
        () =>
          io.write(
            yb,
            flat,
            loadAs(kb, xb, iadd(imul(iadd(imul(b, n), j), c_), c), x.dtype, ctx.target),
            y.dtype,
          ),
        () => io.write(yb, flat, i32(0), y.dtype),
      );
    };
  });
  return { launches: [gather], scratch: [] };
}

/** `tokens.combine`: one invocation per output element scans the example's N sources (no atomics). */
export function lowerTokenCombine(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0];
  const source = ctx.inputs[1];
  if (!x || !source) return ctx.fail("tokens.combine needs x and source");
  const [B, N, C] = x.dims;
  const y = ctx.outputs[0];
  const M = y.dims[1];
  const n = dimExpr(N);
  const combine = launch(ctx, "combine", dimMul(B, M, C), (io) => {
    const xb = io.input(0);
    const sb = io.input(1);
    const yb = io.output(0);
    const kb = io.kb;
    const c_ = dimExpr(C);
    return (flat) => {
      const [b, m, c] = unravel(kb, flat, [B, M, C]);
      const acc = kb.var("acc", f32(0));
      kb.for("j", 0, n, (j) => {
        const to = cast(io.read(sb, iadd(imul(b, n), j), source.dtype), "i32");
        kb.if(eq(to, m), () =>
          kb.set(acc, add(acc, io.read(xb, iadd(imul(iadd(imul(b, n), j), c_), c), x.dtype))),
        );
      });
      io.write(yb, flat, acc, y.dtype);
    };
  });
  return { launches: [combine], scratch: [] };
}
