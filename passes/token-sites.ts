import { computeKnown, inferNode, type InferMode, symbolicValue } from "../compiler/infer.js";
import type { AttrValue, Attrs } from "../compiler/ir/attrs.js";
import type { Graph, Node, NodeOptions, Policy, Value } from "../compiler/ir/graph.js";
import { type Dim, ceildiv, dimEquals, freeSymbols, mul, printDim, substitute } from "../compiler/ir/sym.js";
import { makeTensor } from "../compiler/ir/tensor.js";
import { tensorType, type TensorType } from "../compiler/ir/types.js";
import "../compiler/ops/index.js";
import { getOp, OpError } from "../compiler/ops/registry.js";
import type { PassContext } from "./manager.js";
import { nodeLabel } from "./rewrite.js";

/**
 * Shared machinery of the token-reduction passes (docs/passes.md, Token reduction): finding the
 * transformer blocks and the policy sites, inserting a reduction on the residual stream, keeping
 * every later shape correct (re-inference, Reshape targets that spell the old token count), and
 * threading ToMe token sizes through all reductions.
 */

export type ReduceKind = "prune" | "merge" | "pool";

/** Ops the passes insert on the residual stream; a site is applied once such a node carries its policy. */
export const REDUCTION_OPS: ReadonlySet<string> = new Set(["tokens.prune", "tokens.merge", "tokens.pool"]);

/** A transformer block as the reduction passes see it (reductions already inserted are looked through). */
export interface TokenBlock {
  readonly index: number;
  readonly attention: Node;
  /** The residual stream entering the block. */
  readonly input: Value;
  /** `input + attn(input)`; its output is the mid-block residual. */
  readonly attnAdd: Node;
}

/** Nodes reachable forward from `from`. */
function descendants(g: Graph, from: Value): Set<Node> {
  const seen = new Set<Node>();
  const live = new Set<Value>([from]);
  for (const n of g.nodes)
    if (n.inputs.some((v) => v && live.has(v))) {
      seen.add(n);
      for (const o of n.outputs) live.add(o);
    }
  return seen;
}

/**
 * Blocks in graph order: each `attention` with the first residual `Add(x, branch)` after it whose
 * branch contains the attention and whose `x` does not depend on it. Unlike `findBlocks`, the MLP
 * half is not required, so blocks stay visible after a merge is inserted between the two halves.
 */
export function tokenBlocks(g: Graph): TokenBlock[] {
  const prod = g.producerMap();
  const order = new Map(g.nodes.map((n, i) => [n, i]));
  const out: TokenBlock[] = [];
  for (const att of g.nodes) {
    if (att.op !== "attention") continue;
    const fromAtt = descendants(g, att.outputs[0]);
    for (const n of g.nodes.slice(order.get(att)! + 1)) {
      if (n.op !== "Add" || !fromAtt.has(n) || n.inputs.length !== 2) continue;
      const x = n.inputs.find((v) => v && !(prod.get(v) && fromAtt.has(prod.get(v)!)));
      if (!x) continue;
      if (!descendants(g, x).has(att)) continue;
      out.push({ index: out.length, attention: att, input: x, attnAdd: n });
      break;
    }
  }
  return out;
}

/** A policy site not applied yet: its node, policy and the block it reduces. */
export interface PendingSite {
  readonly node: Node;
  readonly policy: Policy;
  readonly params: Attrs;
  /** The scope the selector matched (one of the policy's `sites`). */
  readonly scope: string;
  /** Index of that scope among the policy's sites (merge schedules). */
  readonly siteIndex: number;
}

function policyKind(p: Policy | undefined): string | undefined {
  const k = p?.params.kind;
  return typeof k === "string" ? k : undefined;
}

/** Site nodes of `kind` whose policy no inserted reduction carries yet, in graph order. */
export function pendingSites(g: Graph, kind: ReduceKind): PendingSite[] {
  const out: PendingSite[] = [];
  for (const n of g.nodes) {
    if (n.policy === undefined || REDUCTION_OPS.has(n.op)) continue;
    const p = g.policies.get(n.policy);
    if (!p || policyKind(p) !== kind) continue;
    const sites = Array.isArray(p.params.sites) ? (p.params.sites as readonly string[]) : [];
    const scope = n.scope ?? "";
    const siteIndex = sites.findIndex((s) => scope === s || scope.startsWith(`${s}.`));
    out.push({
      node: n,
      policy: p,
      params: p.params,
      scope: siteIndex >= 0 ? sites[siteIndex] : scope,
      siteIndex,
    });
  }
  return out;
}

/** `@p.0 (blocks.3)` for messages. */
export function siteLabel(s: PendingSite): string {
  const loc = s.policy.loc;
  const at = loc?.file ? ` at ${loc.file}:${loc.line ?? 1}:${loc.col ?? 1}` : "";
  return `${String(s.params.kind)} @${s.policy.name} on scope '${s.scope}'${at}`;
}

/**
 * The block a site reduces: the last block whose residual input is defined before the site node
 * (so the site node lies inside that block). Throws when the site precedes every block or lies
 * after the last block's attention residual.
 */
export function blockOfSite(g: Graph, blocks: readonly TokenBlock[], s: PendingSite): TokenBlock {
  const order = new Map(g.nodes.map((n, i) => [n, i]));
  const pos = order.get(s.node)!;
  const prod = g.producerMap();
  const defined = (v: Value): number => {
    const p = prod.get(v);
    return p ? order.get(p)! : -1;
  };
  let found: TokenBlock | undefined;
  for (const b of blocks) if (defined(b.input) < pos) found = b;
  if (!found)
    throw new Error(`${siteLabel(s)}: the site node ${nodeLabel(s.node)} is not inside a transformer block`);
  const next = blocks[found.index + 1];
  if (!next && !inBlockTail(g, found, s.node))
    throw new Error(
      `${siteLabel(s)}: the site node ${nodeLabel(s.node)} comes after the last transformer block`,
    );
  return found;
}

/** Whether `n` belongs to the last block: it depends on the block's input and precedes the next attention-free end. */
function inBlockTail(g: Graph, b: TokenBlock, n: Node): boolean {
  if (n === b.attnAdd) return true;
  const down = descendants(g, b.input);
  if (!down.has(n)) return false;
  // Inside the last block means: before the second residual Add that follows the attention's.
  const order = new Map(g.nodes.map((m, i) => [m, i]));
  const mid = b.attnAdd.outputs[0];
  const after = descendants(g, mid);
  const adds = g.nodes.filter(
    (m) => m.op === "Add" && after.has(m) && order.get(m)! > order.get(b.attnAdd)! && isResidualOf(g, m, mid),
  );
  const end = adds.length ? order.get(adds[0])! : Infinity;
  return order.get(n)! <= end;
}

/** An Add reading the residual `mid` (possibly through inserted reductions) on one side. */
function isResidualOf(g: Graph, add: Node, mid: Value): boolean {
  const prod = g.producerMap();
  return add.inputs.some((v) => {
    let cur: Value | null = v;
    for (let i = 0; i < 4 && cur; i++) {
      if (cur === mid) return true;
      const p = prod.get(cur);
      cur = p && REDUCTION_OPS.has(p.op) ? p.inputs[0] : null;
    }
    return false;
  });
}

/** Where `insertNode` puts a node. */
export type At = { readonly before: Node } | { readonly after: Node };

/** Inserts a node with its output types inferred from its inputs (errors name the op and `label`). */
export function insertNode(
  g: Graph,
  at: At,
  op: string,
  inputs: readonly (Value | null)[],
  numOutputs: number,
  attrs: Attrs,
  opts: NodeOptions,
): Node {
  const def = getOp(op);
  if (!def) throw new Error(`op '${op}' is not registered`);
  let types: TensorType[];
  try {
    types = inferNode(g, def, { op, attrs, inputs }, numOutputs, {
      known: computeKnown(g),
      dataDims: "mint",
    });
  } catch (e) {
    if (e instanceof OpError) throw new Error(`inserting ${op}: ${e.message}`, { cause: e });
    throw e;
  }
  return "before" in at
    ? g.insertBefore(at.before, op, inputs, types, attrs, opts)
    : g.insertAfter(at.after, op, inputs, types, attrs, opts);
}

/** Replaces `from` by `to` as an input of every node after `anchor` (graph outputs stay as they are). */
export function replaceUsesAfter(g: Graph, from: Value, to: Value, anchor: Node): void {
  const nodes = g.nodes;
  const i = nodes.indexOf(anchor);
  for (const n of nodes.slice(i + 1))
    n.inputs.forEach((v, k) => {
      if (v === from) g.setInput(n, k, to);
    });
}

/** The token axis of the residual stream: 1, as `tokens.*` ops read `[B, N, C]`. */
export function streamTokens(s: PendingSite, v: Value): Dim {
  const t = v.type;
  if (t.dims.length !== 3)
    throw new Error(
      `${siteLabel(s)}: the residual stream %${v.name} is ${printDim(t.dims.length)}-D, expected [B, N, C]`,
    );
  const role = t.axes?.findIndex((a) => a === "token") ?? -1;
  if (role >= 0 && role !== 1)
    throw new Error(
      `${siteLabel(s)}: the residual stream %${v.name} has its token axis at ${role}, expected 1 ([B, N, C])`,
    );
  return t.dims[1];
}

/**
 * `d` with every data-dependent symbol (an adaptive prune's K) replaced by its capacity: the most
 * tokens an example may have, the same on every backend. `d` itself when it has none.
 */
export function atCapacity(g: Graph, d: Dim): Dim {
  if (typeof d === "number") return d;
  const caps = new Map<string, Dim>();
  for (const s of freeSymbols(d)) {
    const c = g.symbols.get(s)?.capacity;
    if (c !== undefined) caps.set(s, c);
  }
  return caps.size ? substitute(d, caps) : d;
}

/** A float in (0, 1] as an exact small fraction (0.7 -> 7/10), so counts are exact integers. */
export function ratio(x: number): { num: number; den: number } {
  for (let den = 1; den <= 10000; den++) {
    const num = Math.round(x * den);
    if (Math.abs(num / den - x) < 1e-12) return { num, den };
  }
  throw new Error(`ratio ${x} is not a fraction with denominator <= 10000`);
}

/** `ceil(n * keep)` exactly: a number for static n, else `ceildiv(num * n, den)`. */
export function keepCount(n: Dim, keep: number): Dim {
  const { num, den } = ratio(keep);
  return ceildiv(mul(num, n), den);
}

/** An integer policy parameter (validated by the policy schema; re-checked here for hand-written IR). */
export function intParam(s: PendingSite, name: string): number | undefined {
  const v = s.params[name];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v))
    throw new Error(`${siteLabel(s)}: parameter '${name}' must be an integer, got ${JSON.stringify(v)}`);
  return v;
}

export function stringParam(s: PendingSite, name: string): string | undefined {
  const v = s.params[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new Error(`${siteLabel(s)}: parameter '${name}' must be a string`);
  return v;
}

/** Whether an op declares an attribute accepting `value` (for ops other engineers extend). */
export function opAccepts(op: string, attr: string, value?: AttrValue): boolean {
  const spec = getOp(op)?.attrs[attr];
  if (!spec) return false;
  if (value === undefined) return true;
  return spec.oneOf === undefined || (spec.oneOf as readonly AttrValue[]).includes(value);
}

/** Dims of every value, to compare against after an edit. */
export function snapshot(g: Graph): Map<Value, readonly Dim[]> {
  const m = new Map<Value, readonly Dim[]>();
  for (const v of g.inputs) m.set(v, v.type.dims);
  for (const n of g.nodes) for (const o of n.outputs) m.set(o, o.type.dims);
  return m;
}

/**
 * Re-infers every node's output types in order after an edit. Reshape targets are constants that
 * may spell an old token count (exported models: `[197, -1, 16]`); with `before` (the dims before
 * the edit), a target entry equal to an old static count that changed is rewritten to the new one,
 * where the old output had that count at that position; a symbolic new count (an adaptive prune's
 * K) is read from a Shape instead (`shapeTarget`). `label` prefixes errors.
 */
export function reinfer(g: Graph, label: string, before?: ReadonlyMap<Value, readonly Dim[]>): void {
  const known = computeKnown(g);
  const mode: InferMode = { known, dataDims: "declared" };
  // Old static count -> new count, learnt from the values re-inferred so far.
  const counts = new Map<number, Dim>();
  // A copy: fixReshape may insert (already inferred) nodes before the current one.
  for (const n of [...g.nodes]) {
    const def = getOp(n.op);
    if (!def) throw new Error(`${label}: ${nodeLabel(n)}: unknown op '${n.op}'`);
    if (before && n.op === "Reshape") fixReshape(g, n, before, counts, known, mode, label);
    let types: TensorType[];
    try {
      types = inferNode(g, def, n, n.outputs.length, mode);
    } catch (e) {
      if (e instanceof OpError) throw new Error(`${label}: ${nodeLabel(n)}: ${e.message}`, { cause: e });
      throw e;
    }
    n.outputs.forEach((o, i) => {
      const old = before?.get(o);
      const t = keepRoles(types[i], o.type);
      if (old && old.length === t.dims.length)
        old.forEach((d, k) => {
          const nd = t.dims[k];
          if (typeof d === "number" && !dimEquals(d, nd) && !counts.has(d)) counts.set(d, nd);
        });
      g.setType(o, t);
    });
    const sv = symbolicValue(g, def, n, mode);
    if (sv) known.set(n.outputs[0], sv);
  }
}

function keepRoles(inferred: TensorType, declared: TensorType): TensorType {
  if (inferred.axes || !declared.axes || declared.dims.length !== inferred.dims.length) return inferred;
  return tensorType(inferred.dtype, inferred.dims, declared.axes);
}

function fixReshape(
  g: Graph,
  n: Node,
  before: ReadonlyMap<Value, readonly Dim[]>,
  counts: ReadonlyMap<number, Dim>,
  known: Map<Value, readonly Dim[]>,
  mode: InferMode,
  label: string,
): void {
  const [x, target] = n.inputs;
  const c = target ? g.constants.get(target) : undefined;
  const oldIn = x ? before.get(x) : undefined;
  const oldOut = before.get(n.outputs[0]);
  if (!x || !target || !c?.data || !oldIn || !oldOut) return;
  if (oldIn.length === x.type.dims.length && oldIn.every((d, i) => dimEquals(d, x.type.dims[i]))) return;
  const vals = Array.from(c.data.data);
  const pos = vals.flatMap((v, k) => (counts.has(v) && oldOut[k] === v ? [k] : []));
  if (pos.length === 0) return;
  if (pos.length > 1)
    throw new Error(
      `${label}: ${nodeLabel(n)}: the Reshape target [${vals.join(", ")}] spells old token counts at ${pos.length} positions; cannot tell which one is the token axis`,
    );
  const k = pos[0];
  const now = counts.get(vals[k])!;
  let nv: Value;
  if (typeof now === "number") {
    vals[k] = now;
    nv = g.addConstant(c.value.type, `${target.name}_reduced`, makeTensor(c.data.dtype, c.data.shape, vals));
    known.set(nv, vals);
  } else {
    // A symbolic count (an adaptive prune's K) has no constant: read it from a shape that has it.
    const src = dimSource(g, n, now);
    if (!src)
      throw new Error(
        `${label}: ${nodeLabel(n)}: the Reshape target [${vals.join(", ")}] spells the token count ${vals[k]}, which is now ${printDim(now)}, but no value before it has an axis of that length to read it from`,
      );
    nv = shapeTarget(g, n, src.v, src.axis, vals, k, known, mode);
  }
  g.setInput(n, 1, nv);
  if (g.users(target).length === 0 && !g.outputs.includes(target)) g.eraseConstant(target);
}

/**
 * A value defined before `n` with an axis of exactly length `d`: n's input (which may hold it only
 * as a product, `K*batch`), else the nearest such node output before n. The nearest one sits in
 * n's own block, downstream of the block's entry, so a later reduction there (a second adaptive
 * prune) changes its length too and the target follows.
 */
function dimSource(g: Graph, n: Node, d: Dim): { v: Value; axis: number } | undefined {
  const before = g.nodes.slice(0, g.nodes.indexOf(n)).reverse();
  const vs = [n.inputs[0], ...before.flatMap((m) => m.outputs), ...g.inputs];
  for (const v of vs) {
    const axis = v ? v.type.dims.findIndex((e) => dimEquals(e, d)) : -1;
    if (v && axis >= 0) return { v, axis };
  }
  return undefined;
}

/**
 * `Concat(vals[:k], Shape(x)[axis], vals[k+1:])` inserted before `n`: a Reshape target whose
 * entry k follows x's (symbolic) length along `axis`. The new nodes' values are recorded in
 * `known` (the one `mode` reads) so that `n` infers against them.
 */
function shapeTarget(
  g: Graph,
  n: Node,
  x: Value,
  axis: number,
  vals: readonly number[],
  k: number,
  known: Map<Value, readonly Dim[]>,
  mode: InferMode,
): Value {
  const opts: NodeOptions = {
    ...(n.scope !== undefined ? { scope: n.scope } : {}),
    ...(n.loc ? { loc: n.loc } : {}),
  };
  const at = { before: n };
  const i64 = (suffix: string, v: readonly number[]): Value => {
    const c = g.addConstant(
      tensorType("i64", [v.length]),
      `${n.outputs[0].name}_${suffix}`,
      makeTensor("i64", [v.length], Float64Array.from(v)),
    );
    known.set(c, v);
    return c;
  };
  const add = (op: string, inputs: readonly Value[], attrs: Attrs): Value => {
    const m = insertNode(g, at, op, inputs, 1, attrs, opts);
    const sv = symbolicValue(g, getOp(op)!, m, mode);
    if (sv) known.set(m.outputs[0], sv);
    return m.outputs[0];
  };
  // One Shape per source value (the Reshapes of every later block read the same one).
  const order = g.nodes.indexOf(n);
  const prior = g.nodes.find((m, i) => i < order && m.op === "Shape" && m.inputs[0] === x);
  const shape = prior ? prior.outputs[0] : add("Shape", [x], {});
  const len = add("Gather", [shape, i64("token_axis", [axis])], { axis: 0 });
  const parts = [
    ...(k > 0 ? [i64("target_head", vals.slice(0, k))] : []),
    len,
    ...(k + 1 < vals.length ? [i64("target_tail", vals.slice(k + 1))] : []),
  ];
  return add("Concat", parts, { axis: 0 });
}

/**
 * Inserts one site's nodes with `apply`, threads token sizes through it, then re-infers every
 * type (fixing Reshape targets). Nodes inserted meanwhile may carry stale types until then.
 */
export function applySite(g: Graph, ctx: PassContext, s: PendingSite, apply: () => void): void {
  const before = snapshot(g);
  apply();
  threadSizes(g, ctx);
  reinfer(g, `after applying ${siteLabel(s)}`, before);
}

/** threadSizes, then re-inference if it added anything (the end of every reduction pass). */
export function finishSizes(g: Graph, ctx: PassContext): boolean {
  if (!threadSizes(g, ctx)) return false;
  reinfer(g, "threading token sizes");
  return true;
}

/** Moves a site's policy from its site node to the node that applies it (the marker of an applied site). */
export function markApplied(g: Graph, s: PendingSite, applied: Node | undefined): void {
  g.setPolicy(s.node, undefined);
  if (applied) g.setPolicy(applied, s.policy.name);
}

/** Whether a merge with proportional attention was applied: its policy says `proportional: true`. */
function isProportional(g: Graph, n: Node): boolean {
  const p = n.policy !== undefined ? g.policies.get(n.policy) : undefined;
  return p?.params.proportional === true;
}

/** `bias` is `Unsqueeze(Transpose(Log(size)))` (or that plus another bias), as threadSizes builds it. */
function hasSizeBias(g: Graph, att: Node): boolean {
  const prod = g.producerMap();
  const isChain = (v: Value | null | undefined): boolean => {
    const u = v ? prod.get(v) : undefined;
    const t = u?.op === "Unsqueeze" && u.inputs[0] ? prod.get(u.inputs[0]) : undefined;
    const l = t?.op === "Transpose" && t.inputs[0] ? prod.get(t.inputs[0]) : undefined;
    return l?.op === "Log";
  };
  const b = att.inputs[4];
  if (isChain(b)) return true;
  const add = b ? prod.get(b) : undefined;
  return add?.op === "Add" && add.inputs.some(isChain);
}

/**
 * ToMe token sizes through every applied reduction, in graph order: the size output of each
 * merge feeds the next merge; a prune after a merge gathers the sizes by its index output (the
 * fused row's size is the sum of the dropped sizes); a pool takes the sizes as input. With proportional attention
 * (a merge whose policy says so) every later attention gets `log(size)` as `[B, 1, 1, N]` bias.
 * Idempotent: what exists is reused. Returns whether anything was added; the caller re-infers.
 */
export function threadSizes(g: Graph, ctx: PassContext): boolean {
  let size: Value | undefined;
  let proportional = false;
  let changed = false;
  // Readers after `p` of the size value it consumed read its output instead.
  const advance = (p: Node, old: Value | null | undefined, cur: Value): void => {
    if (old) replaceUsesAfter(g, old, cur, p);
    size = cur;
  };
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i];
    if (n.op === "tokens.merge" && n.policy !== undefined) {
      if (size && n.inputs[2] !== size) {
        g.setInput(n, 2, size);
        changed = true;
      }
      if (n.outputs.length < 2)
        throw new Error(`${nodeLabel(n)}: tokens.merge on the residual stream must have a size output`);
      advance(n, n.inputs[2], n.outputs[1]);
      proportional ||= isProportional(g, n);
    } else if (n.op === "tokens.prune" && n.policy !== undefined && size) {
      const r = pruneSizes(g, n, size);
      changed ||= r.added;
      size = r.value;
    } else if (n.op === "tokens.pool" && n.policy !== undefined) {
      // A pool always produces sizes (each row stands for its group), so later merges weigh by them.
      if (size && n.inputs[1] !== size) {
        g.setInput(n, 1, size);
        changed = true;
      }
      if (n.outputs.length < 2)
        throw new Error(`${nodeLabel(n)}: tokens.pool on the residual stream must have a size output`);
      advance(n, n.inputs[1], n.outputs[1]);
    } else if (n.op === "attention" && proportional && size && !hasSizeBias(g, n)) {
      addSizeBias(g, n, size);
      ctx.remarks.push(`proportional attention: log(size) bias on ${nodeLabel(n)}`);
      changed = true;
      i = g.nodes.indexOf(n);
    }
  }
  return changed;
}

/**
 * The sizes after a residual prune `n`: its index output (added if missing) gathers the same rows
 * of `size` [B, N, 1] (`tokens.gather`: no second ranking), plus with `fuse` a last row holding the
 * dropped sizes' sum. Reuses an existing companion.
 */
function pruneSizes(g: Graph, n: Node, size: Value): { value: Value; added: boolean } {
  const fuse = n.attrs.fuse === true;
  const index = n.outputs[1];
  const existing = index
    ? g.nodes.find((m) => m.op === "tokens.gather" && m.inputs[0] === size && m.inputs[1] === index)
    : undefined;
  if (existing) {
    if (!fuse) return { value: existing.outputs[0], added: false };
    const cat = g.users(existing.outputs[0]).find((u) => u.op === "Concat");
    if (cat) return { value: cat.outputs[0], added: false };
  }
  const prune = withOutputs(g, n, 2, [`${n.inputs[0]!.name}_index`]);
  const opts = { ...(n.scope !== undefined ? { scope: n.scope } : {}), ...(n.loc ? { loc: n.loc } : {}) };
  const kept = insertNode(
    g,
    { after: prune },
    "tokens.gather",
    [size, prune.outputs[1]],
    1,
    {},
    { ...opts, names: [`${size.name}_pruned`] },
  );
  let value = kept.outputs[0];
  let last = kept;
  if (fuse) {
    const sum = { axes: [1], keepdims: 1 };
    const all = insertNode(g, { after: last }, "ReduceSum", [size], 1, sum, opts);
    const keptSum = insertNode(g, { after: all }, "ReduceSum", [value], 1, sum, opts);
    const dropped = insertNode(
      g,
      { after: keptSum },
      "Sub",
      [all.outputs[0], keptSum.outputs[0]],
      1,
      {},
      opts,
    );
    last = insertNode(g, { after: dropped }, "Concat", [value, dropped.outputs[0]], 1, { axis: 1 }, opts);
    value = last.outputs[0];
  }
  replaceUsesAfter(g, size, value, last);
  return { value, added: true };
}

/**
 * Node `n` with at least `count` outputs: `n` itself, or the same node re-inserted in its place
 * with the extra outputs (named `names`), its old outputs' names, types and uses moved over. The
 * companions of a reduction (`tokens.gather`, `tokens.combine`) reuse its index or source output.
 */
export function withOutputs(g: Graph, n: Node, count: number, names: readonly string[]): Node {
  if (n.outputs.length >= count) return n;
  const def = getOp(n.op);
  if (!def) throw new Error(`${nodeLabel(n)}: unknown op '${n.op}'`);
  // Declared mode keeps the node's data-dependent symbols (an adaptive prune's K) instead of minting new ones.
  const types = inferNode(g, def, n, count, { known: computeKnown(g), dataDims: "declared" });
  const old = n.outputs;
  const i = g.nodes.indexOf(n);
  g.erase(n, true);
  const opts: NodeOptions = {
    ...(n.scope !== undefined ? { scope: n.scope } : {}),
    ...(n.loc ? { loc: n.loc } : {}),
    ...(n.policy !== undefined ? { policy: n.policy } : {}),
    names: [...old.map((o) => o.name), ...names],
  };
  types.splice(0, old.length, ...old.map((o) => o.type));
  const repl =
    i < g.nodes.length
      ? g.insertBefore(g.nodes[i], n.op, n.inputs, types, n.attrs, opts)
      : g.insertAfter(g.nodes[i - 1], n.op, n.inputs, types, n.attrs, opts);
  old.forEach((o, k) => g.replaceAllUses(o, repl.outputs[k]));
  return repl;
}

/** bias = log(size) as [B, 1, 1, N], added to the attention's own bias if it has one. */
function addSizeBias(g: Graph, att: Node, size: Value): void {
  const opts = {
    ...(att.scope !== undefined ? { scope: att.scope } : {}),
    ...(att.loc ? { loc: att.loc } : {}),
  };
  const at = { before: att };
  const log = insertNode(g, at, "Log", [size], 1, {}, { ...opts, names: [`${size.name}_log`] });
  const tr = insertNode(g, at, "Transpose", [log.outputs[0]], 1, { perm: [0, 2, 1] }, opts);
  const un = insertNode(g, at, "Unsqueeze", [tr.outputs[0]], 1, { axes: [1] }, opts);
  let bias = un.outputs[0];
  const own = att.inputs[4];
  if (own) bias = insertNode(g, at, "Add", [own, bias], 1, {}, opts).outputs[0];
  const inputs = [...att.inputs];
  while (inputs.length < 5) inputs.push(null);
  inputs[4] = bias;
  inputs.forEach((v, k) => {
    if (att.inputs[k] !== v) g.setInput(att, k, v);
  });
}

/**
 * The importance output of an attention, of kind `kind`: present already, or the node is replaced
 * by the same attention emitting it (the fused op computes it on the way; no second attention).
 * With `anyKind`, whatever importance the attention already emits is accepted.
 */
export function importance(
  g: Graph,
  s: PendingSite,
  att: Node,
  kind: "cls" | "graph",
  anyKind = false,
): Value {
  const cur = (att.attrs.scores as string | undefined) ?? "none";
  if ((cur === kind || (anyKind && cur !== "none")) && att.outputs.length === 2) return att.outputs[1];
  if (cur !== "none")
    throw new Error(
      `${siteLabel(s)}: needs scores = "${kind}" from ${nodeLabel(att)}, which already emits scores = "${cur}"`,
    );
  const out = att.outputs[0];
  const repl = insertNode(
    g,
    { after: att },
    "attention",
    att.inputs,
    2,
    { ...att.attrs, scores: kind },
    {
      ...(att.scope !== undefined ? { scope: att.scope } : {}),
      ...(att.loc ? { loc: att.loc } : {}),
      ...(att.policy !== undefined ? { policy: att.policy } : {}),
      names: [`${out.name}_s`, `${out.name}_importance`],
    },
  );
  g.replaceAllUses(out, repl.outputs[0]);
  g.erase(att);
  return repl.outputs[1];
}

/**
 * Attention masks over the tokens of a stream reduced at `anchor` (n tokens before it): every
 * later attention whose mask covers n keys gets it reduced alike. Key-padding masks `[B, 1, 1, n]`
 * are reshaped to `[B, n, 1]`, reduced by `reduceCol` and reshaped back; other shapes, or a
 * reduction that cannot carry a mask (`reduceCol` is then the reason), are errors naming the attention.
 */
export function followMasks(
  g: Graph,
  anchor: Node,
  n: Dim,
  label: string,
  reduceCol: ((col: Value, after: Node) => Node) | string,
): void {
  const done = new Map<Value, Value>();
  const start = g.nodes.indexOf(anchor);
  for (const att of g.nodes.slice(start + 1)) {
    const m = att.op === "attention" ? att.inputs[3] : null;
    if (!m || !dimEquals(m.type.dims[m.type.dims.length - 1], n)) continue;
    const d = m.type.dims;
    if (typeof reduceCol === "string")
      throw new Error(`${label}: ${nodeLabel(att)} has a mask over the ${printDim(n)} tokens; ${reduceCol}`);
    if (d.length !== 4 || d[1] !== 1 || d[2] !== 1)
      throw new Error(
        `${label}: ${nodeLabel(att)} has a mask of shape [${d.map(printDim).join(", ")}]; only key-padding masks [B, 1, 1, N] follow a reduction`,
      );
    let reduced = done.get(m);
    if (!reduced) {
      const opts = {
        ...(anchor.scope !== undefined ? { scope: anchor.scope } : {}),
        ...(anchor.loc ? { loc: anchor.loc } : {}),
      };
      const shape = (vals: number[]): Value =>
        g.addConstant(
          tensorType("i64", [vals.length]),
          `${m.name}_shape`,
          makeTensor("i64", [vals.length], vals),
        );
      const col = insertNode(g, { after: anchor }, "Reshape", [m, shape([0, -1, 1])], 1, {}, opts);
      const red = reduceCol(col.outputs[0], col);
      reduced = insertNode(
        g,
        { after: red },
        "Reshape",
        [red.outputs[0], shape([0, 1, 1, -1])],
        1,
        {},
        {
          ...opts,
          names: [`${m.name}_reduced`],
        },
      ).outputs[0];
      done.set(m, reduced);
    }
    g.setInput(att, 3, reduced);
  }
}
