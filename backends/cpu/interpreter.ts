import type { Graph, Value } from "../../compiler/ir/graph.js";
import { formatLoc } from "../../compiler/ir/graph.js";
import { type Dim, evalDim, printDim, symbolName } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { printType } from "../../compiler/ir/types.js";
import { attachLiveCounts } from "../../compiler/kir/live.js";
import { PaddedAxes } from "../../compiler/kir/padding.js";
import "../../compiler/ops/index.js";
import { getOp, OpError, refCtx } from "../../compiler/ops/registry.js";

/** Ops whose results depend on their inputs' shapes only. */
const SHAPE_ONLY = new Set(["Shape", "Size"]);

/** A run-time problem: wrong inputs, an op failing on concrete data. */
export class RunError extends Error {}

export interface RunOptions {
  /** Check every intermediate result against its declared type (default true). */
  readonly checkTypes?: boolean;
}

/**
 * Binds the graph's symbols from the concrete input shapes, checking dtypes, ranks and every
 * dimension (a symbol seen twice must take one value).
 */
export function bindInputs(g: Graph, inputs: ReadonlyMap<string, Tensor>): Map<string, number> {
  const env = new Map<string, number>();
  const errors: string[] = [];
  for (const name of inputs.keys())
    if (!g.inputs.some((v) => v.name === name))
      errors.push(`unexpected input '${name}' (graph inputs: ${g.inputs.map((v) => v.name).join(", ")})`);
  // Bind plain symbols first, then check every dim (compound dims such as 2*N need the bindings).
  for (const v of g.inputs) {
    const t = inputs.get(v.name);
    if (!t) {
      errors.push(`missing input '${v.name}' of type ${printType(v.type)}`);
      continue;
    }
    if (t.dtype !== v.type.dtype)
      errors.push(`input '${v.name}' has dtype ${t.dtype}, expected ${v.type.dtype}`);
    if (t.shape.length !== v.type.dims.length) {
      errors.push(
        `input '${v.name}' has rank ${t.shape.length} (shape [${t.shape.join(", ")}]), expected ${printType(v.type)}`,
      );
      continue;
    }
    v.type.dims.forEach((d, i) => {
      const name = symbolName(d);
      if (name !== undefined && !env.has(name)) env.set(name, t.shape[i]);
    });
  }
  for (const v of g.inputs) {
    const t = inputs.get(v.name);
    if (!t || t.shape.length !== v.type.dims.length) continue;
    v.type.dims.forEach((d, i) => {
      let want: number;
      try {
        want = evalDim(d, env);
      } catch {
        errors.push(
          `input '${v.name}' dimension ${i} is ${printDim(d)}, which cannot be bound from the inputs`,
        );
        return;
      }
      if (want !== t.shape[i])
        errors.push(
          `input '${v.name}' has shape [${t.shape.join(", ")}], expected ${printType(v.type)}: dimension ${i} is ${t.shape[i]} but ${typeof d === "number" ? `must be ${want}` : `${printDim(d)} = ${want}`}`,
        );
    });
  }
  if (errors.length) throw new RunError(errors.join("\n"));
  return env;
}

function concreteDims(dims: readonly Dim[], env: Map<string, number>): number[] | undefined {
  try {
    return dims.map((d) => evalDim(d, env));
  } catch {
    return undefined; // data-dependent dims are bound when first produced
  }
}

/**
 * Executes a verified graph on the host with each op's reference implementation: the oracle
 * every other backend is compared with. Returns outputs by graph output name.
 */
export function runGraph(
  g: Graph,
  inputs: ReadonlyMap<string, Tensor>,
  opts: RunOptions = {},
): Map<string, Tensor> {
  const env = bindInputs(g, inputs);
  const vals = new Map<Value, Tensor>();
  for (const v of g.inputs) vals.set(v, inputs.get(v.name)!);
  for (const [v, c] of g.constants) {
    if (!c.data)
      throw new RunError(`constant %${v.name} has no data (weights '${c.ref ?? v.name}' were not loaded)`);
    vals.set(v, c.data);
  }
  const check = opts.checkTypes ?? true;
  // Adaptive prunes' symbols: each example's live length (count + extra) once its prune has run.
  const padded = new PaddedAxes(g);
  const sources = [...padded.symbols.values()];
  const live = new Map<string, Int32Array>();
  for (const n of g.nodes) {
    const def = getOp(n.op);
    const where = formatLoc(n.loc) || `%${n.outputs[0]?.name ?? "?"}`;
    if (!def) throw new RunError(`${where}: unknown op '${n.op}'`);
    const args = n.inputs.map((v) => (v ? vals.get(v)! : null));
    // Ops that mix tokens along a padded axis must mask each example by its own count (the same
    // rules as devices); pointwise ops and views keep positions apart, Shape / Size read no data.
    if (sources.length && !def.pointwise && !def.view && !SHAPE_ONLY.has(n.op)) {
      const why = padded.referenceRefusal(n);
      if (why) throw new RunError(`${where}: ${why}`);
    }
    let outs: Tensor[];
    const ctx = refCtx(def, n.attrs, n.outputs.length, env);
    if (live.size)
      attachLiveCounts(ctx, (i, axis) => {
        const d = n.inputs[i]?.type.dims[axis];
        const name = d !== undefined ? symbolName(d) : undefined;
        return name !== undefined ? live.get(name) : undefined;
      });
    try {
      outs = def.reference(args, ctx);
    } catch (e) {
      if (e instanceof OpError) throw new RunError(`${where}: ${n.op}: ${e.message}`);
      throw e;
    }
    n.outputs.forEach((o, i) => {
      const t = outs[i];
      if (!t) throw new RunError(`${where}: ${n.op} produced no output ${i}`);
      if (check) checkResult(o, t, env, where, n.op);
      vals.set(o, t);
    });
    for (const s of sources.filter((src) => src.prune === n)) {
      // The prune reference returns its counts in adaptive mode even when the node drops them.
      const c = outs[2];
      if (!c) throw new RunError(`${where}: adaptive ${n.op} returned no counts`);
      live.set(
        s.symbol,
        Int32Array.from(c.data, (k) => k + s.extra),
      );
    }
  }
  const result = new Map<string, Tensor>();
  for (const v of g.outputs) result.set(v.name, vals.get(v)!);
  return result;
}

function checkResult(o: Value, t: Tensor, env: Map<string, number>, where: string, op: string): void {
  const fail = (why: string): never => {
    throw new RunError(`${where}: ${op} result %${o.name} ${why}`);
  };
  if (t.dtype !== o.type.dtype) fail(`has dtype ${t.dtype}, declared ${o.type.dtype}`);
  if (t.shape.length !== o.type.dims.length)
    fail(`has shape [${t.shape.join(", ")}], declared ${printType(o.type)}`);
  // Data-dependent symbols are bound by the first result that carries them.
  o.type.dims.forEach((d, i) => {
    const name = symbolName(d);
    if (name !== undefined && !env.has(name)) env.set(name, t.shape[i]);
  });
  const want = concreteDims(o.type.dims, env);
  if (want && want.some((d, i) => d !== t.shape[i]))
    fail(`has shape [${t.shape.join(", ")}], declared ${printType(o.type)} = [${want.join(", ")}]`);
}
