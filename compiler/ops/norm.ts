import { dimEquals, mul } from "../ir/sym.js";
import type { Tensor } from "../ir/tensor.js";
import { type TensorType, printType, tensorType } from "../ir/types.js";
import { asF64, dropRoles, fromF64, numelDim, requireFloat, requireSameDtype, span } from "./numeric.js";
import { type InferCtx, registerOp } from "./registry.js";
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
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        let m = -Infinity;
        for (let k = 0; k < n; k++) m = Math.max(m, xd[base + k * inner]);
        let s = 0;
        for (let k = 0; k < n; k++) {
          const e = Math.exp(xd[base + k * inner] - m);
          y[base + k * inner] = e;
          s += e;
        }
        for (let k = 0; k < n; k++) y[base + k * inner] /= s;
      }
    return [fromF64(X.dtype, X.shape, y)];
  },
  // max, subtract, exp, sum, divide per element.
  flops: (ctx) => mul(5, numelDim(input(ctx, 0).dims)),
});
