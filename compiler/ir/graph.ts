import type { Attrs } from "./attrs.js";
import type { Dim } from "./sym.js";
import type { Tensor } from "./tensor.js";
import type { TensorType } from "./types.js";

/** Where a node came from: a `.tokr` position, an ONNX node name, or both. */
export interface SourceLoc {
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;
  /** Name of the ONNX node this was imported from. */
  readonly node?: string;
}

export function formatLoc(loc: SourceLoc | undefined): string {
  if (!loc) return "";
  const pos = loc.file ? `${loc.file}${loc.line !== undefined ? `:${loc.line}:${loc.col ?? 1}` : ""}` : "";
  const node = loc.node !== undefined ? `node '${loc.node}'` : "";
  return [pos, node].filter(Boolean).join(": ");
}

/** An SSA value. Its type changes only through `Graph.setType` (shape inference). */
export class Value {
  constructor(
    readonly id: number,
    readonly name: string,
    private _type: TensorType,
  ) {}
  get type(): TensorType {
    return this._type;
  }
  /** @internal used by Graph.setType */
  _setType(t: TensorType): void {
    this._type = t;
  }
}

/** One operation. `inputs` entries are null where an optional input is absent. */
export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly (Value | null)[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
  /** Name of a policy in `Graph.policies` that applies at this site. */
  readonly policy?: string;
  /** Stable hierarchical name (`blocks.3.attn`) that policies address. */
  readonly scope?: string;
  readonly loc?: SourceLoc;
}

/** A constant value; `data` is absent when the weights live in an external file named by `ref`. */
export interface Constant {
  readonly value: Value;
  readonly data?: Tensor;
  readonly ref?: string;
}

/** A symbol of the graph; data-dependent symbols (adaptive token counts) carry a capacity. */
export interface SymbolDecl {
  readonly name: string;
  readonly capacity?: Dim;
}

/** A reduction policy attached to sites; the reduction passes interpret `params`. */
export interface Policy {
  readonly name: string;
  readonly params: Attrs;
  readonly loc?: SourceLoc;
}

export interface NodeOptions {
  readonly policy?: string;
  readonly scope?: string;
  readonly loc?: SourceLoc;
  /** Names for the outputs (made unique if taken). */
  readonly names?: readonly (string | undefined)[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a new node is made of: addNode, insertBefore and insertAfter take these after their anchor. */
export type NodeArgs = [
  op: string,
  inputs: readonly (Value | null)[],
  outputTypes: readonly TensorType[],
  attrs?: Attrs,
  opts?: NodeOptions,
];

/**
 * A graph in SSA form with nodes in topological order. All edits go through the methods
 * below (the rewriter API), which keep the value-name table consistent.
 */
export class Graph {
  readonly symbols = new Map<string, SymbolDecl>();
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly constants = new Map<Value, Constant>();
  readonly policies = new Map<string, Policy>();
  private _nodes: Node[] = [];
  private nextId = 0;
  private names = new Map<string, Value>();

  constructor(public name: string) {}

  get nodes(): readonly Node[] {
    return this._nodes;
  }

  valueByName(name: string): Value | undefined {
    return this.names.get(name);
  }

  /** A new value; `hint` becomes its name, made unique with a numeric suffix if taken. */
  newValue(type: TensorType, hint?: string): Value {
    let name = hint ?? String(this.nextId);
    if (this.names.has(name)) {
      let k = 1;
      while (this.names.has(`${name}_${k}`)) k++;
      name = `${name}_${k}`;
    }
    const v = new Value(this.nextId++, name, type);
    this.names.set(name, v);
    return v;
  }

  addInput(type: TensorType, name: string): Value {
    if (this.names.has(name)) throw new Error(`duplicate value name '${name}'`);
    const v = this.newValue(type, name);
    this.inputs.push(v);
    return v;
  }

  addConstant(type: TensorType, name: string | undefined, data?: Tensor, ref?: string): Value {
    const v = this.newValue(type, name);
    this.constants.set(v, { value: v, ...(data ? { data } : {}), ...(ref !== undefined ? { ref } : {}) });
    return v;
  }

  declareSymbol(decl: SymbolDecl): void {
    this.symbols.set(decl.name, decl);
  }

  private makeNode(...[op, inputs, outputTypes, attrs = {}, opts = {}]: NodeArgs): Node {
    const outputs = outputTypes.map((t, i) => this.newValue(t, opts.names?.[i]));
    const node: Node = {
      id: this.nextId++,
      op,
      inputs: [...inputs],
      outputs,
      attrs: Object.freeze({ ...attrs }),
      ...(opts.policy !== undefined ? { policy: opts.policy } : {}),
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      ...(opts.loc !== undefined ? { loc: opts.loc } : {}),
    };
    return node;
  }

  /** Appends a node (graph construction in topological order). */
  addNode(...args: NodeArgs): Node {
    const n = this.makeNode(...args);
    this._nodes.push(n);
    return n;
  }

  /** Inserts a new node just before `anchor`. */
  insertBefore(anchor: Node, ...args: NodeArgs): Node {
    return this.insertNextTo("insertBefore", anchor, 0, args);
  }

  /** Inserts a new node just after `anchor`. */
  insertAfter(anchor: Node, ...args: NodeArgs): Node {
    return this.insertNextTo("insertAfter", anchor, 1, args);
  }

  /** Makes a node and puts it at `anchor`'s index plus `offset` (0: before it, 1: after it). */
  private insertNextTo(what: string, anchor: Node, offset: 0 | 1, args: NodeArgs): Node {
    const i = this._nodes.indexOf(anchor);
    if (i < 0) throw new Error(`${what}: node %${anchor.outputs[0]?.name ?? anchor.id} is not in the graph`);
    const n = this.makeNode(...args);
    this._nodes.splice(i + offset, 0, n);
    return n;
  }

  /** Removes a node; its outputs must be unused (or `force` to leave dangling uses for the caller). */
  erase(node: Node, force = false): void {
    const i = this._nodes.indexOf(node);
    if (i < 0) throw new Error(`erase: node is not in the graph`);
    if (!force) {
      for (const o of node.outputs) {
        if (this.users(o).length > 0 || this.outputs.includes(o))
          throw new Error(`erase: value %${o.name} still has uses`);
      }
    }
    this._nodes.splice(i, 1);
    for (const o of node.outputs) this.names.delete(o.name);
  }

  eraseConstant(v: Value): void {
    this.constants.delete(v);
    this.names.delete(v.name);
  }

  /** Replaces every use of `from` (node inputs and graph outputs) by `to`; `except` is left alone. */
  replaceAllUses(from: Value, to: Value, except?: Node): void {
    for (const n of this._nodes) {
      if (n === except) continue;
      if (n.inputs.includes(from)) (n as Mutable<Node>).inputs = n.inputs.map((v) => (v === from ? to : v));
    }
    for (let i = 0; i < this.outputs.length; i++) if (this.outputs[i] === from) this.outputs[i] = to;
  }

  setInput(node: Node, index: number, v: Value | null): void {
    const inputs = [...node.inputs];
    inputs[index] = v;
    (node as Mutable<Node>).inputs = inputs;
  }

  setAttrs(node: Node, attrs: Attrs): void {
    (node as Mutable<Node>).attrs = Object.freeze({ ...attrs });
  }

  setPolicy(node: Node, policy: string | undefined): void {
    if (policy === undefined) delete (node as Mutable<Node>).policy;
    else (node as Mutable<Node>).policy = policy;
  }

  setScope(node: Node, scope: string | undefined): void {
    if (scope === undefined) delete (node as Mutable<Node>).scope;
    else (node as Mutable<Node>).scope = scope;
  }

  setType(v: Value, t: TensorType): void {
    v._setType(t);
  }

  /** Reorders nodes (e.g. after a topological sort); must be a permutation of the current nodes. */
  setNodeOrder(nodes: readonly Node[]): void {
    if (nodes.length !== this._nodes.length || !nodes.every((n) => this._nodes.includes(n)))
      throw new Error("setNodeOrder: not a permutation of the graph's nodes");
    this._nodes = [...nodes];
  }

  /** Nodes that read `v`, in graph order. */
  users(v: Value): Node[] {
    return this._nodes.filter((n) => n.inputs.includes(v));
  }

  /** The node defining `v`, or undefined for graph inputs and constants. */
  producer(v: Value): Node | undefined {
    return this._nodes.find((n) => n.outputs.includes(v));
  }

  /** Map from each value to its defining node, for passes that query many producers. */
  producerMap(): Map<Value, Node> {
    const m = new Map<Value, Node>();
    for (const n of this._nodes) for (const o of n.outputs) m.set(o, n);
    return m;
  }
}
