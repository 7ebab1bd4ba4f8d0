import { type Dim, dimEquals, mul, printDim } from "../ir/sym.js";
import { broadcastOffset } from "../kir/builder.js";
import * as K from "../kir/expr.js";
import { liveCounts, liveLength } from "../kir/live.js";
import type { Expr, Lowering } from "../kir/types.js";
import { iadd, imul, lowering, rowLaunch, rowPlan, type Row, coords } from "./lower-util.js";
import type { Tensor } from "../ir/tensor.js";
import { type TensorType, printType, tensorType } from "../ir/types.js";
import { asF64, dropRoles, fromF64, numelDim, requireFloat, requireSameDtype, span } from "./numeric.js";
import { type InferCtx, type LowerCtx, OpError, registerOp } from "./registry.js";
import { broadcastDims, broadcastIndex, input, normAxis, shapeStr } from "./util.js";

/** LayerNormalization, RMSNorm and Softmax. Statistics are computed in f64 and stored once. */

/** Checks that an optional affine input (scale/bias) broadcasts to x without growing it. */
function checkAffine(ctx: InferCtx, x: TensorType, i: number, what: string): void {
  const t = ctx.inputs[i];
  if (!t) return;
  requireSameDtype(ctx, x, i, what);
  const fail = (): never =>
    ctx.fail(`${what} of shape ${shapeStr(t.dims)} does not broadcast to ${printType(x)}`);
  if (t.dims.length > x.dims.length) fail();
  const b = broadcastDims([x.dims, t.dims], fail);
  if (b.some((d, k) => !dimEquals(d, x.dims[k]))) fail();
}

/** For each element of x, the flat index of the affine parameter that applies to it; undefined when absent. */
function affineIndex(p: Tensor | null, x: Tensor): Int32Array | undefined {
  return p ? broadcastIndex(p.shape, x.shape) : undefined;
}

/** Y = (x - mean) / sqrt(var + eps) * scale + bias over rows [axis..rank); rms = true drops the mean. */
function normalizeRows(
  X: Tensor,
  axis: number,
  eps: number,
  rms: boolean,
  scale: Tensor | null,
  bias: Tensor | null,
): { y: Float64Array; mean: Float64Array; inv: Float64Array } {
  const D = span(X.shape, axis);
  const rows = span(X.shape, 0, axis);
  const xd = asF64(X.data);
  const si = affineIndex(scale, X);
  const bi = affineIndex(bias, X);
  const y = new Float64Array(rows * D);
  const mean = new Float64Array(rows);
  const inv = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mu = 0;
    if (!rms) {
      for (let j = 0; j < D; j++) mu += xd[o + j];
      mu /= D;
    }
    // Two passes: the variance of centred values does not cancel catastrophically.
    let v = 0;
    for (let j = 0; j < D; j++) {
      const d = xd[o + j] - mu;
      v += d * d;
    }
    const k = 1 / Math.sqrt(v / D + eps);
    mean[r] = mu;
    inv[r] = k;
    for (let j = 0; j < D; j++) {
      let val = (xd[o + j] - mu) * k;
      if (scale && si) val *= scale.data[si[o + j]];
      if (bias && bi) val += bias.data[bi[o + j]];
      y[o + j] = val;
    }
  }
  return { y, mean, inv };
}

registerOp({
  name: "LayerNormalization",
  doc:
    "ONNX opset 17: normalizes over axes [axis, rank); optional Mean and InvStdDev outputs (f32, normalized axes " +
    "kept as 1). Scale and B broadcast to x; Scale may also be absent (treated as 1). Only stash_type = 1.",
  inputs: [{ name: "x" }, { name: "scale", optional: true }, { name: "bias", optional: true }],
  outputs: [{ name: "y" }, { name: "mean", optional: true }, { name: "inv_std_dev", optional: true }],
  attrs: {
    axis: { kind: "int", default: -1 },
    epsilon: { kind: "float", default: 1e-5 },
    stash_type: { kind: "int", default: 1, doc: "ONNX: 1 = statistics in float" },
  },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    requireFloat(ctx, 0, "x");
    const axis = normAxis(ctx.attr<number>("axis"), x.dims.length, ctx.fail);
    if (ctx.attr<number>("stash_type") !== 1)
      ctx.fail(`only stash_type = 1 is supported, got ${ctx.attr<number>("stash_type")}`);
    checkAffine(ctx, x, 1, "scale");
    checkAffine(ctx, x, 2, "bias");
    const stat = tensorType(
      "f32",
      x.dims.map((d, i) => (i >= axis ? 1 : d)),
      dropRoles(x, (i) => i >= axis),
    );
    return [x, stat, stat];
  },
  reference([x, scale, bias], ctx) {
    const X = x!;
    const axis = normAxis(ctx.attr<number>("axis"), X.shape.length);
    const { y, mean, inv } = normalizeRows(X, axis, ctx.attr<number>("epsilon"), false, scale, bias);
    const statShape = X.shape.map((d, i) => (i >= axis ? 1 : d));
    return [
      fromF64(X.dtype, X.shape, y),
      fromF64("f32", statShape, mean),
      fromF64("f32", statShape, inv),
    ].slice(0, Math.max(1, ctx.numOutputs));
  },
  lower: (ctx) => lowerNorm(ctx, false),
  flops: (ctx) => mul(8, numelDim(input(ctx, 0).dims)),
});

registerOp({
  name: "RMSNorm",
  doc: "y = x / sqrt(mean(x^2) + epsilon) * scale, the mean over axes [axis, rank); scale broadcasts to x.",
  inputs: [{ name: "x" }, { name: "scale", optional: true }],
  outputs: [{ name: "y" }],
  attrs: { axis: { kind: "int", default: -1 }, epsilon: { kind: "float", default: 1e-6 } },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    requireFloat(ctx, 0, "x");
    normAxis(ctx.attr<number>("axis"), x.dims.length, ctx.fail);
    checkAffine(ctx, x, 1, "scale");
    return [x];
  },
  reference([x, scale], ctx) {
    const X = x!;
    const axis = normAxis(ctx.attr<number>("axis"), X.shape.length);
    const { y } = normalizeRows(X, axis, ctx.attr<number>("epsilon"), true, scale, null);
    return [fromF64(X.dtype, X.shape, y)];
  },
  lower: (ctx) => lowerNorm(ctx, true),
  flops: (ctx) => mul(5, numelDim(input(ctx, 0).dims)),
});

registerOp({
  name: "Softmax",
  doc: "ONNX opset 13: exp(x - max) / sum(exp(x - max)) along one axis (default -1).",
  inputs: [{ name: "x" }],
  outputs: [{ name: "y" }],
  attrs: { axis: { kind: "int", default: -1 } },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    requireFloat(ctx, 0, "x");
    normAxis(ctx.attr<number>("axis"), x.dims.length, ctx.fail);
    return [x];
  },
  reference([x], ctx) {
    const X = x!;
    const axis = normAxis(ctx.attr<number>("axis"), X.shape.length);
    const outer = span(X.shape, 0, axis);
    const n = X.shape[axis];
    const inner = span(X.shape, axis + 1);
    const xd = asF64(X.data);
    const y = new Float64Array(xd.length);
    // A capacity-padded axis (kir/live.ts): example b normalises its own rows; padding rows are 0.
    const lens = X.shape.length > 0 ? liveCounts(ctx, 0, axis, X.shape[0]) : undefined;
    if (lens && axis === 0) throw new OpError("Softmax over the batch axis of a capacity-padded tensor");
    const perB = X.shape.length > 0 ? outer / X.shape[0] : 1;
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        const nl = lens ? Math.min(n, lens[Math.floor(o / perB)]) : n;
        let m = -Infinity;
        for (let k = 0; k < nl; k++) m = Math.max(m, xd[base + k * inner]);
        let s = 0;
        for (let k = 0; k < nl; k++) {
          const e = Math.exp(xd[base + k * inner] - m);
          y[base + k * inner] = e;
          s += e;
        }
        for (let k = 0; k < nl; k++) y[base + k * inner] /= s;
      }
    return [fromF64(X.dtype, X.shape, y)];
  },
  lower: lowerSoftmax,
  // max, subtract, exp, sum, divide per element.
  flops: (ctx) => mul(5, numelDim(input(ctx, 0).dims)),
});

// ---------- kernel lowerings: one row per workgroup (or per invocation for short/strided rows) ----------

/** Loads x[at] of the node's input dtype as f32 (statistics are f32). */
function loadF32(r: Row, buf: string, at: Expr, ctx: LowerCtx): Expr {
  return K.cast(r.io.read(buf, at, ctx.inputs[0]!.dtype), "f32");
}

/**
 * Softmax over one axis of [outer, n, inner]: row = (o, w). The last axis (inner = 1) gives
 * contiguous rows for a workgroup; other axes run a row per invocation, where neighbouring
 * invocations read neighbouring addresses.
 */
function lowerSoftmax(ctx: LowerCtx): Lowering {
  const x = ctx.inputs[0]!;
  const axis = normAxis(ctx.attr<number>("axis"), x.dims.length, ctx.fail);
  const outer = mul(...x.dims.slice(0, axis));
  const n = x.dims[axis];
  const inner = mul(...x.dims.slice(axis + 1));
  const plan = rowPlan(n, ctx.target, inner === 1);
  // A capacity-padded axis: example b's rows past its live length are masked out and written 0.
  const live = liveLength(ctx, n);
  if (live && (axis === 0 || !dimEquals(live.batch, x.dims[0])))
    ctx.fail(`Softmax over ${live.symbol} needs batch axis 0 = ${printDim(live.batch)} before it`);
  return lowering(
    rowLaunch(ctx, "", mul(outer, inner), plan, (r) => {
      const { io } = r;
      const [src, dst] = [io.input(0), io.output(0)];
      const kb = io.kb;
      const [o, w] = coords(kb, r.row, [outer, inner], "r");
      const base = kb.let("base", iadd(imul(o, K.dimExpr(mul(n, inner))), w));
      const at = (k: Expr): Expr => iadd(base, imul(k, K.dimExpr(inner)));
      const len = K.dimExpr(n);
      let isLive = (_k: Expr): Expr | undefined => undefined;
      if (live) {
        io.args.push(live.binding);
        const lenB = live.load(kb)(kb.let("b", K.div(o, K.dimExpr(mul(...x.dims.slice(1, axis))))));
        isLive = (k) => K.lt(k, lenB);
      }
      const masked = (k: Expr, v: Expr, pad: Expr): Expr => {
        const ok = isLive(k);
        return ok ? K.select(ok, v, pad) : v;
      };
      const m = r.reduce("max", "f32", len, (k) => masked(k, loadF32(r, src, at(k), ctx), K.NEG_INF()));
      const e = (k: Expr): Expr => K.unary("exp", K.sub(loadF32(r, src, at(k), ctx), m));
      const sum = r.reduce("add", "f32", len, (k) => masked(k, e(k), K.f32(0)));
      const inv = kb.let("inv", K.div(1, sum));
      r.each(len, (k) => io.write(dst, at(k), castOut(masked(k, K.mul(e(k), inv), K.f32(0)), ctx), x.dtype));
    }),
  );
}

function castOut(v: Expr, ctx: LowerCtx): Expr {
  return K.cast(v, ctx.target.f16 && ctx.inputs[0]!.dtype === "f16" ? "f16" : "f32");
}

/**
 * Flat offset of an affine parameter (scale/bias) for element j of a row. When the parameter
 * only spans the normalized axes it depends on j alone; otherwise on the full coordinate.
 */
function affineAt(r: Row, dims: readonly Dim[], axis: number, p: readonly Dim[], j: Expr, rowLen: Dim): Expr {
  const lead = p.length - (dims.length - axis);
  if (p.slice(0, Math.max(0, lead)).every((d) => d === 1)) {
    const inner = dims.slice(axis);
    const own = p.slice(Math.max(0, lead));
    return broadcastOffset(coords(r.io.kb, j, inner, "j"), own);
  }
  const flat = iadd(imul(r.row, K.dimExpr(rowLen)), j);
  return broadcastOffset(coords(r.io.kb, flat, dims, "x"), p);
}

/**
 * LayerNormalization (rms = false) and RMSNorm over rows [axis, rank): mean and variance of the
 * centred values (two reductions, as the reference), then one pass writing y; the statistics
 * outputs are written once per row when the node has them.
 */
function lowerNorm(ctx: LowerCtx, rms: boolean): Lowering {
  const x = ctx.inputs[0]!;
  const axis = normAxis(ctx.attr<number>("axis"), x.dims.length, ctx.fail);
  const eps = ctx.attr<number>("epsilon");
  const rows = mul(...x.dims.slice(0, axis));
  const D = mul(...x.dims.slice(axis));
  const [scaleT, biasT] = [ctx.inputs[1], rms ? null : ctx.inputs[2]];
  return lowering(
    rowLaunch(ctx, "", rows, rowPlan(D, ctx.target), (r) => {
      const { io } = r;
      const kb = io.kb;
      const src = io.input(0);
      const scale = scaleT ? io.input(1, "scale") : undefined;
      const bias = biasT ? io.input(2, "bias") : undefined;
      const dst = io.output(0);
      const stats = ctx.outputs.slice(1).map((_, k) => io.output(k + 1));
      const base = kb.let("base", imul(r.row, K.dimExpr(D)));
      const val = (j: Expr): Expr => loadF32(r, src, iadd(base, j), ctx);
      const len = K.dimExpr(D);
      const count = K.cast(len, "f32");
      const mean = rms ? K.f32(0) : kb.let("mean", K.div(r.reduce("add", "f32", len, val), count));
      const sq = r.reduce("add", "f32", len, (j) => {
        const d = K.sub(val(j), mean);
        return K.mul(d, d);
      });
      const inv = kb.let("inv", K.div(1, K.unary("sqrt", K.add(K.div(sq, count), eps))));
      r.each(len, (j) => {
        let y = K.mul(K.sub(val(j), mean), inv);
        const param = (buf: string, t: typeof scaleT): Expr =>
          K.cast(io.read(buf, affineAt(r, x.dims, axis, t!.dims, j, D), t!.dtype), "f32");
        if (scale) y = K.mul(y, param(scale, scaleT));
        if (bias) y = K.add(y, param(bias, biasT));
        io.write(dst, iadd(base, j), castOut(y, ctx), x.dtype);
      });
      if (stats.length)
        r.once(() => {
          io.write(stats[0], r.row, mean, "f32");
          if (stats[1]) io.write(stats[1], r.row, inv, "f32");
        });
    }),
  );
}
