import type { Graph, Node, Value } from "../ir/graph.js";
import { type Dim, dimEquals, freeSymbols, mul, printDim, sym, symbolName } from "../ir/sym.js";
import type { OpDef } from "../ops/registry.js";
import { type AxisMap, splitAxisMap } from "./split.js";
import type { Target } from "./types.js";

/**
 * Batch separability (docs/backends.md, "Micro-batching"): whether running consecutive slices of
 * the leading symbol `B` of every graph input / output and concatenating the outputs gives the
 * same result as one run. Each value that depends on B carries it in exactly one axis, with B as
 * that axis's outer factor (`[197, 4*B, 16]`: example e owns rows 4e..4e+3), tracked from the
 * inputs: compute nodes must keep examples apart by the per-op split rules of split.ts (rows of
 * the B axis independent), views must keep each example's elements together. A node that reduces,
 * contracts, slices or reshapes across B is named in the refusal.
 */
export type BatchSeparability = { readonly symbol: string } | { readonly why: string };

function shape(v: Value): string {
  return `[${v.type.dims.map(printDim).join(", ")}]`;
}

/** `input 'x' [B, 16]`. */
function describe(v: Value, kind: string): string {
  return `${kind} '${v.name}' ${shape(v)}`;
}

/**
 * Batch-axis rules for ops whose rows are independent but that the binding-limit splitter does
 * not chunk (it also needs contiguous chunks, which separability does not). Undefined: no rule.
 */
function extraRule(g: Graph, n: Node, s: number): AxisMap | undefined {
  const x = n.inputs[0];
  if (!x) return undefined;
  const r = n.outputs[0].type.dims.length;
  switch (n.op) {
    case "Transpose": {
      // Output axis s is input axis perm[s]: a permutation never mixes rows of one axis.
      const perm = (n.attrs.perm as readonly number[] | undefined) ?? [...Array(r).keys()].reverse();
      const a = perm[s] < 0 ? perm[s] + r : perm[s];
      return { inputs: [a], outputs: [s] };
    }
    case "Expand":
      // Broadcasts data right-aligned to the output; the target shape is computed per slice.
      return {
        inputs: [s - (r - x.type.dims.length) >= 0 ? s - (r - x.type.dims.length) : null, null],
        outputs: [s],
      };
    case "Slice": {
      // Independent along s when s is not sliced; the slice parameters must be constants to know that.
      const known = (v: Value | null): number[] | undefined => {
        const d = v ? g.constants.get(v)?.data : undefined;
        return d ? Array.from(d.data, Number) : undefined;
      };
      const k = known(n.inputs[1])?.length;
      const axes = n.inputs[3] ? known(n.inputs[3]) : k === undefined ? undefined : [...Array(k).keys()];
      if (!axes || axes.some((a) => (a < 0 ? a + r : a) === s)) return undefined;
      return { inputs: n.inputs.map((_, i) => (i === 0 ? s : null)), outputs: [s] };
    }
    default:
      return undefined;
  }
}

/**
 * Where B lives in a value: axis `axis` has `q*B*k` rows, example e owning the rows j with
 * floor(j / k) mod B = e (q: outer factor merged in front of B, k: inner factor behind it).
 */
interface Layout {
  readonly axis: number;
  readonly q: number;
  readonly k: number;
}

function isPlain(l: Layout | undefined): boolean {
  return l !== undefined && l.axis === 0 && l.q === 1 && l.k === 1;
}

/**
 * A row-major view does not move elements: as `[P, B, E]` (P elements in front of the examples, E
 * per example) the layout is unchanged. The output's B axis `b` must split P and E at axis bounds.
 */
function viewLayout(
  xd: readonly Dim[],
  l: Layout,
  yd: readonly Dim[],
  b: number,
  B: string,
): Layout | undefined {
  if (b < 0) return undefined;
  const prefix = (d: readonly Dim[], a: number): Dim => mul(1, ...d.slice(0, a));
  const inner = (d: readonly Dim[], a: number): Dim => mul(1, ...d.slice(a + 1));
  // Plain B on both sides (symbolic inner dims allowed): equal products in front and behind.
  if (
    l.q === 1 &&
    l.k === 1 &&
    symbolName(yd[b]) === B &&
    dimEquals(prefix(xd, l.axis), prefix(yd, b)) &&
    dimEquals(inner(xd, l.axis), inner(yd, b))
  )
    return { axis: b, q: 1, k: 1 };
  const [px, ix, py, iy] = [prefix(xd, l.axis), inner(xd, l.axis), prefix(yd, b), inner(yd, b)];
  if (typeof px !== "number" || typeof ix !== "number" || typeof py !== "number" || typeof iy !== "number")
    return undefined;
  const [P, E] = [px * l.q, ix * l.k];
  if (P % py !== 0 || E % iy !== 0) return undefined;
  const [q, k] = [P / py, E / iy];
  return dimEquals(yd[b], mul(q, sym(B), k)) ? { axis: b, q, k } : undefined;
}

/**
 * Decides separability of graph `g` whose kernels compute `dispatched` (nodes of lowered units:
 * kernels and views; shape ops that are not dispatched do not matter). `label` names a node in
 * refusals.
 */
export function batchSeparability(
  g: Graph,
  dispatched: ReadonlySet<Node>,
  defs: ReadonlyMap<Node, OpDef | undefined>,
  target: Target,
  label: (n: Node) => string,
): BatchSeparability {
  // The runtime slices every input and concatenates every output along axis 0: all lead with B.
  let batch: string | undefined;
  let first = "";
  for (const [v, kind] of [
    ...g.inputs.map((v) => [v, "input"] as const),
    ...g.outputs.map((v) => [v, "output"] as const),
  ]) {
    const what = describe(v, kind);
    const lead = v.type.dims.length > 0 ? symbolName(v.type.dims[0]) : undefined;
    if (lead === undefined) return { why: `${what} has no symbolic leading axis` };
    if (batch === undefined) [batch, first] = [lead, what];
    else if (lead !== batch)
      return { why: `${what} and ${first} have different leading symbols (no common batch symbol)` };
    if (v.type.dims.slice(1).some((d) => freeSymbols(d).has(lead)))
      return { why: `${what} uses its batch symbol ${lead} beyond axis 0` };
  }
  if (batch === undefined) return { why: "the graph has no inputs" };
  const B = batch;
  /** The one axis of `v` whose size depends on B (-1: none; -2: several). */
  const bAxis = (v: Value): number => {
    const axes = v.type.dims.flatMap((d, i) => (freeSymbols(d).has(B) ? [i] : []));
    return axes.length === 0 ? -1 : axes.length === 1 ? axes[0] : -2;
  };
  const layout = new Map<Value, Layout>(g.inputs.map((v) => [v, { axis: 0, q: 1, k: 1 }]));
  const mixes = (n: Node, why: string): BatchSeparability => ({
    why: `the graph mixes examples along its batch axis ${B} at ${label(n)}: ${why}`,
  });

  for (const n of g.nodes) {
    if (!dispatched.has(n)) continue;
    const reads = n.inputs.filter((v): v is Value => !!v && bAxis(v) !== -1);
    for (const v of reads)
      if (!layout.has(v)) return mixes(n, `%${v.name} ${shape(v)} depends on ${B} in an untracked way`);
    if (reads.length === 0 && n.outputs.every((o) => bAxis(o) === -1)) continue;
    for (const o of n.outputs)
      if (bAxis(o) < 0)
        return mixes(
          n,
          `its output %${o.name} ${shape(o)} ${bAxis(o) === -1 ? `does not keep ${B} (it combines examples)` : `has ${B} in several axes`}`,
        );
    const def = defs.get(n);
    if (!def) return mixes(n, "unknown op");
    if (def.view) {
      const [x, y] = [n.inputs[0]!, n.outputs[0]];
      const l = layout.get(x) && viewLayout(x.type.dims, layout.get(x)!, y.type.dims, bAxis(y), B);
      if (!l)
        return mixes(n, `the view regroups the elements of ${B} (%${x.name} ${shape(x)} to ${shape(y)})`);
      layout.set(y, l);
      continue;
    }
    const s = bAxis(n.outputs[0]);
    let m: AxisMap | undefined;
    try {
      m = splitAxisMap(n, def, s, target) ?? extraRule(g, n, s);
    } catch (e) {
      // A rule that cannot read the node (an unexpected attribute...) proves nothing: refuse, saying why.
      return mixes(n, `its split rule failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!m) return mixes(n, `${n.op} has no rule keeping the rows of axis ${s} of its output independent`);
    const rows = n.outputs[0].type.dims[s];
    let qk: Layout | undefined;
    for (const [i, v] of n.inputs.entries()) {
      if (!v) continue;
      const ax = m.inputs[i] ?? null;
      const at = layout.get(v);
      if (at !== undefined) {
        if (
          ax !== at.axis ||
          !dimEquals(v.type.dims[at.axis], rows) ||
          (qk && (qk.q !== at.q || qk.k !== at.k))
        )
          return mixes(n, `every row of its output would read examples of %${v.name} ${shape(v)} along ${B}`);
        qk = at;
      } else if (ax !== null && v.type.dims[ax] !== 1)
        return mixes(n, `%${v.name} ${shape(v)} would be split along axis ${ax}, which is not ${B}`);
    }
    // Rows map one to one: the output's B axis decomposes like its inputs' (a plain B when made from shapes).
    const { q, k } = qk ?? { q: 1, k: 1 };
    for (const [j, o] of n.outputs.entries()) {
      const ax = bAxis(o);
      if (m.outputs[j] !== ax || !dimEquals(o.type.dims[ax], rows))
        return mixes(n, `its output %${o.name} ${shape(o)} does not follow ${B}`);
      layout.set(o, { axis: ax, q, k });
    }
  }
  for (const v of g.outputs)
    if (!isPlain(layout.get(v)))
      return { why: `output '${v.name}' does not follow the batch axis of the inputs` };
  return { symbol: B };
}
