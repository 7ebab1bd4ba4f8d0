/**
 * CPU artifacts: a directory holding `graph.ir` (large constants elided to `ref<>`),
 * `weights.safetensors` (their data) and `manifest.json` (what the files are and the graph's signature).
 */
import { mkdirSync, readFileSync, statSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { parseAndVerify } from "../ir/text/parser.js";
import { printGraph } from "../ir/text/printer.js";
import { printType } from "../ir/types.js";
import { MAX_KNOWN_ELEMENTS } from "../infer.js";
import { parseSafetensors, serializeSafetensors } from "../../runtime/safetensors.js";
import { type Args, CliError, fsMessage } from "./cli.js";
import { notImplemented } from "./pending.js";

export const ARTIFACT_FORMAT = "tokr-artifact";
export const ARTIFACT_VERSION = 1;

/** The parsed `manifest.json`. */
export interface Manifest {
  readonly format: typeof ARTIFACT_FORMAT;
  readonly version: number;
  readonly target: string;
  /** File names inside the artifact directory. */
  readonly graph: string;
  readonly weights: string;
  readonly source?: string;
  readonly inputs: readonly { readonly name: string; readonly type: string }[];
  readonly outputs: readonly { readonly name: string; readonly type: string }[];
}

/**
 * Moves the data of every constant larger than MAX_KNOWN_ELEMENTS out of the graph into a
 * weights map (key: its ref, else its value name). Small constants stay inline because shape
 * arithmetic reads them at compile time.
 */
export function elideConstants(g: Graph): Map<string, Tensor> {
  const weights = new Map<string, Tensor>();
  for (const [v, c] of g.constants) {
    if (!c.data || c.data.data.length <= MAX_KNOWN_ELEMENTS) continue;
    let key = c.ref ?? v.name;
    // Constants sharing a ref and its data share the key; anything else gets a fresh one.
    for (let k = 1; weights.has(key) && weights.get(key) !== c.data; k++) key = `${c.ref ?? v.name}_${k}`;
    weights.set(key, c.data);
    g.constants.set(v, { value: v, ref: key });
  }
  return weights;
}

/** Writes a CPU artifact for a graph whose constants all hold data. */
export function writeArtifact(args: Args, dir: string, g: Graph, source: string): Manifest {
  const abs = args.path(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory())
    throw new CliError(`${dir}: exists and is not a directory`);
  const weights = elideConstants(g);
  const manifest: Manifest = {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    target: "cpu",
    graph: "graph.ir",
    weights: "weights.safetensors",
    source,
    inputs: g.inputs.map((v) => ({ name: v.name, type: printType(v.type) })),
    outputs: g.outputs.map((v) => ({ name: v.name, type: printType(v.type) })),
  };
  try {
    mkdirSync(abs, { recursive: true });
    writeFileSync(join(abs, manifest.graph), printGraph(g));
    writeFileSync(
      join(abs, manifest.weights),
      serializeSafetensors(weights, { format: ARTIFACT_FORMAT, graph: g.name }),
    );
    writeFileSync(join(abs, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  } catch (e) {
    throw new CliError(`${dir}: cannot write artifact: ${fsMessage(e)}`);
  }
  return manifest;
}

/** Reads an artifact directory: its manifest, its graph (verified) with the artifact's weights bound. */
export function readArtifact(args: Args, dir: string): { manifest: Manifest; graph: Graph } {
  const abs = args.path(dir);
  const manifestFile = join(dir, "manifest.json");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(join(abs, "manifest.json"), "utf8"));
  } catch (e) {
    throw new CliError(`${manifestFile}: not a tokr artifact: ${fsMessage(e)}`);
  }
  const target = (json as { target?: unknown } | null)?.target;
  if (target === "cuda") throw notImplemented("cuda", `${dir}: running cuda artifacts`);
  if (target === "wgsl")
    throw new CliError(`${dir}: a wgsl artifact holds no graph; run it with \`tokr run ${dir}\``);
  const manifest = checkManifest(json, manifestFile);
  if (manifest.target !== "cpu")
    throw new CliError(`${manifestFile}: unknown target ${JSON.stringify(target)}`);
  const graphFile = join(dir, manifest.graph);
  let text: string;
  let bytes: Uint8Array;
  try {
    text = readFileSync(join(abs, manifest.graph), "utf8");
    bytes = readFileSync(join(abs, manifest.weights));
  } catch (e) {
    throw new CliError(`${dir}: incomplete artifact: ${fsMessage(e)}`);
  }
  const graph = parseAndVerify(text, graphFile);
  const weights = parseSafetensors(bytes, join(dir, manifest.weights));
  for (const [v, c] of graph.constants) {
    const w = c.ref !== undefined && !c.data ? weights.get(c.ref) : undefined;
    if (w) graph.constants.set(v, { value: v, data: w, ref: c.ref });
  }
  return { manifest, graph };
}

function checkManifest(json: unknown, file: string): Manifest {
  const fail = (why: string): never => {
    throw new CliError(`${file}: ${why}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json))
    return fail("manifest is not a JSON object");
  const m = json as Record<string, unknown>;
  if (m.format !== ARTIFACT_FORMAT)
    fail(`format is ${JSON.stringify(m.format)}, expected "${ARTIFACT_FORMAT}"`);
  if (m.version !== ARTIFACT_VERSION)
    fail(`version ${JSON.stringify(m.version)} is not supported (expected ${ARTIFACT_VERSION})`);
  for (const k of ["target", "graph", "weights"])
    if (typeof m[k] !== "string") fail(`'${k}' is missing or not a string`);
  // File names stay inside the artifact directory.
  for (const k of ["graph", "weights"])
    if (/[/\\]|^\.\.?$/.test(m[k] as string))
      fail(`'${k}' must be a plain file name, got ${JSON.stringify(m[k])}`);
  return json as Manifest;
}
