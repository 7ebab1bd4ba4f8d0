import { type Dim, floordiv, mul as dimMul } from "../ir/sym.js";
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
  gt,
  i32,
  le,
  lt,
  max,
  min,
  mul,
  select,
  sub,
  unary,
} from "../kir/expr.js";
import { loadAs, toStorage } from "../kir/lower.js";
import type { Binding, Expr, Launch, Lowering, Scratch } from "../kir/types.js";
import { storageType } from "../kir/types.js";
import type { ScoreKind } from "./attention.js";
import { iadd, imul } from "./linalg-lower.js";
import type { LowerCtx } from "./registry.js";

/**
 * Lowering of the fused `attention` op: one workgroup per (b, h, query row) with a two-pass
 * softmax (max, then sum of exponentials, both as workgroup tree reductions), then P·V in chunks
 * of WG keys staged in workgroup memory. Probabilities are kept in a scratch row per (b, h, i);
 * an invocation only reads back the entries it wrote itself (workgroup barriers do not order
 * storage writes), and later launches reduce them into the importance output.
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

export function lowerAttention(ctx: LowerCtx): Lowering {
  const [q, k, v, mask, bias] = [0, 1, 2, 3, 4].map((i) => ctx.inputs[i] ?? null);
  if (!q || !k || !v) return ctx.fail("attention needs q, k and v");
  const out = ctx.outputs[0];
  const target = ctx.target;
  const [B, Hq, Nq] = q.dims;
  const D = staticDim(ctx, q.dims[3], "head dim D");
  const Dv = staticDim(ctx, v.dims[3], "value head dim Dv");
  const [, Hkv, Nk] = k.dims;
  const scores = ctx.attr<ScoreKind>("scores");
  const scale = ctx.optAttr<number>("scale") ?? 1 / Math.sqrt(D);
  const causal = ctx.attr<boolean>("causal");
  const rows = dimMul(B, Hq, Nq);
  const sName = "probs";
  const scratch: Scratch[] = [{ name: sName, t: "f32", size: dimMul(rows, Nk) }];

  const kb = new KernelBuilder(`${ctx.name}_attn`, [WG, 1, 1]);
  const qb = kb.buffer("q", storageType(q.dtype, target), "read");
  const kbuf = kb.buffer("k", storageType(k.dtype, target), "read");
  const vb = kb.buffer("v", storageType(v.dtype, target), "read");
  const mb = mask ? kb.buffer("mask", storageType(mask.dtype, target), "read") : null;
  const bb = bias ? kb.buffer("bias", storageType(bias.dtype, target), "read") : null;
  const ob = kb.buffer("out", storageType(out.dtype, target), "read_write");
  const sb = kb.buffer("probs", "f32", "read_write");
  const qw = kb.array("q_row", "f32", Math.max(D, 1), "workgroup");
  const red = kb.array("red", "f32", WG, "workgroup");
  const pw = kb.array("p_chunk", "f32", WG, "workgroup");
  kb.setGrid([Nq, Hq, B]);
  const i = kb.let("i", builtin("group_id", 0));
  const h = kb.let("h", builtin("group_id", 1));
  const b = kb.let("b", builtin("group_id", 2));
  const t = kb.let("t", builtin("local_id", 0));
  const nk = dimExpr(Nk);
  const g = kb.let("g", div(h, dimExpr(floordiv(Hq, Hkv))));
  const row = kb.let("row", iadd(imul(iadd(imul(b, dimExpr(Hq)), h), dimExpr(Nq)), i));
  const sRow = kb.let("s_row", imul(row, nk));
  const kBase = kb.let("k_base", imul(iadd(imul(b, dimExpr(Hkv)), g), nk));
  kb.for(
    "d",
    t,
    D,
    (d) => kb.store(qw, d, cast(loadAs(kb, qb, iadd(imul(row, D), d), q.dtype, target), "f32")),
    WG,
  );
  kb.barrier();

  // Pass 1: scores of this invocation's keys (j = t, t + WG, ...) and their max.
  const mt = kb.var("m_t", NEG_INF());
  const idx4 = (j: Expr): Expr[] => [b, h, i, j];
  kb.for(
    "j",
    t,
    nk,
    (j) => {
      const dot = kb.var("dot", f32(0));
      const kOff = kb.let("k_off", imul(iadd(kBase, j), D));
      kb.for("d", 0, D, (d) => {
        const kv = cast(loadAs(kb, kbuf, iadd(kOff, d), k.dtype, target), "f32");
        kb.set(dot, add(dot, mul(kb.load(qw, d), kv)));
      });
      let allowed: Expr | null = null;
      if (mask && mb) allowed = loadAs(kb, mb, broadcastOffset(idx4(j), mask.dims), "bool", target);
      if (causal) {
        const c = le(j, iadd(i, sub(nk, dimExpr(Nq))));
        allowed = allowed ? and(allowed, c) : c;
      }
      let s = mul(dot, f32(scale));
      if (bias && bb)
        s = add(s, cast(loadAs(kb, bb, broadcastOffset(idx4(j), bias.dims), bias.dtype, target), "f32"));
      const sj = kb.let("s", allowed ? select(allowed, s, NEG_INF()) : s);
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
    nk,
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
    nk,
    (c0) => {
      const j = kb.let("j", iadd(c0, t));
      const inRange = kb.let("in_range", lt(j, nk));
      // Only this invocation's own entries of the scratch row are read (j = c0 + t).
      const p = kb.var("p", f32(0));
      kb.if(inRange, () => {
        kb.set(p, mul(kb.load(sb, iadd(sRow, j)), inv));
        if (scores !== "none") kb.store(sb, iadd(sRow, j), p);
      });
      kb.store(pw, t, p);
      kb.barrier();
      const cnt = kb.let("cnt", min(i32(WG), sub(nk, c0)));
      for (let e = 0; e < nd; e++) {
        const body = (): void => {
          const d = iadd(t, e * WG);
          kb.for("jj", 0, cnt, (jj) => {
            const vv = cast(loadAs(kb, vb, iadd(imul(iadd(kBase, c0, jj), Dv), d), v.dtype, target), "f32");
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
  acc.forEach((a, e) => {
    const store = (): void => kb.store(ob, iadd(imul(row, Dv), t, e * WG), toStorage(a, out.dtype, target));
    if ((e + 1) * WG <= Dv) store();
    else kb.if(lt(t, Dv - e * WG), store);
  });

  const present = [0, 1, 2, 3, 4].filter((x) => ctx.inputs[x]);
  const mainArgs: Binding[] = [
    ...present.map((index) => ({ kind: "input" as const, index })),
    { kind: "output", index: 0 },
    { kind: "scratch", name: sName },
  ];
  const launches: Launch[] = [{ kernel: kb.build(), args: mainArgs }];
  if (scores !== "none") {
    const imp = importanceLaunches(ctx, scores, sName, B, Hq, Nq, Nk);
    launches.push(...imp.launches);
    scratch.push(...imp.scratch);
  }
  return { launches, scratch };
}

/** Head-averaged probability sums into the importance output [B, Nk] (and the graph rank). */
function importanceLaunches(
  ctx: LowerCtx,
  scores: Exclude<ScoreKind, "none">,
  probs: string,
  B: Dim,
  Hq: Dim,
  Nq: Dim,
  Nk: Dim,
): Lowering {
  const invH = (x: Expr): Expr => div(x, cast(dimExpr(Hq), "f32"));
  const nk = dimExpr(Nk);
  const nq = dimExpr(Nq);
  const pAt = (bh: Expr, i: Expr, j: Expr): Expr => iadd(imul(iadd(imul(bh, nq), i), nk), j);
  const scratchArg = (name: string): Binding => ({ kind: "scratch", name });
  if (scores === "cls" || scores === "colsum") {
    const kernel = elementwiseKernel(`${ctx.name}_importance`, dimMul(B, Nk), 64, (kb) => {
      const pb = kb.buffer("probs", "f32", "read");
      const ib = kb.buffer("importance", "f32", "read_write");
      return (o) => {
        const [b, j] = unravel(kb, o, [B, Nk]);
        const acc = kb.var("acc", f32(0));
        kb.for("h", 0, dimExpr(Hq), (h) => {
          const bh = kb.let("bh", iadd(imul(b, dimExpr(Hq)), h));
          if (scores === "cls") kb.set(acc, add(acc, kb.load(pb, pAt(bh, i32(0), j))));
          else kb.for("i", 0, nq, (i) => kb.set(acc, add(acc, kb.load(pb, pAt(bh, i, j)))));
        });
        kb.store(ib, o, invH(acc));
      };
    });
    return { launches: [{ kernel, args: [scratchArg(probs), { kind: "output", index: 1 }] }], scratch: [] };
  }
  // Graph rank: A = head average [B, Nq, Nk]; u_1 = A^T (1/Nq); u_{t+1} = A^T normalize(u_t); out = normalize(u_T).
  const iters = ctx.attr<number>("graph_iters");
  const launches: Launch[] = [];
  const avg = elementwiseKernel(`${ctx.name}_graph_avg`, dimMul(B, Nq, Nk), 64, (kb) => {
    const pb = kb.buffer("probs", "f32", "read");
    const ab = kb.buffer("graph", "f32", "read_write");
    return (o) => {
      const [b, i, j] = unravel(kb, o, [B, Nq, Nk]);
      const acc = kb.var("acc", f32(0));
      kb.for("h", 0, dimExpr(Hq), (h) =>
        kb.set(acc, add(acc, kb.load(pb, pAt(iadd(imul(b, dimExpr(Hq)), h), i, j)))),
      );
      kb.store(ab, o, invH(acc));
    };
  });
  launches.push({ kernel: avg, args: [scratchArg(probs), scratchArg("graph")] });
  /** Sum of row b of a [B, n] vector buffer. */
  const rowSum = (kb: KernelBuilder, buf: string, b: Expr, n: Expr): Expr => {
    const s = kb.var("sum", f32(0));
    kb.for("x", 0, n, (x) => kb.set(s, add(s, kb.load(buf, iadd(imul(b, n), x)))));
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
      return (o) => {
        const [b, j] = unravel(kb, o, [B, Nk]);
        const sum = prev ? kb.let("prev_sum", rowSum(kb, prev, b, nq)) : null;
        const acc = kb.var("acc", f32(0));
        kb.for("i", 0, nq, (i) => {
          const si =
            prev && sum ? normalized(kb.load(prev, iadd(imul(b, nq), i)), sum) : div(f32(1), cast(nq, "f32"));
          kb.set(acc, add(acc, mul(kb.load(ab, iadd(imul(iadd(imul(b, nq), i), nk), j)), si)));
        });
        kb.store(nb, o, acc);
      };
    });
    const args: Binding[] = [scratchArg("graph")];
    if (!first) args.push(scratchArg(vec[(it + 1) % 2]));
    args.push(scratchArg(vec[it % 2]));
    launches.push({ kernel, args });
  }
  const last = vec[(iters - 1) % 2];
  const fin = elementwiseKernel(`${ctx.name}_graph_norm`, dimMul(B, Nk), 64, (kb) => {
    const ub = kb.buffer("rank", "f32", "read");
    const ib = kb.buffer("importance", "f32", "read_write");
    return (o) => {
      const b = kb.let("b", div(o, nk));
      const sum = kb.let("sum_all", rowSum(kb, ub, b, nk));
      kb.store(ib, o, normalized(kb.load(ub, o), sum));
    };
  });
  launches.push({ kernel: fin, args: [scratchArg(last), { kind: "output", index: 1 }] });
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
