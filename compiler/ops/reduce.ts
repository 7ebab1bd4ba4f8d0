import { type Dim, dimEquals, mul, printDim } from "../ir/sym.js";
import * as K from "../kir/expr.js";
import { liveCounts, liveLength } from "../kir/live.js";
import { contiguousStrides } from "../kir/views.js";
import { type Expr, type Lowering, registerType } from "../kir/types.js";
import {
  type AccType,
  type Combine,
  dot,
  foldedStrides,
  lowering,
  rowLaunch,
  rowPlan,
  coords,
} from "./lower-util.js";
import type { Tensor } from "../ir/tensor.js";
import { numel } from "../ir/tensor.js";
import { type AxisRole, printType, tensorType } from "../ir/types.js";
import { asF64, fromF64, numelDim } from "./numeric.js";
import { type InferCtx, type LowerCtx, type RefCtx, OpError, registerOp } from "./registry.js";
import { broadcastIndex, input, normAxis, throwOp } from "./util.js";

/**
 * ReduceMean, ReduceSum, ReduceMax with ONNX semantics. `keepdims` and `noop_with_empty_axes`
 * are ONNX int flags (0/1, any non-zero is true) so imported attributes carry over unchanged.
 * Axes come from the `axes` attribute (opset < 18) or the optional second input (opset 18),
 * which must be known at compile time; no axes reduces over every axis.
 */

type Kind = "mean" | "sum" | "max";

/** Normalised, sorted axes to reduce, or "noop" when the op is the identity. */
function resolveAxes(
  raw: readonly Dim[] | undefined,
  rank: number,
  noopWhenEmpty: boolean,
  fail: (m: string) => never,
): number[] | "noop" {
  if (raw === undefined || raw.length === 0)
    return noopWhenEmpty ? "noop" : Array.from({ length: rank }, (_, i) => i);
  const axes = raw.map((a) => {
    if (typeof a !== "number") return fail(`axes must be integers, got a symbolic value`);
    return normAxis(a, rank, fail);
  });
  if (new Set(axes).size !== axes.length) fail(`axes [${raw.join(", ")}] repeat an axis`);
  return axes.sort((p, q) => p - q);
}

function inferAxes(ctx: InferCtx, rank: number): number[] | "noop" {
  const attrAxes = ctx.optAttr<readonly number[]>("axes");
  const hasInput = !!ctx.inputs[1];
  if (attrAxes && hasInput) ctx.fail(`axes given both as attribute and as input`);
  let raw: readonly Dim[] | undefined = attrAxes;
  if (hasInput) {
    const t = ctx.inputs[1]!;
    if (t.dtype !== "i64" && t.dtype !== "i32")
      ctx.fail(`axes input must be an integer tensor, got ${printType(t)}`);
    raw = ctx.known(1);
    if (raw === undefined) ctx.fail(`axes input must be known at compile time`);
  }
  return resolveAxes(raw, rank, ctx.attr<number>("noop_with_empty_axes") !== 0, ctx.fail);
}

function refAxes(axesIn: Tensor | null, ctx: RefCtx, rank: number): number[] | "noop" {
  const attrAxes = ctx.optAttr<readonly number[]>("axes");
  if (attrAxes && axesIn) throw new OpError(`axes given both as attribute and as input`);
  const raw = axesIn ? Array.from(axesIn.data) : attrAxes;
  return resolveAxes(raw, rank, ctx.attr<number>("noop_with_empty_axes") !== 0, throwOp);
}

/** A capacity-padded reduced axis (after an adaptive prune): example b reads its first `lens[b]` rows. */
interface LiveAxis {
  readonly axis: number;
  readonly lens: Int32Array;
}

/** Reduces x over `axes`; the result shape keeps reduced axes as 1 (callers drop them for keepdims = 0). */
function reduce(x: Tensor, axes: readonly number[], kind: Kind, live?: LiveAxis): Float64Array {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  // Broadcasting the kept shape back over x maps every input element to its output slot.
  const slot = broadcastIndex(kept, x.shape);
  const acc = new Float64Array(numel(kept)).fill(kind === "max" ? -Infinity : 0);
  const xd = asF64(x.data);
  if (live) {
    // Sum and mean over each example's own rows (batch axis 0 is kept, so a slot has one example).
    const inner = x.shape.slice(live.axis + 1).reduce((p, d) => p * d, 1);
    const perB = xd.length / x.shape[0];
    const n = new Float64Array(acc.length);
    for (let k = 0; k < xd.length; k++) {
      if (Math.floor(k / inner) % x.shape[live.axis] >= live.lens[Math.floor(k / perB)]) continue;
      acc[slot[k]] += xd[k];
      n[slot[k]]++;
    }
    if (kind === "mean") for (let i = 0; i < acc.length; i++) acc[i] /= n[i];
    return acc;
  }
  if (kind === "max") {
    for (let k = 0; k < xd.length; k++) {
      const v = xd[k];
      // NaN propagates (numpy maximum.reduce).
      if (v > acc[slot[k]] || Number.isNaN(v)) acc[slot[k]] = v;
    }
  } else for (let k = 0; k < xd.length; k++) acc[slot[k]] += xd[k];
  if (kind === "mean") {
    const n = axes.reduce((p, a) => p * x.shape[a], 1);
    for (let i = 0; i < acc.length; i++) acc[i] /= n;
  }
  return acc;
}

function defineReduce(name: string, kind: Kind, doc: string): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: "data" }, { name: "axes", optional: true }],
    outputs: [{ name: "reduced" }],
    attrs: {
      axes: { kind: "ints", optional: true, doc: "opset < 18 form; opset 18 passes axes as input 1" },
      keepdims: { kind: "int", default: 1, doc: "ONNX int flag: keep reduced axes as length 1" },
      noop_with_empty_axes: { kind: "int", default: 0, doc: "ONNX int flag: empty axes means identity" },
    },
    pure: true,
    infer(ctx) {
      const x = input(ctx, 0);
      if (x.dtype === "bool") ctx.fail(`${name} does not take bool input`);
      const axes = inferAxes(ctx, x.dims.length);
      if (axes === "noop") return [x];
      const keep = ctx.attr<number>("keepdims") !== 0;
      const dims: Dim[] = [];
      const roles: (AxisRole | null)[] = [];
      x.dims.forEach((d, i) => {
        const reduced = axes.includes(i);
        if (reduced && !keep) return;
        dims.push(reduced ? 1 : d);
        roles.push(reduced ? null : (x.axes?.[i] ?? null));
      });
      return [tensorType(x.dtype, dims, roles)];
    },
    reference([x, axesIn], ctx) {
      const X = x!;
      const axes = refAxes(axesIn, ctx, X.shape.length);
      if (axes === "noop") return [X];
      const keep = ctx.attr<number>("keepdims") !== 0;
      const shape = X.shape.flatMap((d, i) => (!axes.includes(i) ? [d] : keep ? [1] : []));
      return [fromF64(X.dtype, shape, reduce(X, axes, kind, refLive(ctx, X, axes, kind)))];
    },
    flops: (ctx) => numelDim(input(ctx, 0).dims),
    lower: (ctx) => lowerReduce(ctx, kind),
    stridedInputs: [0],
  });
}

/** The capacity-padded axis among `axes` (the interpreter's live counts), checked like the device rule. */
function refLive(ctx: RefCtx, x: Tensor, axes: readonly number[], kind: Kind): LiveAxis | undefined {
  if (x.shape.length === 0) return undefined;
  const found = axes.flatMap((axis) => {
    const lens = axis > 0 ? liveCounts(ctx, 0, axis, x.shape[0]) : undefined;
    return lens ? [{ axis, lens }] : [];
  });
  if (found.length === 0) return undefined;
  if (kind === "max" || axes.includes(0) || found.length > 1)
    throw new OpError(
      `reduces over a capacity-padded token axis: only ReduceSum / ReduceMean of one such axis, keeping batch axis 0`,
    );
  return found[0];
}

// ---------- kernel lowering ----------

/**
 * The reduced axes as the lowering sees them: the attribute, or (axes given as an input, whose
 * values a lowering does not see) the axes the node's input and output types imply. Size-1
 * axes may go either way; a genuinely ambiguous keepdims = 0 pair ([3, 3] -> [3]) is an error.
 */
function loweredAxes(ctx: LowerCtx): number[] {
  const x = ctx.inputs[0]!;
  const out = ctx.outputs[0];
  const r = x.dims.length;
  const noop = ctx.attr<number>("noop_with_empty_axes") !== 0;
  if (!ctx.inputs[1]) {
    const axes = resolveAxes(ctx.optAttr<readonly number[]>("axes"), r, noop, ctx.fail);
    return axes === "noop" ? [] : axes;
  }
  const matters = (a: number): boolean => x.dims[a] !== 1;
  if (ctx.attr<number>("keepdims") !== 0 || out.dims.length === r) {
    if (out.dims.length !== r) ctx.fail(`output rank ${out.dims.length} differs from input rank ${r}`);
    return x.dims.flatMap((d, a) => (out.dims[a] === 1 && !dimEquals(out.dims[a], d) ? [a] : []));
  }
  // keepdims = 0: every way to keep input axes in order that gives the output dims.
  const found = new Set<string>();
  const walk = (a: number, o: number, reduced: number[]): void => {
    if (o === out.dims.length) {
      const all = [...reduced, ...Array.from({ length: r - a }, (_, k) => a + k)];
      found.add(all.filter(matters).join(","));
      return;
    }
    if (a === r) return;
    if (dimEquals(x.dims[a], out.dims[o])) walk(a + 1, o + 1, reduced);
    walk(a + 1, o, [...reduced, a]);
  };
  walk(0, 0, []);
  if (found.size !== 1)
    ctx.fail(
      `cannot tell the reduced axes from the types (${found.size} candidates); give axes as an attribute or keepdims = 1`,
    );
  const [only] = found;
  return only === "" ? [] : only.split(",").map(Number);
}

/** One axis of the reduction's index space: adjacent input axes of one kind, `stride` apart in storage. */
interface AxisGroup {
  dim: Dim;
  readonly reduced: boolean;
  stride: Dim;
}

/**
 * Groups of adjacent axes that are all kept or all reduced and step over each other exactly in
 * storage (always, row-major; a strided input may keep them apart), with size-1 axes dropped:
 * the innermost group in storage decides the plan (reduced: contiguous rows; kept: strided rows).
 */
function axisGroups(
  dims: readonly Dim[],
  reduced: ReadonlySet<number>,
  strides: readonly Dim[],
): AxisGroup[] {
  const out: AxisGroup[] = [];
  dims.forEach((d, a) => {
    if (d === 1) return;
    const red = reduced.has(a);
    const last = out[out.length - 1];
    if (last && last.reduced === red && dimEquals(last.stride, mul(d, strides[a]))) {
      last.dim = mul(last.dim, d);
      last.stride = strides[a];
    } else out.push({ dim: d, reduced: red, stride: strides[a] });
  });
  return out;
}

/**
 * The group innermost in storage: the smallest stride when all are static, else the logical last
 * (row-major inputs, where the two agree).
 */
function innermost(groups: readonly AxisGroup[]): AxisGroup | undefined {
  const last = groups[groups.length - 1];
  if (!groups.every((g) => typeof g.stride === "number")) return last;
  return groups.reduce<AxisGroup | undefined>(
    (best, g) => (!best || (g.stride as number) < (best.stride as number) ? g : best),
    undefined,
  );
}

/**
 * One output element per row; its reduced elements are combined in f32 (floats) or i32. A
 * strided input (`inputViews[0]`: a Transpose / Slice chain the scheduler folded) is read at
 * its view's offset and strides instead of being materialised first.
 */
function lowerReduce(ctx: LowerCtx, kind: Kind): Lowering {
  const x = ctx.inputs[0]!;
  const out = ctx.outputs[0];
  const view = ctx.inputViews?.[0];
  const groups = axisGroups(x.dims, new Set(loweredAxes(ctx)), view?.strides ?? contiguousStrides(x.dims));
  const kept = groups.filter((g) => !g.reduced);
  const red = groups.filter((g) => g.reduced);
  // Row-major keeps its folded constant strides (unchanged kernels).
  const strides = view ? groups.map((g) => K.dimExpr(g.stride)) : foldedStrides(groups.map((g) => g.dim));
  const keptStrides = strides.filter((_, k) => !groups[k].reduced);
  const redStrides = strides.filter((_, k) => groups[k].reduced);
  const rows = mul(...kept.map((g) => g.dim));
  const len = mul(...red.map((g) => g.dim));
  const inner = innermost(groups);
  // Contiguous rows, or strided ones whose tiny inner span would leave a serial thread idle-waiting.
  const cooperative = !inner || inner.reduced || (typeof inner.dim === "number" && inner.dim <= 4);
  const plan = rowPlan(len, ctx.target, cooperative);
  const acc: AccType = x.dtype === "f32" || x.dtype === "f16" || x.dtype === "f64" ? "f32" : "i32";
  const op: Combine = kind === "max" ? "max" : "add";
  const live = paddedAxis(ctx, kind);
  return lowering(
    rowLaunch(ctx, "", rows, plan, (r) => {
      const { io } = r;
      const [src, dst] = [io.input(0), io.output(0)];
      const kb = io.kb;
      // Example b's live length along the padded axis: its rows past it are neither summed nor counted.
      let lenB: Expr | undefined;
      if (live) {
        io.args.push(live.len.binding);
        const inner = mul(...x.dims.filter((_, a) => a > 0 && !live.reduced.has(a)));
        lenB = live.len.load(kb)(kb.let("b", K.div(r.row, K.dimExpr(inner))));
      }
      const at0 = dot(
        coords(
          kb,
          r.row,
          kept.map((g) => g.dim),
          "o",
        ),
        keptStrides,
      );
      const base = kb.let("base", view && view.offset !== 0 ? K.add(at0, K.dimExpr(view.offset)) : at0);
      const n = K.dimExpr(len);
      const total = r.reduce(op, acc, n, (k) => {
        const at = K.add(
          base,
          dot(
            coords(
              kb,
              k,
              red.map((g) => g.dim),
              "q",
            ),
            redStrides,
          ),
        );
        const v = K.cast(io.read(src, at, x.dtype), acc);
        if (!live || !lenB) return v;
        const pos = K.mod(K.div(k, K.dimExpr(live.after)), K.dimExpr(x.dims[live.axis]));
        return K.select(K.lt(pos, lenB), v, acc === "f32" ? K.f32(0) : K.i32(0));
      });
      let v: Expr = total;
      // The mean's divisor: the example's live rows times the other reduced dims.
      const cnt = live && lenB ? kb.let("cnt", K.mul(lenB, K.dimExpr(live.others))) : n;
      if (kind === "mean") v = acc === "f32" ? K.div(total, K.cast(cnt, "f32")) : K.div(total, K.max(cnt, 1));
      // The reference's empty integer max is -inf cast to an integer: 0.
      if (kind === "max" && acc === "i32") v = K.select(K.gt(n, 0), total, 0);
      r.once(() => io.write(dst, r.row, K.cast(v, registerType(out.dtype, ctx.target)), out.dtype));
    }),
  );
}

/** The reduced capacity-padded axis (adaptive prune, `kir/live.ts`) and the dims around it. */
function paddedAxis(ctx: LowerCtx, kind: Kind) {
  const x = ctx.inputs[0]!;
  const reduced = new Set(loweredAxes(ctx));
  const found = [...reduced].flatMap((axis) => {
    const len = liveLength(ctx, x.dims[axis]);
    return len ? [{ axis, len }] : [];
  });
  if (found.length === 0) return undefined;
  const [{ axis, len }] = found;
  if (kind === "max" || reduced.has(0) || found.length > 1 || axis === 0)
    ctx.fail("reduces over a capacity-padded token axis: only ReduceSum / ReduceMean of one, keeping axis 0");
  if (!dimEquals(len.batch, x.dims[0]))
    ctx.fail(`axis 0 (${printDim(x.dims[0])}) is not the batch of the live counts (${printDim(len.batch)})`);
  const dims = (keep: (a: number) => boolean): Dim => mul(...x.dims.filter((_, a) => keep(a)));
  return {
    axis,
    len,
    reduced,
    /** Reduced dims after the axis (the stride of its position in the reduced index). */
    after: dims((a) => a > axis && reduced.has(a)),
    /** Reduced dims other than the axis (rows per live position). */
    others: dims((a) => a !== axis && reduced.has(a)),
  };
}

defineReduce("ReduceSum", "sum", "Sum over `axes` (ONNX); an empty reduction gives 0.");
defineReduce(
  "ReduceMean",
  "mean",
  "Arithmetic mean over `axes` (ONNX); integer results truncate toward zero.",
);
defineReduce(
  "ReduceMax",
  "max",
  "Maximum over `axes` (ONNX); NaN propagates; an empty reduction gives -inf.",
);
