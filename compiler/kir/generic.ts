import { type Node, Value } from "../ir/graph.js";
import { type Dim, add, evalDim, freeSymbols, mul, printDim, sym } from "../ir/sym.js";
import { getOp } from "../ops/registry.js";

/**
 * Generic kernels: after a token-reduction policy every layer has its own static token count, so
 * units that compute the same thing would each get a kernel. Units with the same structure (ops,
 * attrs, wiring, dtypes, ranks, symbolic dims) form a class; each static dim position that differs
 * between members becomes a class symbol (positions equal in every member share one, so Nq = Nk
 * stays one symbol), and each member is lowered with those symbols and runs with its own binding.
 * Members then lower to the same kernel and the scheduler's deduplication keeps one.
 */

/** How one member of a class is lowered and run. */
export interface GenericUnit {
  /** The unit's values (inputs and outputs of its nodes) with the class symbols in their dims. */
  readonly values: ReadonlyMap<Value, Value>;
  /** The member's value of each class symbol (what its steps bind). */
  readonly bind: Readonly<Record<string, number>>;
  /**
   * The largest value of a dim over every member of the class (dims over class symbols and
   * numbers only; undefined otherwise): lowerings size private arrays for all members by it.
   */
  readonly bound: (d: Dim) => number | undefined;
}

/** A unit's structure key and its static dims in a fixed order (the values' dims, axis by axis). */
interface Shape {
  readonly key: string;
  readonly dims: readonly number[];
  /**
   * (value, axis, slot) of each entry of `dims`: slot -1 is a static dim; in a polynomial over
   * symbols (`197*batch`) slot 0 is the constant and slot k the coefficient of term k.
   */
  readonly at: readonly (readonly [Value, number, number])[];
  readonly values: readonly Value[];
}

/** Attributes in a key (typed arrays as plain lists; -0, NaN, infinities kept apart). */
function attrKey(_k: string, v: unknown): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number>);
  if (typeof v === "number" && (!Number.isFinite(v) || Object.is(v, -0)))
    return `#${String(v)}${Object.is(v, -0) ? "-0" : ""}`;
  if (typeof v === "bigint") return `${v}n`;
  return v;
}

/** Attributes of `n` its lowering derives from the dims (`OpDef.attrsFromDims`): not part of the key. */
function fromDims(n: Node, attr: string): boolean {
  return getOp(n.op)?.attrsFromDims?.(n.attrs).includes(attr) ?? false;
}

function shapeOf(kind: string, nodes: readonly Node[], isConstant: (v: Value) => boolean): Shape {
  const local = new Map<Value, number>();
  const values: Value[] = [];
  const id = (v: Value): number => {
    let i = local.get(v);
    if (i === undefined) {
      i = values.length;
      local.set(v, i);
      values.push(v);
    }
    return i;
  };
  const parts: string[] = [kind];
  for (const n of nodes) {
    const ins = n.inputs.map((v) => (v ? id(v) : "-"));
    const outs = n.outputs.map(id);
    const attrs = Object.fromEntries(Object.entries(n.attrs).filter(([k]) => !fromDims(n, k)));
    parts.push(`${n.op}(${ins.join(",")})->(${outs.join(",")})${JSON.stringify(attrs, attrKey)}`);
  }
  const dims: number[] = [];
  const at: (readonly [Value, number, number])[] = [];
  for (const v of values) {
    const t = v.type;
    // Static numbers of computed values are compared member by member (also the coefficients of
    // polynomials over symbols: a flattened `197*batch`); other dims must match exactly.
    const ds = t.dims.map((d, a) => {
      // Weights keep their shapes: layers of different widths keep their own kernels.
      if (isConstant(v)) return printDim(d);
      // A 1 broadcasts (index math skips the axis): never in one class with a full-size axis.
      if (d === 1) return "1";
      if (typeof d === "number") {
        dims.push(d);
        at.push([v, a, -1]);
        return "#";
      }
      if (!d.terms.every((x) => x.factors.every((f) => f.k === "var"))) return printDim(d);
      dims.push(d.c, ...d.terms.map((x) => x.coef));
      at.push([v, a, 0], ...d.terms.map((_, k) => [v, a, k + 1] as const));
      return `(#${d.terms.map((x) => `+#*${x.key}`).join("")})`;
    });
    parts.push(`${t.dtype}${isConstant(v) ? "c" : ""}[${ds.join(",")}]`);
  }
  return { key: parts.join(";"), dims, at, values };
}

/**
 * Classes of units with the same structure whose static dims differ between members, and how each
 * member is lowered generically. `units` lists each unit's kind and nodes (index = unit id); units
 * `eligible` rejects are left alone. Symbols are named `g<class>_<j>`, avoiding `reserved` names.
 * Classes whose members all have the same dims are not generalised (their kernels already dedupe).
 */
export function genericUnits(
  units: readonly { readonly kind: string; readonly nodes: readonly Node[] }[],
  isConstant: (v: Value) => boolean,
  eligible: (nodes: readonly Node[]) => boolean,
  reserved: ReadonlySet<string>,
): Map<number, GenericUnit> {
  const classes = new Map<string, { unit: number; shape: Shape }[]>();
  units.forEach((u, i) => {
    if (u.nodes.length === 0 || !eligible(u.nodes)) return;
    const shape = shapeOf(u.kind, u.nodes, isConstant);
    if (shape.dims.length === 0) return;
    classes.set(shape.key, [...(classes.get(shape.key) ?? []), { unit: i, shape }]);
  });
  const out = new Map<number, GenericUnit>();
  let c = 0;
  for (const members of classes.values()) {
    if (new Set(members.map((m) => m.shape.dims.join(","))).size < 2) continue;
    // One symbol per distinct column of varying dims (equal columns: one symbol).
    const width = members[0].shape.dims.length;
    const symOf: (string | undefined)[] = [];
    const byColumn = new Map<string, string>();
    for (let p = 0; p < width; p++) {
      const col = members.map((m) => m.shape.dims[p]);
      if (col.every((d) => d === col[0])) continue;
      const key = col.join(",");
      let s = byColumn.get(key);
      if (s === undefined) {
        s = `g${c}_${byColumn.size}`;
        while (reserved.has(s)) s = `${s}_`;
        byColumn.set(key, s);
      }
      symOf[p] = s;
    }
    const binds = members.map((m) => {
      const b: Record<string, number> = {};
      symOf.forEach((s, p) => {
        if (s !== undefined) b[s] = m.shape.dims[p];
      });
      return b;
    });
    const classSyms = new Set(byColumn.values());
    const bound = (d: Dim): number | undefined => {
      for (const s of freeSymbols(d)) if (!classSyms.has(s)) return undefined;
      return Math.max(...binds.map((b) => evalDim(d, b)));
    };
    members.forEach((m, i) => {
      // Per value and axis, the symbol of each generalised slot.
      const slots = new Map<Value, Map<number, Map<number, Dim>>>();
      m.shape.at.forEach(([v, a, slot], p) => {
        const s = symOf[p];
        if (s === undefined) return;
        const axes = slots.get(v) ?? new Map<number, Map<number, Dim>>();
        axes.set(a, (axes.get(a) ?? new Map<number, Dim>()).set(slot, sym(s)));
        slots.set(v, axes);
      });
      const values = new Map<Value, Value>();
      for (const v of m.shape.values) {
        const axes = slots.get(v);
        const dims = v.type.dims.map((d, a) => {
          const at = axes?.get(a);
          return at ? (at.get(-1) ?? withSlots(d, at)) : d;
        });
        values.set(v, axes ? new Value(v.id, v.name, { ...v.type, dims }) : v);
      }
      out.set(m.unit, { values, bind: binds[i], bound });
    });
    c++;
  }
  return out;
}

/** Polynomial `d` (over symbols only) with its constant (slot 0) and coefficients (slot k) replaced. */
function withSlots(d: Dim, at: ReadonlyMap<number, Dim>): Dim {
  if (typeof d === "number") throw new Error("a polynomial slot of a static dim");
  const terms = d.terms.map((t, k) =>
    mul(at.get(k + 1) ?? t.coef, ...t.factors.map((f) => (f.k === "var" ? sym(f.name) : 0))),
  );
  return add(at.get(0) ?? d.c, ...terms);
}

/**
 * Copies of graph nodes and values over a member's generic values (the graph is not touched), and
 * the way back: nodes whose values are not generalised are copied too, so a copy's producer and
 * users are copies as well.
 */
export class GenericCopies {
  private readonly nodes = new Map<Node, Node>();
  private readonly origins = new Map<Node, Node>();
  private readonly back = new Map<Value, Value>();
  constructor(private readonly g: GenericUnit) {
    for (const [v, c] of g.values) this.back.set(c, v);
  }
  value(v: Value): Value {
    return this.g.values.get(v) ?? v;
  }
  node(n: Node): Node {
    let c = this.nodes.get(n);
    if (!c) {
      c = {
        ...n,
        inputs: n.inputs.map((v) => (v ? this.value(v) : null)),
        outputs: n.outputs.map((v) => this.value(v)),
      };
      this.nodes.set(n, c);
      this.origins.set(c, n);
    }
    return c;
  }
  /** The graph value of a copy (values not generalised are their own). */
  originalValue(v: Value): Value {
    return this.back.get(v) ?? v;
  }
  originalNode(n: Node): Node {
    return this.origins.get(n) ?? n;
  }
}
