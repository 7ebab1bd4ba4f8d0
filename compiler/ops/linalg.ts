import { type Dim, add, ceildiv, dimEquals, floordiv, mul, printDim, sub } from "../ir/sym.js";
import { numel, type Tensor } from "../ir/tensor.js";
import { type AxisRole, type TensorType, printType, tensorType } from "../ir/types.js";
import { asF64, dropRoles, fromF64, numelDim, requireFloat } from "./numeric.js";
import { lowerConv, lowerMatmul, lowerMatmulEpilogue } from "./linalg-lower.js";
import { type InferCtx, OpError, registerOp } from "./registry.js";
import { broadcastAxes, broadcastDims, broadcastIndex, concreteBroadcast, input, shapeStr } from "./util.js";

/** MatMul, Gemm and Conv (ONNX semantics). References accumulate in f64 with i-k-j loops. */

function requireMatmulDtypes(ctx: InferCtx, a: TensorType, b: TensorType): void {
  if (a.dtype !== b.dtype) ctx.fail(`operand dtypes differ: ${a.dtype} and ${b.dtype}`);
  if (a.dtype === "bool") ctx.fail(`${ctx.op} does not take bool operands`);
}

function innerMismatch(ctx: InferCtx, a: TensorType, ka: Dim, b: TensorType, kb: Dim): never {
  return ctx.fail(
    `inner dimensions differ: ${printType(a)} has K = ${printDim(ka)} but ${printType(b)} has K = ${printDim(kb)}`,
  );
}

/**
 * out[oo + i*N + j] += sum_k A[i, k] * B[k, j] for one M×K by K×N product, in f64.
 * i-k-j order keeps the innermost loop contiguous in B and out; four k steps per pass quarter
 * the loads and stores of out. Operands are f64 copies so the loop sees one array type.
 */
function gemmInto(
  out: Float64Array,
  oo: number,
  ad: Float64Array,
  ao: number,
  bd: Float64Array,
  bo: number,
  M: number,
  K: number,
  N: number,
): void {
  for (let i = 0; i < M; i++) {
    const orow = oo + i * N;
    const arow = ao + i * K;
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const a0 = ad[arow + k];
      const a1 = ad[arow + k + 1];
      const a2 = ad[arow + k + 2];
      const a3 = ad[arow + k + 3];
      const b0 = bo + k * N;
      const b1 = b0 + N;
      const b2 = b1 + N;
      const b3 = b2 + N;
      for (let j = 0; j < N; j++)
        out[orow + j] += a0 * bd[b0 + j] + a1 * bd[b1 + j] + a2 * bd[b2 + j] + a3 * bd[b3 + j];
    }
    for (; k < K; k++) {
      const av = ad[arow + k];
      const brow = bo + k * N;
      for (let j = 0; j < N; j++) out[orow + j] += av * bd[brow + j];
    }
  }
}

/**
 * MatMul's `perm_a`: A is read as `Transpose(a, perm_a)` (a folded exporter Transpose). The last
 * axis (K) must stay last; B must have no batch dims (the kernel remaps rows of one folded GEMM).
 */
function permA(
  ctx: Pick<InferCtx, "optAttr" | "fail">,
  a: TensorType,
  b: TensorType,
): readonly number[] | undefined {
  const perm = ctx.optAttr<readonly number[]>("perm_a");
  if (perm === undefined) return undefined;
  const r = a.dims.length;
  const ok = perm.length === r && [...perm].sort((x, y) => x - y).every((v, i) => v === i);
  if (!ok || r < 2 || perm[r - 1] !== r - 1)
    ctx.fail(`perm_a [${perm.join(", ")}] must permute A's ${r} axes and keep the last one last`);
  if (b.dims.length > 2) ctx.fail(`perm_a needs a B without batch dims, got ${printType(b)}`);
  return perm;
}

/** `t` with its axes permuted (`out axis i = t axis perm[i]`). */
function permuteType(t: TensorType, perm: readonly number[]): TensorType {
  return tensorType(
    t.dtype,
    perm.map((p) => t.dims[p]),
    t.axes ? perm.map((p) => t.axes![p]) : undefined,
  );
}

/** Row-major transpose of a tensor's data (reference only). */
function permuteData(x: Tensor, perm: readonly number[]): Tensor {
  const shape = perm.map((p) => x.shape[p]);
  const src = x.shape.map((_, i) => x.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const n = numel(x.shape);
  const out = new Float64Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let at = 0;
    for (let i = 0; i < shape.length; i++) at += idx[i] * src[perm[i]];
    out[o] = x.data[at];
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  return fromF64(x.dtype, shape, out);
}

registerOp({
  name: "MatMul",
  doc:
    "numpy matmul: batch dims broadcast; a 1-D A is [1, K] and a 1-D B is [K, 1], with that axis removed " +
    "from the result. Roles: batch and M axes as in A (B fills batch roles A lacks); N takes B's role if unused.",
  inputs: [{ name: "a" }, { name: "b" }],
  outputs: [{ name: "y" }],
  attrs: {
    perm_a: {
      kind: "ints",
      optional: true,
      doc: "tokr: A is read as Transpose(a, perm_a); K stays last, B has no batch dims (fold-matmul-transpose)",
    },
  },
  pure: true,
  infer(ctx) {
    const b = input(ctx, 1);
    const a0 = input(ctx, 0);
    const perm = permA(ctx, a0, b);
    const a = perm ? permuteType(a0, perm) : a0;
    requireMatmulDtypes(ctx, a, b);
    if (a.dims.length === 0 || b.dims.length === 0)
      ctx.fail(`operands must have rank >= 1, got ${printType(a)} and ${printType(b)}`);
    const ra = a.dims.length;
    const rb = b.dims.length;
    const ka = a.dims[ra - 1];
    const kb = b.dims[rb === 1 ? 0 : rb - 2];
    if (!dimEquals(ka, kb)) innerMismatch(ctx, a, ka, b, kb);
    const aBatch = tensorType(a.dtype, a.dims.slice(0, -2), a.axes?.slice(0, -2));
    const bBatch = tensorType(b.dtype, b.dims.slice(0, -2), b.axes?.slice(0, -2));
    const batch = broadcastDims([aBatch.dims, bBatch.dims], (m) => ctx.fail(`batch dimensions: ${m}`));
    const dims: Dim[] = [...batch];
    const axes: (AxisRole | null)[] = broadcastAxes([aBatch, bBatch], batch.length) ?? batch.map(() => null);
    if (ra >= 2) {
      dims.push(a.dims[ra - 2]);
      axes.push(a.axes?.[ra - 2] ?? null);
    }
    if (rb >= 2) {
      dims.push(b.dims[rb - 1]);
      const role = b.axes?.[rb - 1] ?? null;
      axes.push(role && !axes.includes(role) ? role : null);
    }
    return [tensorType(a.dtype, dims, axes)];
  },
  reference([a, b], ctx) {
    const perm = ctx.optAttr<readonly number[]>("perm_a");
    const A = perm ? permuteData(a!, perm) : a!;
    const B = b!;
    const aS = A.shape.length === 1 ? [1, A.shape[0]] : A.shape;
    const bS = B.shape.length === 1 ? [B.shape[0], 1] : B.shape;
    const [M, K] = aS.slice(-2);
    const [K2, N] = bS.slice(-2);
    if (K !== K2)
      throw new OpError(`inner dimensions differ: [${A.shape.join(", ")}] and [${B.shape.join(", ")}]`);
    const aB = aS.slice(0, -2);
    const bB = bS.slice(0, -2);
    const batch = concreteBroadcast([aB, bB]);
    const ai = broadcastIndex(aB, batch);
    const bi = broadcastIndex(bB, batch);
    const nb = numel(batch);
    const out = new Float64Array(nb * M * N);
    const ad = asF64(A.data);
    const bd = asF64(B.data);
    for (let p = 0; p < nb; p++) gemmInto(out, p * M * N, ad, ai[p] * M * K, bd, bi[p] * K * N, M, K, N);
    const shape = [...batch, ...(A.shape.length === 1 ? [] : [M]), ...(B.shape.length === 1 ? [] : [N])];
    return [fromF64(A.dtype, shape, out)];
  },
  flops(ctx, outs) {
    const a = input(ctx, 0);
    return mul(2, numelDim(outs[0].dims), a.dims[a.dims.length - 1]);
  },
  lower: lowerMatmul,
  lowerEpilogue: lowerMatmulEpilogue,
});

/** Copies a row-major R×C matrix transposed (C×R) into f64. */
function transposed(d: ArrayLike<number>, R: number, C: number): Float64Array {
  const t = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = d[r * C + c];
  return t;
}

registerOp({
  name: "Gemm",
  doc: "Y = alpha * A' B' + beta * C with A' = transA ? Aᵀ : A (rank 2), likewise B'; C broadcasts to [M, N].",
  inputs: [{ name: "a" }, { name: "b" }, { name: "c", optional: true }],
  outputs: [{ name: "y" }],
  attrs: {
    alpha: { kind: "float", default: 1 },
    beta: { kind: "float", default: 1 },
    transA: { kind: "int", default: 0, doc: "ONNX int flag: non-zero transposes A" },
    transB: { kind: "int", default: 0, doc: "ONNX int flag: non-zero transposes B" },
  },
  pure: true,
  infer(ctx) {
    const a = input(ctx, 0);
    const b = input(ctx, 1);
    const c = ctx.inputs[2] ?? null;
    requireMatmulDtypes(ctx, a, b);
    if (a.dims.length !== 2 || b.dims.length !== 2)
      ctx.fail(`operands must have rank 2, got ${printType(a)} and ${printType(b)}`);
    const ta = ctx.attr<number>("transA") !== 0;
    const tb = ctx.attr<number>("transB") !== 0;
    const [M, ka] = ta ? [a.dims[1], a.dims[0]] : [a.dims[0], a.dims[1]];
    const [kb, N] = tb ? [b.dims[1], b.dims[0]] : [b.dims[0], b.dims[1]];
    if (!dimEquals(ka, kb)) innerMismatch(ctx, a, ka, b, kb);
    if (c) {
      if (c.dtype !== a.dtype) ctx.fail(`C has dtype ${c.dtype}, expected ${a.dtype}`);
      const bad = (): never =>
        ctx.fail(`C of shape ${shapeStr(c.dims)} does not broadcast to [M, N] = ${shapeStr([M, N])}`);
      const bc = c.dims.length <= 2 ? broadcastDims([[M, N], c.dims], bad) : bad();
      if (!dimEquals(bc[0], M) || !dimEquals(bc[1], N)) bad();
    }
    const mRole = a.axes?.[ta ? 1 : 0] ?? null;
    const nRole = b.axes?.[tb ? 0 : 1] ?? null;
    return [tensorType(a.dtype, [M, N], [mRole, nRole !== mRole ? nRole : null])];
  },
  reference([a, b, c], ctx) {
    const A = a!;
    const B = b!;
    const ta = ctx.attr<number>("transA") !== 0;
    const tb = ctx.attr<number>("transB") !== 0;
    const [M, K] = ta ? [A.shape[1], A.shape[0]] : A.shape;
    const [K2, N] = tb ? [B.shape[1], B.shape[0]] : B.shape;
    if (K !== K2) throw new OpError(`inner dimensions differ: ${K} and ${K2}`);
    const ad = ta ? transposed(A.data, K, M) : asF64(A.data);
    const bd = tb ? transposed(B.data, N, K) : asF64(B.data);
    const out = new Float64Array(M * N);
    gemmInto(out, 0, ad, 0, bd, 0, M, K, N);
    const alpha = ctx.attr<number>("alpha");
    const beta = ctx.attr<number>("beta");
    const ci = c ? broadcastIndex(c.shape, [M, N]) : undefined;
    for (let p = 0; p < M * N; p++) out[p] = alpha * out[p] + (c && ci ? beta * c.data[ci[p]] : 0);
    return [fromF64(A.dtype, [M, N], out)];
  },
  flops(ctx, outs) {
    const a = input(ctx, 0);
    return mul(2, numelDim(outs[0].dims), a.dims[ctx.attr<number>("transA") !== 0 ? 0 : 1]);
  },
  lower: lowerMatmul,
  lowerEpilogue: lowerMatmulEpilogue,
});

// ---------- Conv ----------

const AUTO_PADS = ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"] as const;
type AutoPad = (typeof AUTO_PADS)[number];

/** Resolved per-spatial-axis attributes of a Conv; `pads` is ONNX layout [begin..., end...]. */
interface ConvAttrs {
  readonly autoPad: AutoPad;
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  readonly pads: readonly number[];
  readonly group: number;
}

function convAttrs(
  ctx: Pick<InferCtx, "optAttr" | "attr">,
  sp: number,
  fail: (m: string) => never,
): ConvAttrs {
  const list = (name: string, fill: number, len: number, min: number): number[] => {
    const v = ctx.optAttr<readonly number[]>(name) ?? new Array<number>(len).fill(fill);
    if (v.length !== len) fail(`${name} has ${v.length} entries, expected ${len} for ${sp} spatial axes`);
    if (v.some((x) => x < min)) fail(`${name} must be >= ${min}, got [${v.join(", ")}]`);
    return [...v];
  };
  const autoPad = ctx.attr<AutoPad>("auto_pad");
  const pads = list("pads", 0, 2 * sp, 0);
  if (autoPad !== "NOTSET" && pads.some((p) => p !== 0))
    fail(`pads cannot be combined with auto_pad "${autoPad}"`);
  const group = ctx.attr<number>("group");
  if (group < 1) fail(`group must be >= 1, got ${group}`);
  return { autoPad, strides: list("strides", 1, sp, 1), dilations: list("dilations", 1, sp, 1), pads, group };
}

/** Output length of one spatial axis (ONNX Conv formulas); symbolic in the input length. */
function convOutDim(c: ConvAttrs, i: number, len: Dim, k: Dim): Dim {
  const sp = c.strides.length;
  const s = c.strides[i];
  switch (c.autoPad) {
    case "SAME_UPPER":
    case "SAME_LOWER":
      return ceildiv(len, s);
    case "NOTSET":
    case "VALID": {
      const padded = add(len, c.pads[i], c.pads[i + sp]);
      const extent = add(mul(c.dilations[i], sub(k, 1)), 1);
      return add(floordiv(sub(padded, extent), s), 1);
    }
  }
}

/** Concrete begin/end padding of one spatial axis; SAME_* splits the total, the odd unit at the end (UPPER) or start (LOWER). */
function convPads(c: ConvAttrs, i: number, len: number, k: number): [number, number] {
  const sp = c.strides.length;
  switch (c.autoPad) {
    case "NOTSET":
      return [c.pads[i], c.pads[i + sp]];
    case "VALID":
      return [0, 0];
    case "SAME_UPPER":
    case "SAME_LOWER": {
      const out = Math.ceil(len / c.strides[i]);
      const total = Math.max(0, (out - 1) * c.strides[i] + c.dilations[i] * (k - 1) + 1 - len);
      const small = Math.floor(total / 2);
      return c.autoPad === "SAME_UPPER" ? [small, total - small] : [total - small, small];
    }
  }
}

function throwOp(m: string): never {
  throw new OpError(m);
}

registerOp({
  name: "Conv",
  doc:
    "1-D/2-D convolution: x [N, C, ...S], w [M, C/group, ...K], optional bias [M]. Roles: batch and channel " +
    "axes keep theirs; a spatial axis keeps its role only when its length is unchanged.",
  inputs: [{ name: "x" }, { name: "w" }, { name: "bias", optional: true }],
  outputs: [{ name: "y" }],
  attrs: {
    auto_pad: { kind: "string", default: "NOTSET", oneOf: AUTO_PADS },
    dilations: { kind: "ints", optional: true },
    group: { kind: "int", default: 1 },
    kernel_shape: { kind: "ints", optional: true },
    pads: { kind: "ints", optional: true, doc: "[x1_begin, x2_begin, ..., x1_end, x2_end, ...]" },
    strides: { kind: "ints", optional: true },
  },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const w = input(ctx, 1);
    const bias = ctx.inputs[2] ?? null;
    requireFloat(ctx, 0, "x");
    if (w.dtype !== x.dtype) ctx.fail(`w has dtype ${w.dtype}, expected ${x.dtype}`);
    const r = x.dims.length;
    if (r !== 3 && r !== 4) ctx.fail(`x must have rank 3 (1-D) or 4 (2-D), got ${printType(x)}`);
    if (w.dims.length !== r) ctx.fail(`w must have rank ${r} like x, got ${printType(w)}`);
    const sp = r - 2;
    const c = convAttrs(ctx, sp, ctx.fail);
    const kernel = w.dims.slice(2);
    const ks = ctx.optAttr<readonly number[]>("kernel_shape");
    if (ks && (ks.length !== sp || ks.some((k, i) => !dimEquals(k, kernel[i]))))
      ctx.fail(`kernel_shape [${ks.join(", ")}] does not match w ${printType(w)}`);
    const [, C] = x.dims;
    const [M, Cg] = w.dims;
    if (!dimEquals(C, mul(Cg, c.group)))
      ctx.fail(
        `x has ${printDim(C)} channels but w ${printType(w)} with group ${c.group} expects ${printDim(mul(Cg, c.group))}`,
      );
    if (typeof M === "number" && M % c.group !== 0)
      ctx.fail(`${M} output channels are not divisible by group ${c.group}`);
    if (bias) {
      if (bias.dtype !== x.dtype) ctx.fail(`bias has dtype ${bias.dtype}, expected ${x.dtype}`);
      if (bias.dims.length !== 1 || !dimEquals(bias.dims[0], M))
        ctx.fail(`bias must be [${printDim(M)}], got ${printType(bias)}`);
    }
    const out = x.dims.slice(2).map((len, i) => convOutDim(c, i, len, kernel[i]));
    out.forEach((d, i) => {
      if (typeof d === "number" && d < 1)
        ctx.fail(`spatial axis ${i} of ${printType(x)} is too small for the kernel (output ${d})`);
    });
    const roles = dropRoles(x, (i) => i >= 2 && !dimEquals(out[i - 2], x.dims[i]));
    return [tensorType(x.dtype, [x.dims[0], M, ...out], roles)];
  },
  reference([x, w, bias], ctx) {
    const X = x!;
    const W = w!;
    const sp = X.shape.length - 2;
    const c = convAttrs(ctx, sp, throwOp);
    // A 1-D conv is a 2-D conv over an axis of length 1.
    const lift = (s: readonly number[]): number[] => (sp === 1 ? [s[0], s[1], 1, s[2]] : [...s]);
    const [N, C, H, Wd] = lift(X.shape);
    const [M, Cg, kH, kW] = lift(W.shape);
    const [sh, sw] = sp === 1 ? [1, c.strides[0]] : c.strides;
    const [dh, dw] = sp === 1 ? [1, c.dilations[0]] : c.dilations;
    const pt = sp === 1 ? 0 : convPads(c, 0, H, kH)[0];
    const pl = convPads(c, sp - 1, Wd, kW)[0];
    if (C !== Cg * c.group) throw new OpError(`x has ${C} channels, w expects ${Cg * c.group}`);
    const outSp = X.shape.slice(2).map((len, i) => convOutDim(c, i, len, W.shape[2 + i]) as number);
    const [oH, oW] = sp === 1 ? [1, outSp[0]] : outSp;
    const Mg = M / c.group;
    const xd = asF64(X.data);
    const wd = asF64(W.data);
    const out = new Float64Array(N * M * oH * oW);
    let o = 0;
    for (let n = 0; n < N; n++)
      for (let m = 0; m < M; m++) {
        const g = Math.floor(m / Mg);
        const b0 = bias ? bias.data[m] : 0;
        for (let oh = 0; oh < oH; oh++)
          for (let ow = 0; ow < oW; ow++) {
            let acc = b0;
            // Taps kw in [lo, hi) fall inside the row; the rest read zero padding.
            const iw0 = ow * sw - pl;
            const lo = iw0 >= 0 ? 0 : Math.ceil(-iw0 / dw);
            const hi = Math.min(kW, Math.floor((Wd - 1 - iw0) / dw) + 1);
            for (let ci = 0; ci < Cg; ci++) {
              const xc = (n * C + g * Cg + ci) * H * Wd + iw0;
              const wc = (m * Cg + ci) * kH * kW;
              for (let kh = 0; kh < kH; kh++) {
                const ih = oh * sh - pt + kh * dh;
                if (ih < 0 || ih >= H) continue;
                const xr = xc + ih * Wd;
                const wr = wc + kh * kW;
                for (let kw = lo; kw < hi; kw++) acc += xd[xr + kw * dw] * wd[wr + kw];
              }
            }
            out[o++] = acc;
          }
      }
    return [fromF64(X.dtype, [N, M, ...outSp], out)];
  },
  flops(ctx, outs) {
    const w = input(ctx, 1);
    // Each output element is a dot product over C/group × prod(kernel) taps.
    return mul(2, numelDim(outs[0].dims), numelDim(w.dims.slice(1)));
  },
  lower: lowerConv,
});
