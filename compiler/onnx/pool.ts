/**
 * BatchNormalization and AveragePool, which have no IR op of their own, written out as IR ops:
 * elementwise arithmetic and reductions for the first, depthwise Conv (plus a division by the
 * per-window element count where windows differ) for the second.
 */
import type { Value } from "../ir/graph.js";
import { numel } from "../ir/tensor.js";
import type { AdaptCtx, Adapted } from "./adapters.js";
import { toNum } from "./reader.js";

function need(ctx: AdaptCtx, k: number, what: string): Value {
  const v = ctx.inputs[k];
  if (!v) throw new Error(`${ctx.opType} needs input ${k} (${what})`);
  return v;
}

function intAttr(ctx: AdaptCtx, name: string, dflt: number): number {
  const a = ctx.attrs.get(name);
  return a ? toNum(a.i) : dflt;
}

function intsAttr(ctx: AdaptCtx, name: string): number[] | undefined {
  const a = ctx.attrs.get(name);
  return a ? (a.ints ?? []).map(toNum) : undefined;
}

function i64(ctx: AdaptCtx, values: readonly number[], what: string): Value {
  return ctx.b.const("i64", [values.length], values, `${ctx.hint}_${what}`);
}

function constData(ctx: AdaptCtx, v: Value): ArrayLike<number> | undefined {
  return ctx.b.g.constants.get(v)?.data?.data;
}

// ---------- BatchNormalization ----------

/**
 * Inference: y = (x - mean) * scale / sqrt(var + eps) + bias per channel (axis 1), folded into one
 * multiply-add when the parameters are constants. Training (opset 14+ `training_mode = 1`): the batch's
 * mean and (population) variance normalise x, and outputs 1 and 2 are the updated running statistics
 * `running * momentum + batch * (1 - momentum)`.
 */
export function batchNorm(ctx: AdaptCtx): Adapted {
  const { b } = ctx;
  const x = need(ctx, 0, "X");
  const [scale, bias, mean, v] = ["scale", "B", "input_mean", "input_var"].map((w, i) => need(ctx, i + 1, w));
  const rank = x.type.dims.length;
  if (rank < 2)
    throw new Error(`BatchNormalization needs an input of rank >= 2 (N, C, ...), got rank ${rank}`);
  if (ctx.opset < 9 && intAttr(ctx, "spatial", 1) !== 1)
    throw new Error("BatchNormalization with spatial=0 is not supported");
  const training = ctx.opset >= 14 && intAttr(ctx, "training_mode", 0) !== 0;
  if (!training && ctx.outputs > 1)
    throw new Error(
      `BatchNormalization with ${ctx.outputs} outputs (training statistics) is only supported from opset 14 (training_mode)`,
    );
  const dt = x.type.dtype;
  const eps = ctx.attrs.get("epsilon")?.f ?? 1e-5;
  const params = [scale, bias, mean, v].map((p) => constData(ctx, p));
  const perChannel = rank > 2 ? Array.from({ length: rank - 2 }, (_, i) => i + 1) : [];
  // [C] -> [C, 1, ...] so it broadcasts against [N, C, ...].
  const channel = (p: Value, what: string): Value =>
    perChannel.length ? b.op("Unsqueeze", [p, i64(ctx, perChannel, `${what}_axes`)]) : p;
  const epsV = b.const(dt, [], [eps], `${ctx.hint}_eps`);

  if (!training && params.every((p): p is ArrayLike<number> => p !== undefined)) {
    const [s0, b0, m0, v0] = params;
    const C = s0.length;
    const s = Array.from({ length: C }, (_, c) => s0[c] / Math.sqrt(v0[c] + eps));
    const t = Array.from({ length: C }, (_, c) => b0[c] - m0[c] * s[c]);
    const shape = [C, ...Array<number>(rank - 2).fill(1)];
    const sv = b.const(dt, shape, s, `${ctx.hint}_scale`);
    const tv = b.const(dt, shape, t, `${ctx.hint}_shift`);
    return { op: "Add", inputs: [b.op("Mul", [x, sv]), tv], attrs: {} };
  }
  const normalise = (m: Value, variance: Value): Adapted => {
    const inv = b.op("Div", [channel(scale, "scale"), b.op("Sqrt", [b.op("Add", [variance, epsV])])]);
    const y = b.op("Mul", [b.op("Sub", [x, m]), inv]);
    return { op: "Add", inputs: [y, channel(bias, "bias")], attrs: {} };
  };
  if (!training) return normalise(channel(mean, "mean"), channel(v, "var"));

  const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const axesV = i64(ctx, axes, "stat_axes");
  const bm = b.op("ReduceMean", [x, axesV], { keepdims: 1 });
  const d = b.op("Sub", [x, bm]);
  const bv = b.op("ReduceMean", [b.op("Mul", [d, d]), axesV], { keepdims: 1 });
  const momentum = ctx.attrs.get("momentum")?.f ?? 0.9;
  const mom = b.const(dt, [], [momentum], `${ctx.hint}_momentum`);
  const rest = b.const(dt, [], [1 - momentum], `${ctx.hint}_1_momentum`);
  const running = (old: Value, batch: Value): Value =>
    b.op("Add", [b.op("Mul", [old, mom]), b.op("Mul", [b.op("Squeeze", [batch, axesV]), rest])]);
  return { ...normalise(bm, bv), extra: [running(mean, bm), running(v, bv)] };
}

// ---------- AveragePool ----------

const AUTO_PADS = ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"] as const;
type AutoPad = (typeof AUTO_PADS)[number];

interface PoolAttrs {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** ONNX layout [begin..., end...]. */
  readonly pads: readonly number[];
  readonly autoPad: AutoPad;
  readonly ceil: boolean;
  readonly includePad: boolean;
}

/** One spatial axis: Conv padding (with the extra end padding ceil_mode needs), output length, counts. */
interface AxisPlan {
  readonly begin: number;
  readonly end: number;
  readonly out: number;
  /** Elements averaged by each output position. */
  readonly counts: readonly number[];
}

function poolAttrs(ctx: AdaptCtx, sp: number): PoolAttrs {
  const kernel = intsAttr(ctx, "kernel_shape");
  if (!kernel || kernel.length !== sp)
    throw new Error(`AveragePool needs kernel_shape with ${sp} entries (one per spatial axis)`);
  const list = (name: string, fill: number, len: number, min: number): number[] => {
    const v = intsAttr(ctx, name) ?? Array<number>(len).fill(fill);
    if (v.length !== len || v.some((e) => e < min))
      throw new Error(`AveragePool ${name} must be ${len} integers >= ${min}, got [${v.join(", ")}]`);
    return v;
  };
  if (kernel.some((k) => k < 1))
    throw new Error(`AveragePool kernel_shape [${kernel.join(", ")}] must be >= 1`);
  const ap = ctx.attrs.get("auto_pad");
  const autoPad = ap ? new TextDecoder().decode(ap.s ?? new Uint8Array()) : "NOTSET";
  if (!(AUTO_PADS as readonly string[]).includes(autoPad))
    throw new Error(`AveragePool auto_pad '${autoPad}' is not one of ${AUTO_PADS.join(", ")}`);
  const pads = list("pads", 0, 2 * sp, 0);
  if (autoPad !== "NOTSET" && pads.some((p) => p !== 0))
    throw new Error(`AveragePool pads cannot be combined with auto_pad ${autoPad}`);
  return {
    kernel,
    strides: list("strides", 1, sp, 1),
    dilations: list("dilations", 1, sp, 1),
    pads,
    autoPad: autoPad as AutoPad,
    ceil: intAttr(ctx, "ceil_mode", 0) !== 0,
    includePad: intAttr(ctx, "count_include_pad", 0) !== 0,
  };
}

/** ONNX pooling output length and padding of axis `i` of length `len`. */
function planAxis(a: PoolAttrs, i: number, len: number): AxisPlan {
  const sp = a.kernel.length;
  const [k, s, d] = [a.kernel[i], a.strides[i], a.dilations[i]];
  const ext = (k - 1) * d + 1;
  let [begin, end, out] = [a.pads[i], a.pads[i + sp], 0];
  switch (a.autoPad) {
    case "SAME_UPPER":
    case "SAME_LOWER": {
      out = Math.ceil(len / s);
      const total = Math.max(0, (out - 1) * s + ext - len);
      const small = Math.floor(total / 2);
      [begin, end] = a.autoPad === "SAME_UPPER" ? [small, total - small] : [total - small, small];
      break;
    }
    case "VALID":
      [begin, end] = [0, 0];
      out = Math.floor((len - ext) / s) + 1;
      break;
    case "NOTSET": {
      const span = len + begin + end - ext;
      out = (a.ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
      // A window may not start in the end padding (the ceil_mode rule of ONNX and PyTorch).
      if (a.ceil && (out - 1) * s >= len + begin) out--;
      break;
    }
  }
  if (out < 1) throw new Error(`AveragePool: spatial axis ${i} of length ${len} is too short for the window`);
  const [lo, hi] = a.includePad ? [-begin, len + end] : [0, len];
  const counts = Array.from({ length: out }, (_, o) => {
    let c = 0;
    for (let j = 0; j < k; j++) {
      const p = o * s - begin + j * d;
      if (p >= lo && p < hi) c++;
    }
    return c;
  });
  return { begin, end: Math.max(end, (out - 1) * s + ext - len - begin), out, counts };
}

/** Counts of a window over several axes: the product of the per-axis counts (the box is separable). */
function countGrid(plans: readonly AxisPlan[]): number[] {
  let grid = [1];
  for (const p of plans) grid = grid.flatMap((g) => p.counts.map((c) => g * c));
  return grid;
}

/** A depthwise Conv of `x` ([N, groups, ...]) with every weight `w`; pads are explicit. */
function depthwise(
  ctx: AdaptCtx,
  x: Value,
  groups: number,
  w: number,
  a: { kernel: number[]; strides: number[]; dilations: number[]; begin: number[]; end: number[] },
  what: string,
): Adapted {
  const n = groups * numel(a.kernel);
  const weights = ctx.b.const(
    x.type.dtype,
    [groups, 1, ...a.kernel],
    Array<number>(n).fill(w),
    `${ctx.hint}_${what}`,
  );
  const attrs = { group: groups, kernel_shape: a.kernel, strides: a.strides, dilations: a.dilations };
  return { op: "Conv", inputs: [x, weights], attrs: { ...attrs, pads: [...a.begin, ...a.end] } };
}

/**
 * AveragePool of rank 3-5 inputs (1-D to 3-D windows) with pads, auto_pad, strides, dilations, ceil_mode
 * and count_include_pad. Windows that all average the same number of elements scale the Conv weights;
 * otherwise the window sums are divided by a constant grid of counts (which needs static spatial dims).
 * 3-D windows pool the first spatial axis, then the other two, through reshapes (box kernels separate).
 */
export function averagePool(ctx: AdaptCtx): Adapted {
  const { b } = ctx;
  const x = need(ctx, 0, "X");
  const dims = x.type.dims;
  const sp = dims.length - 2;
  if (sp < 1 || sp > 3)
    throw new Error(`AveragePool supports 1-D to 3-D windows, got an input of rank ${dims.length}`);
  const a = poolAttrs(ctx, sp);
  const C = dims[1];
  if (typeof C !== "number") throw new Error("AveragePool needs a known channel count");
  const kn = numel(a.kernel);
  const spatial = dims.slice(2);
  if (!spatial.every((d): d is number => typeof d === "number")) {
    // Symbolic lengths: only windows that all hold kn elements (no ceil, no uncounted padding).
    const uncounted = !a.includePad && (a.autoPad.startsWith("SAME") || a.pads.some((p) => p !== 0));
    if (sp === 3 || a.ceil || uncounted)
      throw new Error(
        "AveragePool with ceil_mode, padding not counted (count_include_pad = 0) or 3-D windows needs static spatial dims",
      );
    const attrs = {
      group: C,
      kernel_shape: [...a.kernel],
      strides: [...a.strides],
      dilations: [...a.dilations],
      ...(a.autoPad === "NOTSET" ? { pads: [...a.pads] } : { auto_pad: a.autoPad }),
    };
    const w = b.const(x.type.dtype, [C, 1, ...a.kernel], Array<number>(C * kn).fill(1 / kn), `${ctx.hint}_w`);
    return { op: "Conv", inputs: [x, w], attrs };
  }
  const plans = spatial.map((len, i) => planAxis(a, i, len));
  const grid = countGrid(plans);
  const uniform = grid.every((c) => c === kn);
  const scale = uniform ? 1 / kn : 1;
  // Pooling over `axes` (spatial indices) followed by `ones` unpooled axes.
  const conv = (v: Value, groups: number, axes: readonly number[], ones: number, w: number, what: string) => {
    const pick = (f: (i: number) => number, fill: number) => [
      ...axes.map(f),
      ...Array<number>(ones).fill(fill),
    ];
    return depthwise(
      ctx,
      v,
      groups,
      w,
      {
        kernel: pick((i) => a.kernel[i], 1),
        strides: pick((i) => a.strides[i], 1),
        dilations: pick((i) => a.dilations[i], 1),
        begin: pick((i) => plans[i].begin, 0),
        end: pick((i) => plans[i].end, 0),
      },
      what,
    );
  };
  const emit = (r: Adapted): Value => b.op(r.op, r.inputs, r.attrs);
  let sum: Value;
  if (sp < 3) {
    const r = conv(x, C, sp === 1 ? [0] : [0, 1], 0, scale, "w");
    if (uniform) return r;
    sum = emit(r);
  } else {
    // [N, C, D, H, W] -> [N, C, D, H*W] pooled along D -> [N, C*D', H, W] pooled along H, W -> [N, C, D', H', W'].
    const [D, H, W] = spatial;
    const reshape = (v: Value, shape: number[], what: string) =>
      b.op("Reshape", [v, i64(ctx, [0, ...shape], what)]);
    const d1 = emit(conv(reshape(x, [C, D, H * W], "shape_d"), C, [0], 1, 1, "w_d"));
    const D2 = plans[0].out;
    const hw = emit(conv(reshape(d1, [C * D2, H, W], "shape_hw"), C * D2, [1, 2], 0, scale, "w_hw"));
    sum = reshape(hw, [C, D2, plans[1].out, plans[2].out], "shape_out");
    if (uniform) return { op: "Identity", inputs: [sum], attrs: {} };
  }
  const counts = b.const(
    x.type.dtype,
    plans.map((p) => p.out),
    grid,
    `${ctx.hint}_counts`,
  );
  return { op: "Div", inputs: [sum, counts], attrs: {} };
}
