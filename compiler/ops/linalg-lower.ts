import { isFloat, type DType } from "../ir/dtype.js";
import { type Dim, ceildiv, floordiv, mul as dimMul } from "../ir/sym.js";
import {
  KernelBuilder,
  MAX_GROUPS_PER_AXIS,
  broadcastOffset,
  elementwiseKernel,
  stridesOf,
  unravel,
} from "../kir/builder.js";
import {
  add,
  and,
  builtin,
  cast,
  dimExpr,
  div,
  ge,
  i32,
  lit,
  lt,
  max,
  min,
  mul,
  select,
  sub,
} from "../kir/expr.js";
import { loadAs, toStorage } from "../kir/lower.js";
import type { Binding, Epilogue, Expr, KType, Kernel, Lowering, Target } from "../kir/types.js";
import { registerType, storageType } from "../kir/types.js";
import type { LowerCtx } from "./registry.js";

/**
 * Kernel lowerings of MatMul, Gemm and Conv. Matmuls go through one batched GEMM kernel
 * generator with two styles (see `MATMUL_VARIANTS`); Conv is a direct kernel (no im2col).
 */

// ---------- index arithmetic that folds constants (readable kernels, fewer ops on CPU drivers) ----------

const isConst = (e: Expr, v: number): boolean => e.k === "const" && e.v === v;

/** i32 product with 0/1 folding. */
export function imul(a: Expr | number, b: Expr | number): Expr {
  const ea = typeof a === "number" ? i32(a) : a;
  const eb = typeof b === "number" ? i32(b) : b;
  if (isConst(ea, 0) || isConst(eb, 0)) return i32(0);
  if (isConst(ea, 1)) return eb;
  if (isConst(eb, 1)) return ea;
  if (ea.k === "const" && eb.k === "const") return i32(ea.v * eb.v);
  return mul(ea, eb);
}

/** i32 sum with 0 folding. */
export function iadd(...xs: (Expr | number)[]): Expr {
  let acc: Expr | undefined;
  let c = 0;
  for (const x of xs) {
    if (typeof x === "number") c += x;
    else if (x.k === "const") c += x.v;
    else acc = acc === undefined ? x : add(acc, x);
  }
  if (acc === undefined) return i32(c);
  return c === 0 ? acc : add(acc, c);
}

/** The register type a reduction over an IR dtype accumulates in. */
export function accType(d: DType): KType {
  return isFloat(d) ? "f32" : "i32";
}

/** Binding list: the present inputs in order, then outputs. */
export function ioArgs(ctx: LowerCtx, inputs: readonly number[], outputs: readonly number[]): Binding[] {
  return [
    ...inputs.map((index) => ({ kind: "input" as const, index })),
    ...outputs.map((index) => ({ kind: "output" as const, index })),
  ];
}

// ---------- GEMM kernels ----------

/**
 * A matmul kernel variant. `register`: each invocation accumulates a tm x tn output block in
 * registers, reading A and B straight from storage (no workgroup memory, no barriers: fastest on
 * CPU Vulkan drivers such as lavapipe). `tiled`: the workgroup stages (wgy*tm) x tk tiles of A and
 * tk x (wgx*tn) tiles of B in workgroup memory between barriers (the usual GPU form).
 */
export interface MatmulVariant {
  readonly name: string;
  readonly style: "register" | "tiled";
  /** Output rows and columns per invocation. */
  readonly tm: number;
  readonly tn: number;
  /** Invocations per workgroup along columns (x) and rows (y). */
  readonly wgx: number;
  readonly wgy: number;
  /** tiled: depth of a staged K tile (ignored by register variants). */
  readonly tk: number;
  /**
   * register: which columns an invocation owns. `block`: tn adjacent ones; `lane`: column
   * `c * wgx + local x` of the workgroup's tile, so neighbouring invocations (the SIMD lanes of a
   * CPU driver) read adjacent B elements. Default `block`. With `wgy` 1 the rows come from the
   * workgroup id, the same for every lane, which a CPU driver loads once and broadcasts.
   */
  readonly cols?: "block" | "lane";
}

/**
 * Every matmul variant, for an autotuner to time (`matmulLowering(ctx, variant)`); the first of
 * each style is the default for `Target.matmul`.
 */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  { name: "reg4x4", style: "register", tm: 4, tn: 4, wgx: 8, wgy: 8, tk: 0 },
  { name: "reg4x8", style: "register", tm: 4, tn: 8, wgx: 8, wgy: 8, tk: 0 },
  // One SIMD row of lanes per workgroup (lavapipe: A loads uniform, 8 B loads per 64 FMAs per lane).
  { name: "row8x8", style: "register", tm: 8, tn: 8, wgx: 8, wgy: 1, tk: 0, cols: "lane" },
  { name: "row8x4", style: "register", tm: 8, tn: 4, wgx: 8, wgy: 1, tk: 0, cols: "lane" },
  { name: "tiled32k8", style: "tiled", tm: 4, tn: 4, wgx: 8, wgy: 8, tk: 8 },
  { name: "tiled16k16", style: "tiled", tm: 1, tn: 1, wgx: 16, wgy: 16, tk: 16 },
];

/** The target's matmul variant: `Target.matmulVariant` by name, else the style's first. */
export function defaultMatmulVariant(target: Target): MatmulVariant {
  const want = target.matmulVariant;
  const v = MATMUL_VARIANTS.find((x) => (want === undefined ? x.style === target.matmul : x.name === want));
  if (!v)
    throw new Error(
      want === undefined
        ? `no matmul variant of style ${target.matmul}`
        : `unknown matmul variant '${want}' (known: ${MATMUL_VARIANTS.map((x) => x.name).join(", ")})`,
    );
  if (v.style !== target.matmul)
    throw new Error(`matmul variant '${v.name}' is of style ${v.style}, the target's is ${target.matmul}`);
  return v;
}

/** One operand of a batched GEMM: element (r, c) of batch p is at `base(p) + r*sRow + c*sCol`. */
interface GemmOperand {
  readonly dtype: DType;
  readonly base: (kb: KernelBuilder, p: Expr) => Expr;
  readonly sRow: Expr;
  readonly sCol: Expr;
  /** A only: offset of row r when rows are not evenly strided (replaces `r*sRow`). */
  readonly row?: (kb: KernelBuilder, r: Expr) => Expr;
  /** B only: offset of column c when columns are not evenly strided (replaces `c*sCol`). */
  readonly col?: (kb: KernelBuilder, c: Expr) => Expr;
  /** Offset of depth index k when not evenly strided (replaces `k*sCol` of A, `k*sRow` of B). */
  readonly depth?: (kb: KernelBuilder, k: Expr) => Expr;
}

/** Offset of row `r` of operand `o` (in-range r). */
function rowOffset(kb: KernelBuilder, o: GemmOperand, r: Expr): Expr {
  return o.row ? o.row(kb, r) : imul(r, o.sRow);
}

/** Offset of column `c` of operand `o` (in-range c). */
function colOffset(kb: KernelBuilder, o: GemmOperand, c: Expr): Expr {
  return o.col ? o.col(kb, c) : imul(c, o.sCol);
}

/** Offset of depth index `k` (in-range) of A (`a` true: along its columns) or B (along its rows). */
function depthOffset(kb: KernelBuilder, o: GemmOperand, k: Expr, a: boolean): Expr {
  return o.depth ? o.depth(kb, k) : imul(k, a ? o.sCol : o.sRow);
}

/** out[p, i, j] = epilogue(sum_k A[p, i, k] B[p, k, j]), out row-major [batch, M, N]. */
interface GemmProblem {
  readonly M: Dim;
  readonly N: Dim;
  readonly K: Dim;
  readonly batch: Dim;
  readonly a: GemmOperand;
  readonly b: GemmOperand;
  readonly out: DType;
  /** Declares extra read buffers (after A and B); returns the epilogue on the accumulator. */
  readonly epilogue?: (kb: KernelBuilder) => (i: Expr, j: Expr, acc: Expr) => Expr;
  /** Coordinates in the node's output dims of element (i, j) of batch p (for fused epilogues). */
  readonly coords: (kb: KernelBuilder, p: Expr, i: Expr, j: Expr) => Expr[];
}

function gemmKernel(
  name: string,
  v: MatmulVariant,
  pr: GemmProblem,
  target: Target,
  fused?: Epilogue,
): Kernel {
  const kb = new KernelBuilder(name, [v.wgx, v.wgy, 1]);
  const aBuf = kb.buffer("a", storageType(pr.a.dtype, target), "read");
  const bBuf = kb.buffer("b", storageType(pr.b.dtype, target), "read");
  const epi = pr.epilogue?.(kb);
  const chain = fused?.setup(kb);
  const stored = fused ? fused.dtype : pr.out;
  const oBuf = kb.buffer("out", storageType(stored, target), "read_write");
  if (typeof pr.batch === "number" && pr.batch > MAX_GROUPS_PER_AXIS)
    throw new Error(`${name}: ${pr.batch} matrices exceed the ${MAX_GROUPS_PER_AXIS} workgroups of grid z`);
  const tileM = v.wgy * v.tm;
  const tileN = v.wgx * v.tn;
  kb.setGrid([ceildiv(pr.N, tileN), ceildiv(pr.M, tileM), pr.batch]);
  const M = dimExpr(pr.M);
  const N = dimExpr(pr.N);
  const K = dimExpr(pr.K);
  const at = accType(pr.out);
  const zero = lit(0, at);
  const p = kb.let("p", builtin("group_id", 2));
  const aBase = kb.let("a_base", pr.a.base(kb, p));
  const bBase = kb.let("b_base", pr.b.base(kb, p));
  const ld = (buf: string, o: GemmOperand, idx: Expr): Expr =>
    cast(loadAs(kb, buf, idx, o.dtype, target), at);
  const acc: Expr[][] = [];
  const rowOf: Expr[] = [];
  const colOf: Expr[] = [];

  if (v.style === "register") {
    // wgy 1: rows from group_id are uniform, so a CPU driver loads A once and broadcasts it.
    const rowId = v.wgy === 1 ? builtin("group_id", 1) : builtin("global_id", 1);
    const row0 = kb.let("row0", imul(rowId, v.tm));
    for (let r = 0; r < v.tm; r++) rowOf.push(iadd(row0, r));
    if (v.cols === "lane") {
      const col0 = kb.let("col0", iadd(imul(builtin("group_id", 0), tileN), builtin("local_id", 0)));
      for (let c = 0; c < v.tn; c++) colOf.push(iadd(col0, c * v.wgx));
    } else {
      const col0 = kb.let("col0", imul(builtin("global_id", 0), v.tn));
      for (let c = 0; c < v.tn; c++) colOf.push(iadd(col0, c));
    }
    // Rows/columns past the edge read the last valid one (no branch in the k loop); never stored.
    const aRow = rowOf.map((e, r) =>
      kb.let(`a_row${r}`, iadd(aBase, rowOffset(kb, pr.a, min(e, sub(M, 1))))),
    );
    const bCol = colOf.map((e, c) =>
      kb.let(`b_col${c}`, iadd(bBase, colOffset(kb, pr.b, min(e, sub(N, 1))))),
    );
    for (let r = 0; r < v.tm; r++) acc.push(colOf.map((_, c) => kb.var(`acc${r}_${c}`, zero)));
    kb.for("k", 0, K, (k) => {
      // Uneven depth offsets are computed once per k for every row / column.
      const ak = pr.a.depth ? kb.let("a_k", depthOffset(kb, pr.a, k, true)) : imul(k, pr.a.sCol);
      const bk = pr.b.depth ? kb.let("b_k", depthOffset(kb, pr.b, k, false)) : imul(k, pr.b.sRow);
      const av = aRow.map((e, r) => kb.let(`av${r}`, ld(aBuf, pr.a, iadd(e, ak))));
      const bv = bCol.map((e, c) => kb.let(`bv${c}`, ld(bBuf, pr.b, iadd(e, bk))));
      for (let r = 0; r < v.tm; r++)
        for (let c = 0; c < v.tn; c++) kb.set(acc[r][c], add(acc[r][c], mul(av[r], bv[c])));
    });
  } else {
    const tk = v.tk;
    const nThreads = v.wgx * v.wgy;
    const As = kb.array("a_tile", at, tileM * tk, "workgroup");
    const Bs = kb.array("b_tile", at, tk * tileN, "workgroup");
    const lx = kb.let("lx", builtin("local_id", 0));
    const ly = kb.let("ly", builtin("local_id", 1));
    const lid = kb.let("lid", iadd(imul(ly, v.wgx), lx));
    const rowBase = kb.let("row_base", imul(builtin("group_id", 1), tileM));
    const colBase = kb.let("col_base", imul(builtin("group_id", 0), tileN));
    for (let r = 0; r < v.tm; r++) rowOf.push(iadd(rowBase, imul(ly, v.tm), r));
    for (let c = 0; c < v.tn; c++) colOf.push(iadd(colBase, imul(lx, v.tn), c));
    for (let r = 0; r < v.tm; r++) acc.push(colOf.map((_, c) => kb.var(`acc${r}_${c}`, zero)));
    // Stages `size` elements: element e of the tile is (e / width, e % width); out-of-range ones are 0.
    const stage = (
      tile: string,
      size: number,
      width: number,
      elem: (r: Expr, c: Expr) => { ok: Expr; index: Expr },
    ): void => {
      for (let s = 0; s * nThreads < size; s++) {
        const put = (): void => {
          const e = kb.let("e", iadd(lid, s * nThreads));
          const { ok, index } = elem(div(e, width), binMod(e, width));
          kb.store(tile, e, select(ok, index, zero));
        };
        if ((s + 1) * nThreads <= size) put();
        else kb.if(lt(iadd(lid, s * nThreads), size), put);
      }
    };
    kb.for(
      "k0",
      0,
      K,
      (k0) => {
        stage(As, tileM * tk, tk, (r, c) => {
          const gi = iadd(rowBase, r);
          const gk = iadd(k0, c);
          const idx = iadd(
            aBase,
            rowOffset(kb, pr.a, min(gi, sub(M, 1))),
            depthOffset(kb, pr.a, min(gk, sub(K, 1)), true),
          );
          return { ok: and(lt(gi, M), lt(gk, K)), index: ld(aBuf, pr.a, idx) };
        });
        stage(Bs, tk * tileN, tileN, (r, c) => {
          const gk = iadd(k0, r);
          const gj = iadd(colBase, c);
          const idx = iadd(
            bBase,
            depthOffset(kb, pr.b, min(gk, sub(K, 1)), false),
            colOffset(kb, pr.b, min(gj, sub(N, 1))),
          );
          return { ok: and(lt(gk, K), lt(gj, N)), index: ld(bBuf, pr.b, idx) };
        });
        kb.barrier();
        kb.for("kk", 0, tk, (kk) => {
          const av = rowOf.map((_, r) =>
            kb.let(`av${r}`, kb.load(As, iadd(imul(iadd(imul(ly, v.tm), r), tk), kk))),
          );
          const bv = colOf.map((_, c) =>
            kb.let(`bv${c}`, kb.load(Bs, iadd(imul(kk, tileN), imul(lx, v.tn), c))),
          );
          for (let r = 0; r < v.tm; r++)
            for (let c = 0; c < v.tn; c++) kb.set(acc[r][c], add(acc[r][c], mul(av[r], bv[c])));
        });
        kb.barrier();
      },
      tk,
    );
  }
  const oBase = kb.let("o_base", imul(p, dimExpr(dimMul(pr.M, pr.N))));
  for (let r = 0; r < v.tm; r++)
    for (let c = 0; c < v.tn; c++) {
      const i = rowOf[r];
      const j = colOf[c];
      kb.if(and(lt(i, M), lt(j, N)), () => {
        let val = epi ? epi(i, j, acc[r][c]) : acc[r][c];
        const flat = iadd(oBase, imul(i, N), j);
        if (chain) {
          const at = kb.let("o", flat);
          val = chain(cast(val, registerType(pr.out, target)), {
            flat: at,
            coords: () => pr.coords(kb, p, i, j),
          });
        }
        kb.store(oBuf, flat, toStorage(val, stored, target));
      });
    }
  return kb.build();
}

function binMod(a: Expr, b: number): Expr {
  return b === 1 ? i32(0) : { k: "binary", t: "i32", op: "mod", a, b: i32(b) };
}

/** Batch base offset of a broadcast operand: flat batch p over `batch`, `dims` aligned right. */
function batchBase(batch: readonly Dim[], dims: readonly Dim[], matrix: Dim): GemmOperand["base"] {
  return (kb, p) => {
    if (dims.length === 0) return i32(0);
    const idx = unravel(kb, p, batch, "bt");
    return imul(broadcastOffset(idx, dims), dimExpr(matrix));
  };
}

function matmulProblem(ctx: LowerCtx): GemmProblem {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return ctx.fail("MatMul needs two inputs");
  const out = ctx.outputs[0];
  const ra = a.dims.length;
  const rb = b.dims.length;
  // perm_a: A is Transpose(a, perm) (K last): rows are a's leading axes in perm order.
  const perm = ctx.optAttr<readonly number[]>("perm_a");
  const aDims = perm ? perm.map((p) => a.dims[p]) : a.dims;
  const M = ra === 1 ? 1 : aDims[ra - 2];
  const K = a.dims[ra - 1];
  const N = rb === 1 ? 1 : b.dims[rb - 1];
  const batch = out.dims.slice(0, out.dims.length - (ra >= 2 ? 1 : 0) - (rb >= 2 ? 1 : 0));
  const nN = dimExpr(N);
  const bOperand = (base: GemmOperand["base"]): GemmOperand => ({
    dtype: b.dtype,
    base,
    sRow: rb === 1 ? i32(1) : nN,
    sCol: i32(1),
  });
  // B without batch dims (a weight): A's batches are rows of one taller GEMM [batch*M, K] x [K, N].
  // Row-major A and out stay contiguous, and tiles no longer idle on a small M (x @ W with M = 1).
  if (rb <= 2 && batch.length > 0) {
    const rows = dimMul(M, ...batch);
    const srcStrides = stridesOf(a.dims);
    const row = perm
      ? (kb: KernelBuilder, r: Expr): Expr => {
          const idx = unravel(kb, r, aDims.slice(0, -1), "ar");
          return iadd(...idx.map((x, i) => imul(x, srcStrides[perm[i]])));
        }
      : undefined;
    return {
      M: rows,
      N,
      K,
      batch: 1,
      a: { dtype: a.dtype, base: () => i32(0), sRow: dimExpr(K), sCol: i32(1), ...(row ? { row } : {}) },
      b: bOperand(() => i32(0)),
      out: out.dtype,
      coords: (kb, _p, i, j) => [...unravel(kb, i, [...batch, M], "oc"), ...(rb >= 2 ? [j] : [])],
    };
  }
  if (perm && perm.some((p, i) => p !== i))
    return ctx.fail(`perm_a [${perm.join(", ")}] needs a B without batch dims`);
  return {
    M,
    N,
    K,
    batch: dimMul(1, ...batch),
    a: {
      dtype: a.dtype,
      base: batchBase(batch, a.dims.slice(0, -2), dimMul(M, K)),
      sRow: dimExpr(K),
      sCol: i32(1),
    },
    b: bOperand(batchBase(batch, b.dims.slice(0, -2), dimMul(K, N))),
    out: out.dtype,
    coords: (kb, p, i, j) => [
      ...(batch.length ? unravel(kb, p, batch, "oc") : []),
      ...(ra >= 2 ? [i] : []),
      ...(rb >= 2 ? [j] : []),
    ],
  };
}

function gemmProblem(ctx: LowerCtx): GemmProblem {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return ctx.fail("Gemm needs A and B");
  const c = ctx.inputs[2] ?? null;
  const out = ctx.outputs[0];
  const ta = ctx.attr<number>("transA") !== 0;
  const tb = ctx.attr<number>("transB") !== 0;
  const [M, N] = out.dims;
  const K = ta ? a.dims[0] : a.dims[1];
  const alpha = ctx.attr<number>("alpha");
  const beta = ctx.attr<number>("beta");
  const at = accType(out.dtype);
  if (at === "i32" && (!Number.isInteger(alpha) || !Number.isInteger(beta)))
    ctx.fail(`Gemm on ${out.dtype} needs integer alpha and beta, got ${alpha} and ${beta}`);
  const target = ctx.target;
  return {
    M,
    N,
    K,
    batch: 1,
    // A [M, K] (or [K, M] when transposed); B [K, N] (or [N, K]).
    a: {
      dtype: a.dtype,
      base: () => i32(0),
      ...(ta ? { sRow: i32(1), sCol: dimExpr(M) } : { sRow: dimExpr(K), sCol: i32(1) }),
    },
    b: {
      dtype: b.dtype,
      base: () => i32(0),
      ...(tb ? { sRow: i32(1), sCol: dimExpr(K) } : { sRow: dimExpr(N), sCol: i32(1) }),
    },
    out: out.dtype,
    coords: (_kb, _p, i, j) => [i, j],
    epilogue: (kb) => {
      const cBuf = c ? kb.buffer("c", storageType(c.dtype, target), "read") : null;
      return (i, j, acc) => {
        let v = alpha === 1 ? acc : mul(acc, lit(alpha, at));
        if (c && cBuf) {
          const cv = cast(loadAs(kb, cBuf, broadcastOffset([i, j], c.dims), c.dtype, target), at);
          v = add(v, beta === 1 ? cv : mul(cv, lit(beta, at)));
        }
        return v;
      };
    },
  };
}

/**
 * The lowering of a MatMul or Gemm node with an explicit kernel variant (for autotuning), and
 * optionally a fused epilogue applied to every output element before it is stored.
 */
export function matmulLowering(ctx: LowerCtx, variant: MatmulVariant, epilogue?: Epilogue): Lowering {
  const pr = ctx.op === "Gemm" ? gemmProblem(ctx) : matmulProblem(ctx);
  const kernel = gemmKernel(`${ctx.name}_${variant.name}`, variant, pr, ctx.target, epilogue);
  const ins = ctx.op === "Gemm" && ctx.inputs[2] ? [0, 1, 2] : [0, 1];
  const extra = (epilogue?.inputs ?? []).map((_, j) => ctx.inputs.length + j);
  return { launches: [{ kernel, args: ioArgs(ctx, [...ins, ...extra], [0]) }], scratch: [] };
}

/** `MatMul` / `Gemm` lowering: the target's default variant. */
export function lowerMatmul(ctx: LowerCtx): Lowering {
  return matmulLowering(ctx, defaultMatmulVariant(ctx.target));
}

/** `MatMul` / `Gemm` with a fused epilogue (`OpDef.lowerEpilogue`): the target's default variant. */
export function lowerMatmulEpilogue(ctx: LowerCtx, epilogue: Epilogue): Lowering {
  return matmulLowering(ctx, defaultMatmulVariant(ctx.target), epilogue);
}

// ---------- Conv ----------

/**
 * An ungrouped Conv without padding as a batched GEMM on the target's matmul variant (patch
 * embeddings: 16x16 stride-16 on ViTs): out[n] [M, oH*oW] = w [M, C*kH*kW] x im2col(x[n]), the
 * im2col matrix read in place (depth k = (c, kh, kw), column j = (oh, ow)); no read leaves x.
 */
function convGemm(
  ctx: LowerCtx,
  lift: (d: readonly Dim[]) => Dim[],
  stride: readonly [number, number],
  dil: readonly [number, number],
): Lowering {
  const x = ctx.inputs[0]!;
  const w = ctx.inputs[1]!;
  const bias = ctx.inputs[2] ?? null;
  const out = ctx.outputs[0];
  const [Nb, C, H, W] = lift(x.dims);
  const [M, , kH, kW] = lift(w.dims);
  const [, , oH, oW] = lift(out.dims);
  const K = dimMul(C, kH, kW);
  const target = ctx.target;
  const at = accType(out.dtype);
  const pr: GemmProblem = {
    M,
    N: dimMul(oH, oW),
    K,
    batch: Nb,
    a: { dtype: w.dtype, base: () => i32(0), sRow: dimExpr(K), sCol: i32(1) },
    b: {
      dtype: x.dtype,
      base: (_kb, p) => imul(p, dimExpr(dimMul(C, H, W))),
      sRow: i32(1),
      sCol: i32(1),
      col: (kb, j) => {
        const [oh, ow] = unravel(kb, j, [oH, oW], "pj");
        return iadd(imul(oh, imul(stride[0], dimExpr(W))), imul(ow, stride[1]));
      },
      depth: (kb, k) => {
        const [c, kh, kw] = unravel(kb, k, [C, kH, kW], "pk");
        return iadd(imul(c, dimExpr(dimMul(H, W))), imul(kh, imul(dil[0], dimExpr(W))), imul(kw, dil[1]));
      },
    },
    out: out.dtype,
    coords: (kb, p, i, j) => [p, i, ...(out.dims.length === 4 ? unravel(kb, j, [oH, oW], "oc") : [j])],
    epilogue: (kb) => {
      const bb = bias ? kb.buffer("bias", storageType(bias.dtype, target), "read") : null;
      return (i, _j, acc) => (bb ? add(acc, cast(loadAs(kb, bb, i, bias!.dtype, target), at)) : acc);
    },
  };
  const v = defaultMatmulVariant(target);
  const kernel = gemmKernel(`${ctx.name}_${v.name}`, v, pr, target);
  // The kernel's A is w and its B is x.
  return { launches: [{ kernel, args: ioArgs(ctx, bias ? [1, 0, 2] : [1, 0], [0]) }], scratch: [] };
}

/**
 * `Conv` (1-D/2-D, groups, pads/auto_pad, strides, dilations): without groups and padding a GEMM
 * (`convGemm`), else one invocation per output element.
 */
export function lowerConv(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0];
  const w = ctx.inputs[1];
  if (!x || !w) return ctx.fail("Conv needs x and w");
  const bias = ctx.inputs[2] ?? null;
  const out = ctx.outputs[0];
  const sp = x.dims.length - 2;
  const lift = (d: readonly Dim[]): Dim[] => (sp === 1 ? [d[0], d[1], 1, d[2]] : [...d]);
  const list = (name: string, fill: number, len: number): number[] => [
    ...(ctx.optAttr<readonly number[]>(name) ?? new Array<number>(len).fill(fill)),
  ];
  const strides = list("strides", 1, sp);
  const dil = list("dilations", 1, sp);
  const pads = list("pads", 0, 2 * sp);
  const group = ctx.attr<number>("group");
  const autoPad = ctx.attr<string>("auto_pad");
  const [, C, H, W] = lift(x.dims);
  const [M, Cg, kH, kW] = lift(w.dims);
  const outDims = lift(out.dims);
  const [, , oH, oW] = outDims;
  const [sh, sw] = sp === 1 ? [1, strides[0]] : strides;
  const [dh, dw] = sp === 1 ? [1, dil[0]] : dil;
  const unpadded = autoPad === "VALID" || (autoPad === "NOTSET" && pads.every((p) => p === 0));
  if (group === 1 && unpadded) return convGemm(ctx, lift, [sh, sw], [dh, dw]);
  const Mg = floordiv(M, group);
  const at = accType(out.dtype);
  const target = ctx.target;
  const kernel = elementwiseKernel(ctx.name, dimMul(...out.dims), 64, (kb) => {
    const xb = kb.buffer("x", storageType(x.dtype, target), "read");
    const wb = kb.buffer("w", storageType(w.dtype, target), "read");
    const bb = bias ? kb.buffer("bias", storageType(bias.dtype, target), "read") : null;
    const ob = kb.buffer("out", storageType(out.dtype, target), "read_write");
    // Begin padding of spatial axis a (of the lifted 2-D form); SAME_* from the (maybe symbolic) length.
    const padBegin = (a: 0 | 1): Expr => {
      if (sp === 1 && a === 0) return i32(0);
      const i = sp === 1 ? 0 : a;
      switch (autoPad) {
        case "VALID":
          return i32(0);
        case "SAME_UPPER":
        case "SAME_LOWER": {
          const len = dimExpr(a === 0 ? H : W);
          const k = dimExpr(a === 0 ? kH : kW);
          const o = dimExpr(a === 0 ? oH : oW);
          const total = kb.let(
            "pad_total",
            max(sub(add(mul(sub(o, 1), strides[i]), mul(dil[i], sub(k, 1))), sub(len, 1)), 0),
          );
          const small = div(total, 2);
          return autoPad === "SAME_UPPER" ? small : sub(total, small);
        }
        default:
          return i32(pads[i]);
      }
    };
    const pt = kb.let("pt", padBegin(0));
    const pl = kb.let("pl", padBegin(1));
    return (o) => {
      const [n, m, oh, ow] = unravel(kb, o, outDims, "o");
      const g = kb.let("g", div(m, dimExpr(Mg)));
      const acc = kb.var("acc", bb ? cast(loadAs(kb, bb, m, bias!.dtype, target), at) : lit(0, at));
      const ih0 = kb.let("ih0", sub(imul(oh, sh), pt));
      const iw0 = kb.let("iw0", sub(imul(ow, sw), pl));
      const cgE = dimExpr(Cg);
      kb.for("ci", 0, cgE, (ci) => {
        const xc = kb.let("xc", imul(iadd(imul(n, dimExpr(C)), imul(g, cgE), ci), dimExpr(dimMul(H, W))));
        const wc = kb.let("wc", imul(iadd(imul(m, cgE), ci), dimExpr(dimMul(kH, kW))));
        kb.for("kh", 0, dimExpr(kH), (kh) => {
          const ih = kb.let("ih", iadd(ih0, imul(kh, dh)));
          kb.if(and(ge(ih, 0), lt(ih, dimExpr(H))), () => {
            kb.for("kw", 0, dimExpr(kW), (kw) => {
              const iw = kb.let("iw", iadd(iw0, imul(kw, dw)));
              kb.if(and(ge(iw, 0), lt(iw, dimExpr(W))), () => {
                const xv = cast(loadAs(kb, xb, iadd(xc, imul(ih, dimExpr(W)), iw), x.dtype, target), at);
                const wv = cast(loadAs(kb, wb, iadd(wc, imul(kh, dimExpr(kW)), kw), w.dtype, target), at);
                kb.set(acc, add(acc, mul(xv, wv)));
              });
            });
          });
        });
      });
      kb.store(ob, o, toStorage(acc, out.dtype, target));
    };
  });
  const ins = bias ? [0, 1, 2] : [0, 1];
  return { launches: [{ kernel, args: ioArgs(ctx, ins, [0]) }], scratch: [] };
}
