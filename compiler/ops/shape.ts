import { type DType, isInt } from "../ir/dtype.js";
import { type Dim, add, dimEquals, mul, printDim, sub } from "../ir/sym.js";
import { type Tensor, makeTensor, numel } from "../ir/tensor.js";
import { type AxisRole, type TensorType, tensorType } from "../ir/types.js";
import {
  concreteDims,
  dimSafe,
  exactDiv,
  knownInts,
  requireInts,
  requireKnown,
  stepCount,
  symbolicSafe,
  takeKnown,
  takeTensor,
  trackable,
} from "./known.js";
import { KernelBuilder, broadcastOffset } from "../kir/builder.js";
import * as K from "../kir/expr.js";
import { storageType } from "../kir/types.js";
import { Io, elementwiseLaunch, kernelName, lowering, coords } from "./lower-util.js";
import { type InferCtx, registerOp } from "./registry.js";
import {
  broadcastAxes,
  broadcastDims,
  broadcastIndex,
  concreteBroadcast,
  input,
  shapeStr,
  throwOp,
} from "./util.js";

/** Shape-only ops: the data keeps its row-major order (or is built from scalars). */

/** Integer values of a 1-D shape-like tensor (reference side). */
function ints(t: Tensor): number[] {
  return Array.from(t.data);
}

function requireIntVector(ctx: InferCtx, i: number, what: string): void {
  const t = input(ctx, i);
  if (!isInt(t.dtype) || t.dims.length !== 1)
    ctx.fail(`${what} (input ${i}) must be a 1-D integer tensor, got ${t.dtype}${shapeStr(t.dims)}`);
}

/** Output dims of Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred. */
export function reshapeDims(
  inDims: readonly Dim[],
  target: readonly Dim[],
  allowzero: boolean,
  fail: (m: string) => never,
): Dim[] {
  let hole = -1;
  const out = target.map((v, i): Dim => {
    if (typeof v !== "number") return v;
    if (!Number.isInteger(v) || v < -1) fail(`invalid target dimension ${v} in ${shapeStr(target)}`);
    if (v === -1) {
      if (hole >= 0) fail(`target shape ${shapeStr(target)} has more than one -1`);
      hole = i;
      return 1;
    }
    if (v === 0 && !allowzero) {
      if (i >= inDims.length)
        fail(`target ${shapeStr(target)} copies dimension ${i} (0), but the input has rank ${inDims.length}`);
      return inDims[i];
    }
    return v;
  });
  if (hole >= 0) {
    if (allowzero && target.includes(0))
      fail(`target ${shapeStr(target)} has both 0 (with allowzero) and -1`);
    const rest = out.filter((_, i) => i !== hole);
    const q = dimSafe(fail, () => exactDiv(inDims, rest));
    if (q === undefined)
      fail(
        `cannot infer the -1 in ${shapeStr(target)}: ${shapeStr(inDims)} does not divide by ${printDim(mul(...rest))}`,
      );
    out[hole] = q;
  } else if (!dimSafe(fail, () => dimEquals(mul(...inDims), mul(...out)))) {
    fail(`cannot reshape ${shapeStr(inDims)} into ${shapeStr(out)}: the element counts differ`);
  }
  return out;
}

/** Roles survive on a leading and trailing run of unchanged dims ([B@batch, N@token, 768] -> [B, N, 12, 64]). */
function reshapeAxes(x: TensorType, out: readonly Dim[]): (AxisRole | null)[] | undefined {
  if (!x.axes) return undefined;
  const r = x.dims.length;
  const axes = new Array<AxisRole | null>(out.length).fill(null);
  const n = Math.min(r, out.length);
  let p = 0;
  for (; p < n && dimEquals(x.dims[p], out[p]); p++) axes[p] = x.axes[p];
  for (let q = 1; q <= n - p && dimEquals(x.dims[r - q], out[out.length - q]); q++)
    axes[out.length - q] = x.axes[r - q];
  return axes;
}

/** Known values pass through ops that keep the row-major order. */
const passKnown = (ctx: InferCtx): readonly Dim[] | undefined => ctx.known(0);

registerOp({
  name: "Reshape",
  doc: "Reshape to the target in input 1 (ONNX: 0 copies the input dim unless `allowzero`, -1 is inferred).",
  inputs: [{ name: "data" }, { name: "shape" }],
  outputs: [{ name: "reshaped" }],
  attrs: { allowzero: { kind: "int", default: 0 } },
  pure: true,
  view: true,
  infer(ctx) {
    const x = input(ctx, 0);
    requireIntVector(ctx, 1, "Reshape target shape");
    const target = requireKnown(ctx, 1, "Reshape target shape");
    const dims = reshapeDims(x.dims, target, ctx.attr<number>("allowzero") !== 0, ctx.fail);
    return [tensorType(x.dtype, dims, reshapeAxes(x, dims))];
  },
  reference([x, shape], ctx) {
    const dims = reshapeDims(
      x!.shape,
      ints(shape!),
      ctx.attr<number>("allowzero") !== 0,
      throwOp,
    ) as number[];
    return [makeTensor(x!.dtype, dims, x!.data)];
  },
  symbolic: passKnown,
});

registerOp({
  name: "Flatten",
  doc: "Flattens to 2-D: [prod(dims[:axis]), prod(dims[axis:])].",
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  attrs: { axis: { kind: "int", default: 1 } },
  pure: true,
  view: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const r = x.dims.length;
    let a = ctx.attr<number>("axis");
    if (a < -r || a > r) ctx.fail(`axis ${a} is out of range for rank ${r}`);
    if (a < 0) a += r;
    const dims = [
      dimSafe(ctx.fail, () => mul(...x.dims.slice(0, a))),
      dimSafe(ctx.fail, () => mul(...x.dims.slice(a))),
    ];
    // A group of one axis keeps its role.
    const role = (lo: number, hi: number): AxisRole | null => (hi - lo === 1 ? (x.axes?.[lo] ?? null) : null);
    return [tensorType(x.dtype, dims, [role(0, a), role(a, r)])];
  },
  reference([x], ctx) {
    const r = x!.shape.length;
    let a = ctx.attr<number>("axis");
    if (a < 0) a += r;
    return [makeTensor(x!.dtype, [numel(x!.shape.slice(0, a)), numel(x!.shape.slice(a))], x!.data)];
  },
  symbolic: passKnown,
});

registerOp({
  name: "Identity",
  doc: "Returns its input.",
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  attrs: {},
  pure: true,
  view: true,
  infer: (ctx) => [input(ctx, 0)],
  reference: ([x]) => [x!],
  symbolic: passKnown,
});

/** Axes of Unsqueeze/Squeeze: input 1 (opset 13) or the `axes` attribute (opset 11). */
function axesOf(ctx: InferCtx, op: string): number[] | undefined {
  if (ctx.inputs[1]) return requireInts(ctx, 1, `${op} axes`);
  return ctx.optAttr<number[]>("axes") ? [...ctx.optAttr<number[]>("axes")!] : undefined;
}

function normAxes(axes: readonly number[], r: number, fail: (m: string) => never): number[] {
  const out = axes.map((a) => {
    if (!Number.isInteger(a) || a < -r || a >= r) fail(`axis ${a} is out of range for rank ${r}`);
    return a < 0 ? a + r : a;
  });
  if (new Set(out).size !== out.length) fail(`axes [${axes.join(", ")}] repeat an axis`);
  return out;
}

function unsqueezeDims<D>(
  dims: readonly D[],
  axes: readonly number[],
  one: D,
  fail: (m: string) => never,
): D[] {
  const set = new Set(normAxes(axes, dims.length + axes.length, fail));
  const out: D[] = [];
  let j = 0;
  for (let i = 0; i < dims.length + axes.length; i++) out.push(set.has(i) ? one : dims[j++]);
  return out;
}

const axesPorts = [{ name: "data" }, { name: "axes", optional: true }];
const axesAttr = { axes: { kind: "ints", optional: true, doc: "opset 11 form of input 1" } } as const;

registerOp({
  name: "Unsqueeze",
  doc: "Inserts size-1 axes at `axes` (positions in the output).",
  inputs: axesPorts,
  outputs: [{ name: "expanded" }],
  attrs: axesAttr,
  pure: true,
  view: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const axes = axesOf(ctx, "Unsqueeze");
    if (!axes) return ctx.fail("Unsqueeze needs axes (input 1 or attribute `axes`)");
    const dims = unsqueezeDims<Dim>(x.dims, axes, 1, ctx.fail);
    const roles = x.axes ? unsqueezeDims<AxisRole | null>(x.axes, axes, null, ctx.fail) : undefined;
    return [tensorType(x.dtype, dims, roles)];
  },
  reference([x, axes], ctx) {
    const ax = axes ? ints(axes) : (ctx.optAttr<number[]>("axes") ?? throwOp("Unsqueeze needs axes"));
    return [makeTensor(x!.dtype, unsqueezeDims(x!.shape, ax, 1, throwOp), x!.data)];
  },
  symbolic: passKnown,
});

/** Axes Squeeze removes; without explicit axes every size-1 axis (all dims must then be concrete). */
function squeezeAxes(
  dims: readonly Dim[],
  axes: readonly number[] | undefined,
  fail: (m: string) => never,
): Set<number> {
  if (!axes) {
    const sym = dims.find((d) => typeof d !== "number");
    if (sym !== undefined)
      fail(`Squeeze without axes cannot tell whether ${printDim(sym)} in ${shapeStr(dims)} is 1; give axes`);
    return new Set(dims.flatMap((d, i) => (d === 1 ? [i] : [])));
  }
  const set = new Set(normAxes(axes, dims.length, fail));
  for (const a of set)
    if (dims[a] !== 1) fail(`cannot squeeze axis ${a} of size ${printDim(dims[a])} in ${shapeStr(dims)}`);
  return set;
}

registerOp({
  name: "Squeeze",
  doc: "Removes size-1 axes (`axes`, or all of them when absent).",
  inputs: axesPorts,
  outputs: [{ name: "squeezed" }],
  attrs: axesAttr,
  pure: true,
  view: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const drop = squeezeAxes(x.dims, axesOf(ctx, "Squeeze"), ctx.fail);
    const keep = (_: unknown, i: number): boolean => !drop.has(i);
    return [tensorType(x.dtype, x.dims.filter(keep), x.axes?.filter(keep))];
  },
  reference([x, axes], ctx) {
    const ax = axes ? ints(axes) : ctx.optAttr<number[]>("axes");
    const drop = squeezeAxes(x!.shape, ax, throwOp);
    return [
      makeTensor(
        x!.dtype,
        x!.shape.filter((_, i) => !drop.has(i)),
        x!.data,
      ),
    ];
  },
  symbolic: passKnown,
});

registerOp({
  name: "Expand",
  doc: "Broadcasts input 0 to the shape in input 1 (numpy rules, so a 1 keeps the input dim).",
  inputs: [{ name: "input" }, { name: "shape" }],
  outputs: [{ name: "output" }],
  attrs: {},
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    requireIntVector(ctx, 1, "Expand shape");
    const target = requireKnown(ctx, 1, "Expand shape");
    const dims = broadcastDims([x.dims, target], ctx.fail);
    return [tensorType(x.dtype, dims, broadcastAxes([x], dims.length))];
  },
  reference([x, shape]) {
    const out = concreteBroadcast([x!.shape, ints(shape!)]);
    return [takeTensor(x!, broadcastIndex(x!.shape, out), out)];
  },
  lower(ctx) {
    const [x, out] = [ctx.inputs[0]!, ctx.outputs[0]];
    return lowering(
      elementwiseLaunch(ctx, "", mul(...out.dims), (io) => {
        const [src, dst] = [io.input(0), io.output(0)];
        return (i) =>
          io.kb.store(dst, i, io.kb.load(src, broadcastOffset(coords(io.kb, i, out.dims), x.dims)));
      }),
    );
  },
  symbolic: symbolicSafe((ctx) => {
    const vals = ctx.known(0);
    const x = concreteDims(input(ctx, 0));
    const target = knownInts(ctx, 1);
    if (!vals || !x || !target) return undefined;
    const out = concreteBroadcast([x, target]);
    return trackable(input(ctx, 0).dtype, numel(out)) ? takeKnown(vals, broadcastIndex(x, out)) : undefined;
  }),
});

/** Clamped [start, end) of Shape's opset-15 slice of a rank-r shape. */
function shapeRange(r: number, start: number, end: number | undefined): [number, number] {
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const s = clamp(start);
  return [s, Math.max(s, clamp(end ?? r))];
}

registerOp({
  name: "Shape",
  doc: "The input's shape as i64[rank] (opset 15 `start`/`end` take a slice of it).",
  inputs: [{ name: "data" }],
  outputs: [{ name: "shape" }],
  attrs: { start: { kind: "int", default: 0 }, end: { kind: "int", optional: true } },
  pure: true,
  typeOnly: true,
  infer(ctx) {
    const [s, e] = shapeRange(input(ctx, 0).dims.length, ctx.attr("start"), ctx.optAttr("end"));
    return [tensorType("i64", [e - s])];
  },
  reference([x], ctx) {
    const [s, e] = shapeRange(x!.shape.length, ctx.attr("start"), ctx.optAttr("end"));
    return [makeTensor("i64", [e - s], x!.shape.slice(s, e))];
  },
  lower(ctx) {
    // The values are the input's (symbolic) dims: one invocation writes them from the uniforms.
    const dims = ctx.inputs[0]!.dims.slice(
      ...shapeRange(ctx.inputs[0]!.dims.length, ctx.attr("start"), ctx.optAttr("end")),
    );
    if (dims.length === 0) return lowering();
    const io = new Io(new KernelBuilder(kernelName(ctx), [1, 1, 1]), ctx);
    const dst = io.output(0);
    dims.forEach((d, k) => io.kb.store(dst, K.i32(k), K.dimExpr(d)));
    return lowering(io.launch());
  },
  symbolic(ctx) {
    const dims = input(ctx, 0).dims;
    return dims.slice(...shapeRange(dims.length, ctx.attr("start"), ctx.optAttr("end")));
  },
});

registerOp({
  name: "ConstantOfShape",
  doc: "A tensor of the shape in input 0 filled with `value`, of dtype `dtype`.",
  inputs: [{ name: "shape" }],
  outputs: [{ name: "output" }],
  attrs: { value: { kind: "float", default: 0 }, dtype: { kind: "dtype", default: "f32" } },
  pure: true,
  infer(ctx) {
    requireIntVector(ctx, 0, "ConstantOfShape shape");
    const dims = requireKnown(ctx, 0, "ConstantOfShape shape");
    const bad = dims.find((d) => typeof d === "number" && (d < 0 || !Number.isInteger(d)));
    if (bad !== undefined) ctx.fail(`invalid dimension ${printDim(bad)} in ${shapeStr(dims)}`);
    return [tensorType(ctx.attr<DType>("dtype"), dims)];
  },
  reference([shape], ctx) {
    const dims = ints(shape!);
    return [
      makeTensor(
        ctx.attr<DType>("dtype"),
        dims,
        new Array<number>(numel(dims)).fill(ctx.attr<number>("value")),
      ),
    ];
  },
  lower(ctx) {
    const out = ctx.outputs[0];
    const st = storageType(out.dtype, ctx.target);
    // The element exactly as the reference stores it (8-bit wrap, bool 0/1), then i64 as i32.
    const v = makeTensor(out.dtype, [1], [ctx.attr<number>("value")]).data[0];
    const value = K.lit(st === "i32" ? v | 0 : st === "u32" ? v >>> 0 : v, st);
    return lowering(
      elementwiseLaunch(ctx, "", mul(...out.dims), (io) => {
        const dst = io.output(0);
        return (i) => io.kb.store(dst, i, value);
      }),
    );
  },
  symbolic(ctx) {
    const dims = knownInts(ctx, 0);
    const v = ctx.attr<number>("value");
    if (!dims || !Number.isInteger(v) || !trackable(ctx.attr<DType>("dtype"), numel(dims))) return undefined;
    return new Array<Dim>(numel(dims)).fill(v);
  },
});

/** Element count of Range; symbolic bounds are sized as in Slice (symbols taken to be large). */
function rangeLength(start: Dim, limit: Dim, delta: number, fail: (m: string) => never): Dim {
  if (delta === 0 || !Number.isFinite(delta)) fail(`Range delta must be non-zero, got ${delta}`);
  if (typeof start === "number" && typeof limit === "number")
    return Math.max(Math.ceil((limit - start) / delta), 0);
  if (!Number.isInteger(delta)) fail(`Range with a symbolic bound needs an integer delta, got ${delta}`);
  return dimSafe(fail, () => stepCount(delta > 0 ? sub(limit, start) : sub(start, limit), Math.abs(delta)));
}

registerOp({
  name: "Range",
  doc: "start, start + delta, ... up to (not including) limit; length max(ceil((limit - start) / delta), 0).",
  inputs: [{ name: "start" }, { name: "limit" }, { name: "delta" }],
  outputs: [{ name: "output" }],
  attrs: {},
  pure: true,
  infer(ctx) {
    const ts = [0, 1, 2].map((i) => input(ctx, i));
    if (ts.some((t) => t.dims.length !== 0 || t.dtype !== ts[0].dtype))
      ctx.fail(
        `start, limit and delta must be scalars of one dtype, got ${ts.map((t) => `${t.dtype}${shapeStr(t.dims)}`).join(", ")}`,
      );
    const [s, l] = [0, 1].map((i) => requireKnown(ctx, i, "Range start/limit")[0]);
    const d = requireKnown(ctx, 2, "Range delta")[0];
    if (typeof d !== "number") return ctx.fail(`Range delta must be a constant, got ${printDim(d)}`);
    return [tensorType(ts[0].dtype, [rangeLength(s, l, d, ctx.fail)])];
  },
  reference([start, limit, delta]) {
    const [s, l, d] = [start!.data[0], limit!.data[0], delta!.data[0]];
    const n = rangeLength(s, l, d, throwOp) as number;
    return [
      makeTensor(
        start!.dtype,
        [n],
        Array.from({ length: n }, (_, i) => s + i * d),
      ),
    ];
  },
  lower(ctx) {
    const out = ctx.outputs[0];
    const dt = out.dtype;
    return lowering(
      elementwiseLaunch(ctx, "", out.dims[0], (io) => {
        const [start, delta, dst] = [io.input(0, "start"), io.input(2, "delta"), io.output(0)];
        return (i) => {
          const s = io.read(start, K.i32(0), dt);
          const d = io.read(delta, K.i32(0), dt);
          io.write(dst, i, K.add(s, K.mul(K.cast(i, s.t), d)), dt);
        };
      }),
    );
  },
  symbolic: symbolicSafe((ctx) => {
    const [s, l, d] = [0, 1, 2].map((i) => ctx.known(i)?.[0]);
    if (s === undefined || l === undefined || typeof d !== "number") return undefined;
    const n = rangeLength(s, l, d, throwOp);
    if (typeof n !== "number" || !trackable(input(ctx, 0).dtype, n)) return undefined;
    return Array.from({ length: n }, (_, i) => add(s, i * d));
  }),
});
