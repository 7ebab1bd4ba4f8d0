import type { Node, Value } from "../ir/graph.js";
import { type Dim, add as dimAdd, dimEquals, mul as dimMul } from "../ir/sym.js";
import { exactDiv } from "../ops/known.js";
import type { ElementStrides, OpDef } from "../ops/registry.js";
import { add, dimExpr, i32, mul } from "./expr.js";
import type { Expr } from "./types.js";

/**
 * Strided views (docs/backends.md, "Scheduling"): a value computed from a materialised base value
 * by view-like nodes only (row-major views such as Reshape, Transpose, constant Slices) is the
 * base's storage read at `offset + Σ idx[a]·strides[a]`. Consumers that read through strides
 * bind the base instead, and the copy kernels of the chain are not needed.
 *
 * Internally each logical axis is a list of factors (outer to inner), so that a Reshape may
 * merge axes that are not contiguous with each other (`[N, B, 64]` to `[N, 4*B, 16]` under a
 * Slice) as long as a later view splits them again; a view is usable when each axis of the
 * final value is one factor.
 */

/** `size` indices `stride` elements apart. */
interface Factor {
  readonly size: Dim;
  readonly stride: Dim;
}

/** Per logical axis its factors, outer to inner (none: an axis of size 1). */
type Layout = readonly (readonly Factor[])[];

/** How one view-like node maps its input 0's layout to its output's. */
export type ViewStep =
  | { readonly k: "reshape"; readonly dims: readonly Dim[] }
  | { readonly k: "permute"; readonly perm: readonly number[] }
  /** Index `index` of `axis` (a constant Gather), the axis dropped or (`keep`) left with size 1. */
  | { readonly k: "pick"; readonly axis: number; readonly index: number; readonly keep: boolean }
  /** Per axis start and step (positive): the output's dims are `dims`. */
  | {
      readonly k: "slice";
      readonly starts: readonly Dim[];
      readonly steps: readonly number[];
      readonly dims: readonly Dim[];
    };

/** A value as a strided view of `base`: the view-like nodes between them, in graph order. */
export interface StridedView extends ElementStrides {
  readonly base: Value;
  readonly nodes: readonly Node[];
}

/** What the walk needs of a graph. */
export interface ViewGraph {
  producer(v: Value): Node | undefined;
  users(v: Value): readonly Node[];
  def(n: Node): OpDef | undefined;
  /** Compile-time element values of a small integer value (Slice parameters). */
  known(v: Value): readonly Dim[] | undefined;
  isOutput(v: Value): boolean;
  /** Values the walk may not pass (refused padded views, values materialised for other reasons). */
  stop(v: Value): boolean;
}

const isOne = (d: Dim): boolean => d === 1;

/** `a / b` when b divides a for every value of the symbols, else undefined. */
const divide = (a: Dim, b: Dim): Dim | undefined => exactDiv([a], [b]);

/** Row-major layout of dims. */
function contiguous(dims: readonly Dim[]): Layout {
  const out: Factor[][] = [];
  let s: Dim = 1;
  for (let a = dims.length - 1; a >= 0; a--) {
    out[a] = isOne(dims[a]) ? [] : [{ size: dims[a], stride: s }];
    s = dimMul(s, dims[a]);
  }
  return out;
}

/** Regroups the factors in row-major order into axes of `dims` (splitting and merging factors where needed). */
function reshape(l: Layout, dims: readonly Dim[]): Layout | undefined {
  const flat = l.flat().filter((f) => !isOne(f.size));
  let at = 0;
  const out: Factor[][] = [];
  for (const d of dims) {
    const axis: Factor[] = [];
    let need: Dim = d;
    while (!isOne(need)) {
      const f = flat[at];
      if (!f) return undefined;
      const q = divide(need, f.size);
      if (q !== undefined) {
        axis.push(f);
        need = q;
        at++;
        continue;
      }
      const r = divide(f.size, need);
      if (r === undefined) {
        // Merge with the next factor when it is contiguous (always valid in row-major order):
        // [4, 3] regroups as [6, 2] only through 12. Lazily, so that sums such as B+1 stay whole.
        const g = flat[at + 1];
        if (!g || !dimEquals(f.stride, dimMul(g.size, g.stride))) return undefined;
        flat.splice(at, 2, { size: dimMul(f.size, g.size), stride: g.stride });
        continue;
      }
      axis.push({ size: need, stride: dimMul(f.stride, r) });
      flat[at] = { size: r, stride: f.stride };
      need = 1;
    }
    out.push(axis);
  }
  return at === flat.length ? out : undefined;
}

/** Factors of one axis merged where the outer one steps over the inner one exactly. */
function merged(axis: readonly Factor[]): Factor[] {
  const out: Factor[] = [];
  for (const f of axis) {
    const prev = out[out.length - 1];
    if (prev && dimEquals(prev.stride, dimMul(f.size, f.stride)))
      out[out.length - 1] = { size: dimMul(prev.size, f.size), stride: f.stride };
    else out.push(f);
  }
  return out;
}

interface Placed {
  readonly layout: Layout;
  readonly offset: Dim;
}

function apply(p: Placed, step: ViewStep): Placed | undefined {
  switch (step.k) {
    case "reshape": {
      const layout = reshape(p.layout, step.dims);
      return layout && { layout, offset: p.offset };
    }
    case "permute":
      return { layout: step.perm.map((a) => p.layout[a]), offset: p.offset };
    case "pick": {
      const fs = merged(p.layout[step.axis]);
      if (fs.length > 1) return undefined;
      const layout = [...p.layout];
      layout.splice(step.axis, 1, ...(step.keep ? [[]] : []));
      return { layout, offset: dimAdd(p.offset, dimMul(step.index, fs[0]?.stride ?? 0)) };
    }
    case "slice": {
      let offset = p.offset;
      const layout: Factor[][] = [];
      for (let a = 0; a < p.layout.length; a++) {
        const fs = merged(p.layout[a]);
        const [start, step_, d] = [step.starts[a], step.steps[a], step.dims[a]];
        if (start === 0 && step_ === 1 && dimEquals(dimMul(1, ...fs.map((f) => f.size)), d)) {
          layout.push(fs);
          continue;
        }
        if (fs.length > 1) return undefined;
        const stride = fs[0]?.stride ?? 0;
        offset = dimAdd(offset, dimMul(start, stride));
        layout.push(isOne(d) ? [] : [{ size: d, stride: dimMul(stride, step_) }]);
      }
      return { layout, offset };
    }
  }
}

/** Strides per axis when every axis is a single factor. */
function simple(p: Placed): ElementStrides | undefined {
  const strides: Dim[] = [];
  for (const axis of p.layout) {
    const fs = merged(axis);
    if (fs.length > 1) return undefined;
    strides.push(fs[0]?.stride ?? 0);
  }
  return { offset: p.offset, strides };
}

/** `base` (of dims `dims`) seen through `steps` in order, if the result is a strided view. */
export function composeView(dims: readonly Dim[], steps: readonly ViewStep[]): ElementStrides | undefined {
  let p: Placed | undefined = { layout: contiguous(dims), offset: 0 };
  for (const s of steps) {
    p = apply(p, s);
    if (!p) return undefined;
  }
  return simple(p);
}

/** Strides of a row-major layout of dims (size-1 axes: 0, as `composeView` gives them). */
export function contiguousStrides(dims: readonly Dim[]): Dim[] {
  return contiguous(dims).map((a) => a[0]?.stride ?? 0);
}

const SENTINEL = 2 ** 31 - 1;

/**
 * The view step of node `n` (its input 0 to its output 0), or undefined when it is not view-like:
 * row-major views (`OpDef.view`), Transpose, Slices with compile-time starts, axes and
 * positive steps (ends are implied by the output's dims), and Gathers of one compile-time index.
 */
export function viewStep(n: Node, vg: ViewGraph): ViewStep | undefined {
  const def = vg.def(n);
  const x = n.inputs[0];
  if (!def || !x || n.outputs.length !== 1) return undefined;
  const out = n.outputs[0].type.dims;
  if (def.view) return { k: "reshape", dims: out };
  const r = x.type.dims.length;
  if (n.op === "Transpose") {
    const p = n.attrs.perm as readonly number[] | undefined;
    return { k: "permute", perm: p ? p.map((a) => (a < 0 ? a + r : a)) : [...Array(r).keys()].reverse() };
  }
  const known = (i: number): readonly Dim[] | undefined => {
    const v = n.inputs[i];
    return v ? vg.known(v) : undefined;
  };
  if (n.op === "Gather") {
    const ix = known(1);
    const rank = n.inputs[1]?.type.dims.length;
    const a0 = typeof n.attrs.axis === "number" ? n.attrs.axis : 0;
    const axis = a0 < 0 ? a0 + r : a0;
    const d = x.type.dims[axis];
    if (!ix || ix.length !== 1 || (rank !== 0 && rank !== 1) || typeof ix[0] !== "number") return undefined;
    const index = ix[0] < 0 && typeof d === "number" ? ix[0] + d : ix[0];
    if (index < 0 || (typeof d === "number" && index >= d)) return undefined;
    return { k: "pick", axis, index, keep: rank === 1 };
  }
  if (n.op !== "Slice") return undefined;
  const starts = known(1);
  if (!starts) return undefined;
  const axes = n.inputs[3] ? known(3) : starts.map((_, i) => i);
  const steps = n.inputs[4] ? known(4) : starts.map(() => 1);
  if (!axes || !steps || axes.length !== starts.length || steps.length !== starts.length) return undefined;
  const st: Dim[] = x.type.dims.map(() => 0);
  const sp: number[] = x.type.dims.map(() => 1);
  for (let i = 0; i < starts.length; i++) {
    const [a0, s, step] = [axes[i], starts[i], steps[i]];
    if (typeof a0 !== "number" || typeof s !== "number" || typeof step !== "number" || step < 1)
      return undefined;
    const a = a0 < 0 ? a0 + r : a0;
    const d = x.type.dims[a];
    let start: Dim;
    if (s >= SENTINEL) start = d;
    else if (s >= 0) start = typeof d === "number" ? Math.min(s, d) : s;
    else if (typeof d === "number") start = Math.max(0, s + d);
    else return undefined; // a negative start on a symbolic axis would need a clamp
    st[a] = start;
    sp[a] = step;
  }
  return { k: "slice", starts: st, steps: sp, dims: out };
}

/**
 * Whether view-like node `n` keeps all of its input's elements in row-major order (a Transpose
 * moving only size-1 axes, a Gather on a size-1 axis, a Slice taking everything): its output can
 * share its input's storage like a Reshape, for every consumer.
 */
export function rowMajorView(n: Node, vg: ViewGraph): boolean {
  const x = n.inputs[0];
  const step = viewStep(n, vg);
  const y = n.outputs[0].type.dims;
  const v =
    x && step && dimEquals(dimMul(1, ...x.type.dims), dimMul(1, ...y)) && composeView(x.type.dims, [step]);
  if (!v || v.offset !== 0) return false;
  const want = contiguousStrides(y);
  return v.strides.every((s, a) => dimEquals(s, want[a]));
}

/** The inverse of a bijective step (node input dims `dims`), for output views. */
function inverse(step: ViewStep, dims: readonly Dim[]): ViewStep | undefined {
  switch (step.k) {
    case "reshape":
      return { k: "reshape", dims };
    case "permute": {
      const inv = new Array<number>(step.perm.length);
      step.perm.forEach((a, i) => (inv[a] = i));
      return { k: "permute", perm: inv };
    }
    case "slice":
    case "pick":
      return undefined;
  }
}

/** Whether folding `nodes` saves a kernel (row-major views alone already share storage). */
function savesCopies(nodes: readonly Node[], vg: ViewGraph): boolean {
  return nodes.some((n) => !vg.def(n)?.view);
}

/**
 * The longest prefix (k nodes) of a walked chain that saves a copy and composes into plain strides
 * over its far end `values[k]`: `steps[i]` maps `values[i + 1]` to `values[i]`.
 */
function longestComposable(
  nodes: readonly Node[],
  values: readonly Value[],
  steps: readonly ViewStep[],
  vg: ViewGraph,
): { readonly k: number; readonly strides: ElementStrides } | undefined {
  for (let k = nodes.length; k >= 1; k--) {
    if (!savesCopies(nodes.slice(0, k), vg)) return undefined;
    const strides = composeView(values[k].type.dims, steps.slice(0, k).reverse());
    if (strides) return { k, strides };
  }
  return undefined;
}

/**
 * `v` as a strided view of the furthest base that view-like nodes lead back to and that gives
 * plain strides, when the chain holds a node that would otherwise copy (Transpose, Slice).
 */
export function inputView(v: Value, vg: ViewGraph): StridedView | undefined {
  const values: Value[] = [v];
  const nodes: Node[] = [];
  const steps: ViewStep[] = [];
  let cur = v;
  while (!vg.stop(cur)) {
    const p = vg.producer(cur);
    const s = p && viewStep(p, vg);
    if (!p || !s) break;
    nodes.push(p);
    steps.push(s);
    cur = p.inputs[0]!;
    values.push(cur);
  }
  const r = longestComposable(nodes, values, steps, vg);
  return r && { base: values[r.k], ...r.strides, nodes: nodes.slice(0, r.k).reverse() };
}

/** Where an op writes its output directly: `target`'s storage, at strides, instead of its own. */
export interface OutputView extends ElementStrides {
  readonly target: Value;
  /** The view-like nodes from the output to `target` (not materialised), in graph order. */
  readonly nodes: readonly Node[];
}

/**
 * When output `v` flows through a single-user chain of bijective views (row-major views and
 * Transposes; no graph outputs) to a value Y, `v` as a strided view of Y: its producer can
 * store each element at its place in Y. The furthest such Y with plain strides is chosen.
 */
export function outputView(v: Value, vg: ViewGraph): OutputView | undefined {
  const values: Value[] = [v];
  const nodes: Node[] = [];
  const inverses: ViewStep[] = [];
  let cur = v;
  while (!vg.isOutput(cur) && !vg.stop(cur)) {
    const us = vg.users(cur);
    if (us.length !== 1) break;
    const u = us[0];
    const s = viewStep(u, vg);
    const inv =
      s && u.inputs[0] === cur && u.inputs.indexOf(cur, 1) < 0 ? inverse(s, cur.type.dims) : undefined;
    if (!inv || vg.isOutput(u.outputs[0]) || vg.stop(u.outputs[0])) break;
    nodes.push(u);
    inverses.push(inv);
    cur = u.outputs[0];
    values.push(cur);
  }
  const r = longestComposable(nodes, values, inverses, vg);
  return r && { target: values[r.k], ...r.strides, nodes: nodes.slice(0, r.k) };
}

/**
 * Element offset of multi-index `idx` into a tensor of dims `dims` broadcast to the index rank
 * (aligned right, size-1 axes read index 0), stored at strides `view` (absent: row-major).
 */
export function stridedOffset(idx: readonly Expr[], dims: readonly Dim[], view: ElementStrides): Expr {
  const off = idx.length - dims.length;
  let acc: Expr | undefined;
  dims.forEach((d, a) => {
    const s = view.strides[a];
    if (d === 1 || s === 0) return;
    const term = s === 1 ? idx[off + a] : mul(idx[off + a], dimExpr(s));
    acc = acc ? add(acc, term) : term;
  });
  if (view.offset === 0) return acc ?? i32(0);
  return acc ? add(acc, dimExpr(view.offset)) : dimExpr(view.offset);
}
