import { computeKnown } from "../infer.js";
import type { Graph, Node, Value } from "../ir/graph.js";
import { type Dim, freeSymbols, symbolName } from "../ir/sym.js";

/**
 * Which consumers of capacity-padded token axes (adaptive `tokens.prune`, see `live.ts`) devices
 * and the CPU reference (`runGraph`) can run. An input axis whose dim contains a data-dependent
 * symbol K is used either as `rows` (each output element reads one position of that axis and
 * writes it to the same position: padding rows stay padding, live rows never see them) or `live`
 * (the op mixes positions along the axis and masks each example b at its own live length L_b:
 * lowerings read it with `liveLength`, references with `liveCounts`). Anything else is refused by
 * name. Pointwise ops and views always keep positions apart.
 *
 * The rules would sit on `OpDef` if it had a field for them; until then this table is the one
 * place that states them.
 */
export type AxisUse = "rows" | "live" | { readonly refuse: string };

/** Where K comes from: the adaptive prune, its count output and the rows always kept. */
export interface PaddedSymbol {
  readonly symbol: string;
  readonly prune: Node;
  /** The prune's count output (absent when the node does not emit it). */
  readonly count: Value | undefined;
  readonly extra: number;
  /** Rows live in every example (the protected prefix): constant gathers below it are safe. */
  readonly minLive: number;
}

interface AxisCtx {
  readonly node: Node;
  readonly input: number;
  readonly axis: number;
  readonly rank: number;
  readonly dim: Dim;
  readonly src: PaddedSymbol;
  /** Compile-time values of input i (constants and shape arithmetic). */
  known(i: number): readonly Dim[] | undefined;
  int(name: string, dflt: number): number;
}

type Rule = (c: AxisCtx) => AxisUse;

const ROWS: Rule = () => "rows";

/** Normalised axis attribute (negative counts from the end). */
const axisAttr = (c: AxisCtx, name: string, dflt: number, rank = c.rank): number => {
  const a = c.int(name, dflt);
  return a < 0 ? a + rank : a;
};

/** Constant non-negative indices below the rows every example keeps. */
function safeIndices(c: AxisCtx, vals: readonly Dim[] | undefined, what: string): AxisUse {
  if (vals && vals.every((v) => typeof v === "number" && v >= 0 && v < c.src.minLive)) return "rows";
  return {
    refuse: `${what} along the padded axis must be constants in [0, ${c.src.minLive}) (the rows every example keeps)`,
  };
}

/** Norms over axes [axis, rank): other axes are rows (scale and bias never carry tokens). */
const normRows: Rule = (c) =>
  c.input === 0 && c.axis >= axisAttr(c, "axis", -1) ? { refuse: "normalises over the padded axis" } : "rows";

/**
 * Reductions: a kept padded axis is rows; ReduceSum / ReduceMean over it (batch axis 0 kept) sum
 * each example's own rows and divide by its own count (`live`); anything else over it is refused.
 */
const reduceRule =
  (live: boolean): Rule =>
  (c) => {
    if (c.input !== 0) return "rows";
    const attr = c.node.attrs.axes;
    const raw = c.node.inputs[1] ? c.known(1) : Array.isArray(attr) ? (attr as readonly Dim[]) : [];
    if (raw === undefined) return { refuse: "the reduced axes are not known at compile time" };
    const all = Array.from({ length: c.rank }, (_, a) => a);
    const axes =
      raw.length === 0
        ? c.int("noop_with_empty_axes", 0) !== 0
          ? []
          : all
        : raw.map((a) => (typeof a === "number" && a < 0 ? a + c.rank : a));
    if (!axes.includes(c.axis)) return "rows";
    if (!live) return { refuse: "reduces over the padded axis (only sum and mean mask it)" };
    if (axes.includes(0) || c.axis === 0) return { refuse: "reduces over the batch axis 0 as well" };
    return symbolName(c.dim) === c.src.symbol
      ? "live"
      : { refuse: "the token axis must be exactly the symbol" };
  };

const RULES: Readonly<Record<string, Rule>> = {
  ReduceSum: reduceRule(true),
  ReduceMean: reduceRule(true),
  ReduceMax: reduceRule(false),
  Transpose: ROWS,
  MatMul: (c) => {
    const contracted = c.input === 0 ? c.rank - 1 : c.rank === 1 ? 0 : c.rank - 2;
    return c.axis === contracted ? { refuse: "contracts over the padded axis" } : "rows";
  },
  Gemm: (c) => {
    if (c.input === 2) return "rows";
    const t = c.int(c.input === 0 ? "transA" : "transB", 0) !== 0;
    const contracted = c.input === 0 ? (t ? 0 : 1) : t ? 1 : 0;
    return c.axis === contracted ? { refuse: "contracts over the padded axis" } : "rows";
  },
  LayerNormalization: (c) => normRows(c),
  RMSNorm: (c) => normRows(c),
  // Over the padded axis: each example normalises its own rows (batch axis 0 before it).
  Softmax: (c) => {
    if (c.axis !== axisAttr(c, "axis", -1)) return "rows";
    if (c.axis === 0) return { refuse: "normalises over the batch axis" };
    return symbolName(c.dim) === c.src.symbol
      ? "live"
      : { refuse: "the token axis must be exactly the symbol" };
  },
  Gather: (c) => {
    if (c.input !== 0 || c.axis !== axisAttr(c, "axis", 0)) return "rows";
    return safeIndices(c, c.known(1), "indices");
  },
  Slice: (c) => {
    if (c.input !== 0) return { refuse: "slice bounds depend on the padded length" };
    const axes = c.known(3) ?? c.known(1)?.map((_, i) => i);
    const at = axes?.findIndex((a) => typeof a === "number" && (a < 0 ? a + c.rank : a) === c.axis);
    if (at === undefined) return { refuse: "the sliced axes are not known at compile time" };
    if (at < 0) return "rows";
    const [s, e, st] = [c.known(1)?.[at], c.known(2)?.[at], c.known(4)?.[at] ?? 1];
    if (typeof s === "number" && typeof e === "number" && st === 1 && s >= 0 && e <= c.src.minLive)
      return "rows";
    return { refuse: `slices along the padded axis must be constant, step 1, within [0, ${c.src.minLive})` };
  },
  Concat: (c) =>
    c.axis === axisAttr(c, "axis", 0) ? { refuse: "concatenates along the padded axis" } : "rows",
  Split: (c) =>
    c.input === 0 && c.axis === axisAttr(c, "axis", 0) ? { refuse: "splits along the padded axis" } : "rows",
  // One score per token, reduced over its channels (or heads and head dims): tokens are rows.
  "tokens.score": (c) => (c.axis === c.rank - 1 ? { refuse: "reduces over the padded axis" } : "rows"),
  // A later prune ranks (and fuses) only the live tokens: x and scores axis 1, protect's last axis.
  "tokens.prune": (c) => {
    if (c.axis !== (c.input === 2 ? c.rank - 1 : 1)) return "rows";
    return symbolName(c.dim) === c.src.symbol
      ? "live"
      : { refuse: "the token axis must be exactly the symbol" };
  },
  // Rows picked by a prune's index: past an example's count its index holds -1 (zero rows), and a
  // prune over a padded axis points at live rows only, so neither axis mixes padding in.
  "tokens.gather": () => "rows",
  // Sums rows along axis 1 by a merge's source map; merging after an adaptive prune is not supported.
  "tokens.combine": (c) =>
    c.axis === 1 ? { refuse: "sums rows along the padded axis (a merge's source map)" } : "rows",
  // Keys and queries (axis 2 of q, k, v) mask by the live length; batch and heads are rows.
  attention: (c) => {
    // Masks and biases [..., Nq, Nk]: their padded query/key positions are exactly the ones q/k's
    // live length masks (keys get no weight, query rows are zeros), so they are read as rows.
    if (c.input > 2)
      return c.axis >= c.rank - 2
        ? "rows"
        : { refuse: "masks and biases padded outside their last two axes" };
    if (c.axis !== 2) return "rows";
    return symbolName(c.dim) === c.src.symbol
      ? "live"
      : { refuse: "the token axis must be exactly the symbol" };
  },
};

/**
 * Whether a value has a capacity-padded axis (a dim over a symbol with a capacity): the scheduler
 * shares no generic kernels across units touching such values (their masks follow live counts).
 */
export function capacityPadded(g: Graph): (v: Value | null | undefined) => boolean {
  const caps = new Set([...g.symbols.values()].filter((x) => x.capacity !== undefined).map((x) => x.name));
  return (v) => !!v && v.type.dims.some((d) => [...freeSymbols(d)].some((x) => caps.has(x)));
}

/** A node that cannot run on capacity-padded inputs (thrown by `PaddedAxes.require`). */
export class PaddingRefusal extends Error {}

/** The data-dependent symbols of a graph and the checks of their consumers. */
export class PaddedAxes {
  readonly symbols = new Map<string, PaddedSymbol>();
  private readonly unsourced = new Set<string>();
  private knownValues: Map<Value, readonly Dim[]> | undefined;

  constructor(private readonly g: Graph) {
    for (const n of g.nodes) {
      if (n.op !== "tokens.prune" || n.attrs.threshold === undefined) continue;
      const name = symbolName(n.outputs[0].type.dims[1]);
      const decl = name !== undefined ? g.symbols.get(name) : undefined;
      if (!name || decl?.capacity === undefined) continue;
      const fuse = n.attrs.fuse === true ? 1 : 0;
      const pf = typeof n.attrs.protect_first === "number" ? n.attrs.protect_first : 0;
      this.symbols.set(name, { symbol: name, prune: n, count: n.outputs[2], extra: fuse, minLive: pf });
    }
    // Other capacity symbols that no input binds also run at their capacity, with no count to mask by.
    const bound = new Set(g.inputs.flatMap((v) => v.type.dims.flatMap((d) => [...freeSymbols(d)])));
    for (const s of g.symbols.values())
      if (s.capacity !== undefined && !this.symbols.has(s.name) && !bound.has(s.name))
        this.unsourced.add(s.name);
  }

  /**
   * What node `n` (not pointwise, not a view) needs to run on padded inputs: the padded symbols
   * it must mask by (in a stable order). Throws an Error naming the value and symbol otherwise.
   */
  require(n: Node): PaddedSymbol[] {
    if (this.symbols.size === 0 && this.unsourced.size === 0) return [];
    const live = new Map<string, PaddedSymbol>();
    n.inputs.forEach((v, input) => {
      v?.type.dims.forEach((dim, axis) => {
        for (const s of freeSymbols(dim)) {
          if (this.unsourced.has(s))
            throw new PaddingRefusal(
              `reads ${v.name}, whose axis ${axis} has the data-dependent length ${s}, which runs at its capacity ` +
                "with no adaptive tokens.prune count to mask the padding by",
            );
          const src = this.symbols.get(s);
          if (!src) continue;
          const use = this.use(n, input, axis, dim, src);
          if (use === "live") {
            if (!src.count)
              throw new PaddingRefusal(
                `reads ${v.name}, whose axis ${axis} has the data-dependent length ${s}; its kernels mask padding ` +
                  `by the live count, so the adaptive tokens.prune %${src.prune.outputs[0].name} needs its count output`,
              );
            live.set(s, src);
          } else if (use !== "rows")
            throw new PaddingRefusal(
              `reads ${v.name}, whose axis ${axis} has the data-dependent length ${s} (adaptive tokens.prune ` +
                `%${src.prune.outputs[0].name}; devices run it at its capacity with padding rows): ${n.op} ${use.refuse}`,
            );
        }
      });
    });
    return [...live.values()];
  }

  /** Why `require(n)` refuses `n` (its message), or undefined when `n` can run on padded inputs. */
  refusal(n: Node): string | undefined {
    try {
      this.require(n);
      return undefined;
    } catch (e) {
      // Only the rules' refusals: anything else is a bug and must surface.
      if (e instanceof PaddingRefusal) return e.message;
      throw e;
    }
  }

  /**
   * Why the reference cannot run `n` per example: an op with no rule (or a refusing one) reads an
   * adaptive prune's padded axis, so its result would mix an example's padding rows. Undefined when
   * it can. Unlike `require`, the prune's count output need not exist (the reference always has it).
   */
  referenceRefusal(n: Node): string | undefined {
    for (const [input, v] of n.inputs.entries())
      for (const [axis, dim] of (v?.type.dims ?? []).entries())
        for (const s of freeSymbols(dim)) {
          const src = this.symbols.get(s);
          const use = src ? this.use(n, input, axis, dim, src) : "rows";
          if (use !== "rows" && use !== "live")
            return (
              `reads ${v!.name}, whose axis ${axis} has the per-example length ${s} (adaptive tokens.prune ` +
              `%${src!.prune.outputs[0].name}; rows past an example's count are padding): ${n.op} ${use.refuse}`
            );
        }
    return undefined;
  }

  private use(node: Node, input: number, axis: number, dim: Dim, src: PaddedSymbol): AxisUse {
    const rule = RULES[node.op];
    if (!rule) return { refuse: "has no rule for padding rows on devices" };
    const rank = node.inputs[input]!.type.dims.length;
    return rule({
      node,
      input,
      axis,
      rank,
      dim,
      src,
      known: (i) => {
        const v = node.inputs[i];
        if (!v) return undefined;
        this.knownValues ??= computeKnown(this.g);
        return this.knownValues.get(v);
      },
      int: (name, dflt) => {
        const a = node.attrs[name];
        return typeof a === "number" ? a : dflt;
      },
    });
  }
}
