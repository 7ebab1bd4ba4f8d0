import type { AttrValue } from "./ir/attrs.js";
import { attr, optAttr } from "./ir/attrs.js";
import type { Graph, Node, Value } from "./ir/graph.js";
import { type Dim, sym } from "./ir/sym.js";
import type { TensorType } from "./ir/types.js";
import { type InferCtx, type OpDef, OpError } from "./ops/registry.js";

/** Largest integer tensor whose element values are tracked at compile time. */
export const MAX_KNOWN_ELEMENTS = 64;

/**
 * Compile-time known element values of small integer tensors (constants and shape arithmetic),
 * computed in one forward sweep. Values may be symbolic (`Shape` of `f32[B, 197]` is `[B, 197]`).
 */
export function computeKnown(g: Graph): Map<Value, readonly Dim[]> {
  const known = new Map<Value, readonly Dim[]>();
  for (const [v, c] of g.constants) {
    const d = c.data;
    if (
      d &&
      d.dtype !== "f32" &&
      d.dtype !== "f16" &&
      d.dtype !== "f64" &&
      d.data.length <= MAX_KNOWN_ELEMENTS
    )
      known.set(v, Array.from(d.data));
  }
  return known;
}

export interface InferMode {
  /** Values known at compile time (see computeKnown); updated by the caller as nodes are visited. */
  readonly known: ReadonlyMap<Value, readonly Dim[]>;
  /**
   * `mint`: data-dependent dims become fresh graph symbols (graph construction, shape inference).
   * `declared`: they are read from the node's declared output types (verification).
   */
  readonly dataDims: "mint" | "declared";
}

export function makeInferCtx(
  g: Graph,
  def: OpDef,
  node: Pick<Node, "op" | "attrs" | "inputs"> & { readonly outputs?: readonly Value[] },
  numOutputs: number,
  mode: InferMode,
): InferCtx {
  const inputs = node.inputs.map((v) => (v ? v.type : null));
  const fail = (message: string): never => {
    throw new OpError(message);
  };
  return {
    op: node.op,
    attrs: node.attrs,
    inputs,
    numOutputs,
    attr: <T extends AttrValue>(name: string) => attr<T>(def.attrs, node.attrs, name),
    optAttr: <T extends AttrValue>(name: string) => optAttr<T>(def.attrs, node.attrs, name),
    known: (i) => {
      const v = node.inputs[i];
      return v ? mode.known.get(v) : undefined;
    },
    dataDim(output, axis, capacity, hint) {
      if (mode.dataDims === "declared") {
        const d = node.outputs?.[output]?.type.dims[axis];
        if (d === undefined) fail(`output ${output} has no declared axis ${axis}`);
        return d!;
      }
      let k = 0;
      while (g.symbols.has(`${hint}${k}`)) k++;
      const name = `${hint}${k}`;
      g.declareSymbol({ name, capacity });
      return sym(name);
    },
    fail,
  };
}

/** Infers the output types of a node; OpErrors are rethrown with the node's identity. */
export function inferNode(
  g: Graph,
  def: OpDef,
  node: Pick<Node, "op" | "attrs" | "inputs"> & { readonly outputs?: readonly Value[] },
  numOutputs: number,
  mode: InferMode,
): TensorType[] {
  const ctx = makeInferCtx(g, def, node, numOutputs, mode);
  const types = def.infer(ctx);
  if (types.length < numOutputs)
    throw new OpError(`${def.name} inferred ${types.length} outputs, node has ${numOutputs}`);
  return types.slice(0, numOutputs);
}

/** The known values of a node's output 0, if the op can evaluate them symbolically. */
export function symbolicValue(g: Graph, def: OpDef, node: Node, mode: InferMode): readonly Dim[] | undefined {
  if (!def.symbolic) return undefined;
  try {
    return def.symbolic(makeInferCtx(g, def, node, node.outputs.length, mode));
  } catch (e) {
    if (e instanceof OpError) return undefined;
    throw e;
  }
}
