import { isFloat } from "../ir/dtype.js";
import { type Dim, add, ceildiv, dimEquals, evalDim, floordiv, mod, mul, printDim, sub } from "../ir/sym.js";
import { makeTensor, type Tensor } from "../ir/tensor.js";
import { tensorType } from "../ir/types.js";
import { type InferCtx, OpError, type RefCtx, registerOp } from "./registry.js";
import { requireDims, requireLE, tokens3 } from "./tokens.js";
import { lowerPool } from "./tokens-lower.js";
import { input, shapeStr } from "./util.js";

/** How `tokens.pool` groups the unprotected tokens. */
export type PoolMode = "spatial" | "temporal" | "stride";

/** The grouping of the U unprotected tokens, symbolic (inference) or concrete (reference). */
interface Layout<D> {
  /** Output rows after the protected prefix. */
  readonly groups: D;
  /** Spatial: the grid [H, W]; temporal: [frames, tokens per frame]; stride: [U]. */
  readonly shape: readonly D[];
}

/**
 * The pooled layout for U = N - protect_first tokens; `fail` reports an impossible one.
 * Symbolic: divisibility must be provable (a clear failure otherwise).
 */
function layout(
  mode: PoolMode,
  U: Dim,
  s: number,
  grid: readonly Dim[] | undefined,
  frames: number | undefined,
  fail: (m: string) => never,
): Layout<Dim> {
  switch (mode) {
    case "stride":
      return { groups: ceildiv(U, s), shape: [U] };
    case "spatial": {
      let hw: readonly Dim[];
      if (grid) hw = grid;
      else {
        if (typeof U !== "number")
          fail(
            `spatial pooling of ${printDim(U)} tokens needs the grid attribute (the count is not a constant)`,
          );
        const side = Math.round(Math.sqrt(U));
        if (side * side !== U) fail(`${U} tokens do not form a square grid; give the grid attribute`);
        hw = [side, side];
      }
      const [H, W] = hw;
      if (!dimEquals(U, mul(H, W)))
        fail(`grid ${shapeStr(hw)} does not cover the ${printDim(U)} tokens after protect_first`);
      return { groups: mul(ceildiv(H, s), ceildiv(W, s)), shape: [H, W] };
    }
    case "temporal": {
      if (frames === undefined) return fail(`mode "temporal" needs the frames attribute`);
      const how = typeof U === "number" ? "" : "provably ";
      if (mod(U, frames) !== 0)
        fail(`the ${printDim(U)} tokens after protect_first are not ${how}a multiple of frames = ${frames}`);
      const T = floordiv(U, frames);
      return { groups: mul(ceildiv(frames, s), T), shape: [frames, T] };
    }
  }
}

/**
 * For concrete U: the output group (0-based, after the protected prefix) of each unprotected
 * token, and the group count. Exported for kernels' lowering and tests.
 */
export function poolGroups(
  mode: PoolMode,
  U: number,
  s: number,
  grid: readonly number[] | undefined,
  frames: number | undefined,
): { groups: number; groupOf: Int32Array } {
  const fail = (m: string): never => {
    throw new OpError(m);
  };
  const l = layout(mode, U, s, grid, frames, fail) as Layout<number>;
  const groupOf = new Int32Array(U);
  for (let u = 0; u < U; u++) {
    switch (mode) {
      case "stride":
        groupOf[u] = Math.floor(u / s);
        break;
      case "spatial": {
        const W = l.shape[1];
        const i = Math.floor(u / W);
        const j = u % W;
        groupOf[u] = Math.floor(i / s) * Math.ceil(W / s) + Math.floor(j / s);
        break;
      }
      case "temporal": {
        const T = l.shape[1];
        groupOf[u] = Math.floor(Math.floor(u / T) / s) * T + (u % T);
        break;
      }
    }
  }
  return { groups: l.groups, groupOf };
}

function checkAttrs(ctx: InferCtx, mode: PoolMode): void {
  const s = ctx.attr<number>("size");
  if (s < 2) ctx.fail(`size must be >= 2, got ${s}`);
  const pf = ctx.attr<number>("protect_first");
  if (pf < 0) ctx.fail(`protect_first must be >= 0, got ${pf}`);
  const grid = ctx.optAttr<readonly Dim[]>("grid");
  if (grid !== undefined) {
    if (mode !== "spatial") ctx.fail(`grid applies only to mode "spatial", not "${mode}"`);
    if (grid.length !== 2) ctx.fail(`grid must be [H, W], got ${shapeStr(grid)}`);
    for (const d of grid) requireLE(ctx, 1, d, `grid ${shapeStr(grid)} has a dimension < 1`);
  }
  const frames = ctx.optAttr<number>("frames");
  if (frames !== undefined) {
    if (mode !== "temporal") ctx.fail(`frames applies only to mode "temporal", not "${mode}"`);
    if (frames < 1) ctx.fail(`frames must be >= 1, got ${frames}`);
  }
}

function dimsValue(ctx: RefCtx, ds: readonly Dim[]): number[] {
  return ds.map((d) => {
    if (typeof d === "number") return d;
    if (!ctx.env) throw new OpError(`attribute 'grid' is symbolic and no symbol bindings were given`);
    return evalDim(d, ctx.env);
  });
}

/**
 * `tokens.pool(x, size?) -> y, size_out?`: mean pooling on the token axis of x `[B, N, C]`.
 *
 * The first P = `protect_first` tokens are copied to the first P rows unchanged. The other
 * U = N - P tokens are grouped by `mode`, with s = the `size` attribute (>= 2):
 * - `"stride"`: tokens `[g*s, g*s + s)` form group g; ceil(U / s) groups.
 * - `"spatial"`: the U tokens are a row-major H x W grid (`grid` [H, W], or a square when absent);
 *   s x s windows, row-major over the ceil(H/s) x ceil(W/s) pooled grid.
 * - `"temporal"`: U = frames * T, frame-major (token p of frame f is at f*T + p); the tokens at
 *   position p of frames `[k*s, k*s + s)` form group k*T + p; ceil(frames / s) * T groups.
 * Windows cut by an edge (H, W, U or frames not a multiple of s) average the tokens they cover.
 *
 * Row P + g is the mean of group g, weighted by the `size` input `[B, N, 1]` (f32) when given (a
 * plain mean when the group's sizes sum to 0). `size_out` (f32 `[B, M, 1]`) holds each row's summed
 * size (its token count when `size` is absent; 1 or the size for protected rows).
 */
export const poolDef = registerOp({
  name: "tokens.pool",
  doc: "Mean pooling on the token axis: 2-D windows over the patch grid, groups of frames, or 1-D stride; protected prefix kept.",
  inputs: [{ name: "x" }, { name: "size", optional: true }],
  outputs: [{ name: "y" }, { name: "size_out", optional: true }],
  attrs: {
    mode: { kind: "string", oneOf: ["spatial", "temporal", "stride"], doc: "Grouping of the tokens." },
    size: { kind: "int", doc: "Window side (spatial), frames per group (temporal) or stride (>= 2)." },
    protect_first: { kind: "int", default: 0, doc: "Leading tokens passed through unchanged." },
    grid: { kind: "dims", optional: true, doc: "spatial: [H, W] of the row-major patch grid." },
    frames: { kind: "int", optional: true, doc: "temporal: frame count (frame-major tokens)." },
  },
  pure: true,
  infer(ctx) {
    const x = tokens3(ctx, 0, "x");
    const [B, N, C] = x.dims;
    if (!isFloat(x.dtype)) ctx.fail(`x must be a float tensor, got ${x.dtype}`);
    const size = ctx.inputs[1];
    if (size) {
      if (size.dtype !== "f32") ctx.fail(`size must be f32, got ${size.dtype}`);
      requireDims(ctx, "size", size, [B, N, 1]);
    }
    const mode = ctx.attr<PoolMode>("mode");
    checkAttrs(ctx, mode);
    const pf = ctx.attr<number>("protect_first");
    requireLE(ctx, pf, N, `protect_first = ${pf} is greater than the ${printDim(N)} tokens`);
    const U = sub(N, pf);
    const l = layout(
      mode,
      U,
      ctx.attr<number>("size"),
      ctx.optAttr<readonly Dim[]>("grid"),
      ctx.optAttr<number>("frames"),
      (m) => ctx.fail(m),
    );
    const M = add(pf, l.groups);
    const batchAx = x.axes?.[0] ?? null;
    const tokenAx = x.axes?.[1] ?? null;
    return [
      tensorType(x.dtype, [B, M, C], x.axes),
      tensorType("f32", [B, M, 1], [batchAx, tokenAx, null]),
    ].slice(0, ctx.numOutputs);
  },
  reference([x, size], ctx) {
    const grid = ctx.optAttr<readonly Dim[]>("grid");
    return poolReference(x!, size ?? null, {
      mode: ctx.attr<PoolMode>("mode"),
      size: ctx.attr<number>("size"),
      protectFirst: ctx.attr<number>("protect_first"),
      grid: grid && dimsValue(ctx, grid),
      frames: ctx.optAttr<number>("frames"),
    });
  },
  flops(ctx) {
    const [B, N, C] = input(ctx, 0).dims;
    // Every element is weighted and added once (2 per element), as tokens.merge's average.
    return ctx.inputs[1] ? add(mul(2, B, N, C), mul(2, B, N)) : mul(2, B, N, C);
  },
  lower: lowerPool,
});

export interface PoolOptions {
  readonly mode: PoolMode;
  readonly size: number;
  readonly protectFirst: number;
  readonly grid?: readonly number[];
  readonly frames?: number;
}

/** The reference semantics of `tokens.pool` on concrete tensors (both outputs). */
export function poolReference(x: Tensor, size: Tensor | null, o: PoolOptions): Tensor[] {
  const [B, N, C] = x.shape;
  const P = o.protectFirst;
  if (P > N) throw new OpError(`protect_first = ${P} is greater than the ${N} tokens`);
  const { groups, groupOf } = poolGroups(o.mode, N - P, o.size, o.grid, o.frames);
  const M = P + groups;
  const rowOf = (j: number): number => (j < P ? j : P + groupOf[j - P]);
  const y = new Float64Array(B * M * C);
  const sizeOut = new Float64Array(B * M);
  const count = new Float64Array(M);
  for (let j = 0; j < N; j++) count[rowOf(j)]++;
  for (let b = 0; b < B; b++) {
    const sz = (j: number): number => (size ? size.data[b * N + j] : 1);
    for (let j = 0; j < N; j++) sizeOut[b * M + rowOf(j)] += sz(j);
    for (let j = 0; j < N; j++) {
      const r = rowOf(j);
      const total = sizeOut[b * M + r];
      // Size-weighted; a plain mean when the sizes sum to 0 (never NaN).
      const w = total !== 0 ? sz(j) / total : 1 / count[r];
      for (let c = 0; c < C; c++) y[(b * M + r) * C + c] += w * x.data[(b * N + j) * C + c];
    }
  }
  return [makeTensor(x.dtype, [B, M, C], y), makeTensor("f32", [B, M, 1], sizeOut)];
}
