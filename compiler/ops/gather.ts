import { isInt } from "../ir/dtype.js";
import { type Dim, add, ceildiv, dimEquals, mul, printDim, sub } from "../ir/sym.js";
import { type Tensor, allocData, numel } from "../ir/tensor.js";
import { type AxisRole, type TensorType, tensorType } from "../ir/types.js";
import {
  concatIndex,
  concreteDims,
  dimSafe,
  knownInts,
  requireInts,
  requireKnown,
  sliceAxis,
  sliceAxisSym,
  sliceIndex,
  symbolicSafe,
  takeKnown,
  takeTensor,
  trackable,
  transposeIndex,
} from "./known.js";
import * as K from "../kir/expr.js";
import type { Expr, Launch, Lowering } from "../kir/types.js";
import { dot, elementwiseLaunch, foldedStrides, iadd, imul, lowering, coords } from "./lower-util.js";
import type { LowerCtx } from "./registry.js";
import { type InferCtx, registerOp } from "./registry.js";
import { input, makeTensorFrom, normAxis, shapeStr, throwOp } from "./util.js";

/** Data-movement ops that select or rearrange elements: each builds an index map (see known.ts). */

/** Known values of input 0 moved by an index map, when its shape is concrete and it is small. */
function moveKnown(
  ctx: InferCtx,
  index: (shape: number[]) => ArrayLike<number> | undefined,
): readonly Dim[] | undefined {
  const vals = ctx.known(0);
  const shape = concreteDims(input(ctx, 0));
  if (!vals || !shape) return undefined;
  const idx = index(shape);
  return idx && trackable(input(ctx, 0).dtype, idx.length) ? takeKnown(vals, idx) : undefined;
}

function permOf(perm: readonly number[] | undefined, r: number, fail: (m: string) => never): number[] {
  const p = perm ? [...perm] : Array.from({ length: r }, (_, i) => r - 1 - i);
  if (p.length !== r || [...p].sort((a, b) => a - b).some((v, i) => v !== i))
    fail(`perm [${p.join(", ")}] is not a permutation of ${r} axes`);
  return p;
}

registerOp({
  name: "Transpose",
  doc: "Permutes axes: output axis i is input axis perm[i] (default: reversed).",
  inputs: [{ name: "data" }],
  outputs: [{ name: "transposed" }],
  attrs: { perm: { kind: "ints", optional: true } },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const p = permOf(ctx.optAttr("perm"), x.dims.length, ctx.fail);
    return [
      tensorType(
        x.dtype,
        p.map((i) => x.dims[i]),
        x.axes && p.map((i) => x.axes![i]),
      ),
    ];
  },
  reference([x], ctx) {
    const p = permOf(ctx.optAttr("perm"), x!.shape.length, throwOp);
    return [
      takeTensor(
        x!,
        transposeIndex(x!.shape, p),
        p.map((i) => x!.shape[i]),
      ),
    ];
  },
  lower: (ctx) => lowerTranspose(ctx, permOf(ctx.optAttr("perm"), ctx.inputs[0]!.dims.length, ctx.fail)),
  symbolic: (ctx) => moveKnown(ctx, (s) => transposeIndex(s, permOf(ctx.optAttr("perm"), s.length, throwOp))),
});

/** First role named at each position by any of the types. */
function mergeAxes(types: readonly TensorType[], r: number): (AxisRole | null)[] {
  const out = new Array<AxisRole | null>(r).fill(null);
  for (const t of types) t.axes?.forEach((a, i) => (out[i] ??= a));
  return out;
}

registerOp({
  name: "Concat",
  doc: "Concatenates inputs along `axis`; other dims must match.",
  inputs: [{ name: "inputs", variadic: true }],
  outputs: [{ name: "concat_result" }],
  attrs: { axis: { kind: "int" } },
  pure: true,
  infer(ctx) {
    if (ctx.inputs.length === 0) ctx.fail("Concat needs at least one input");
    const ts = ctx.inputs.map((_, i) => input(ctx, i));
    const first = ts[0];
    const r = first.dims.length;
    const axis = normAxis(ctx.attr("axis"), r, ctx.fail);
    for (const [i, t] of ts.entries()) {
      if (t.dtype !== first.dtype) ctx.fail(`input ${i} has dtype ${t.dtype}, input 0 has ${first.dtype}`);
      if (t.dims.length !== r || t.dims.some((d, a) => a !== axis && !dimEquals(d, first.dims[a])))
        ctx.fail(
          `input ${i} ${shapeStr(t.dims)} does not match input 0 ${shapeStr(first.dims)} off axis ${axis}`,
        );
    }
    const dims = [...first.dims];
    dims[axis] = dimSafe(ctx.fail, () => add(...ts.map((t) => t.dims[axis])));
    return [tensorType(first.dtype, dims, mergeAxes(ts, r))];
  },
  reference(inputs, ctx) {
    const xs = inputs.map((x) => x!);
    const axis = normAxis(ctx.attr("axis"), xs[0].shape.length);
    const shape = [...xs[0].shape];
    shape[axis] = xs.reduce((acc, x) => acc + x.shape[axis], 0);
    const { part, idx } = concatIndex(
      xs.map((x) => x.shape),
      axis,
    );
    const out = allocData(xs[0].dtype, idx.length);
    for (let k = 0; k < idx.length; k++) out[k] = xs[part[k]].data[idx[k]];
    return [makeTensorFrom(xs[0].dtype, shape, out)];
  },
  lower: (ctx) => lowerConcat(ctx, normAxis(ctx.attr("axis"), ctx.outputs[0].dims.length, ctx.fail)),
  symbolic(ctx) {
    const vals = ctx.inputs.map((_, i) => ctx.known(i));
    const shapes = ctx.inputs.map((t) => (t ? concreteDims(t) : undefined));
    if (vals.some((v) => !v) || shapes.some((s) => !s) || shapes.length === 0) return undefined;
    const axis = normAxis(ctx.attr("axis"), shapes[0]!.length);
    const { part, idx } = concatIndex(shapes as number[][], axis);
    if (!trackable(input(ctx, 0).dtype, idx.length)) return undefined;
    return Array.from(idx, (j, k) => vals[part[k]]![j]);
  },
});

/** Sizes of Split's outputs along a dim: explicit, or equal chunks with a smaller last one (opset 18). */
function splitSizes(d: Dim, n: number, split: readonly Dim[] | undefined, fail: (m: string) => never): Dim[] {
  if (split) {
    if (split.length !== n) fail(`split has ${split.length} sizes for ${n} outputs`);
    if (split.some((s) => typeof s === "number" && s < 0))
      fail(`split sizes ${shapeStr(split)} must be non-negative`);
    const total = dimSafe(fail, () => add(...split));
    if (!dimEquals(total, d))
      fail(`split sizes ${shapeStr(split)} add up to ${printDim(total)}, not ${printDim(d)}`);
    return [...split];
  }
  return dimSafe(fail, () => {
    const chunk = ceildiv(d, n);
    return Array.from({ length: n }, (_, i) => (i < n - 1 ? chunk : sub(d, mul(n - 1, chunk))));
  });
}

function splitCount(numOutputs: number, attr: number | undefined, fail: (m: string) => never): number {
  if (numOutputs < 1) fail("Split needs at least one output");
  if (attr !== undefined && attr !== numOutputs)
    fail(`num_outputs is ${attr} but the node has ${numOutputs} outputs`);
  return numOutputs;
}

registerOp({
  name: "Split",
  doc: "Splits along `axis` by the sizes in input 1, or into equal parts (the last may be smaller).",
  inputs: [{ name: "input" }, { name: "split", optional: true }],
  outputs: [{ name: "outputs", variadic: true }],
  attrs: { axis: { kind: "int", default: 0 }, num_outputs: { kind: "int", optional: true } },
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    const axis = normAxis(ctx.attr("axis"), x.dims.length, ctx.fail);
    const n = splitCount(ctx.numOutputs, ctx.optAttr("num_outputs"), ctx.fail);
    const split = ctx.inputs[1] ? requireKnown(ctx, 1, "Split sizes") : undefined;
    return splitSizes(x.dims[axis], n, split, ctx.fail).map((s) => {
      const dims = [...x.dims];
      dims[axis] = s;
      return tensorType(x.dtype, dims, x.axes);
    });
  },
  reference([x, split], ctx) {
    const axis = normAxis(ctx.attr("axis"), x!.shape.length);
    const n = splitCount(ctx.numOutputs, ctx.optAttr("num_outputs"), throwOp);
    const sizes = splitSizes(
      x!.shape[axis],
      n,
      split ? Array.from(split.data) : undefined,
      throwOp,
    ) as number[];
    let at = 0;
    return sizes.map((s) => {
      const starts = x!.shape.map((_, a) => (a === axis ? at : 0));
      const shape = x!.shape.map((d, a) => (a === axis ? s : d));
      at += s;
      return takeTensor(
        x!,
        sliceIndex(x!.shape, starts, new Array<number>(shape.length).fill(1), shape),
        shape,
      );
    });
  },
  lower: (ctx) => lowerSplit(ctx, normAxis(ctx.attr("axis"), ctx.inputs[0]!.dims.length, ctx.fail)),
});

interface SliceSpec {
  readonly starts: readonly Dim[];
  readonly ends: readonly Dim[];
  readonly axes: readonly number[];
  readonly steps: readonly number[];
}

/** Normalises Slice's inputs: default axes 0..k-1 and steps 1, checked. */
function sliceSpec(
  r: number,
  starts: readonly Dim[],
  ends: readonly Dim[],
  axes: readonly number[] | undefined,
  steps: readonly number[] | undefined,
  fail: (m: string) => never,
): SliceSpec {
  const k = starts.length;
  const ax = (axes ?? Array.from({ length: k }, (_, i) => i)).map((a) => normAxis(a, r, fail));
  const st = steps ?? new Array<number>(k).fill(1);
  if (ends.length !== k || ax.length !== k || st.length !== k)
    fail(
      `starts, ends, axes and steps have different lengths (${k}, ${ends.length}, ${ax.length}, ${st.length})`,
    );
  if (new Set(ax).size !== k) fail(`axes [${ax.join(", ")}] repeat an axis`);
  if (st.some((s) => s === 0 || !Number.isInteger(s)))
    fail(`steps [${st.join(", ")}] must be non-zero integers`);
  return { starts, ends, axes: ax, steps: st };
}

/** Concrete per-axis starts, steps and output shape of a slice. */
function sliceConcrete(
  shape: readonly number[],
  spec: SliceSpec,
): { starts: number[]; steps: number[]; out: number[] } {
  const starts = shape.map(() => 0);
  const steps = shape.map(() => 1);
  const out = [...shape];
  spec.axes.forEach((a, i) => {
    const s = sliceAxis(shape[a], spec.starts[i] as number, spec.ends[i] as number, spec.steps[i]);
    starts[a] = s.start;
    steps[a] = spec.steps[i];
    out[a] = s.len;
  });
  return { starts, steps, out };
}

function refSpec(inputs: readonly (Tensor | null)[]): SliceSpec {
  const [x, starts, ends, axes, steps] = inputs;
  const arr = (t: Tensor | null | undefined): number[] | undefined => (t ? Array.from(t.data) : undefined);
  return sliceSpec(x!.shape.length, arr(starts)!, arr(ends)!, arr(axes), arr(steps), throwOp);
}

registerOp({
  name: "Slice",
  doc: "Strided slice (ONNX opset 10+): bounds are clamped, negative steps walk backwards.",
  inputs: [
    { name: "data" },
    { name: "starts" },
    { name: "ends" },
    { name: "axes", optional: true },
    { name: "steps", optional: true },
  ],
  outputs: [{ name: "output" }],
  attrs: {},
  pure: true,
  infer(ctx) {
    const x = input(ctx, 0);
    for (let i = 1; i < 5; i++) {
      const t = ctx.inputs[i];
      if (t && (!isInt(t.dtype) || t.dims.length !== 1))
        ctx.fail(`input ${i} must be a 1-D integer tensor, got ${t.dtype}${shapeStr(t.dims)}`);
    }
    const spec = sliceSpec(
      x.dims.length,
      requireKnown(ctx, 1, "Slice starts"),
      requireKnown(ctx, 2, "Slice ends"),
      ctx.inputs[3] ? requireInts(ctx, 3, "Slice axes") : undefined,
      ctx.inputs[4] ? requireInts(ctx, 4, "Slice steps") : undefined,
      ctx.fail,
    );
    const dims = [...x.dims];
    spec.axes.forEach(
      (a, i) => (dims[a] = sliceAxisSym(x.dims[a], spec.starts[i], spec.ends[i], spec.steps[i], ctx.fail)),
    );
    return [tensorType(x.dtype, dims, x.axes)];
  },
  reference(inputs) {
    const x = inputs[0]!;
    const { starts, steps, out } = sliceConcrete(x.shape, refSpec(inputs));
    return [takeTensor(x, sliceIndex(x.shape, starts, steps, out), out)];
  },
  lower: lowerSlice,
  symbolic(ctx) {
    const [s, e] = [knownInts(ctx, 1), knownInts(ctx, 2)];
    const axes = ctx.inputs[3] ? knownInts(ctx, 3) : undefined;
    const steps = ctx.inputs[4] ? knownInts(ctx, 4) : undefined;
    if (!s || !e || (ctx.inputs[3] && !axes) || (ctx.inputs[4] && !steps)) return undefined;
    return moveKnown(ctx, (shape) => {
      const c = sliceConcrete(shape, sliceSpec(shape.length, s, e, axes, steps, throwOp));
      return sliceIndex(shape, c.starts, c.steps, c.out);
    });
  },
});

/** Index map of Gather: data[..., indices[j], ...] along `axis`, with negative indices wrapped. */
function gatherIndex(shape: readonly number[], axis: number, indices: readonly number[]): Int32Array {
  const d = shape[axis];
  const outer = numel(shape.slice(0, axis));
  const inner = numel(shape.slice(axis + 1));
  const idx = new Int32Array(outer * indices.length * inner);
  let k = 0;
  for (let o = 0; o < outer; o++)
    for (const raw of indices) {
      const j = raw < 0 ? raw + d : raw;
      if (!Number.isInteger(j) || j < 0 || j >= d)
        throwOp(`index ${raw} is out of range for axis ${axis} of size ${d}`);
      for (let i = 0; i < inner; i++) idx[k++] = (o * d + j) * inner + i;
    }
  return idx;
}

function gatherShape<D>(data: readonly D[], axis: number, indices: readonly D[]): D[] {
  return [...data.slice(0, axis), ...indices, ...data.slice(axis + 1)];
}

registerOp({
  name: "Gather",
  doc: "Takes slices of `data` along `axis` at `indices` (negative indices count from the end).",
  inputs: [{ name: "data" }, { name: "indices" }],
  outputs: [{ name: "output" }],
  attrs: { axis: { kind: "int", default: 0 } },
  pure: true,
  infer(ctx) {
    const [x, ix] = [input(ctx, 0), input(ctx, 1)];
    if (ix.dtype !== "i32" && ix.dtype !== "i64") ctx.fail(`indices must be i32 or i64, got ${ix.dtype}`);
    const axis = normAxis(ctx.attr("axis"), x.dims.length, ctx.fail);
    const roles = (t: TensorType): readonly (AxisRole | null)[] => t.axes ?? t.dims.map(() => null);
    // Picking along an axis with a plain 1-D index list keeps that axis' role (selected tokens are tokens).
    const ixRoles = ix.axes ?? (ix.dims.length === 1 ? [x.axes?.[axis] ?? null] : roles(ix));
    const axes = x.axes
      ? gatherShape(roles(x), axis, ixRoles)
      : ix.axes && gatherShape(roles(x), axis, ix.axes);
    return [tensorType(x.dtype, gatherShape(x.dims, axis, ix.dims), axes)];
  },
  reference([x, ix], ctx) {
    const axis = normAxis(ctx.attr("axis"), x!.shape.length);
    const shape = gatherShape(x!.shape, axis, ix!.shape);
    return [takeTensor(x!, gatherIndex(x!.shape, axis, Array.from(ix!.data)), shape)];
  },
  lower: (ctx) => lowerGather(ctx, normAxis(ctx.attr("axis"), ctx.inputs[0]!.dims.length, ctx.fail)),
  symbolic: symbolicSafe((ctx) => {
    const ix = knownInts(ctx, 1);
    if (!ix) return undefined;
    return moveKnown(ctx, (shape) => gatherIndex(shape, normAxis(ctx.attr("axis"), shape.length), ix));
  }),
});

// ---------- kernel lowerings: one invocation per output element reads its source element ----------

/** Output coordinate i reads input coordinate perm[i]. */
function lowerTranspose(ctx: LowerCtx, perm: readonly number[]): Lowering {
  const [x, out] = [ctx.inputs[0]!, ctx.outputs[0]];
  const strides = foldedStrides(x.dims);
  return lowering(
    elementwiseLaunch(ctx, "", mul(...out.dims), (io) => {
      const [src, dst] = [io.input(0), io.output(0)];
      return (i) => {
        const idx = coords(io.kb, i, out.dims);
        io.kb.store(
          dst,
          i,
          io.kb.load(
            src,
            dot(
              idx,
              perm.map((p) => strides[p]),
            ),
          ),
        );
      };
    }),
  );
}

/** Dims around `axis` as [outer, inner] products. */
function around(dims: readonly Dim[], axis: number): [Dim, Dim] {
  return [mul(...dims.slice(0, axis)), mul(...dims.slice(axis + 1))];
}

/**
 * Concat: each launch fills the output block of a run of inputs (at most maxStorageBuffers - 1 of
 * them, so wide concatenations stay within the binding limit); an invocation picks its part by
 * its coordinate along the axis.
 */
function lowerConcat(ctx: LowerCtx, axis: number): Lowering {
  const out = ctx.outputs[0];
  const [outer, inner] = around(out.dims, axis);
  const total = K.dimExpr(out.dims[axis]);
  const parts = ctx.inputs.map((t, i) => ({ i, len: t!.dims[axis] })).filter((p) => p.len !== 0);
  const perLaunch = Math.max(1, ctx.target.maxStorageBuffersPerStage - 1);
  const launches: Launch[] = [];
  let at: Dim = 0;
  for (let c = 0; c < parts.length; c += perLaunch) {
    const run = parts.slice(c, c + perLaunch);
    const runLen = add(...run.map((p) => p.len));
    const base = at;
    launches.push(
      elementwiseLaunch(ctx, `part${c}`, mul(outer, runLen, inner), (io) => {
        const bufs = run.map((p) => io.input(p.i));
        const dst = io.output(0);
        return (i) => {
          const [o, q, w] = coords(io.kb, i, [outer, runLen, inner]);
          const target = iadd(imul(iadd(imul(o, total), iadd(K.dimExpr(base), q)), K.dimExpr(inner)), w);
          // Parts in order: the first whose end is past q holds it.
          const pick = (k: number, start: Dim): void => {
            const len = K.dimExpr(run[k].len);
            const local = iadd(imul(iadd(imul(o, len), K.sub(q, K.dimExpr(start))), K.dimExpr(inner)), w);
            const copy = (): void => io.kb.store(dst, target, io.kb.load(bufs[k], local));
            if (k === run.length - 1) copy();
            else
              io.kb.if(K.lt(q, K.dimExpr(add(start, run[k].len))), copy, () =>
                pick(k + 1, add(start, run[k].len)),
              );
          };
          pick(0, 0);
        };
      }),
    );
    at = add(at, runLen);
  }
  return { launches, scratch: [] };
}

/** Split: one launch per (non-empty) output copying its block along the axis. */
function lowerSplit(ctx: LowerCtx, axis: number): Lowering {
  const x = ctx.inputs[0]!;
  const [outer, inner] = around(x.dims, axis);
  const d = K.dimExpr(x.dims[axis]);
  const launches: Launch[] = [];
  let at: Dim = 0;
  ctx.outputs.forEach((t, k) => {
    const len = t.dims[axis];
    const start = at;
    at = add(at, len);
    if (len === 0) return;
    launches.push(
      elementwiseLaunch(ctx, `out${k}`, mul(outer, len, inner), (io) => {
        const [src, dst] = [io.input(0), io.output(k)];
        return (i) => {
          const [o, q, w] = coords(io.kb, i, [outer, len, inner]);
          const from = iadd(imul(iadd(imul(o, d), iadd(K.dimExpr(start), q)), K.dimExpr(inner)), w);
          io.kb.store(dst, i, io.kb.load(src, from));
        };
      }),
    );
  });
  return { launches, scratch: [] };
}

/**
 * Slice: starts, axes and steps are read from their buffers at run time (they may come from shape
 * arithmetic on the device) and clamped as in sliceAxis; the output shape is the node's type, so
 * `ends` is not read.
 */
function lowerSlice(ctx: LowerCtx): Lowering {
  const [x, out] = [ctx.inputs[0]!, ctx.outputs[0]];
  const r = x.dims.length;
  const k = ctx.inputs[1]!.dims[0];
  if (typeof k !== "number") return ctx.fail(`Slice starts must have a static length`);
  const strides = foldedStrides(x.dims);
  return lowering(
    elementwiseLaunch(ctx, "", mul(...out.dims), (io) => {
      const starts = io.input(1, "starts");
      const axes = ctx.inputs[3] ? io.input(3, "axes") : undefined;
      const steps = ctx.inputs[4] ? io.input(4, "steps") : undefined;
      const dst = io.output(0);
      const src = io.input(0);
      return (i) => {
        const kb = io.kb;
        const at = (buf: string, j: number): Expr => io.read(buf, K.i32(j), "i32");
        // Per tensor axis: start and step (0 and 1 unless an entry names the axis).
        const start: Expr[] = Array.from({ length: r }, () => K.i32(0));
        const step: Expr[] = Array.from({ length: r }, () => K.i32(1));
        for (let j = 0; j < k; j++) {
          const st = steps ? kb.let(`step${j}`, at(steps, j)) : K.i32(1);
          const raw = kb.let(`start${j}`, at(starts, j));
          const ax = axes ? kb.let(`axis${j}`, at(axes, j)) : undefined;
          const axis = ax ? kb.let(`axisn${j}`, K.select(K.lt(ax, 0), K.add(ax, r), ax)) : undefined;
          for (let a = 0; a < r; a++) {
            if (!axis && a !== j) continue;
            const d = K.dimExpr(x.dims[a]);
            const s = K.select(K.lt(raw, 0), K.add(raw, d), raw);
            const hi = K.select(K.gt(st, 0), d, K.sub(d, 1));
            const clamped = K.min(K.max(s, 0), hi);
            if (!axis) [start[a], step[a]] = [kb.let(`s${a}`, clamped), st];
            else {
              const hit = K.eq(axis, a);
              start[a] = kb.let(`s${a}_${j}`, K.select(hit, clamped, start[a]));
              step[a] = kb.let(`st${a}_${j}`, K.select(hit, st, step[a]));
            }
          }
        }
        const idx = coords(kb, i, out.dims);
        const from = dot(
          idx.map((c, a) => iadd(start[a], imul(c, step[a]))),
          strides,
        );
        kb.store(dst, i, kb.load(src, from));
      };
    }),
  );
}

/** Gather: negative indices count from the end; out-of-range ones are clamped (no fault on devices). */
function lowerGather(ctx: LowerCtx, axis: number): Lowering {
  const [x, ix, out] = [ctx.inputs[0]!, ctx.inputs[1]!, ctx.outputs[0]];
  const [outer, inner] = around(x.dims, axis);
  const n = mul(...ix.dims);
  const d = K.dimExpr(x.dims[axis]);
  return lowering(
    elementwiseLaunch(ctx, "", mul(...out.dims), (io) => {
      const [src, idxBuf, dst] = [io.input(0), io.input(1, "indices"), io.output(0)];
      return (i) => {
        const [o, q, w] = coords(io.kb, i, [outer, n, inner]);
        const raw = io.kb.let("raw", io.read(idxBuf, q, "i32"));
        const j = K.min(K.max(K.select(K.lt(raw, 0), K.add(raw, d), raw), 0), K.sub(d, 1));
        const from = iadd(imul(iadd(imul(o, d), j), K.dimExpr(inner)), w);
        io.kb.store(dst, i, io.kb.load(src, from));
      };
    }),
  );
}
