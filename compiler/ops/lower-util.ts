import type { DType } from "../ir/dtype.js";
import { type Dim, ceildiv, min as dimMin } from "../ir/sym.js";
import { KernelBuilder, MAX_GROUPS_PER_AXIS, elementwiseKernel, unravel } from "../kir/builder.js";
import * as K from "../kir/expr.js";
import { add, dimExpr, i32, mul } from "../kir/expr.js";
import { loadAs, toStorage } from "../kir/lower.js";
import {
  type Binding,
  type Expr,
  type Launch,
  type Lowering,
  type Target,
  storageType,
} from "../kir/types.js";
import type { LowerCtx } from "./registry.js";

/**
 * Helpers the op lowerings share: buffer parameters that remember what they are bound to,
 * one-invocation-per-element launches, and index arithmetic that folds constant 0/1 factors
 * (so static shapes give short kernels).
 */

/** Invocations per workgroup of the elementwise-style launches (data movement, fills). */
export const ELEMENTWISE_WG = 64;

export function elementwiseWg(target: Target): number {
  return Math.min(ELEMENTWISE_WG, floorPow2(target.maxWorkgroupInvocations));
}

/** Declares kernel buffers bound to a node's inputs/outputs (or scratch) and records the bindings. */
export class Io {
  readonly args: Binding[] = [];

  constructor(
    readonly kb: KernelBuilder,
    readonly ctx: LowerCtx,
  ) {}

  /** Input `i` (read-only), in its storage type. */
  input(i: number, hint = `in${i}`): string {
    const t = this.ctx.inputs[i];
    if (!t) return this.ctx.fail(`input ${i} is required`);
    this.args.push({ kind: "input", index: i });
    return this.kb.buffer(hint, storageType(t.dtype, this.ctx.target), "read");
  }

  output(i: number, hint = i === 0 ? "out" : `out${i}`): string {
    const t = this.ctx.outputs[i];
    this.args.push({ kind: "output", index: i });
    return this.kb.buffer(hint, storageType(t.dtype, this.ctx.target), "read_write");
  }

  /** Element `index` of a buffer as the register form of `dtype`. */
  read(buf: string, index: Expr, dtype: DType): Expr {
    return loadAs(this.kb, buf, index, dtype, this.ctx.target);
  }

  /** Stores a register value of `dtype` in its storage form. */
  write(buf: string, index: Expr, v: Expr, dtype: DType): void {
    this.kb.store(buf, index, toStorage(v, dtype, this.ctx.target));
  }

  launch(): Launch {
    return { kernel: this.kb.build(), args: [...this.args] };
  }
}

/** A valid kernel name for a node and a suffix. */
export function kernelName(ctx: LowerCtx, suffix = ""): string {
  return suffix ? `${ctx.name}_${suffix}` : ctx.name;
}

/** One invocation per flat index below `total`; `setup` declares buffers and returns the body. */
export function elementwiseLaunch(
  ctx: LowerCtx,
  suffix: string,
  total: Dim,
  setup: (io: Io) => (i: Expr) => void,
): Launch {
  let io: Io | undefined;
  const kernel = elementwiseKernel(kernelName(ctx, suffix), total, elementwiseWg(ctx.target), (kb) => {
    io = new Io(kb, ctx);
    return setup(io);
  });
  if (!io) return ctx.fail("internal: elementwise setup did not run");
  return { kernel, args: [...io.args] };
}

export function lowering(...launches: Launch[]): Lowering {
  return { launches, scratch: [] };
}

// ---------- folding index arithmetic ----------

const isConst = (e: Expr, v: number): boolean => e.k === "const" && e.v === v;

/** a * b on i32 with 0/1 folded. */
export function imul(a: Expr, b: Expr): Expr {
  if (isConst(a, 0) || isConst(b, 0)) return i32(0);
  if (isConst(a, 1)) return b;
  if (isConst(b, 1)) return a;
  return mul(a, b);
}

/** a + b on i32 with 0 folded. */
export function iadd(a: Expr, b: Expr): Expr {
  if (isConst(a, 0)) return b;
  if (isConst(b, 0)) return a;
  return add(a, b);
}

/**
 * `unravel` for lowerings: a static 0 dim counts as 1. Such a tensor is empty, so the index math
 * never runs, but a constant `% 0` would still be rejected by shader compilers.
 */
export function coords(kb: KernelBuilder, flat: Expr, dims: readonly Dim[], hint?: string): Expr[] {
  return unravel(
    kb,
    flat,
    dims.map((d) => (d === 0 ? 1 : d)),
    hint,
  );
}

/** Σ idx[a] * strides[a]. */
export function dot(idx: readonly Expr[], strides: readonly Expr[]): Expr {
  return idx.reduce((acc, x, a) => iadd(acc, imul(x, strides[a])), i32(0));
}

/** Row-major strides of dims with constant factors folded. */
export function foldedStrides(dims: readonly Dim[]): Expr[] {
  const out: Expr[] = new Array<Expr>(dims.length);
  let s: Expr = i32(1);
  for (let a = dims.length - 1; a >= 0; a--) {
    out[a] = s;
    const d = dimExpr(dims[a]);
    s = s.k === "const" && d.k === "const" ? i32(s.v * d.v) : imul(s, d);
  }
  return out;
}

/** The product of dims as an i32 expression. */
export function numelExpr(dims: readonly Dim[]): Expr {
  return dims.reduce<Expr>((acc, d) => imul(acc, dimExpr(d)), i32(1));
}

// ---------- row reductions (Reduce*, Softmax, norms) ----------

export type Combine = "add" | "max";
export type AccType = "f32" | "i32";

/** What a row body sees: its row, and collectives over the row's elements. */
export interface Row {
  readonly io: Io;
  /** The row this invocation works on; rows past the end (folded grids) have `valid` false. */
  readonly row: Expr;
  readonly valid: Expr;
  /**
   * `op` over f(k) for k in [0, len): every invocation of the row gets the result. Call at the
   * body's top level only (it may contain barriers); `f` must not contain barriers.
   */
  reduce(op: Combine, t: AccType, len: Expr, f: (k: Expr) => Expr): Expr;
  /** Runs f(k) for each k in [0, len), spread over the row's invocations. */
  each(len: Expr, f: (k: Expr) => void): void;
  /** Runs f once per valid row. */
  once(f: () => void): void;
}

/**
 * How rows map to invocations: `group` gives each row a workgroup of `wg` invocations that
 * stride over it and combine partials in workgroup memory (or subgroup ops); `serial` gives each
 * row one invocation (short rows, or strided rows where neighbouring rows are adjacent in memory).
 */
export interface RowPlan {
  readonly mode: "group" | "serial";
  readonly wg: number;
  readonly subgroups: boolean;
  /** Lanes per subgroup the kernel may assume at least (target.subgroupSize). */
  readonly minSubgroup: number;
}

/** Rows of at most this many static elements run serially: a workgroup would idle. */
export const SERIAL_ROW_MAX = 32;

function floorPow2(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)));
}
function ceilPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * Targets whose matmul style is `register` are CPU drivers (or portable builds assumed to be):
 * there barriers cost more than they save. On lavapipe, serial rows ran LayerNorm [6304, 64] in
 * ~25-55 ms against ~150 ms for a workgroup tree, and [197, 768] in ~2 ms against ~29 ms.
 */
export function barrierAverse(target: Target): boolean {
  return target.matmul === "register";
}

/** The plan for rows of `len` elements that are contiguous (`cooperative`) or strided. */
export function rowPlan(len: Dim, target: Target, cooperative = true): RowPlan {
  const short = typeof len === "number" && len <= SERIAL_ROW_MAX;
  if (!cooperative || short || barrierAverse(target))
    return { mode: "serial", wg: elementwiseWg(target), subgroups: false, minSubgroup: 1 };
  let wg = floorPow2(Math.min(256, target.maxWorkgroupInvocations));
  // Two subgroup steps cover wg lanes when wg <= (minimum subgroup size)^2.
  if (target.subgroups) wg = Math.min(wg, floorPow2(target.subgroupSize * target.subgroupSize));
  if (typeof len === "number") wg = Math.min(wg, ceilPow2(len));
  return { mode: "group", wg, subgroups: target.subgroups, minSubgroup: target.subgroupSize };
}

const identity = (op: Combine, t: AccType): Expr =>
  op === "add" ? K.lit(0, t) : t === "f32" ? K.NEG_INF("f32") : K.lit(-(2 ** 31), "i32");
/** max spelled as the reference's `v > acc || isNaN(v)`: NaN propagates whatever the device's max does. */
const combine = (op: Combine, a: Expr, b: Expr): Expr =>
  op === "add" ? K.add(a, b) : K.select(K.or(K.gt(b, a), K.ne(b, b)), b, a);

/** One launch over `rows` rows; `body` declares buffers through `row.io` and computes one row. */
export function rowLaunch(
  ctx: LowerCtx,
  suffix: string,
  rows: Dim,
  plan: RowPlan,
  body: (row: Row) => void,
): Launch {
  const name = kernelName(ctx, suffix);
  if (plan.mode === "serial") {
    let io: Io | undefined;
    const kernel = elementwiseKernel(name, rows, plan.wg, (kb) => {
      const rio = new Io(kb, ctx);
      io = rio;
      return (r) => body(serialRow(rio, r));
    });
    if (!io) return ctx.fail("internal: row setup did not run");
    return { kernel, args: [...io.args] };
  }
  const kb = new KernelBuilder(name, [plan.wg, 1, 1]);
  const io = new Io(kb, ctx);
  const gx =
    typeof rows === "number" && rows <= MAX_GROUPS_PER_AXIS ? rows : dimMin(rows, MAX_GROUPS_PER_AXIS);
  kb.setGrid([gx, gx === rows ? 1 : ceildiv(rows, MAX_GROUPS_PER_AXIS), 1]);
  const row = kb.let(
    "row",
    add(K.builtin("group_id", 0), mul(K.builtin("group_id", 1), K.builtin("num_groups", 0))),
  );
  const valid = kb.let("valid", K.lt(row, dimExpr(rows)));
  const t = kb.let("t", K.builtin("local_id", 0));
  body(groupRow(io, plan, row, valid, t));
  return io.launch();
}

function serialRow(io: Io, row: Expr): Row {
  const kb = io.kb;
  return {
    io,
    row,
    valid: K.TRUE,
    reduce(op, t, len, f) {
      const acc = kb.var("acc", identity(op, t));
      kb.for("k", 0, len, (k) => kb.set(acc, combine(op, acc, f(k))));
      return acc;
    },
    each: (len, f) => kb.for("k", 0, len, f),
    once: (f) => f(),
  };
}

function groupRow(io: Io, plan: RowPlan, row: Expr, valid: Expr, t: Expr): Row {
  const kb = io.kb;
  const wg = plan.wg;
  return {
    io,
    row,
    valid,
    reduce(op, type, len, f) {
      const acc = kb.var("acc", identity(op, type));
      // Invalid rows run no iterations but still reach every barrier.
      const end = kb.let("end", K.select(valid, len, 0));
      kb.for("k", t, end, (k) => kb.set(acc, combine(op, acc, f(k))), wg);
      return plan.subgroups
        ? subgroupCombine(kb, op, type, acc, t, plan)
        : treeCombine(kb, op, type, acc, t, wg);
    },
    each: (len, f) => kb.if(valid, () => kb.for("k", t, len, f, wg)),
    once: (f) => kb.if(K.and(valid, K.eq(t, 0)), f),
  };
}

/** Pairwise halving in workgroup memory (own array per call, so results stay readable). */
function treeCombine(kb: KernelBuilder, op: Combine, type: AccType, acc: Expr, t: Expr, wg: number): Expr {
  const sh = kb.array("red", type, wg, "workgroup");
  kb.store(sh, t, acc);
  kb.barrier();
  for (let s = wg / 2; s >= 1; s /= 2) {
    kb.if(K.lt(t, s), () => kb.store(sh, t, combine(op, kb.load(sh, t), kb.load(sh, K.add(t, s)))));
    kb.barrier();
  }
  return kb.let("total", kb.load(sh, i32(0)));
}

/**
 * Subgroup reduce, one partial per subgroup in workgroup memory, then a second subgroup reduce
 * that every subgroup computes alike. Lanes per subgroup are at least target.subgroupSize, so
 * there are at most wg / subgroupSize <= subgroupSize partials.
 */
function subgroupCombine(
  kb: KernelBuilder,
  op: Combine,
  type: AccType,
  acc: Expr,
  t: Expr,
  plan: RowPlan,
): Expr {
  const wg = plan.wg;
  kb.use("subgroups");
  const first = kb.let("sg", K.subgroup(op, acc));
  const size = K.builtin("subgroup_size");
  const slots = Math.ceil(wg / plan.minSubgroup);
  const sh = kb.array("part", type, slots, "workgroup");
  // The clamp only guards memory should a device run smaller subgroups than promised.
  kb.if(K.eq(K.builtin("subgroup_lane"), 0), () => kb.store(sh, K.min(K.div(t, size), slots - 1), first));
  kb.barrier();
  const parts = K.div(K.add(wg - 1, size), size);
  // Every subgroup reads all partials by lane, so every invocation ends with the total.
  const lane = kb.let("lane", K.builtin("subgroup_lane"));
  const mine = K.select(K.lt(lane, parts), kb.load(sh, K.min(lane, slots - 1)), identity(op, type));
  return kb.let("total", K.subgroup(op, mine));
}
