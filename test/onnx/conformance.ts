/**
 * Runs one ONNX node test case (onnx/backend/test/data/node/<case>: model.onnx plus
 * test_data_set_N/{input,output}_K.pb) on the CPU interpreter and compares the outputs.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { DType } from "../../compiler/ir/dtype.js";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { isImportable } from "../../compiler/onnx/adapters.js";
import { importModel } from "../../compiler/onnx/import.js";
import { decodeModel, onnx, readTensor, type ModelProto } from "../../compiler/onnx/reader.js";
import "../../compiler/ops/index.js";

/** A serialized TensorProto file (input_N.pb / output_N.pb) as its name and host tensor. */
export function readTensorFile(path: string): { name: string; tensor: Tensor } {
  const proto = onnx.TensorProto.decode(readFileSync(path));
  return { name: proto.name ?? "", tensor: readTensor(proto) };
}

/** Absolute + relative tolerance per dtype; integers and bools must match exactly. */
const TOL: Readonly<Record<DType, number>> = {
  f32: 1e-4,
  f16: 1e-3,
  f64: 1e-7,
  i32: 0,
  i64: 0,
  i8: 0,
  u8: 0,
  bool: 0,
};

/** Why `actual` differs from `expected`, or undefined when it matches. */
export function mismatch(actual: Tensor, expected: Tensor): string | undefined {
  if (actual.dtype !== expected.dtype) return `dtype ${actual.dtype}, expected ${expected.dtype}`;
  const [as, es] = [actual.shape.join(","), expected.shape.join(",")];
  if (as !== es) return `shape [${as}], expected [${es}]`;
  const tol = TOL[expected.dtype];
  for (let i = 0; i < expected.data.length; i++) {
    const [a, e] = [actual.data[i], expected.data[i]];
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) return `element ${i} is ${a}, expected ${e}`;
  }
  return undefined;
}

/** Op types of the model that tokr does not import (other domains, subgraph ops, unregistered ops). */
export function unsupportedOps(m: ModelProto): string[] {
  const bad = new Set<string>();
  for (const n of m.graph?.node ?? []) {
    const op = n.opType ?? "";
    const std = !n.domain || n.domain === "ai.onnx";
    if (!std || (op !== "Constant" && !isImportable(op))) bad.add(std ? op : `${n.domain}::${op}`);
  }
  return [...bad];
}

export type CaseResult =
  | { readonly kind: "unsupported"; readonly ops: readonly string[] }
  | { readonly kind: "pass"; readonly staticInputs: boolean }
  | { readonly kind: "fail"; readonly why: string };

/** tokr needs shape operands (Reshape's shape, Slice's starts, ...) at compile time. */
const NEEDS_STATIC = /must be known at compile time/;

/**
 * Imports and runs one case directory; any error or mismatch is a failure with a one-line reason.
 * Where the model feeds a shape operand from a graph input, the inputs of each data set are bound
 * as initializers instead (what tokr's users do), so the op's semantics are still checked.
 */
export function runCase(dir: string): CaseResult {
  const file = join(dir, "model.onnx");
  const m = decodeModel(readFileSync(file), file);
  const ops = unsupportedOps(m);
  if (ops.length) return { kind: "unsupported", ops };
  const sets = readdirSync(dir)
    .filter((d) => d.startsWith("test_data_set_"))
    .sort()
    .map((d) => join(dir, d));
  if (!sets.length) return { kind: "fail", why: "no test_data_set_* directory" };
  let g: Graph;
  try {
    g = importModel(m, file);
  } catch (e) {
    if (!NEEDS_STATIC.test(message(e))) return fail(e, file);
    for (const set of sets) {
      const why = attempt(() => runSet(importModel(withStaticInputs(m, set), file), set, true), file);
      if (why) return { kind: "fail", why: `${basename(set)} (static inputs): ${why}` };
    }
    return { kind: "pass", staticInputs: true };
  }
  for (const set of sets) {
    const why = attempt(() => runSet(g, set, false), file);
    if (why) return { kind: "fail", why: `${basename(set)}: ${why}` };
  }
  return { kind: "pass", staticInputs: false };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function fail(e: unknown, file: string): CaseResult {
  return { kind: "fail", why: oneLine(e, file) };
}

function oneLine(e: unknown, file: string): string {
  return message(e).split("\n")[0].replace(`${file}: `, "");
}

function attempt(f: () => string | undefined, file: string): string | undefined {
  try {
    return f();
  } catch (e) {
    return oneLine(e, file);
  }
}

/** A copy of `m` whose non-initializer graph inputs are initializers holding the data set's inputs. */
function withStaticInputs(m: ModelProto, set: string): ModelProto {
  const graph = m.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const free = (graph.input ?? []).filter((v) => !inits.has(v.name));
  const protos = pbFiles(set, "input").map((p, i) => {
    const t = onnx.TensorProto.decode(readFileSync(p));
    t.name = free[i]?.name ?? t.name;
    return t;
  });
  const g2 = onnx.GraphProto.create({ ...graph, initializer: [...(graph.initializer ?? []), ...protos] });
  return onnx.ModelProto.create({ ...m, graph: g2 });
}

function pbFiles(dir: string, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 0; existsSync(join(dir, `${prefix}_${i}.pb`)); i++) out.push(join(dir, `${prefix}_${i}.pb`));
  return out;
}

/** Inputs bind to graph inputs by position (the backend-test convention); outputs likewise. */
function runSet(g: Graph, dir: string, baked: boolean): string | undefined {
  const inputs = baked ? [] : pbFiles(dir, "input").map((p) => readTensorFile(p).tensor);
  if (inputs.length !== g.inputs.length)
    return `${inputs.length} input file(s) for ${g.inputs.length} graph input(s)`;
  const got = runGraph(g, new Map(g.inputs.map((v, i) => [v.name, inputs[i]])));
  const expected = pbFiles(dir, "output").map((p) => readTensorFile(p).tensor);
  if (expected.length !== g.outputs.length)
    return `${expected.length} output file(s) for ${g.outputs.length} graph output(s)`;
  for (let i = 0; i < expected.length; i++) {
    const name = g.outputs[i].name;
    const why = mismatch(got.get(name)!, expected[i]);
    if (why) return `output ${i} (${name}): ${why}`;
  }
  return undefined;
}
