/**
 * The ONNX importer: a ModelProto becomes an IR graph built through GraphBuilder, so every type
 * is inferred by our op definitions. Value names are kept; each node's loc names its ONNX node.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { GraphBuilder } from "../builder.js";
import type { DType } from "../ir/dtype.js";
import type { Graph, Value } from "../ir/graph.js";
import { type Dim, sym } from "../ir/sym.js";
import { makeTensor, type Tensor } from "../ir/tensor.js";
import { adapt, isImportable } from "./adapters.js";
import {
  type AttributeProto,
  checkDims,
  decodeModel,
  dtypeOf,
  elemTypeName,
  MAX_MODEL_BYTES,
  type ModelProto,
  type NodeProto,
  OnnxImportError,
  readTensor,
  type TensorReadCtx,
  toNum,
  type ValueInfoProto,
} from "./reader.js";

export { OnnxImportError } from "./reader.js";

export interface ImportOptions {
  /** Larger files are refused before they are read. */
  readonly maxBytes?: number;
  /**
   * The model's directory: external data `location`s are relative to it. `importOnnxFile` sets it from
   * the path; `importOnnx` on bytes of a model with external data needs it.
   */
  readonly baseDir?: string;
}

/**
 * Reads and imports an ONNX file; `display` is how messages name it (default: the path). The file is
 * read into a buffer of its own that becomes the storage of the f32/i32/f64 weights (views, no copies),
 * so peak memory stays near one file size; external data is resolved against the file's directory.
 */
export function importOnnxFile(path: string, display = path, opts: ImportOptions = {}): Graph {
  const max = opts.maxBytes ?? MAX_MODEL_BYTES;
  let bytes: Uint8Array;
  try {
    bytes = readWhole(path, display, max);
  } catch (e) {
    if (e instanceof OnnxImportError) throw e;
    throw new OnnxImportError(`${display}: cannot read file: ${e instanceof Error ? e.message : String(e)}`);
  }
  const baseDir = opts.baseDir ?? dirname(resolve(path));
  return importModel(decodeModel(bytes, display, max), display, { baseDir, ownsBuffer: true });
}

/** The file's bytes in a fresh buffer starting at offset 0 (so weight alignment is the file's). */
function readWhole(path: string, display: string, max: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size > max)
      throw new OnnxImportError(`${display}: ${size} bytes is over the ${max}-byte limit for ONNX models`);
    const out = new Uint8Array(size);
    for (let done = 0; done < size;) {
      const n = readSync(fd, out, done, size - done, done);
      if (n === 0) throw new OnnxImportError(`${display}: the file shrank while it was read`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Imports ONNX model bytes (left unchanged: weights are copied out); `file` names the model in errors and locs. */
export function importOnnx(bytes: Uint8Array, file: string, opts: ImportOptions = {}): Graph {
  return importModel(decodeModel(bytes, file, opts.maxBytes), file, { baseDir: opts.baseDir });
}

const SUBGRAPH_OPS = new Set(["If", "Loop", "Scan"]);
const RESERVED = new Set(["true", "false", "nan", "inf", "floordiv", "ceildiv", "mod", "min", "max"]);

function isDefaultDomain(d: string | null | undefined): boolean {
  return !d || d === "ai.onnx";
}

/** The opset of the default domain. */
function defaultOpset(m: ModelProto, file: string): number {
  const entry = (m.opsetImport ?? []).find((o) => isDefaultDomain(o.domain));
  if (!entry) throw new OnnxImportError(`${file}: the model imports no opset of the default ONNX domain`);
  return toNum(entry.version);
}

function nodeLabel(n: NodeProto, i: number): string {
  return n.name ? n.name : `#${i} (${n.opType ?? "?"})`;
}

/** Every node the importer cannot map, reported at once, grouped by op type. */
function checkSupported(nodes: readonly NodeProto[], opset: number, file: string): void {
  const anon = nodes.findIndex((n) => !n.opType);
  if (anon >= 0) throw new OnnxImportError(`${file}: node '${nodeLabel(nodes[anon], anon)}' has no op_type`);
  const sub = nodes.flatMap((n, i) =>
    SUBGRAPH_OPS.has(n.opType ?? "") ? [`${n.opType} node '${nodeLabel(n, i)}'`] : [],
  );
  if (sub.length)
    throw new OnnxImportError(`${file}: control flow with subgraphs is not supported: ${sub.join(", ")}`);
  const bad = new Map<string, string[]>();
  nodes.forEach((n, i) => {
    const op = n.opType ?? "";
    const ok = isDefaultDomain(n.domain) && (op === "Constant" || (isImportable(op) && op !== "RMSNorm"));
    if (ok) return;
    const key = isDefaultDomain(n.domain) ? op : `${n.domain}::${op}`;
    bad.set(key, [...(bad.get(key) ?? []), nodeLabel(n, i)]);
  });
  if (!bad.size) return;
  const total = [...bad.values()].reduce((s, l) => s + l.length, 0);
  const lines = [...bad].map(
    ([op, names]) => `  ${op} (opset ${opset}): ${names.length} node(s): ${names.join(", ")}`,
  );
  throw new OnnxImportError(
    `${file}: ${total} node(s) use ${bad.size} unsupported op type(s):\n${lines.join("\n")}`,
  );
}

/** Turns ONNX dim params into IR symbol names (kept when valid) and mints names for unknown dims. */
class Symbols {
  private names = new Map<string, string>();
  private used = new Set<string>();
  private fresh = 0;
  constructor(private b: GraphBuilder) {}

  param(p: string): Dim {
    let name = this.names.get(p);
    if (name === undefined) {
      let s = p.replace(/[^A-Za-z0-9_]/g, "_");
      if (!/^[A-Za-z_]/.test(s) || RESERVED.has(s)) s = `_${s}`;
      name = this.claim(s);
      this.names.set(p, name);
    }
    return sym(name);
  }

  unknown(): Dim {
    let s: string;
    do s = `unk${this.fresh++}`;
    while (this.used.has(s) || this.names.has(s));
    return sym(this.claim(s));
  }

  private claim(s: string): string {
    let name = s;
    for (let k = 1; this.used.has(name); k++) name = `${s}_${k}`;
    this.used.add(name);
    this.b.symbol(name);
    return name;
  }
}

function inputType(vi: ValueInfoProto, syms: Symbols, file: string): { dtype: DType; dims: Dim[] } {
  const t = vi.type?.tensorType;
  if (!t) throw new OnnxImportError(`${file}: graph input '${vi.name}' is not a tensor`);
  const dtype = dtypeOf(t.elemType ?? 0);
  if (!dtype)
    throw new OnnxImportError(
      `${file}: graph input '${vi.name}' has element type ${elemTypeName(t.elemType ?? 0)}, which is not supported`,
    );
  if (!t.shape)
    throw new OnnxImportError(`${file}: graph input '${vi.name}' has no shape (its rank is unknown)`);
  const dims = (t.shape.dim ?? []).map((d): Dim => {
    if (d.dimParam) return syms.param(d.dimParam);
    // An unset dim_value decodes to the prototype default 0, so look for an own field.
    if (Object.prototype.hasOwnProperty.call(d, "dimValue")) return toNum(d.dimValue);
    return syms.unknown();
  });
  try {
    checkDims(dims.filter((d): d is number => typeof d === "number"));
  } catch (e) {
    throw new OnnxImportError(
      `${file}: graph input '${vi.name}': ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return { dtype, dims };
}

/** A `Constant` node's value: `value` tensor or `value_float(s)` / `value_int(s)`. */
function constantValue(attrs: ReadonlyMap<string, AttributeProto>, ctx: TensorReadCtx): Tensor {
  const [name, a] = [...attrs][0] ?? [];
  if (attrs.size !== 1 || !a) throw new Error("Constant needs exactly one value attribute");
  switch (name) {
    case "value":
      if (!a.t) throw new Error("Constant 'value' holds no tensor");
      return readTensor(a.t, ctx);
    case "value_float":
      return makeTensor("f32", [], [a.f ?? 0]);
    case "value_floats":
      return makeTensor("f32", [a.floats?.length ?? 0], a.floats ?? []);
    case "value_int":
      return makeTensor("i64", [], [toNum(a.i)]);
    case "value_ints": {
      const v = (a.ints ?? []).map(toNum);
      return makeTensor("i64", [v.length], v);
    }
    default:
      throw new Error(`Constant with attribute '${name}' is not supported`);
  }
}

/** Imports a decoded ModelProto; `ctx` says where external data is and whether raw_data may be viewed. */
export function importModel(m: ModelProto, file: string, ctx: TensorReadCtx = {}): Graph {
  const graph = m.graph;
  if (!graph) throw new OnnxImportError(`${file}: the ONNX model has no graph`);
  const opset = defaultOpset(m, file);
  const nodes = graph.node ?? [];
  checkSupported(nodes, opset, file);

  const b = new GraphBuilder(graph.name || "main");
  const syms = new Symbols(b);
  const values = new Map<string, Value>();
  for (const init of graph.initializer ?? []) {
    const name = init.name ?? "";
    try {
      values.set(name, b.constant(readTensor(init, ctx), name));
    } catch (e) {
      throw new OnnxImportError(
        `${file}: initializer '${name}': ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  // Inputs that are also initializers are constants (ONNX IR < 4 listed every weight as an input).
  for (const vi of graph.input ?? []) {
    const name = vi.name ?? "";
    if (values.has(name)) continue;
    const { dtype, dims } = inputType(vi, syms, file);
    values.set(name, b.input(name, dtype, dims));
  }

  nodes.forEach((n, i) => importNode(n, i, { b, values, opset, file, tensors: ctx }));

  const outs = (graph.output ?? []).map((o) => {
    const v = values.get(o.name ?? "");
    if (!v) throw new OnnxImportError(`${file}: graph output '${o.name}' is not produced by any node`);
    return v;
  });
  return b.output(...outs);
}

interface NodeEnv {
  readonly b: GraphBuilder;
  readonly values: Map<string, Value>;
  readonly opset: number;
  readonly file: string;
  readonly tensors: TensorReadCtx;
}

function importNode(n: NodeProto, i: number, env: NodeEnv): void {
  const { b, values, opset, file } = env;
  const op = n.opType ?? "";
  const label = nodeLabel(n, i);
  const where = `${file}: node '${label}' (${op})`;
  const attrs = new Map((n.attribute ?? []).map((a) => [a.name ?? "", a]));
  const outNames = [...(n.output ?? [])];
  while (outNames.length && outNames[outNames.length - 1] === "") outNames.pop();
  try {
    const taken = outNames.find((s) => s !== "" && values.has(s));
    if (taken !== undefined)
      throw new Error(
        `output '${taken}' is already defined (graph input, initializer or earlier node output)`,
      );
    if (new Set(outNames).size !== outNames.length) throw new Error("the node names one output twice");
    if (op === "Constant") {
      if (outNames.length !== 1) throw new Error(`Constant needs one output, got ${outNames.length}`);
      values.set(outNames[0], b.constant(constantValue(attrs, env.tensors), outNames[0]));
      return;
    }
    const inputs = (n.input ?? []).map((name) => {
      if (name === "") return null;
      const v = values.get(name);
      if (!v) throw new Error(`input '${name}' is not a graph input, initializer or earlier node output`);
      return v;
    });
    const hint = n.name || `${op}_${i}`;
    const a = adapt({ opType: op, opset, inputs, attrs, b, hint, outputs: outNames.length });
    const loc = { file, node: label };
    const names = outNames.map((s) => (s === "" ? undefined : s));
    // Nodes written out as several IR ops give outputs 1.. as values, bound through Identity nodes.
    const extra = a.extra ?? [];
    if (extra.length && outNames.length > 1 + extra.length)
      throw new Error(`${op} gives ${1 + extra.length} output(s) here, the node names ${outNames.length}`);
    const count = extra.length ? 1 : outNames.length;
    const first = b.ops(a.op, a.inputs, a.attrs, count, { loc, names: names.slice(0, count) });
    const rest = extra
      .slice(0, Math.max(outNames.length - 1, 0))
      .map((v, k) => b.ops("Identity", [v], {}, 1, { loc, names: [names[k + 1]] })[0]);
    const outs = [...first, ...rest];
    outNames.forEach((s, k) => s !== "" && values.set(s, outs[k]));
  } catch (e) {
    if (e instanceof OnnxImportError) throw e;
    throw new OnnxImportError(`${where}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
