import { type Graph, type Node, type Value, formatLoc } from "../compiler/ir/graph.js";
import "../compiler/ops/index.js";
import { getOp } from "../compiler/ops/registry.js";

/**
 * What a pattern asks for: replacement values for the node's outputs (the node is then erased),
 * or a callback that edits the graph itself (e.g. changes the node in place).
 */
export type Rewrite = readonly Value[] | ((g: Graph) => void);

/** A local rewrite: `match` inspects a node of op `op` without editing and returns the rewrite to apply. */
export interface Pattern {
  readonly name: string;
  readonly op: string;
  match(node: Node, g: Graph): Rewrite | undefined;
}

/** How a node is named in messages: its source location, else its first output. */
export function nodeLabel(n: Node): string {
  const where = formatLoc(n.loc);
  const out = n.outputs.length ? `%${n.outputs.map((o) => o.name).join(", %")} = ` : "";
  return `${out}${n.op}${where ? ` at ${where}` : ""}`;
}

/** Ops without side effects, which may be removed when their results are unused. */
export function isPure(n: Node): boolean {
  return getOp(n.op)?.pure === true;
}

/** True when a pure node's results are neither read by another node nor graph outputs. */
export function isDead(g: Graph, n: Node): boolean {
  return isPure(n) && n.outputs.every((o) => !g.outputs.includes(o) && g.users(o).length === 0);
}

/**
 * Erases the producers of `values` (and constants) that became unused, transitively,
 * as a greedy rewrite driver removes trivially dead operations. Returns how many were erased.
 */
export function eraseDeadProducers(g: Graph, values: readonly (Value | null)[]): number {
  let erased = 0;
  const work = values.filter((v): v is Value => v !== null);
  while (work.length) {
    const v = work.pop()!;
    if (g.outputs.includes(v) || g.users(v).length > 0) continue;
    if (g.constants.has(v)) {
      g.eraseConstant(v);
      erased++;
      continue;
    }
    const p = g.producer(v);
    if (p && isDead(g, p)) {
      g.erase(p);
      erased++;
      for (const i of p.inputs) if (i) work.push(i);
    }
  }
  return erased;
}

/** Upper bound on sweeps, so that two patterns undoing each other fail loudly instead of looping. */
const MAX_SWEEPS = 100;

/**
 * Applies patterns to a fixpoint: each sweep visits nodes in order and applies the first
 * matching pattern per node. Dead producers of rewritten nodes are erased on the way.
 * Returns whether anything changed.
 */
export function rewritePatterns(g: Graph, patterns: readonly Pattern[], remarks?: string[]): boolean {
  const byOp = new Map<string, Pattern[]>();
  for (const p of patterns) byOp.set(p.op, [...(byOp.get(p.op) ?? []), p]);
  let changed = false;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let changedNow = false;
    for (const n of [...g.nodes]) {
      if (!inGraph(g, n)) continue; // erased by an earlier rewrite in this sweep
      for (const p of byOp.get(n.op) ?? []) {
        const r = p.match(n, g);
        if (r === undefined) continue;
        remarks?.push(`${p.name}: ${nodeLabel(n)}`);
        apply(g, n, r);
        changedNow = true;
        break;
      }
    }
    if (!changedNow) return changed;
    changed = true;
  }
  throw new Error(
    `rewritePatterns: no fixpoint after ${MAX_SWEEPS} sweeps (patterns ${patterns.map((p) => p.name).join(", ")})`,
  );
}

// Erasing a node frees its output names, so the name table answers membership in O(1).
function inGraph(g: Graph, n: Node): boolean {
  const o = n.outputs[0];
  return o ? g.valueByName(o.name) === o : g.nodes.includes(n);
}

function apply(g: Graph, n: Node, r: Rewrite): void {
  const oldInputs = [...n.inputs];
  if (typeof r === "function") {
    r(g);
  } else {
    if (r.length !== n.outputs.length)
      throw new Error(`rewrite of ${nodeLabel(n)} gives ${r.length} values for ${n.outputs.length} outputs`);
    n.outputs.forEach((o, i) => {
      if (r[i] === o) throw new Error(`rewrite of ${nodeLabel(n)} replaces %${o.name} by itself`);
      g.replaceAllUses(o, r[i]);
    });
    g.erase(n);
  }
  eraseDeadProducers(g, oldInputs);
}
