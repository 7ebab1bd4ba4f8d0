import { computeKnown } from "../infer.js";
import { formatLoc, type Graph, type Node, type Value } from "../ir/graph.js";
import { type Dim, mul, printDim, substitute } from "../ir/sym.js";
import type { DType } from "../ir/dtype.js";
import type { Tensor } from "../ir/tensor.js";
import "../ops/index.js";
import { getOp, type OpDef } from "../ops/registry.js";
import { batchSeparability } from "./batch.js";
import { elementwiseKernel } from "./builder.js";
import {
  type EpilogueFusion,
  chainEpilogue,
  epilogueFusions,
  fusedKernel,
  fusionGroups,
  NodeError,
} from "./fuse.js";
import { GenericCopies, type GenericUnit, genericUnits } from "./generic.js";
import { attachLive, unusedLive } from "./live.js";
import { lowerCtx, lowerNode } from "./lower.js";
import { capacityPadded, PaddedAxes } from "./padding.js";
import type { Program, ProgramBuffer, Step } from "./program.js";
import { chunkNodes, type Part, planSplit, staticSize } from "./split.js";
import { elementBytes, type KType, type Kernel, type Lowering, type Target, storageType } from "./types.js";
import {
  type OutputView,
  type StridedView,
  type ViewGraph,
  inputView,
  outputView,
  rowMajorView,
} from "./views.js";

/** The graph cannot be scheduled (ops without kernels, failing lowerings); lists every problem. */
export class ScheduleError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
  }
}

export interface ScheduleOptions {
  /** Program name (default: the graph's). */
  readonly name?: string;
  /**
   * Fold Transpose / Slice / view chains into the strided reads and writes of the kernels that
   * accept them (views.ts; default true). False materialises every chain (comparisons, debugging).
   */
  readonly stridedViews?: boolean;
  /**
   * One kernel for units that differ only in static dims (generic.ts; default true): each step
   * binds the class symbols to its own values. False gives every shape its own kernel.
   */
  readonly genericKernels?: boolean;
}

/** How a node is named in steps and messages: its first output value (unique in the graph). */
export function nodeName(n: Node): string {
  return n.outputs[0]?.name ?? `#${n.id}`;
}

/** `node %y in blocks.0.attn (attention)`, with the source location first when known. */
export function nodeLabel(n: Node): string {
  const loc = formatLoc(n.loc);
  return `${loc ? `${loc}: ` : ""}node %${nodeName(n)}${n.scope ? ` in ${n.scope}` : ""} (${n.op})`;
}

/** A valid identifier from a value name (kernel names start with it). */
function ident(s: string): string {
  const t = s.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[A-Za-z_]/.test(t) ? t : `n_${t}`;
}

type Unit =
  | { readonly k: "group"; readonly nodes: readonly Node[] }
  | { readonly k: "view"; readonly node: Node }
  | { readonly k: "node"; readonly node: Node }
  /** A node whose kernel applies a pointwise group to its output before storing (`lowerEpilogue`). */
  | { readonly k: "epilogue"; readonly node: Node; readonly nodes: readonly Node[] };

/** `u` computing `copies` (its nodes copied in `unitNodes` order) instead. */
function copyUnit(u: Unit, copies: readonly Node[]): Unit {
  switch (u.k) {
    case "group":
      return { k: "group", nodes: copies };
    case "epilogue":
      return { k: "epilogue", node: copies[0], nodes: copies.slice(1) };
    case "node":
    case "view":
      return { k: u.k, node: copies[0] };
  }
}

/** The graph nodes a unit computes, in order. */
function unitNodes(u: Unit): readonly Node[] {
  switch (u.k) {
    case "group":
      return u.nodes;
    case "epilogue":
      return [u.node, ...u.nodes];
    case "view":
    case "node":
      return [u.node];
  }
}

/** One dispatch before buffers exist: parameters bound to values (or chunks of them) or to the unit's scratch. */
interface PendingLaunch {
  readonly kernel: Kernel;
  readonly args: readonly ({ readonly v: Value; readonly part?: Part } | { readonly scratch: string })[];
}

interface Lowered {
  readonly unit: Unit;
  readonly launches: readonly PendingLaunch[];
  readonly scratch: Lowering["scratch"];
  /** Rows of the split axis this chunk computes (units split by the binding limit), for scratch names. */
  readonly chunk?: string;
  /** View-like nodes the kernels read or write through strides instead of materialising (views.ts). */
  readonly folded: readonly Node[];
  /** Values of the generic kernel's class symbols for this unit's steps (generic.ts). */
  readonly bind?: Readonly<Record<string, number>>;
}

/** The strided views of one scheduling attempt (views.ts). */
interface Views {
  /** The graph as input walks see it (they stop at output targets and refused padded views). */
  readonly graph: ViewGraph;
  /** The graph as output walks saw it (they stop at refused padded views only). */
  readonly outputGraph: ViewGraph;
  /** Nodes storing output 0 through strides into a later value, and how. */
  readonly outputs: ReadonlyMap<Node, OutputView>;
  /** The nodes of those output chains (not materialised), to the node that writes through them. */
  readonly chainOwner: ReadonlyMap<Node, Node>;
  /** Units that read no strided inputs (they must be split by the binding limit). */
  readonly off: ReadonlySet<Node>;
}

/** What lowering a unit needs besides the unit. */
interface Sched {
  readonly defs: ReadonlyMap<Node, OpDef | undefined>;
  readonly target: Target;
  readonly padded: PaddedAxes;
  /** Absent: every kernel reads and writes row-major values (chunks of split units). */
  readonly views?: Views;
  /** Units lowered as generic kernels (by index in the unit order), with their bindings. */
  readonly generic?: ReadonlyMap<number, GenericUnit>;
  /** Upper bounds of symbolic dims for lowerings (generic units: the class maximum). */
  readonly bound?: (d: Dim) => number | undefined;
}

/** The graph as view walks see it, before any stop rule (built once per `buildProgram`). */
type ViewBase = Omit<ViewGraph, "stop">;

function viewBase(g: Graph, defs: ReadonlyMap<Node, OpDef | undefined>): ViewBase {
  const producer = new Map<Value, Node>();
  const users = new Map<Value, Node[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    // Ops that read only their inputs' types bind no input: no use for output walks.
    if (defs.get(n)?.typeOnly) continue;
    for (const v of n.inputs) if (v && !users.get(v)?.includes(n)) users.set(v, [...(users.get(v) ?? []), n]);
  }
  const outs = new Set(g.outputs);
  let known: Map<Value, readonly Dim[]> | undefined;
  return {
    producer: (v) => producer.get(v),
    users: (v) => users.get(v) ?? [],
    def: (n) => defs.get(n),
    known: (v) => (known ??= computeKnown(g)).get(v),
    isOutput: (v) => outs.has(v),
  };
}

/** Plans output views and the graph input walks see; `off` nodes use no views. */
function planViews(g: Graph, common: ViewBase, off: ReadonlySet<Node>, padded: PaddedAxes): Views {
  // Views cross capacity-padded values (every kernel indexes them at capacity, and masks by logical
  // position), but not a view-like node the padded-axis rules refuse: its copy kernel reports it.
  const refused = new Map<Node, boolean>();
  const refuses = (n: Node | undefined): boolean => {
    if (!n || common.def(n)?.view) return false;
    let r = refused.get(n);
    if (r === undefined) {
      r = padded.refusal(n) !== undefined;
      refused.set(n, r);
    }
    return r;
  };
  const stop = (v: Value): boolean => refuses(common.producer(v));
  const outputs = new Map<Node, OutputView>();
  const chainOwner = new Map<Node, Node>();
  const targets = new Set<Value>();
  for (const n of g.nodes) {
    if (!common.def(n)?.stridedOutput || off.has(n) || n.outputs.length === 0) continue;
    const ov = outputView(n.outputs[0], { ...common, stop });
    if (!ov) continue;
    outputs.set(n, ov);
    for (const c of ov.nodes) chainOwner.set(c, n);
    targets.add(ov.target);
  }
  return {
    graph: { ...common, stop: (v) => stop(v) || targets.has(v) },
    outputGraph: { ...common, stop },
    outputs,
    chainOwner,
    off,
  };
}

/** Signals that a unit reading through views must be split: it is scheduled again without views. */
class SplitWithViews extends Error {
  constructor(readonly nodes: readonly Node[]) {
    super("a unit with strided views needs a split");
  }
}

/**
 * Schedules a verified graph onto kernels (see docs/backends.md, "Scheduling"): constants become
 * deduplicated constant buffers, views alias their input's storage, pointwise chains fuse into one
 * kernel each, every other op is lowered with `lowerNode`; nodes whose results no kernel reads
 * (shape arithmetic feeding views) are dropped. Units that differ only in static dims (token
 * counts after a reduction policy) share generic kernels whose steps bind their own values
 * (generic.ts). Every op without a kernel is reported at once.
 */
export function buildProgram(g: Graph, target: Target, opts: ScheduleOptions = {}): Program {
  const problems: string[] = [];
  const defs = new Map<Node, OpDef | undefined>();
  for (const n of g.nodes) {
    const def = getOp(n.op);
    if (!def) problems.push(`${nodeLabel(n)}: unknown op`);
    defs.set(n, def);
  }
  if (problems.length) throw new ScheduleError(problems);
  // Capacity-padded token axes (adaptive tokens.prune): which consumers mask by the live length.
  const padded = new PaddedAxes(g);
  const base = viewBase(g, defs);
  if (opts.stridedViews !== false) aliasRowMajorViews(g, defs, base, padded);

  const groups = fusionGroups(g, defs, target.maxStorageBuffersPerStage);
  const epilogues = epilogueFusions(g, defs, groups, target.maxStorageBuffersPerStage);
  const units = orderUnits(g, defs, groups, epilogues);

  // Units that must be split read and write row-major values: scheduled again with views off for them.
  const off = new Set<Node>();
  const schedule = (generic?: ReadonlyMap<number, GenericUnit>): Attempt => {
    for (;;)
      try {
        const views = opts.stridedViews === false ? undefined : planViews(g, base, off, padded);
        const sched = { defs, target, padded, ...(views ? { views } : {}), ...(generic ? { generic } : {}) };
        return scheduleUnits(units, sched, g.outputs);
      } catch (e) {
        if (!(e instanceof SplitWithViews)) throw e;
        for (const n of e.nodes) off.add(n);
      }
  };
  let attempt = schedule();
  // Classes are known once the static schedule shows which view chains each unit folds.
  if (opts.genericKernels !== false) {
    const generic = genericClasses(g, units, attempt.folded);
    if (generic.size) attempt = schedule(generic);
  }
  const { lowered, dispatched, genericRefusals } = attempt;
  const batch = batchSeparability(g, dispatched, defs, target, nodeLabel);
  return {
    ...assemble(g, target, opts.name ?? g.name, lowered),
    ...("symbol" in batch ? { batchSymbol: batch.symbol } : { batchRefusal: batch.why }),
    ...(genericRefusals.length ? { genericRefusals } : {}),
  };
}

/**
 * View-like nodes that keep their input's row-major layout (views.ts `rowMajorView`: a Transpose
 * of size-1 axes...) become views: no copy kernel, their output aliases their input's storage.
 * Those the padded-axis rules refuse keep their kernels, so that the refusal is reported.
 */
function aliasRowMajorViews(
  g: Graph,
  defs: Map<Node, OpDef | undefined>,
  base: ViewBase,
  padded: PaddedAxes,
): void {
  const vg: ViewGraph = { ...base, stop: () => false };
  for (const n of g.nodes) {
    const def = defs.get(n);
    if (!def || def.view || def.pointwise || !rowMajorView(n, vg)) continue;
    if (padded.refusal(n) !== undefined || padded.require(n).length) continue;
    defs.set(n, { ...def, view: true });
  }
}

interface Attempt {
  readonly lowered: Lowered[];
  readonly dispatched: Set<Node>;
  /** The view-like nodes each unit (by index) folds into its kernels. */
  readonly folded: ReadonlyMap<number, readonly Node[]>;
  /** Units of a generic class that kept their static kernels: `node: why`, in unit order. */
  readonly genericRefusals: string[];
}

/**
 * Backwards over the units: lowers what is needed, marking the values the kernels actually read.
 * Throws SplitWithViews when a unit reading through views needs a binding-limit split.
 */
function scheduleUnits(units: readonly Unit[], s: Sched, outputs: readonly Value[]): Attempt {
  const problems: string[] = [];
  const folded = new Map<number, readonly Node[]>();
  const needed = new Set<Value>(outputs);
  const lowered: Lowered[] = [];
  const dispatched = new Set<Node>();
  const genericRefusals: string[] = [];
  const plain: Sched = { defs: s.defs, target: s.target, padded: s.padded };
  for (let u = units.length - 1; u >= 0; u--) {
    const unit = units[u];
    try {
      const stored = new Set(unitNodes(unit).flatMap((n) => n.outputs.filter((o) => needed.has(o))));
      const ls = lowerUnit(unit, s, needed);
      if (!ls) continue;
      if (ls.folded.length && overLimit(ls, s.target)) throw new SplitWithViews(unitNodes(unit));
      if (ls.folded.length) folded.set(u, ls.folded);
      // Not generic where the unit is split by the binding limit (the split needs static sizes).
      const gu = s.generic?.get(u);
      const gl = !gu
        ? ls
        : overLimit(ls, s.target)
          ? "split by the binding limit (chunks need static sizes)"
          : lowerGeneric(ls, gu, s, stored);
      if (typeof gl === "string") {
        const ns = unitNodes(unit);
        genericRefusals.push(`${nodeLabel(ns[ns.length - 1])}: ${gl}`);
      }
      const l = typeof gl === "string" ? ls : gl;
      // Folded views count as computed here (batch separability follows the examples through them).
      for (const n of [...unitNodes(l.unit), ...l.folded]) dispatched.add(n);
      // Chunks are pushed last first: the list is reversed below.
      lowered.push(
        ...splitToLimit(l, s.defs, s.target, (u, d, n) => lowerUnit(u, { ...plain, defs: d }, n)).reverse(),
      );
    } catch (e) {
      if (e instanceof SplitWithViews) throw e;
      problems.push(describe(e, unit));
    }
  }
  if (problems.length) throw new ScheduleError(problems.reverse());
  return { lowered: lowered.reverse(), dispatched, folded, genericRefusals: genericRefusals.reverse() };
}

function describe(e: unknown, unit: Unit): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof NodeError) return `${nodeLabel(e.node)}: ${msg}`;
  const ns = unitNodes(unit);
  return `${nodeLabel(ns[ns.length - 1])}: ${msg}`;
}

/**
 * Generic lowerings of units (generic.ts): a unit's nodes and the view chains its static kernels
 * fold make up its structure. Units on capacity-padded token axes keep their static kernels
 * (their masks follow live counts of their own axes).
 */
function genericClasses(
  g: Graph,
  units: readonly Unit[],
  folded: ReadonlyMap<number, readonly Node[]>,
): Map<number, GenericUnit> {
  const padded = capacityPadded(g);
  return genericUnits(
    units.map((u, i) => ({
      kind: u.k,
      nodes: u.k === "view" ? [] : [...unitNodes(u), ...(folded.get(i) ?? [])],
    })),
    (v) => g.constants.has(v),
    (nodes) => !nodes.some((n) => n.inputs.some(padded) || n.outputs.some(padded)),
    new Set(g.symbols.keys()),
  );
}

/** The strided views as a generic unit's copies see them (walks over copies of the graph). */
function copyViews(views: Views, c: GenericCopies, nodes: readonly Node[]): Views | undefined {
  const graph = copyGraph(views.graph, c);
  const outputGraph = copyGraph(views.outputGraph, c);
  const outputs = new Map<Node, OutputView>();
  for (const n of nodes) {
    if (!views.outputs.has(n)) continue;
    const ov = outputView(c.value(n.outputs[0]), outputGraph);
    if (!ov) return undefined;
    outputs.set(c.node(n), ov);
  }
  const off = new Set([...views.off].map((n) => c.node(n)));
  return { graph, outputGraph, outputs, chainOwner: new Map(), off };
}

/** A view graph walked over copies (each answer is the graph's for the originals, copied). */
function copyGraph(vg: ViewGraph, c: GenericCopies): ViewGraph {
  return {
    producer: (v) => {
      const p = vg.producer(c.originalValue(v));
      return p && c.node(p);
    },
    users: (v) => vg.users(c.originalValue(v)).map((n) => c.node(n)),
    def: (n) => vg.def(c.originalNode(n)),
    known: (v) => vg.known(c.originalValue(v)),
    isOutput: (v) => vg.isOutput(c.originalValue(v)),
    stop: (v) => vg.stop(c.originalValue(v)),
  };
}

/**
 * A statically lowered unit lowered again over its class symbols: the same launches binding the
 * same values and folding the same views (else why not: the unit keeps its static kernels),
 * scratch sized for this member, steps binding its symbol values.
 */
function lowerGeneric(l: Lowered, gu: GenericUnit, s: Sched, stored: ReadonlySet<Value>): Lowered | string {
  const c = new GenericCopies(gu);
  const nodes = unitNodes(l.unit);
  const copies = nodes.map((n) => c.node(n));
  const defs = new Map(s.defs);
  copies.forEach((x, i) => defs.set(x, s.defs.get(nodes[i])));
  const unit = copyUnit(l.unit, copies);
  const views = s.views && copyViews(s.views, c, nodes);
  if (s.views && !views) return "its view chains do not copy over the class symbols";
  const needed = new Set([...stored].map((v) => c.value(v)));
  const gl = lowerUnit(unit, { ...s, defs, ...(views ? { views } : {}), bound: gu.bound }, needed);
  if (!gl) return "the generic lowering computes nothing";
  const launches = gl.launches.map((la) => ({
    kernel: la.kernel,
    args: la.args.map((a) => ("v" in a ? { ...a, v: c.originalValue(a.v) } : a)),
  }));
  const folded = gl.folded.map((n) => c.originalNode(n));
  if (launches.length !== l.launches.length)
    return `${launches.length} generic launches vs ${l.launches.length} static ones`;
  if (!launches.every((la, i) => sameArgs(la.args, l.launches[i].args)))
    return "the generic kernels bind other values than the static ones";
  if (folded.length !== l.folded.length || !folded.every((n, i) => n === l.folded[i]))
    return "the generic kernels fold other views than the static ones";
  const values = new Map(Object.entries(gu.bind).map(([k, v]): [string, Dim] => [k, v]));
  return {
    unit: l.unit,
    folded: l.folded,
    bind: gu.bind,
    scratch: gl.scratch.map((x) => ({ ...x, size: substitute(x.size, values) })),
    launches,
  };
}

function sameArgs(a: PendingLaunch["args"], b: PendingLaunch["args"]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i];
      if ("scratch" in x) return "scratch" in y && x.scratch === y.scratch;
      return "v" in y && x.v === y.v && x.part === y.part;
    })
  );
}

/** Groups, views and other nodes in an order where every unit follows the units it reads. */
function orderUnits(
  g: Graph,
  defs: ReadonlyMap<Node, OpDef | undefined>,
  groups: Node[][],
  epilogues: readonly EpilogueFusion[],
): Unit[] {
  const unitOf = new Map<Node, Unit>();
  for (const nodes of groups) {
    const u: Unit = { k: "group", nodes };
    for (const n of nodes) unitOf.set(n, u);
  }
  for (const e of epilogues) {
    const u: Unit = { k: "epilogue", node: e.node, nodes: e.group };
    for (const n of unitNodes(u)) unitOf.set(n, u);
  }
  for (const n of g.nodes)
    if (!unitOf.has(n)) unitOf.set(n, defs.get(n)?.view ? { k: "view", node: n } : { k: "node", node: n });
  const producer = new Map<Value, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const out: Unit[] = [];
  const done = new Set<Unit>();
  const deps = (u: Unit): Unit[] => {
    const ds: Unit[] = [];
    for (const n of unitNodes(u))
      for (const v of n.inputs) {
        const p = v ? producer.get(v) : undefined;
        if (p && unitOf.get(p) !== u) ds.push(unitOf.get(p)!);
      }
    return ds.reverse(); // popped first to last: steps keep the graph's order where they can
  };
  // Depth-first post-order with an explicit stack (graphs can be thousands of nodes deep).
  for (const n of g.nodes) {
    const start = unitOf.get(n)!;
    if (done.has(start)) continue;
    done.add(start);
    const stack: { u: Unit; ds: Unit[] }[] = [{ u: start, ds: deps(start) }];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const d = top.ds.pop();
      if (d === undefined) {
        out.push(top.u);
        stack.pop();
      } else if (!done.has(d)) {
        done.add(d);
        stack.push({ u: d, ds: deps(d) });
      }
    }
  }
  return out;
}

/**
 * A node of an output chain (views.ts) is not materialised: its owner stores into the chain's
 * last value directly, so that value being needed makes the owner's output 0 needed.
 */
function chainLink(n: Node, views: Views | undefined, needed: Set<Value>): boolean {
  const owner = views?.chainOwner.get(n);
  if (!owner) return false;
  if (needed.has(n.outputs[0])) needed.add(owner.outputs[0]);
  return true;
}

/** Strided views of the values a group reads (except `given`), unless the unit reads row-major. */
function groupViews(
  nodes: readonly Node[],
  given: ReadonlySet<Value>,
  views: Views | undefined,
): Map<Value, StridedView> {
  const out = new Map<Value, StridedView>();
  if (!views || nodes.some((n) => views.off.has(n))) return out;
  const produced = new Set(nodes.map((n) => n.outputs[0]));
  for (const n of nodes)
    for (const v of n.inputs) {
      if (!v || produced.has(v) || given.has(v) || out.has(v)) continue;
      const iv = inputView(v, views.graph);
      if (iv) out.set(v, iv);
    }
  return out;
}

/** The nodes folded by a group's views. */
function foldedBy(views: ReadonlyMap<Value, StridedView>): Node[] {
  return [...views.values()].flatMap((v) => v.nodes);
}

/** Lowers one unit if any of its results is needed; marks the values its kernels read. */
function lowerUnit(unit: Unit, s: Sched, needed: Set<Value>): Lowered | undefined {
  const { defs, target, padded, views } = s;
  switch (unit.k) {
    case "view": {
      if (chainLink(unit.node, views, needed)) return undefined;
      const [x] = unit.node.inputs;
      if (!needed.has(unit.node.outputs[0])) return undefined;
      if (!x) throw new Error("a view needs its input 0");
      needed.add(x);
      return { unit, launches: [], scratch: [], folded: [] };
    }
    case "group": {
      const { nodes, stored } = liveMembers(unit.nodes, needed);
      if (nodes.length === 0) return undefined;
      return lowerGroup(nodes, s, stored, needed);
    }
    case "epilogue": {
      const n = unit.node;
      const o = n.outputs[0];
      const { nodes, stored } = liveMembers(unit.nodes, needed);
      if (nodes.length === 0) return undefined;
      // Live members that no longer read the node's output: the node is dead, the group stands alone.
      if (!nodes.some((m) => m.inputs.includes(o))) return lowerGroup(nodes, s, stored, needed);
      if (stored.size !== 1) throw new Error(`epilogue of ${nodeName(n)} would store ${stored.size} values`);
      const [result] = stored;
      const def = defs.get(n)!;
      if (padded.require(n).length) throw new Error("a kernel with an epilogue cannot mask padded tokens");
      const name = ident(nodeName(n));
      const iv = groupViews(nodes, new Set([o]), views);
      const chain = chainEpilogue(name, nodes, defs, o, result, target, iv);
      const ctx = lowerCtx(
        def,
        name,
        n.attrs,
        n.inputs.map((v) => v?.type ?? null),
        n.outputs.map((v) => v.type),
        target,
        {},
        s.bound,
      );
      // Epilogue inputs are bound after the node's own: `{ kind: "input", index: n.inputs.length + j }`.
      const l = def.lowerEpilogue!(ctx, chain.epilogue);
      return {
        unit: { k: "epilogue", node: n, nodes },
        launches: bindLaunches(l, [...n.inputs, ...chain.inputs], [result], needed),
        scratch: l.scratch,
        folded: foldedBy(iv),
      };
    }
    case "node": {
      const n = unit.node;
      if (chainLink(n, views, needed)) return undefined;
      if (!n.outputs.some((o) => needed.has(o))) return undefined;
      const def = defs.get(n)!;
      if (!def.pointwise && !def.lower) {
        for (const v of n.inputs) if (v) needed.add(v);
        throw new Error("no kernel lowering for this op");
      }
      const live = padded.require(n);
      const on = views && !views.off.has(n) ? views : undefined;
      const ov = on?.outputs.get(n);
      const iv = n.inputs.map((v, i) =>
        on && v && def.stridedInputs?.includes(i) ? inputView(v, on.graph) : undefined,
      );
      const ctx = lowerCtx(
        def,
        ident(nodeName(n)),
        n.attrs,
        n.inputs.map((v) => v?.type ?? null),
        n.outputs.map((o) => o.type),
        target,
        { ...(iv.some((x) => x) ? { inputs: iv } : {}), ...(ov ? { output: ov } : {}) },
        s.bound,
      );
      // Live counts are bound after the node's inputs: `{ kind: "input", index: n.inputs.length + j }`.
      const counts = live.map((s) => s.count!);
      attachLive(
        ctx,
        live.map((s, j) => ({
          symbol: s.symbol,
          index: n.inputs.length + j,
          batch: s.count!.type.dims[0],
          extra: s.extra,
        })),
      );
      const l = lowerNode(def, ctx);
      const unused = unusedLive(ctx);
      if (unused.length)
        throw new Error(`the ${n.op} lowering does not mask the padded length ${unused.join(", ")}`);
      // Strided inputs bind their bases; a strided output binds the value it is stored into.
      const ins = n.inputs.map((v, i) => iv[i]?.base ?? v);
      const outs = ov ? [ov.target, ...n.outputs.slice(1)] : n.outputs;
      return {
        unit,
        launches: bindLaunches(l, [...ins, ...counts], outs, needed),
        scratch: l.scratch,
        folded: [...iv.flatMap((x) => x?.nodes ?? []), ...(ov?.nodes ?? [])],
      };
    }
  }
}

/** The values a lowered unit binds (with storage types), and those above the binding limit. */
function bindings(
  l: Lowered,
  target: Target,
): {
  bound: Map<Value, Exclude<KType, "bool">>;
  big: Value[];
  over: (dims: readonly Dim[], t: Exclude<KType, "bool">) => boolean;
  bigScratch: Lowering["scratch"];
} {
  const limit = target.maxStorageBindingBytes;
  const bound = new Map<Value, Exclude<KType, "bool">>();
  for (const la of l.launches)
    la.args.forEach((a, i) => {
      if ("v" in a) bound.set(a.v, la.kernel.params[i].t);
    });
  const over = (dims: readonly Dim[], t: Exclude<KType, "bool">): boolean => {
    const n = staticSize(dims);
    return n !== undefined && n * elementBytes(t) > limit;
  };
  const big = [...bound].filter(([v, t]) => over(v.type.dims, t)).map(([v]) => v);
  return { bound, big, over, bigScratch: l.scratch.filter((s) => over([s.size], s.t)) };
}

/** Whether `splitToLimit` would split the unit. */
function overLimit(l: Lowered, target: Target): boolean {
  const { big, bigScratch } = bindings(l, target);
  return l.unit.k !== "view" && (big.length > 0 || bigScratch.length > 0);
}

/**
 * A lowered unit, or its chunks when it binds a tensor or scratch above the target's binding
 * limit (split.ts): each chunk is the unit lowered again for the chunk's shapes (identical
 * chunks dedupe to one kernel), its chunked values bound as offset views of the whole buffers.
 */
function splitToLimit(
  l: Lowered,
  defs: ReadonlyMap<Node, OpDef | undefined>,
  target: Target,
  lower: (u: Unit, defs: ReadonlyMap<Node, OpDef | undefined>, needed: Set<Value>) => Lowered | undefined,
): Lowered[] {
  const limit = target.maxStorageBindingBytes;
  const { bound, big, over, bigScratch } = bindings(l, target);
  if ((big.length === 0 && bigScratch.length === 0) || l.unit.k === "view") return [l];
  const nodes = unitNodes(l.unit);
  const split = planSplit(nodes, defs, bound, big, target);
  const out: Lowered[] = [];
  for (let start = 0; start < split.extent; start += split.rows) {
    const { nodes: copies, origin } = chunkNodes(nodes, split, start);
    const copyDefs = new Map(copies.map((c, i) => [c, defs.get(nodes[i])]));
    // The chunk stores what the whole unit stored.
    const needed = new Set<Value>();
    for (const c of copies)
      for (const v of [...c.inputs, ...c.outputs]) if (v && bound.has(origin.get(v)?.v ?? v)) needed.add(v);
    const c = lower(copyUnit(l.unit, copies), copyDefs, needed)!;
    const rows = `[${start}:${Math.min(split.extent, start + split.rows)}]`;
    for (const s of c.scratch)
      if (over([s.size], s.t))
        throw new Error(
          `scratch '${s.name}' of chunk ${rows} needs ${printDim(s.size)} ${s.t} elements, above the max storage binding size ${limit} bytes`,
        );
    out.push({
      unit: l.unit,
      scratch: c.scratch,
      folded: [],
      chunk: rows,
      launches: c.launches.map((la) => ({
        kernel: la.kernel,
        args: la.args.map((a) => ("v" in a ? (origin.get(a.v) ?? a) : a)),
      })),
    });
  }
  return out;
}

/** Members of a group that feed something needed (in order), and the needed values they store. */
function liveMembers(
  group: readonly Node[],
  needed: ReadonlySet<Value>,
): { nodes: Node[]; stored: Set<Value> } {
  const live = new Set<Node>();
  const stored = new Set<Value>();
  for (let i = group.length - 1; i >= 0; i--) {
    const n = group[i];
    const o = n.outputs[0];
    if (needed.has(o)) stored.add(o);
    if (needed.has(o) || group.some((m) => live.has(m) && m.inputs.includes(o))) live.add(n);
  }
  return { nodes: group.filter((n) => live.has(n)), stored };
}

function lowerGroup(
  nodes: readonly Node[],
  s: Sched,
  stored: ReadonlySet<Value>,
  needed: Set<Value>,
): Lowered {
  const last = nodes[nodes.length - 1];
  const iv = groupViews(nodes, new Set(), s.views);
  const f = fusedKernel(ident(nodeName(last)), nodes, s.defs, stored, s.target, iv);
  for (const v of f.args) needed.add(v);
  return {
    unit: { k: "group", nodes },
    launches: [{ kernel: f.kernel, args: f.args.map((v) => ({ v })) }],
    scratch: [],
    folded: foldedBy(iv),
  };
}

/** A lowering's launches with bindings resolved to values (marking the inputs read as needed). */
function bindLaunches(
  l: Lowering,
  inputs: readonly (Value | null)[],
  outputs: readonly Value[],
  needed: Set<Value>,
): PendingLaunch[] {
  return l.launches.map((la): PendingLaunch => {
    if (la.args.length !== la.kernel.params.length)
      throw new Error(
        `kernel ${la.kernel.name} has ${la.kernel.params.length} parameters but ${la.args.length} bindings`,
      );
    return {
      kernel: la.kernel,
      args: la.args.map((b) => {
        switch (b.kind) {
          case "input": {
            const v = inputs[b.index];
            if (!v) throw new Error(`kernel ${la.kernel.name} reads input ${b.index}, which is absent`);
            needed.add(v);
            return { v };
          }
          case "output": {
            const v = outputs[b.index];
            if (!v)
              throw new Error(`kernel ${la.kernel.name} writes output ${b.index}, which does not exist`);
            return { v };
          }
          case "scratch":
            if (!l.scratch.some((s) => s.name === b.name))
              throw new Error(`kernel ${la.kernel.name} uses undeclared scratch '${b.name}'`);
            return { scratch: b.name };
        }
      }),
    };
  });
}

/** Nominal IR dtype of a scratch buffer (its `storage` is what counts). */
function scratchDtype(t: Exclude<KType, "bool">): DType {
  return t === "u32" ? "i32" : t === "bf16" ? "f32" : t;
}

/** Forward pass: buffers, deduplicated kernels, steps, live ranges. */
function assemble(g: Graph, target: Target, name: string, lowered: readonly Lowered[]): Program {
  // Data-dependent symbols are sized by their capacity.
  const caps = new Map<string, Dim>();
  for (const s of g.symbols.values()) if (s.capacity !== undefined) caps.set(s.name, s.capacity);
  const sizeOf = (dims: readonly Dim[]): Dim => substitute(mul(...dims), caps);

  type Draft = Omit<ProgramBuffer, "firstUse" | "lastUse">;
  const buffers: Draft[] = [];
  const bufOf = new Map<Value, number>();
  const viewSource = new Map<Value, Value>();
  for (const l of lowered)
    if (l.unit.k === "view") viewSource.set(l.unit.node.outputs[0], l.unit.node.inputs[0]!);
  const outputs = new Set(g.outputs);
  const root = (id: number): number => buffers[id].aliasOf ?? id;
  const add = (b: Omit<Draft, "id">): number => {
    buffers.push({ id: buffers.length, ...b });
    return buffers.length - 1;
  };
  const plain = (v: Value, kind: ProgramBuffer["kind"], extra: Partial<Draft> = {}): Omit<Draft, "id"> => ({
    name: v.name,
    dtype: v.type.dtype,
    dims: v.type.dims,
    storage: storageType(v.type.dtype, target),
    size: sizeOf(v.type.dims),
    kind,
    ...extra,
  });
  const constKeys = new Map<string, number[]>();
  const constantBuf = (v: Value): number => {
    const c = g.constants.get(v)!;
    const key = c.data ? dataKey(c.data) : c.ref !== undefined ? `ref:${c.ref}` : `value:${v.name}`;
    for (const id of constKeys.get(key) ?? []) {
      const d = buffers[id].data;
      if (!c.data || (d && sameData(d, c.data))) return id;
    }
    const id = add(plain(v, "constant", c.data ? { data: c.data } : {}));
    constKeys.set(key, [...(constKeys.get(key) ?? []), id]);
    return id;
  };
  const parts = new Map<string, number>();
  /** An offset view of (the storage of) `v`: one chunk of a split unit. */
  const partFor = (v: Value, p: Part): number => {
    const whole = bufFor(v);
    const key = `${whole}:${p.offset}:${p.dims.join(",")}`;
    const have = parts.get(key);
    if (have !== undefined) return have;
    const w = buffers[whole];
    const id = add({
      name: `${v.name}[${p.start}:${p.end}]`,
      dtype: w.dtype,
      dims: p.dims,
      storage: w.storage,
      size: mul(...p.dims),
      kind: "intermediate",
      aliasOf: root(whole),
      offset: (w.offset ?? 0) + p.offset,
    });
    parts.set(key, id);
    return id;
  };
  const bufFor = (v: Value): number => {
    const have = bufOf.get(v);
    if (have !== undefined) return have;
    let id: number;
    const src = viewSource.get(v);
    if (g.constants.has(v)) id = constantBuf(v);
    else if (src)
      id = add(plain(v, outputs.has(v) ? "output" : "intermediate", { aliasOf: root(bufFor(src)) }));
    else id = add(plain(v, outputs.has(v) ? "output" : "intermediate"));
    bufOf.set(v, id);
    return id;
  };
  for (const v of g.inputs) bufOf.set(v, add(plain(v, "input")));

  const kernels: Kernel[] = [];
  const kernelIndex = new Map<string, number>();
  const names = new Set<string>();
  const kernelOf = (k: Kernel): number => {
    const key = JSON.stringify({ ...k, name: "" }, exactNumbers);
    const have = kernelIndex.get(key);
    if (have !== undefined) return have;
    let kname = k.name;
    for (let i = 2; names.has(kname); i++) kname = `${k.name}_${i}`;
    names.add(kname);
    kernels.push(kname === k.name ? k : { ...k, name: kname });
    kernelIndex.set(key, kernels.length - 1);
    return kernels.length - 1;
  };

  const steps: Step[] = [];
  const problems: string[] = [];
  for (const l of lowered) {
    const nodes = unitNodes(l.unit);
    const stepNodes = nodes.map(nodeName);
    const scratch = new Map<string, number>();
    for (const s of l.scratch)
      scratch.set(
        s.name,
        add({
          name: `${stepNodes[0]}${l.chunk ?? ""}.${s.name}`,
          dtype: scratchDtype(s.t),
          dims: [substitute(s.size, caps)],
          storage: s.t,
          size: substitute(s.size, caps),
          kind: "scratch",
        }),
      );
    if (l.unit.k === "view") bufFor(l.unit.node.outputs[0]);
    for (const la of l.launches) {
      if (la.kernel.params.length > target.maxStorageBuffersPerStage)
        problems.push(
          `${nodeLabel(nodes[nodes.length - 1])}: kernel ${la.kernel.name} has ${la.kernel.params.length} storage buffers, more than the target's ${target.maxStorageBuffersPerStage} per stage`,
        );
      const args = la.args.map((a) =>
        "v" in a ? (a.part ? partFor(a.v, a.part) : bufFor(a.v)) : scratch.get(a.scratch)!,
      );
      la.kernel.params.forEach((p, i) => {
        const b = buffers[args[i]];
        if (b.storage !== p.t)
          problems.push(
            `${nodeLabel(nodes[nodes.length - 1])}: kernel ${la.kernel.name} parameter '${p.name}' is ${p.t} but is bound to %${b.name} stored as ${b.storage}`,
          );
      });
      steps.push({
        kernel: kernelOf(la.kernel),
        args,
        nodes: stepNodes,
        ...(l.bind ? { bind: l.bind } : {}),
      });
    }
  }
  if (problems.length) throw new ScheduleError(problems);

  // Each output owns its storage: outputs that are (views of) inputs or constants, or share
  // storage with an earlier output, get a copy.
  const claimed = new Set<number>();
  const outIds = g.outputs.map((v) => {
    const id = bufFor(v);
    const r = root(id);
    const kind = buffers[r].kind;
    if (kind !== "input" && kind !== "constant" && !claimed.has(r)) {
      claimed.add(r);
      return id;
    }
    const copy = add(plain(v, "output"));
    claimed.add(copy);
    const b = buffers[copy];
    steps.push({
      kernel: kernelOf(copyKernel(`copy_${ident(v.name)}`, b.size, b.storage, target)),
      args: [id, copy],
      nodes: [v.name],
    });
    return copy;
  });

  // Bindings above the limit that no split removed (output copies; symbolic sizes are checked at run time).
  steps.forEach((s) =>
    s.args.forEach((a, i) => {
      const b = buffers[a];
      const n = staticSize([b.size]);
      const bytes = n === undefined ? undefined : n * elementBytes(b.storage);
      if (bytes !== undefined && bytes > target.maxStorageBindingBytes)
        problems.push(
          `node %${s.nodes[s.nodes.length - 1]}: kernel ${kernels[s.kernel].name} binds %${b.name} (${bytes} bytes) to parameter ${i}, above the target's max storage binding size ${target.maxStorageBindingBytes} bytes`,
        );
    }),
  );
  if (problems.length) throw new ScheduleError(problems);

  // Live ranges per storage (aliases share their root's); outputs live to the end.
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  steps.forEach((s, i) => {
    for (const a of s.args) {
      const r = root(a);
      if (!first.has(r)) first.set(r, i);
      last.set(r, i);
    }
  });
  for (const id of outIds) last.set(root(id), steps.length - 1);
  const isOutput = new Set(outIds);
  const finished: ProgramBuffer[] = buffers.map((b) => ({
    ...b,
    // A view of an output value that got a copy is an intermediate.
    kind: b.kind === "output" && !isOutput.has(b.id) ? "intermediate" : b.kind,
    firstUse: first.get(root(b.id)) ?? -1,
    lastUse: last.get(root(b.id)) ?? -1,
  }));
  return {
    name,
    symbols: [...g.symbols.values()].map((s) => ({
      name: s.name,
      ...(s.capacity !== undefined ? { capacity: s.capacity } : {}),
    })),
    buffers: finished,
    kernels,
    steps,
    inputs: g.inputs.map((v) => bufOf.get(v)!),
    outputs: outIds,
    target,
  };
}

/** JSON would print infinities and NaN as null and -0 as 0: keep kernels that differ apart. */
function exactNumbers(_key: string, v: unknown): unknown {
  return typeof v === "number" && (!Number.isFinite(v) || Object.is(v, -0))
    ? `#${Object.is(v, -0) ? "-0" : String(v)}`
    : v;
}

function copyKernel(name: string, size: Dim, t: Exclude<KType, "bool">, target: Target): Kernel {
  return elementwiseKernel(name, size, Math.min(64, target.maxWorkgroupInvocations), (kb) => {
    const src = kb.buffer("src", t, "read");
    const dst = kb.buffer("dst", t, "read_write");
    return (i) => kb.store(dst, i, kb.load(src, i));
  });
}

/** A cheap content key for constant deduplication (equal keys are compared element by element). */
function dataKey(t: Tensor): string {
  let h = 0x811c9dc5;
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  // Sampled (at most ~64K bytes) to keep compiling big models fast.
  const step = Math.max(1, Math.floor(bytes.length / 65536));
  for (let i = 0; i < bytes.length; i += step) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${t.dtype}[${t.shape.join(",")}]:${h.toString(16)}`;
}

function sameData(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i]))
    return false;
  for (let i = 0; i < a.data.length; i++) if (!Object.is(a.data[i], b.data[i])) return false;
  return true;
}
