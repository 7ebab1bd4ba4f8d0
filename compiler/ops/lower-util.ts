import type { DType } from "../ir/dtype.js";
import type { Dim } from "../ir/sym.js";
import { type KernelBuilder, elementwiseKernel } from "../kir/builder.js";
import { add, dimExpr, i32, mul } from "../kir/expr.js";
import { loadAs, toStorage } from "../kir/lower.js";
import { type Binding, type Expr, type Launch, type Lowering, storageType } from "../kir/types.js";
import type { LowerCtx } from "./registry.js";

/**
 * Helpers the op lowerings share: buffer parameters that remember what they are bound to,
 * one-invocation-per-element launches, and index arithmetic that folds constant 0/1 factors
 * (so static shapes give short kernels).
 */

/** Invocations per workgroup of the elementwise-style launches (data movement, fills). */
export const ELEMENTWISE_WG = 64;

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
  const kernel = elementwiseKernel(kernelName(ctx, suffix), total, ELEMENTWISE_WG, (kb) => {
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
