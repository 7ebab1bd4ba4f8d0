import { type Node, Value } from "../ir/graph.js";
import { type Dim, dimEquals, evalDim, printDim } from "../ir/sym.js";
import type { TensorType } from "../ir/types.js";
import type { LowerCtx, OpDef } from "../ops/registry.js";
import { lowerCtx } from "./lower.js";
import { elementBytes, type KType, type Target } from "./types.js";

/**
 * Binding-limit splitting (docs/backends.md, "Binding limits"). A unit (node, fused group or
 * node + epilogue) that binds a tensor above `Target.maxStorageBindingBytes` is lowered once per
 * chunk of output 0's outermost non-unit axis `s`: every tensor that axis runs through is bound as
 * a contiguous sub-range (an offset view), the others whole. Whether an axis is independent (each
 * chunk computable alone) is op knowledge, declared once per op family in `SPLIT_RULES`.
 */

/** WebGPU's largest allowed `minStorageBufferOffsetAlignment`: offsets aligned to it bind everywhere. */
export const BINDING_OFFSET_ALIGN = 256;

/** Elements of static dims, or undefined when any dim is symbolic. */
export function staticSize(dims: readonly Dim[]): number | undefined {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== "number") {
      try {
        n *= evalDim(d, new Map());
      } catch {
        return undefined;
      }
    } else n *= d;
  }
  return n;
}

/**
 * For a split of output 0's axis `s`: the axis of each input / output that runs along it (null:
 * bound whole), or undefined when the op's chunks along `s` are not independent.
 */
export interface AxisMap {
  readonly inputs: readonly (number | null)[];
  readonly outputs: readonly (number | null)[];
}

type SplitRule = (ctx: LowerCtx, s: number) => AxisMap | undefined;

/** Numpy broadcasting: the axis of `t` right-aligned with output axis `s` of a rank-`r` output. */
function aligned(t: TensorType | null, r: number, s: number): number | null {
  if (!t) return null;
  const a = s - (r - t.dims.length);
  return a >= 0 ? a : null;
}

function normAxis(a: number, r: number): number {
  return a < 0 ? a + r : a;
}

const pointwiseRule: SplitRule = (ctx, s) => ({
  inputs: ctx.inputs.map((t) => aligned(t, ctx.outputs[0].dims.length, s)),
  outputs: [s],
});

/** Rows (every axis before `axis`) of a row-wise op are independent; `axis` attribute default -1. */
const rowwise: SplitRule = (ctx, s) => {
  const r = ctx.inputs[0]!.dims.length;
  if (s >= normAxis(ctx.attr<number>("axis"), r)) return undefined;
  return { inputs: ctx.inputs.map((t) => aligned(t, r, s)), outputs: ctx.outputs.map(() => s) };
};

const reduceRule: SplitRule = (ctx, s) => {
  const x = ctx.inputs[0]!;
  const out = ctx.outputs[0];
  const r = x.dims.length;
  const attrAxes = ctx.optAttr<readonly number[]>("axes");
  let axes: number[];
  if (!ctx.inputs[1] && attrAxes) axes = attrAxes.map((a) => normAxis(a, r));
  else if (!ctx.inputs[1])
    axes = x.dims.map((_, a) => a); // no axes: everything is reduced
  else if (out.dims.length === r)
    axes = x.dims.flatMap((d, a) => (out.dims[a] === 1 && !dimEquals(d, 1) ? [a] : []));
  else return undefined;
  if (axes.length === 0 || axes.some((a) => a <= s)) return undefined;
  return { inputs: [s, null], outputs: [s] };
};

/** Token ops work per example: the batch axis 0 of every `[B, ...]` tensor (a rank-1 `protect [N]` is shared). */
const perExample: SplitRule = (ctx, s) =>
  s === 0
    ? {
        inputs: ctx.inputs.map((t) => (t && t.dims.length >= 2 ? 0 : null)),
        outputs: ctx.outputs.map(() => 0),
      }
    : undefined;

const SPLIT_RULES: Readonly<Record<string, SplitRule>> = {
  "tokens.prune": perExample,
  "tokens.merge": perExample,
  "tokens.pool": perExample,
  "tokens.score": perExample,
  "tokens.gather": perExample,
  "tokens.combine": perExample,
  MatMul: (ctx, s) => {
    const [a, b] = [ctx.inputs[0]!, ctx.inputs[1]!];
    const r = ctx.outputs[0].dims.length;
    if (a.dims.length < 2 || b.dims.length < 2 || s >= r - 1) return undefined;
    // Batch axes run through both operands; the row axis M only through a. With `perm_a` (a folded
    // Transpose) A's logical axis i is stored axis perm_a[i], which is the one chunked.
    const perm = ctx.optAttr<readonly number[]>("perm_a");
    const la = aligned(a, r, s);
    const sa = la === null || !perm ? la : perm[la]!;
    return { inputs: [sa, s < r - 2 ? aligned(b, r, s) : null], outputs: [s] };
  },
  Gemm: (ctx, s) => {
    if (s !== 0 || ctx.attr<number>("transA") !== 0) return undefined;
    return { inputs: [0, null, aligned(ctx.inputs[2] ?? null, 2, 0)], outputs: [0] };
  },
  Conv: (ctx, s) =>
    s === 0 ? { inputs: ctx.inputs.map((_, i) => (i === 0 ? 0 : null)), outputs: [0] } : undefined,
  LayerNormalization: rowwise,
  RMSNorm: rowwise,
  Softmax: rowwise,
  ReduceMean: reduceRule,
  ReduceSum: reduceRule,
  ReduceMax: reduceRule,
  attention: (ctx, s) => {
    const [q, k] = [ctx.inputs[0]!, ctx.inputs[1]!];
    // Batch always; heads only when each query head has its own kv head and no head-averaged importance.
    const heads = s === 1 && dimEquals(q.dims[1], k.dims[1]) && ctx.outputs.length === 1;
    if (s !== 0 && !heads) return undefined;
    return {
      inputs: ctx.inputs.map((t, i) => (i < 3 ? (t ? s : null) : aligned(t, 4, s))),
      outputs: ctx.outputs.map(() => s),
    };
  },
  Transpose: (ctx, s) => {
    const r = ctx.inputs[0]!.dims.length;
    const perm = ctx.optAttr<readonly number[]>("perm") ?? [...Array(r).keys()].reverse();
    for (let j = 0; j <= s; j++) if (normAxis(perm[j], r) !== j) return undefined;
    return { inputs: [s], outputs: [s] };
  },
  Gather: (ctx, s) => {
    const [data, ix] = [ctx.inputs[0]!, ctx.inputs[1]!];
    const k = normAxis(ctx.attr<number>("axis"), data.dims.length);
    if (s < k) return { inputs: [s, null], outputs: [s] };
    // Gathering along axis 0: output rows are index rows.
    if (k === 0 && s < ix.dims.length) return { inputs: [null, s], outputs: [s] };
    return undefined;
  },
  Concat: (ctx, s) => {
    const r = ctx.outputs[0].dims.length;
    if (s >= normAxis(ctx.attr<number>("axis"), r)) return undefined;
    return { inputs: ctx.inputs.map(() => s), outputs: [s] };
  },
};

/**
 * The split rule of node `n` (its op's `SPLIT_RULES` entry, or the broadcasting rule of a
 * pointwise op) for axis `s` of its output 0; undefined when chunks along `s` are not independent.
 */
export function splitAxisMap(n: Node, def: OpDef, s: number, target: Target): AxisMap | undefined {
  const rule = def.pointwise ? pointwiseRule : (SPLIT_RULES as Partial<Record<string, SplitRule>>)[n.op];
  if (!rule) return undefined;
  const ctx = lowerCtx(
    def,
    n.op,
    n.attrs,
    n.inputs.map((v) => v?.type ?? null),
    n.outputs.map((v) => v.type),
    target,
  );
  return rule(ctx, s);
}

/** How a unit is split: the axis of every value that is chunked, and the chunk rows. */
export interface UnitSplit {
  /** Values chunked along an axis (absent: bound whole by every chunk). */
  readonly axes: ReadonlyMap<Value, number>;
  /** Length of the split axis and rows per chunk (the last chunk may have fewer). */
  readonly extent: number;
  readonly rows: number;
}

/** A size description for messages: `%x (f32[4, 1024] = 16384 bytes)`. */
function describeValue(v: Value, bytes: number | undefined): string {
  const shape = v.type.dims.map(printDim).join(", ");
  return `%${v.name} (${v.type.dtype}[${shape}]${bytes !== undefined ? ` = ${bytes} bytes` : ""})`;
}

/**
 * Plans the chunks of a unit's `nodes` (topological order; a fused group or a node and its
 * epilogue) so that every bound value fits the binding limit. `bound` are the values its
 * launches bind (with their storage types), `big` those above the limit. Throws an Error saying
 * why when the unit cannot be split (no independent axis, a value every chunk reads whole...).
 */
export function planSplit(
  nodes: readonly Node[],
  defs: ReadonlyMap<Node, OpDef | undefined>,
  bound: ReadonlyMap<Value, Exclude<KType, "bool">>,
  big: readonly Value[],
  target: Target,
): UnitSplit {
  const limit = target.maxStorageBindingBytes;
  const bytesOf = (v: Value): number | undefined => {
    const n = staticSize(v.type.dims);
    const t = bound.get(v);
    return n === undefined || !t ? undefined : n * elementBytes(t);
  };
  const tooBig = big.map((v) => describeValue(v, bytesOf(v))).join(", ");
  const fail = (why: string): never => {
    throw new Error(`${tooBig} above the max storage binding size ${limit} bytes, and ${why}`);
  };
  const out0 = nodes[0].outputs[0].type.dims;
  const s = out0.findIndex((d) => d !== 1);
  if (s < 0) return fail("output 0 has no axis to split along");
  const extent = out0[s];
  if (typeof extent !== "number")
    return fail(`the axis to split along (${printDim(extent)}, axis ${s} of output 0) is symbolic`);

  const axes = new Map<Value, number | null>();
  const assign = (v: Value, ax: number | null, n: Node): void => {
    let a = ax;
    // A size-1 axis is broadcast: every chunk reads the value whole.
    if (a !== null && v.type.dims[a] === 1 && extent !== 1) a = null;
    if (a !== null) {
      if (!dimEquals(v.type.dims[a], extent))
        fail(`${n.op} maps axis ${s} of its output to axis ${a} of %${v.name}, which has another length`);
      if (v.type.dims.slice(0, a).some((d) => d !== 1))
        fail(`chunks of %${v.name} along its axis ${a} are not contiguous (outer axes are not 1)`);
    }
    const had = axes.get(v);
    if (had !== undefined && had !== a) fail(`%${v.name} is both chunked and read whole`);
    axes.set(v, a);
  };
  for (const n of nodes) {
    const def = defs.get(n);
    const ns = n.outputs[0].type.dims.findIndex((d) => d !== 1);
    const m = def && ns === s ? splitAxisMap(n, def, s, target) : undefined;
    if (!m)
      return fail(
        `${n.op} has no split rule for axis ${s} of its output (chunks would not be independent; see docs/backends.md "Binding limits")`,
      );
    n.inputs.forEach((v, i) => v && assign(v, m.inputs[i] ?? null, n));
    n.outputs.forEach((v, i) => assign(v, m.outputs[i] ?? null, n));
  }
  // Kernels may bind values that are not node inputs (live token counts): no rule says how they chunk.
  for (const v of bound.keys())
    if (!axes.has(v)) fail(`the kernel also binds %${v.name}, which no split rule covers`);
  for (const v of big)
    if (axes.get(v) === null || axes.get(v) === undefined)
      fail(
        `every chunk of ${nodes[nodes.length - 1].op} reads %${v.name} whole (no independent axis runs through it)`,
      );

  // Rows per chunk: each chunked binding fits the limit and starts at an aligned byte offset.
  let cap = extent;
  let step = 1;
  for (const [v, a] of axes) {
    const t = bound.get(v);
    if (a === null || !t) continue;
    const inner = staticSize(v.type.dims.slice(a + 1));
    if (inner === undefined) return fail(`the inner dims of %${v.name} are symbolic`);
    const rowBytes = inner * elementBytes(t);
    cap = Math.min(cap, Math.floor(limit / rowBytes));
    const need = BINDING_OFFSET_ALIGN / gcd(BINDING_OFFSET_ALIGN, rowBytes);
    step = (step * need) / gcd(step, need);
  }
  const rows = Math.floor(cap / step) * step;
  if (rows === 0)
    return fail(
      `no chunk of whole rows along axis ${s} fits it with ${BINDING_OFFSET_ALIGN}-byte aligned offsets ` +
        `(at most ${cap} rows fit; offsets need multiples of ${step} rows)`,
    );
  for (const [v, a] of axes) {
    const b = bytesOf(v);
    if (a === null && bound.has(v) && b !== undefined && b > limit)
      fail(`every chunk reads ${describeValue(v, b)} whole`);
  }
  const chunked = new Map<Value, number>();
  for (const [v, a] of axes) if (a !== null) chunked.set(v, a);
  return { axes: chunked, extent, rows };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** A chunk of a value: its element offset into the value's storage and its dims. */
export interface Part {
  readonly offset: number;
  readonly dims: readonly Dim[];
  /** Rows `[start, end)` of the split axis, for buffer names. */
  readonly start: number;
  readonly end: number;
}

/** Copies of `nodes` whose chunked values have the chunk's dims; `origin` maps copies back. */
export function chunkNodes(
  nodes: readonly Node[],
  split: UnitSplit,
  start: number,
): { nodes: Node[]; origin: Map<Value, { v: Value; part: Part }> } {
  const end = Math.min(split.extent, start + split.rows);
  const copies = new Map<Value, Value>();
  const origin = new Map<Value, { v: Value; part: Part }>();
  const copy = (v: Value): Value => {
    const a = split.axes.get(v);
    if (a === undefined) return v;
    let c = copies.get(v);
    if (!c) {
      const dims = v.type.dims.map((d, i) => (i === a ? end - start : d));
      c = new Value(v.id, v.name, { ...v.type, dims });
      copies.set(v, c);
      const inner = staticSize(v.type.dims.slice(a + 1))!;
      origin.set(c, { v, part: { offset: start * inner, dims, start, end } });
    }
    return c;
  };
  const out = nodes.map((n): Node => ({
    ...n,
    inputs: n.inputs.map((v) => (v ? copy(v) : null)),
    outputs: n.outputs.map(copy),
  }));
  return { nodes: out, origin };
}
