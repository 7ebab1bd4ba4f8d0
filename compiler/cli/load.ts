/** Reading what commands take as INPUT: IR text files, compiled artifacts, and weights for `ref<>` constants. */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { extname } from "node:path";
import type { Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { parseAndVerify } from "../ir/text/parser.js";
import { compileTokr } from "../lang/check.js";
import { importOnnxFile } from "../onnx/import.js";
import { printType, tensorType } from "../ir/types.js";
import { parseSafetensors, serializeSafetensors, type TensorFile } from "../../runtime/safetensors.js";
import { type Args, CliError, fsMessage } from "./cli.js";
import { readArtifact } from "./artifact.js";

export type InputKind = "ir" | "tokr" | "onnx" | "artifact";

/** What INPUT is, by extension or by being a directory; unknown kinds and missing files are errors. */
export function inputKind(args: Args, input: string): InputKind {
  const abs = args.path(input);
  if (!existsSync(abs)) throw new CliError(`${input}: no such file or directory`);
  if (statSync(abs).isDirectory()) return "artifact";
  switch (extname(input).toLowerCase()) {
    case ".ir":
      return "ir";
    case ".tokr":
      return "tokr";
    case ".onnx":
      return "onnx";
    default:
      throw new CliError(
        `${input}: unknown input kind (expected a .ir, .tokr or .onnx file, or a compiled artifact directory)`,
      );
  }
}

export function readText(args: Args, file: string): string {
  try {
    return readFileSync(args.path(file), "utf8");
  } catch (e) {
    throw new CliError(`${file}: cannot read file: ${fsMessage(e)}`);
  }
}

/** Reads a safetensors file; errors name the file as the user gave it. */
export function readTensors(args: Args, file: string): TensorFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(args.path(file));
  } catch (e) {
    throw new CliError(`${file}: cannot read file: ${fsMessage(e)}`);
  }
  return parseSafetensors(bytes, file);
}

export function writeTensors(args: Args, file: string, tensors: ReadonlyMap<string, Tensor>): void {
  const bytes = serializeSafetensors(tensors, undefined, file);
  try {
    writeFileSync(args.path(file), bytes);
  } catch (e) {
    throw new CliError(`${file}: cannot write file: ${fsMessage(e)}`);
  }
}

/** Parses and verifies an IR text file; parse errors and diagnostics carry `file:line:col`. */
export function loadIR(args: Args, file: string): Graph {
  return parseAndVerify(readText(args, file), file);
}

/** Compiles a `.tokr` program; errors are a LangError carrying every diagnostic. */
export function loadTokr(args: Args, file: string): Graph {
  return compileTokr(readText(args, file), file);
}

/**
 * The graph an INPUT denotes. `.ir` files are parsed and verified; `.onnx` models are imported
 * (weights inline); an artifact directory is loaded with its weights bound; `.tokr` programs are compiled.
 */
export function loadGraph(args: Args, input: string, allowArtifact = true): Graph {
  const kind = inputKind(args, input);
  switch (kind) {
    case "ir":
      return loadIR(args, input);
    case "artifact":
      if (!allowArtifact) throw new CliError(`${input}: is a directory; expected a model file`);
      return readArtifact(args, input).graph;
    case "tokr":
      return loadTokr(args, input);
    case "onnx":
      return loadOnnx(args, input);
  }
}

/** Imports an ONNX model; errors (`OnnxImportError`) name the file as the user gave it. */
export function loadOnnx(args: Args, file: string): Graph {
  return importOnnxFile(args.path(file), file);
}

/** Keys of `ref<>` constants that hold no data yet, in graph order. */
export function unboundRefs(g: Graph): string[] {
  const out: string[] = [];
  for (const c of g.constants.values()) if (!c.data) out.push(c.ref ?? c.value.name);
  return out;
}

/**
 * Binds `ref<"key">` constants that hold no data from `weights` (by key), checking dtype and
 * shape. Every problem (missing keys, mismatches) is reported at once. Returns how many were bound.
 */
export function bindWeights(g: Graph, weights: ReadonlyMap<string, Tensor>, file: string): number {
  const problems: string[] = [];
  const missing: string[] = [];
  let bound = 0;
  for (const [v, c] of g.constants) {
    if (c.data || c.ref === undefined) continue;
    const w = weights.get(c.ref);
    if (!w) {
      missing.push(c.ref);
      continue;
    }
    const dims = v.type.dims;
    const same =
      w.dtype === v.type.dtype && w.shape.length === dims.length && w.shape.every((d, i) => d === dims[i]);
    if (!same) {
      const got = printType(tensorType(w.dtype, w.shape));
      problems.push(
        `weight '${c.ref}' in ${file} is ${got}, but constant %${v.name} is ${printType(v.type)}`,
      );
      continue;
    }
    g.constants.set(v, { value: v, data: w, ref: c.ref });
    bound++;
  }
  if (missing.length)
    problems.unshift(`${file} lacks ${missing.length} weight(s) the graph needs: ${missing.join(", ")}`);
  if (problems.length) throw new CliError(problems.join("\n"));
  return bound;
}

/** Binds weights from a safetensors file if given; then every `ref<>` must hold data. */
export function bindWeightsFile(args: Args, g: Graph, file: string | undefined, why: string): void {
  if (file !== undefined) bindWeights(g, readTensors(args, file), file);
  const refs = unboundRefs(g);
  if (refs.length)
    throw new CliError(
      `${why} needs data for ${refs.length} ref<> constant(s) (${refs.join(", ")}): pass --weights FILE.safetensors`,
    );
}
