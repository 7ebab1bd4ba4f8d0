import type { Attrs } from "./ir/attrs.js";
import { checkAttrs } from "./ir/attrs.js";
import type { DType } from "./ir/dtype.js";
import { Graph, type NodeOptions, type Value } from "./ir/graph.js";
import type { Dim } from "./ir/sym.js";
import { makeTensor, type Tensor } from "./ir/tensor.js";
import { tensorType, type AxisRole, type TensorType } from "./ir/types.js";
import { computeKnown, inferNode, symbolicValue } from "./infer.js";
import "./ops/index.js";
import { checkArity, getOp, OpError } from "./ops/registry.js";

/**
 * Builds graphs op by op with types inferred from the op definitions, the way the DSL lowering,
 * the ONNX importer and tests construct IR. Errors name the op and its scope.
 */
export class GraphBuilder {
  readonly g: Graph;
  private known: Map<Value, readonly Dim[]>;

  constructor(name: string) {
    this.g = new Graph(name);
    this.known = computeKnown(this.g);
  }

  symbol(name: string): void {
    this.g.declareSymbol({ name });
  }

  input(name: string, dtype: DType, dims: readonly Dim[], axes?: readonly (AxisRole | null)[]): Value {
    return this.g.addInput(tensorType(dtype, dims, axes), name);
  }

  /** A constant holding `data`; small integer constants become compile-time known values. */
  constant(data: Tensor, name?: string, ref?: string): Value {
    const v = this.g.addConstant(tensorType(data.dtype, data.shape), name, data, ref);
    if (data.dtype !== "f32" && data.dtype !== "f16" && data.dtype !== "f64" && data.data.length <= 64)
      this.known.set(v, Array.from(data.data));
    return v;
  }

  /** A constant from plain numbers. */
  const(dtype: DType, shape: readonly number[], values: ArrayLike<number>, name?: string): Value {
    return this.constant(makeTensor(dtype, shape, values), name);
  }

  /** Appends `op` and returns its outputs (`numOutputs` of them, default 1). */
  ops(
    op: string,
    inputs: readonly (Value | null)[],
    attrs: Attrs = {},
    numOutputs = 1,
    opts: NodeOptions = {},
  ): Value[] {
    const def = getOp(op);
    const where = opts.scope ? ` (in ${opts.scope})` : "";
    if (!def) throw new OpError(`unknown op '${op}'${where}`);
    const problems = [...checkArity(def, inputs.length, numOutputs), ...checkAttrs(def.attrs, attrs)];
    if (problems.length) throw new OpError(`${op}${where}: ${problems.join("; ")}`);
    let types: TensorType[];
    try {
      types = inferNode(this.g, def, { op, attrs, inputs }, numOutputs, {
        known: this.known,
        dataDims: "mint",
      });
    } catch (e) {
      if (e instanceof OpError) throw new OpError(`${op}${where}: ${e.message}`);
      throw e;
    }
    const node = this.g.addNode(op, inputs, types, attrs, opts);
    const sv = symbolicValue(this.g, def, node, { known: this.known, dataDims: "mint" });
    if (sv) this.known.set(node.outputs[0], sv);
    return [...node.outputs];
  }

  /** Appends a single-output op. */
  op(op: string, inputs: readonly (Value | null)[], attrs: Attrs = {}, opts: NodeOptions = {}): Value {
    return this.ops(op, inputs, attrs, 1, opts)[0];
  }

  output(...vs: Value[]): Graph {
    this.g.outputs.push(...vs);
    return this.g;
  }
}
