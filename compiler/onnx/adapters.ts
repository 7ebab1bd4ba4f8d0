/**
 * Per-op adapters from an ONNX node to the IR op of the same name. Most ops take their ONNX
 * attributes unchanged; the table below covers the ones whose attributes or opset semantics differ.
 */
import type { AttrValue } from "../ir/attrs.js";
import type { Value } from "../ir/graph.js";
import type { GraphBuilder } from "../builder.js";
import { isFloat } from "../ir/dtype.js";
import type { Tensor } from "../ir/tensor.js";
import { getOp, refCtx } from "../ops/registry.js";
import { averagePool, batchNorm } from "./pool.js";
import { dtypeOf, elemTypeName, onnx, readTensor, toNum, type AttributeProto } from "./reader.js";

/** What an adapter sees of one ONNX node. */
export interface AdaptCtx {
  readonly opType: string;
  readonly opset: number;
  readonly inputs: readonly (Value | null)[];
  /** The node's attributes, protos by name. */
  readonly attrs: ReadonlyMap<string, AttributeProto>;
  readonly b: GraphBuilder;
  /** How many outputs the node names (trailing empty names dropped). */
  readonly outputs: number;
  /** A name for helper constants the adapter adds (e.g. attribute-to-input conversions). */
  readonly hint: string;
}

/** The IR op, inputs and attributes one ONNX node becomes. */
export interface Adapted {
  readonly op: string;
  readonly inputs: readonly (Value | null)[];
  readonly attrs: Record<string, AttrValue>;
  /** Outputs 1.. of a node written out as several IR ops (the op above gives output 0). */
  readonly extra?: readonly Value[];
}

const AT = onnx.AttributeProto.AttributeType;

/** An ONNX attribute as an IR attribute value; tensor and graph attributes need an adapter. */
export function plainAttr(a: AttributeProto): AttrValue {
  switch (a.type) {
    case AT.FLOAT:
      return a.f ?? 0;
    case AT.INT:
      return toNum(a.i);
    case AT.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.FLOATS:
      return [...(a.floats ?? [])];
    case AT.INTS:
      return (a.ints ?? []).map(toNum);
    case AT.STRINGS:
      return (a.strings ?? []).map((s) => new TextDecoder().decode(s));
    default:
      throw new Error(`attribute '${a.name}' of type ${AT[a.type ?? 0] ?? a.type} is not supported`);
  }
}

function plainAttrs(ctx: AdaptCtx, skip: readonly string[] = []): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const [k, a] of ctx.attrs) if (!skip.includes(k)) out[k] = plainAttr(a);
  return out;
}

function passThrough(ctx: AdaptCtx): Adapted {
  return { op: ctx.opType, inputs: ctx.inputs, attrs: plainAttrs(ctx) };
}

function intsAttr(ctx: AdaptCtx, name: string): number[] | undefined {
  const a = ctx.attrs.get(name);
  return a ? (a.ints ?? []).map(toNum) : undefined;
}

function i64Const(ctx: AdaptCtx, values: readonly number[], what: string): Value {
  return ctx.b.const("i64", [values.length], values, `${ctx.hint}_${what}`);
}

/** The opset from which these ops take `axes` as an input instead of an attribute. */
const AXES_INPUT_SINCE: Readonly<Record<string, number>> = {
  Unsqueeze: 13,
  Squeeze: 13,
  ReduceSum: 13,
  ReduceMean: 18,
  ReduceMax: 18,
};

/** Our ops accept either form, so only a form the model's opset does not define is an error. */
function axesForm(ctx: AdaptCtx): Adapted {
  const since = AXES_INPUT_SINCE[ctx.opType];
  if (ctx.opset >= since && ctx.attrs.has("axes"))
    throw new Error(`${ctx.opType} in opset ${ctx.opset} takes axes as an input, not an attribute`);
  if (ctx.opset < since && ctx.inputs[1])
    throw new Error(`${ctx.opType} in opset ${ctx.opset} takes axes as an attribute, not an input`);
  return passThrough(ctx);
}

/**
 * `lo <= x <= hi` by selects (no Min/Max ops in the IR), either bound optional; a NaN x stays NaN, and
 * lo > hi gives hi everywhere, as in ONNX Clip.
 */
function clamp(x: Value, lo: Value | null, hi: Value | null, b: GraphBuilder): Adapted {
  const low = lo ? b.op("Where", [b.op("Less", [x, lo]), lo, x]) : x;
  if (hi) return { op: "Where", inputs: [b.op("Greater", [low, hi]), hi, low], attrs: {} };
  return { op: "Identity", inputs: [low], attrs: {} };
}

/** A scalar constant of `x`'s dtype. */
function scalar(ctx: AdaptCtx, x: Value, v: number, what: string): Value {
  return ctx.b.const(x.type.dtype, [], [v], `${ctx.hint}_${what}`);
}

function input0(ctx: AdaptCtx): Value {
  const x = ctx.inputs[0];
  if (!x) throw new Error(`${ctx.opType} needs an input`);
  return x;
}

/** ONNX ops with no IR op of their own, written out as IR ops by their adapters. */
const COMPOSED = new Set(["Clip", "HardSigmoid", "BatchNormalization", "GlobalAveragePool", "AveragePool"]);

/** The most elements a Range with constant float bounds is folded into (it becomes a constant). */
const MAX_FOLDED_RANGE = 2 ** 24;

/** Ops whose ONNX form differs from the IR op; every other supported op passes through. */
const ADAPTERS: Readonly<Record<string, (ctx: AdaptCtx) => Adapted>> = {
  Unsqueeze: axesForm,
  Squeeze: axesForm,
  ReduceSum: axesForm,
  ReduceMean: axesForm,
  ReduceMax: axesForm,
  Cast(ctx) {
    const to = toNum(ctx.attrs.get("to")?.i);
    const dtype = dtypeOf(to);
    if (!dtype) throw new Error(`Cast to ${elemTypeName(to)} is not supported`);
    const saturate = ctx.attrs.get("saturate");
    // saturate only matters for float8 targets, which the IR lacks.
    if (saturate && toNum(saturate.i) !== 1) throw new Error("Cast with saturate=0 is not supported");
    return { op: "Cast", inputs: ctx.inputs, attrs: { to: dtype } };
  },
  ConstantOfShape(ctx): Adapted {
    const v = ctx.attrs.get("value");
    if (!v?.t) return { op: "ConstantOfShape", inputs: ctx.inputs, attrs: {} };
    const t = readTensor(v.t);
    if (t.data.length !== 1)
      throw new Error(`ConstantOfShape value must hold one element, got ${t.data.length}`);
    return { op: "ConstantOfShape", inputs: ctx.inputs, attrs: { value: t.data[0], dtype: t.dtype } };
  },
  Softmax(ctx) {
    if (ctx.opset >= 13) return passThrough(ctx);
    // Before opset 13 Softmax flattens to 2-D at `axis` (default 1): the same as ours only on the last axis.
    const rank = ctx.inputs[0]?.type.dims.length ?? 0;
    const given = ctx.attrs.has("axis") ? toNum(ctx.attrs.get("axis")?.i) : 1;
    const axis = given < 0 ? given + rank : given;
    if (axis !== rank - 1)
      throw new Error(
        `Softmax before opset 13 normalises over all axes from ${given} of a rank-${rank} input; only the last axis is supported`,
      );
    return { op: "Softmax", inputs: ctx.inputs, attrs: { axis: -1 } };
  },
  Range(ctx) {
    // Compile-time known values cover integer tensors only, so a float Range cannot be sized from its
    // bounds; with constant bounds (exporters' Constant nodes) it is folded into its value here.
    const consts = ctx.inputs.map((v) => (v ? ctx.b.g.constants.get(v)?.data : undefined));
    const dt = ctx.inputs[0]?.type.dtype;
    if (!dt || !isFloat(dt) || !consts.every((t): t is Tensor => t !== undefined)) return passThrough(ctx);
    const [start, limit, delta] = consts.map((t) => t.data[0]);
    const count = Math.max(Math.ceil((limit - start) / delta), 0);
    // Folding allocates the whole value now, so a size claimed by the file is bounded first.
    if (!(count <= MAX_FOLDED_RANGE))
      throw new Error(
        `Range(${start}, ${limit}, ${delta}) has ${count} elements, over the ${MAX_FOLDED_RANGE} a constant Range may hold`,
      );
    const def = getOp("Range")!;
    const [y] = def.reference(consts, refCtx(def, {}, 1));
    return { op: "Identity", inputs: [ctx.b.constant(y, `${ctx.hint}_value`)], attrs: {} };
  },
  Clip(ctx) {
    const x = input0(ctx);
    if (ctx.opset >= 11) {
      // Bounds are optional inputs (scalars of x's dtype), absent or named "".
      for (const k of [1, 2]) {
        const v = ctx.inputs[k];
        if (v && (v.type.dims.length !== 0 || v.type.dtype !== x.type.dtype))
          throw new Error(`Clip ${k === 1 ? "min" : "max"} must be a ${x.type.dtype} scalar`);
      }
      return clamp(x, ctx.inputs[1] ?? null, ctx.inputs[2] ?? null, ctx.b);
    }
    // Opsets 6-10: float attributes, absent meaning no bound.
    const bound = (n: string) => {
      const a = ctx.attrs.get(n);
      return a ? scalar(ctx, x, a.f ?? 0, n) : null;
    };
    return clamp(x, bound("min"), bound("max"), ctx.b);
  },
  HardSigmoid(ctx) {
    // max(0, min(1, alpha * x + beta)); ONNX defaults alpha 0.2, beta 0.5.
    const x = input0(ctx);
    const alpha = scalar(ctx, x, ctx.attrs.get("alpha")?.f ?? 0.2, "alpha");
    const beta = scalar(ctx, x, ctx.attrs.get("beta")?.f ?? 0.5, "beta");
    const y = ctx.b.op("Add", [ctx.b.op("Mul", [x, alpha]), beta]);
    return clamp(y, scalar(ctx, x, 0, "lo"), scalar(ctx, x, 1, "hi"), ctx.b);
  },
  BatchNormalization: batchNorm,
  GlobalAveragePool(ctx) {
    const x = input0(ctx);
    const axes = x.type.dims.map((_, k) => k).slice(2);
    return { op: "ReduceMean", inputs: [x, i64Const(ctx, axes, "axes")], attrs: { keepdims: 1 } };
  },
  AveragePool: averagePool,
  Split(ctx) {
    const split = intsAttr(ctx, "split");
    if (split === undefined) return passThrough(ctx);
    // Before opset 13 the sizes are an attribute; ours is the input.
    const attrs = plainAttrs(ctx, ["split"]);
    return { op: "Split", inputs: [ctx.inputs[0], i64Const(ctx, split, "split")], attrs };
  },
  Slice(ctx) {
    if (ctx.opset >= 10) return passThrough(ctx);
    // Opset 1-9 Slice: starts/ends/axes attributes, no steps.
    const starts = intsAttr(ctx, "starts") ?? [];
    const ends = intsAttr(ctx, "ends") ?? [];
    const axes = intsAttr(ctx, "axes");
    const inputs = [ctx.inputs[0], i64Const(ctx, starts, "starts"), i64Const(ctx, ends, "ends")];
    if (axes) inputs.push(i64Const(ctx, axes, "axes"));
    return { op: "Slice", inputs, attrs: {} };
  },
};

/**
 * ONNX ops the importer maps: registry ops with ONNX names (the IR's own ops are dotted or lower case)
 * and the ops it writes out as IR ops (`pool.ts`, Clip, HardSigmoid).
 */
export function isImportable(opType: string): boolean {
  return (/^[A-Z]/.test(opType) && getOp(opType) !== undefined) || COMPOSED.has(opType);
}

/** The IR form of one ONNX node (not `Constant`, which the importer turns into a constant). */
export function adapt(ctx: AdaptCtx): Adapted {
  return (ADAPTERS[ctx.opType] ?? passThrough)(ctx);
}
