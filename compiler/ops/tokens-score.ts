import { isFloat } from "../ir/dtype.js";
import { add, mul } from "../ir/sym.js";
import { makeTensor, type Tensor } from "../ir/tensor.js";
import { tensorType, type TensorType } from "../ir/types.js";
import { type InferCtx, OpError, registerOp } from "./registry.js";
import { asF64 } from "./numeric.js";
import { requireDims, tokens3 } from "./tokens.js";
import { lowerScore } from "./tokens-lower.js";
import { input, shapeStr } from "./util.js";

/** The scoring rules of `tokens.score`. */
export type ScoreMethod = "transition" | "key_norm";

function floatInput(ctx: InferCtx, i: number, name: string): TensorType {
  const t = input(ctx, i);
  if (!isFloat(t.dtype)) ctx.fail(`${name} must be a float tensor, got ${t.dtype}`);
  return t;
}

/**
 * `tokens.score(a, b?) -> scores`: a per-token importance f32 `[B, N]` for `tokens.prune`
 * (higher = more important). `method`:
 *
 * - `"transition"` (TransPrune-style): a = tokens entering a block, b = tokens leaving it, both
 *   float `[B, N, C]`. With `na = |a|`, `nb = |b|` (L2 over C):
 *   `mag = |nb - na| / max(na, nb)` (0 when both are 0) and `dir = 1 - cos(a, b)` where cos is
 *   `a.b / (na nb)` clamped to [-1, 1], 1 when both are 0 (unchanged) and 0 when only one is 0.
 *   The score is `w_mag * mag + w_dir * dir`; mag is in [0, 1] and dir in [0, 2], so it is never
 *   NaN or inf for finite inputs.
 * - `"key_norm"`: a = keys `[B, N, C]` or `[B, H, N, D]`, no b. The L2 norm of each token's key,
 *   averaged over heads for rank 4. (Methods that keep low-norm keys negate it.)
 *
 * The reference accumulates in f64.
 */
export const scoreDef = registerOp({
  name: "tokens.score",
  doc: "Per-token importance scores: transition (change of magnitude and direction across a block) or key L2 norm.",
  inputs: [{ name: "a" }, { name: "b", optional: true }],
  outputs: [{ name: "scores" }],
  attrs: {
    method: { kind: "string", oneOf: ["transition", "key_norm"], doc: "Scoring rule." },
    w_mag: { kind: "float", default: 1, doc: "transition: weight of the relative magnitude change." },
    w_dir: { kind: "float", default: 1, doc: "transition: weight of 1 - cos(a, b)." },
  },
  pure: true,
  infer(ctx) {
    const method = ctx.attr<ScoreMethod>("method");
    switch (method) {
      case "transition": {
        const a = tokens3(ctx, 0, "a");
        if (!isFloat(a.dtype)) ctx.fail(`a must be a float tensor, got ${a.dtype}`);
        if (!ctx.inputs[1]) ctx.fail(`method "transition" needs b (the tokens leaving the block)`);
        const b = floatInput(ctx, 1, "b");
        requireDims(ctx, "b", b, a.dims);
        return [tensorType("f32", a.dims.slice(0, 2), a.axes?.slice(0, 2))];
      }
      case "key_norm": {
        for (const w of ["w_mag", "w_dir"])
          if (ctx.attrs[w] !== undefined) ctx.fail(`${w} applies only to method "transition"`);
        if (ctx.inputs[1]) ctx.fail(`method "key_norm" takes one input (the keys), got b`);
        const a = floatInput(ctx, 0, "a");
        const r = a.dims.length;
        if (r !== 3 && r !== 4) ctx.fail(`keys must be [B, N, C] or [B, H, N, D], got ${shapeStr(a.dims)}`);
        const tok = r - 2;
        return [tensorType("f32", [a.dims[0], a.dims[tok]], a.axes ? [a.axes[0], a.axes[tok]] : undefined)];
      }
    }
  },
  reference([a, b], ctx) {
    const method = ctx.attr<ScoreMethod>("method");
    switch (method) {
      case "transition":
        return [transitionScores(a!, b!, ctx.attr<number>("w_mag"), ctx.attr<number>("w_dir"))];
      case "key_norm":
        return [keyNormScores(a!)];
    }
  },
  flops(ctx) {
    const a = input(ctx, 0);
    const [B] = a.dims;
    const method = ctx.attr<ScoreMethod>("method");
    switch (method) {
      case "transition": {
        const [, N, C] = a.dims;
        // Three dot products (|a|^2, |b|^2, a.b) at 2 per element, ~10 per token to combine.
        return add(mul(6, B, N, C), mul(10, B, N));
      }
      case "key_norm": {
        const elems = mul(...a.dims);
        const tokens = a.dims.length === 4 ? mul(B, a.dims[1], a.dims[2]) : mul(B, a.dims[1]);
        // Sum of squares (2 per element), a square root (and head average) per token.
        return add(mul(2, elems), mul(2, tokens));
      }
    }
  },
  lower: lowerScore,
});

/** `method = "transition"` on concrete `[B, N, C]` tensors. */
export function transitionScores(a: Tensor, b: Tensor, wMag: number, wDir: number): Tensor {
  const [B, N, C] = a.shape;
  if (b.shape.join() !== a.shape.join())
    throw new OpError(`b has shape ${shapeStr(b.shape)}, expected ${shapeStr(a.shape)}`);
  const ad = asF64(a.data);
  const bd = asF64(b.data);
  const out = new Float64Array(B * N);
  for (let t = 0; t < B * N; t++) {
    let aa = 0;
    let bb = 0;
    let ab = 0;
    for (let c = 0; c < C; c++) {
      const x = ad[t * C + c];
      const y = bd[t * C + c];
      aa += x * x;
      bb += y * y;
      ab += x * y;
    }
    const na = Math.sqrt(aa);
    const nb = Math.sqrt(bb);
    const top = Math.max(na, nb);
    const mag = top === 0 ? 0 : Math.abs(nb - na) / top;
    const cos =
      na === 0 && nb === 0 ? 1 : na === 0 || nb === 0 ? 0 : Math.min(1, Math.max(-1, ab / (na * nb)));
    out[t] = wMag * mag + wDir * (1 - cos);
  }
  return makeTensor("f32", [B, N], out);
}

/** `method = "key_norm"` on concrete keys `[B, N, C]` or `[B, H, N, D]`. */
export function keyNormScores(k: Tensor): Tensor {
  const rank4 = k.shape.length === 4;
  const [B, H, N, D] = rank4 ? k.shape : [k.shape[0], 1, k.shape[1], k.shape[2]];
  const kd = asF64(k.data);
  const out = new Float64Array(B * N);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let n = 0; n < N; n++) {
        const off = ((b * H + h) * N + n) * D;
        let acc = 0;
        for (let d = 0; d < D; d++) acc += kd[off + d] ** 2;
        out[b * N + n] += Math.sqrt(acc) / H;
      }
  return makeTensor("f32", [B, N], out);
}
