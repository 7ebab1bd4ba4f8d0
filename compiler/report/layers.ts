import { byteSize } from "../ir/dtype.js";
import type { Graph, Value } from "../ir/graph.js";
import { add, type Dim, evalDim, freeSymbols, printDim, substitute } from "../ir/sym.js";
import { nodeFlops } from "./flops.js";

/**
 * Per-layer report of a graph: tokens, FLOPs and peak activation memory, and the comparison of a
 * graph before and after token reduction (docs/cli.md, `tokr inspect --policy`).
 */

/** One layer: the nodes whose scope starts with `blocks.K` (the first numbered scope segment). */
export interface LayerRow {
  readonly layer: string;
  /** Key count of the layer's first attention (the tokens it attends over); null without one. */
  readonly tokens: Dim | null;
  /**
   * True when `tokens` is the capacity of a data-dependent count (after an adaptive prune): each
   * example has at most that many; its FLOPs are counted at the capacity too.
   */
  readonly atMost?: boolean;
  readonly flops: Dim;
}

/** A row's token count as the report prints it: `<= 138` for a capacity, `-` without attention. */
export function tokensText(row: LayerRow | null | undefined): string {
  if (!row || row.tokens === null) return "-";
  return `${row.atMost ? "<= " : ""}${printDim(row.tokens)}`;
}

export interface GraphReport {
  /** Layers in graph order; nodes outside any numbered scope form `stem` (before) and `head` (after). */
  readonly layers: readonly LayerRow[];
  readonly totalFlops: Dim;
  /** Largest sum of live activation bytes over the node order (weights excluded); null if unbound symbols remain. */
  readonly peakActivationBytes: number | null;
  /** Symbols still free in the counts (bind them with `bindings`). */
  readonly unbound: readonly string[];
  /** Ops whose FLOPs are not included: they declare no count, or their count failed for this use (OpError). */
  readonly uncounted: readonly string[];
}

/** The layer a scope belongs to: its prefix through the first all-digit segment (`blocks.3.attn` -> `blocks.3`). */
export function layerOf(scope: string | undefined): string | undefined {
  if (!scope) return undefined;
  const segs = scope.split(".");
  const i = segs.findIndex((s) => /^\d+$/.test(s));
  return i < 0 ? undefined : segs.slice(0, i + 1).join(".");
}

/**
 * The report of `g` with symbols bound by `bindings` (data-dependent symbols default to their
 * capacity, and their rows say `atMost`). Counts stay symbolic where symbols are unbound.
 */
export function graphReport(g: Graph, bindings: ReadonlyMap<string, number> = new Map()): GraphReport {
  const env = new Map<string, Dim>(bindings);
  const capacities = new Set<string>();
  for (const [name, decl] of g.symbols)
    if (!env.has(name) && decl.capacity !== undefined) {
      env.set(name, substitute(decl.capacity, env));
      capacities.add(name);
    }
  const bind = (d: Dim): Dim => (typeof d === "number" ? d : substitute(d, env));
  const flops = nodeFlops(g).map((f) => (f === undefined ? undefined : bind(f)));
  const firstLayer = g.nodes.findIndex((n) => layerOf(n.scope) !== undefined);
  const rows = new Map<string, { tokens: Dim | null; atMost: boolean; flops: Dim[] }>();
  g.nodes.forEach((n, i) => {
    const key = layerOf(n.scope) ?? (firstLayer < 0 || i < firstLayer ? "stem" : "head");
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { tokens: null, atMost: false, flops: [] }));
    if (n.op === "attention" && row.tokens === null) {
      const keys = n.inputs[1]!.type.dims[2];
      row.tokens = bind(keys);
      row.atMost = [...freeSymbols(keys)].some((s) => capacities.has(s));
    }
    if (flops[i] !== undefined) row.flops.push(flops[i]!);
  });
  const layers = [...rows].map(([layer, r]) => ({
    layer,
    tokens: r.tokens,
    ...(r.atMost ? { atMost: true } : {}),
    flops: add(0, ...r.flops),
  }));
  // `head` rows may be interleaved with layers when unscoped nodes sit between blocks: keep graph order of first use.
  const totalFlops = add(0, ...flops.filter((f): f is Dim => f !== undefined));
  const free = new Set<string>();
  for (const l of layers) {
    freeSymbols(l.flops, free);
    if (l.tokens !== null) freeSymbols(l.tokens, free);
  }
  const peak = peakActivationBytes(g, env);
  if (peak === null) for (const s of activationSymbols(g)) if (!env.has(s)) free.add(s);
  const uncounted = [...new Set(g.nodes.filter((_, i) => flops[i] === undefined).map((n) => n.op))];
  return { layers, totalFlops, peakActivationBytes: peak, unbound: [...free].sort(), uncounted };
}

function activationSymbols(g: Graph): Set<string> {
  const s = new Set<string>();
  for (const v of g.inputs) for (const d of v.type.dims) freeSymbols(d, s);
  for (const n of g.nodes) for (const o of n.outputs) for (const d of o.type.dims) freeSymbols(d, s);
  return s;
}

/**
 * Liveness over the node order: a value (graph input or node output; constants are weights and
 * not counted) is live from the step that defines it (inputs: step 0) through its last use
 * (graph outputs: the last step). The peak is the largest sum of live bytes at any step.
 */
export function peakActivationBytes(g: Graph, env: ReadonlyMap<string, Dim>): number | null {
  const def = new Map<Value, number>();
  const last = new Map<Value, number>();
  for (const v of g.inputs) def.set(v, 0);
  g.nodes.forEach((n, i) => {
    for (const v of n.inputs) if (v && def.has(v)) last.set(v, i);
    for (const o of n.outputs) def.set(o, i);
  });
  const end = Math.max(0, g.nodes.length - 1);
  for (const v of g.outputs) if (def.has(v)) last.set(v, end);
  const delta = new Array<number>(g.nodes.length + 1).fill(0);
  const numEnv = new Map<string, number>();
  for (const [k, d] of env) if (typeof d === "number") numEnv.set(k, d);
  for (const [v, d] of def) {
    let bytes: number;
    try {
      bytes = v.type.dims.reduce<number>((p, x) => p * evalDim(x, numEnv), byteSize(v.type.dtype));
    } catch {
      return null;
    }
    delta[d] += bytes;
    delta[(last.get(v) ?? d) + 1] -= bytes;
  }
  let live = 0;
  let peak = 0;
  for (let i = 0; i < g.nodes.length; i++) {
    live += delta[i];
    peak = Math.max(peak, live);
  }
  return g.nodes.length ? peak : delta[0];
}

/** One layer before and after reduction (a layer missing on one side is null there). */
export interface LayerComparison {
  readonly layer: string;
  readonly before: LayerRow | null;
  readonly after: LayerRow | null;
}

/** Layers of both reports matched by name, in the order of `before` (layers only `after` has follow). */
export function compareLayers(before: GraphReport, after: GraphReport): LayerComparison[] {
  const b = new Map(before.layers.map((l) => [l.layer, l]));
  const a = new Map(after.layers.map((l) => [l.layer, l]));
  const names = [...b.keys(), ...[...a.keys()].filter((k) => !b.has(k))];
  return names.map((layer) => ({ layer, before: b.get(layer) ?? null, after: a.get(layer) ?? null }));
}
