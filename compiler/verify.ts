import { checkAttrs } from "./ir/attrs.js";
import { type Graph, type Node, type SourceLoc, type Value, formatLoc } from "./ir/graph.js";
import { freeSymbols, printDim } from "./ir/sym.js";
import { numel } from "./ir/tensor.js";
import { printType, sameShapeType, type TensorType } from "./ir/types.js";
import { computeKnown, inferNode, symbolicValue } from "./infer.js";
import "./ops/index.js";
import { checkArity, getOp, OpError } from "./ops/registry.js";

export interface Diagnostic {
  readonly message: string;
  readonly loc?: SourceLoc;
  /** Name of the first output of the node concerned, for messages without a source location. */
  readonly value?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = formatLoc(d.loc);
  const at = where || (d.value !== undefined ? `%${d.value}` : "");
  return at ? `${at}: error: ${d.message}` : `error: ${d.message}`;
}

export class VerifyError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
  }
}

/**
 * Checks a graph: every op known, arity and attributes against the op's schema, SSA (each value
 * defined once, defined before use), declared types equal to the inferred ones, symbols declared,
 * policies present, constants consistent. Returns every problem found, not just the first.
 */
export function verifyGraph(g: Graph): Diagnostic[] {
  const diags: Diagnostic[] = [];
  const defined = new Set<Value>();
  const names = new Map<string, Value>();
  const define = (v: Value, where: Diagnostic["loc"], what: string): void => {
    if (defined.has(v))
      diags.push({ message: `value %${v.name} is defined more than once (${what})`, loc: where });
    const other = names.get(v.name);
    if (other && other !== v) diags.push({ message: `two values are named %${v.name}`, loc: where });
    defined.add(v);
    names.set(v.name, v);
  };
  const checkSymbols = (t: TensorType, loc: SourceLoc | undefined, v: Value): void => {
    for (const d of t.dims) {
      for (const s of freeSymbols(d))
        if (!g.symbols.has(s))
          diags.push({ message: `symbol '${s}' in ${printType(t)} is not declared`, loc, value: v.name });
      if (typeof d === "number" && (!Number.isInteger(d) || d < 0))
        diags.push({ message: `invalid dimension ${printDim(d)} in ${printType(t)}`, loc, value: v.name });
    }
  };

  for (const v of g.inputs) {
    define(v, undefined, "graph input");
    checkSymbols(v.type, undefined, v);
  }
  for (const [v, c] of g.constants) {
    define(v, undefined, "constant");
    checkSymbols(v.type, undefined, v);
    if (!c.data && c.ref === undefined)
      diags.push({ message: `constant %${v.name} has neither data nor a reference`, value: v.name });
    if (c.data) {
      const t = v.type;
      const static_ = t.dims.every((d) => typeof d === "number");
      if (c.data.dtype !== t.dtype)
        diags.push({
          message: `constant %${v.name} holds ${c.data.dtype} data but is typed ${printType(t)}`,
          value: v.name,
        });
      else if (
        !static_ ||
        c.data.shape.length !== t.dims.length ||
        c.data.shape.some((d, i) => d !== t.dims[i])
      )
        diags.push({
          message: `constant %${v.name} has shape [${c.data.shape.join(", ")}] but is typed ${printType(t)}`,
          value: v.name,
        });
      else if (c.data.data.length !== numel(c.data.shape))
        diags.push({
          message: `constant %${v.name} has ${c.data.data.length} values for shape [${c.data.shape.join(", ")}]`,
          value: v.name,
        });
    }
  }

  const known = computeKnown(g);
  const mode = { known, dataDims: "declared" as const };
  const allOutputs = new Set<Value>();
  for (const n of g.nodes) for (const o of n.outputs) allOutputs.add(o);

  for (const n of g.nodes) {
    const first = n.outputs[0]?.name;
    const err = (message: string): void => {
      diags.push({
        message: `${n.op}: ${message}`,
        ...(n.loc ? { loc: n.loc } : {}),
        ...(first !== undefined ? { value: first } : {}),
      });
    };
    const before = diags.length;
    n.inputs.forEach((v, i) => {
      if (v && !defined.has(v))
        err(
          allOutputs.has(v)
            ? `input ${i} (%${v.name}) is used before it is defined`
            : `input ${i} (%${v.name}) is not defined in this graph`,
        );
    });
    for (const o of n.outputs) {
      define(o, n.loc, `by ${n.op}`);
      checkSymbols(o.type, n.loc, o);
    }
    if (n.policy !== undefined && !g.policies.has(n.policy)) err(`policy @${n.policy} is not declared`);
    const def = getOp(n.op);
    if (!def) {
      err(`unknown op '${n.op}'`);
      continue;
    }
    for (const m of checkArity(def, n.inputs.length, n.outputs.length)) err(m);
    def.inputs.forEach((p, i) => {
      if (!p.optional && !p.variadic && i < n.inputs.length && n.inputs[i] === null)
        err(`required input '${p.name}' is absent`);
    });
    for (const m of checkAttrs(def.attrs, n.attrs)) err(m);
    if (diags.length > before) continue;
    checkTypes(g, n, mode, err);
    const sv = symbolicValue(g, def, n, mode);
    if (sv) known.set(n.outputs[0], sv);
  }

  for (const v of g.outputs)
    if (!defined.has(v)) diags.push({ message: `graph output %${v.name} is not defined`, value: v.name });
  if (g.outputs.length === 0) diags.push({ message: `graph @${g.name} has no outputs` });
  return diags;
}

function checkTypes(
  g: Graph,
  n: Node,
  mode: Parameters<typeof inferNode>[4],
  err: (m: string) => void,
): void {
  const def = getOp(n.op)!;
  let inferred: TensorType[];
  try {
    inferred = inferNode(g, def, n, n.outputs.length, mode);
  } catch (e) {
    if (e instanceof OpError) return err(e.message);
    throw e;
  }
  n.outputs.forEach((o, i) => {
    if (!sameShapeType(o.type, inferred[i]))
      err(`output %${o.name} is declared ${printType(o.type)} but the op gives ${printType(inferred[i])}`);
  });
}

/** Throws a VerifyError listing every problem. */
export function assertValid(g: Graph): void {
  const d = verifyGraph(g);
  if (d.length) throw new VerifyError(d);
}
