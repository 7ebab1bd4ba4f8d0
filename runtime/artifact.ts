/**
 * Device artifacts (WGSL now, CUDA later): `manifest.json` (the scheduled program with printed
 * dims), one source file per kernel under `kernels/`, and `weights.safetensors` (constant
 * buffers by key). No Node imports: browsers load an artifact through a fetch-like function.
 */
import { DTYPES, type DType } from "../compiler/ir/dtype.js";
import { type Dim, parseDim, printDim } from "../compiler/ir/sym.js";
import type { Tensor } from "../compiler/ir/tensor.js";
import { kernelSymbols } from "../compiler/kir/builder.js";
import type { Program, ProgramBuffer, Step } from "../compiler/kir/program.js";
import type { BufferParam, Kernel, Target } from "../compiler/kir/types.js";
import { parseSafetensors, serializeSafetensors } from "./safetensors.js";

export const ARTIFACT_FORMAT = "tokr-artifact";
export const ARTIFACT_VERSION = 2;
export type Backend = "wgsl" | "cuda";

/** A rendered kernel: what a runtime needs to launch it (no KIR body). */
export interface CompiledKernel {
  readonly name: string;
  readonly source: string;
  /** Symbols passed as i32 uniforms, in struct order (binding = params.length). */
  readonly symbols: readonly string[];
  readonly params: readonly BufferParam[];
  readonly workgroupSize: readonly [number, number, number];
  readonly grid: readonly [Dim, Dim, Dim];
}

/** A Program whose kernels are rendered for a backend and a target. */
export interface CompiledProgram extends Omit<Program, "kernels"> {
  readonly backend: Backend;
  readonly target: Target;
  readonly kernels: readonly CompiledKernel[];
}

export class ArtifactError extends Error {}

/** Renders every kernel of a program (`render` is the backend's kernel -> source function). */
export function compileProgram(
  p: Program,
  backend: Backend,
  target: Target,
  render: (k: Kernel) => string,
): CompiledProgram {
  const kernels = p.kernels.map((k) => ({
    name: k.name,
    source: render(k),
    symbols: kernelSymbols(k),
    params: k.params,
    workgroupSize: k.workgroupSize,
    grid: k.grid,
  }));
  const unbound = unboundSymbolError(p, kernels);
  if (unbound) throw new ArtifactError(unbound);
  return { ...p, backend, target, kernels };
}

/**
 * The first step whose kernel reads a symbol that neither the program's symbols nor the step's
 * `bind` give a value (a runner would pass garbage as its uniform), as a message naming the
 * step, its nodes and the kernel; undefined when every symbol is bound. Steps naming a missing
 * kernel are the caller's to report.
 */
export function unboundSymbolError(
  p: {
    readonly name: string;
    readonly symbols: readonly { readonly name: string }[];
    readonly steps: readonly Step[];
  },
  kernels: readonly { readonly name: string; readonly symbols: readonly string[] }[],
): string | undefined {
  const bound = new Set(p.symbols.map((s) => s.name));
  for (const [i, s] of p.steps.entries())
    for (const n of kernels[s.kernel]?.symbols ?? [])
      if (!bound.has(n) && s.bind?.[n] === undefined)
        return (
          `${p.name}: step ${i} (nodes ${s.nodes.join(", ")}) runs kernel ${kernels[s.kernel].name}, ` +
          `which reads symbol ${n}; neither the program nor the step binds it`
        );
  return undefined;
}

interface ManifestKernel {
  name: string;
  file: string;
  symbols: string[];
  params: BufferParam[];
  workgroupSize: [number, number, number];
  grid: [string, string, string];
}

interface ManifestBuffer {
  id: number;
  name: string;
  dtype: DType;
  dims: string[];
  storage: ProgramBuffer["storage"];
  size: string;
  kind: ProgramBuffer["kind"];
  aliasOf?: number;
  /** Element offset into the aliasOf root (chunks of a unit split by the binding limit). */
  offset?: number;
  /** Key of the constant's data in the weights file. */
  weight?: string;
  firstUse: number;
  lastUse: number;
}

/** `manifest.json` of a device artifact. */
export interface ProgramManifest {
  format: typeof ARTIFACT_FORMAT;
  version: number;
  target: Backend;
  weights: string;
  source?: string;
  inputs: { name: string; dtype: DType; dims: string[] }[];
  outputs: { name: string; dtype: DType; dims: string[] }[];
  program: {
    name: string;
    /** The device capabilities the kernels assume. */
    target: Target;
    symbols: { name: string; capacity?: string }[];
    buffers: ManifestBuffer[];
    kernels: ManifestKernel[];
    steps: Step[];
    inputs: number[];
    outputs: number[];
    /** Program.batchSymbol / batchRefusal (absent in older manifests: not batch-separable). */
    batchSymbol?: string;
    batchRefusal?: string;
    /** Program.genericRefusals (absent: none). */
    genericRefusals?: string[];
  };
}

const EXT: Record<Backend, string> = { wgsl: "wgsl", cuda: "cu" };

/**
 * Manifest rows of program buffers (dims printed) and the constant data keyed by each row's unique
 * `weight` name: what every backend's artifact stores (weights go to weights.safetensors).
 */
export function manifestBuffers(bufs: readonly ProgramBuffer[]): {
  buffers: ManifestBuffer[];
  weights: Map<string, Tensor>;
} {
  const weights = new Map<string, Tensor>();
  const buffers = bufs.map((b): ManifestBuffer => {
    let weight: string | undefined;
    if (b.data) {
      weight = b.name;
      for (let k = 1; weights.has(weight); k++) weight = `${b.name}_${k}`;
      weights.set(weight, b.data);
    }
    return {
      id: b.id,
      name: b.name,
      dtype: b.dtype,
      dims: b.dims.map(printDim),
      storage: b.storage,
      size: printDim(b.size),
      kind: b.kind,
      ...(b.aliasOf !== undefined ? { aliasOf: b.aliasOf } : {}),
      ...(b.offset !== undefined ? { offset: b.offset } : {}),
      ...(weight !== undefined ? { weight } : {}),
      firstUse: b.firstUse,
      lastUse: b.lastUse,
    };
  });
  return { buffers, weights };
}

/** Artifact files (relative name -> bytes) for a compiled program. */
export function writeProgramArtifact(cp: CompiledProgram, source?: string): Map<string, Uint8Array> {
  const enc = new TextEncoder();
  const files = new Map<string, Uint8Array>();
  const { buffers, weights } = manifestBuffers(cp.buffers);
  const kernels = cp.kernels.map((k, i): ManifestKernel => {
    const file = `kernels/${String(i).padStart(3, "0")}_${k.name}.${EXT[cp.backend]}`;
    files.set(file, enc.encode(k.source));
    return {
      name: k.name,
      file,
      symbols: [...k.symbols],
      params: [...k.params],
      workgroupSize: [...k.workgroupSize],
      grid: [printDim(k.grid[0]), printDim(k.grid[1]), printDim(k.grid[2])],
    };
  });
  const sig = (id: number): { name: string; dtype: DType; dims: string[] } => {
    const b = cp.buffers[id];
    return { name: b.name, dtype: b.dtype, dims: b.dims.map(printDim) };
  };
  const manifest: ProgramManifest = {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    target: cp.backend,
    weights: "weights.safetensors",
    ...(source !== undefined ? { source } : {}),
    inputs: cp.inputs.map(sig),
    outputs: cp.outputs.map(sig),
    program: {
      name: cp.name,
      target: cp.target,
      symbols: cp.symbols.map((s) => ({
        name: s.name,
        ...(s.capacity !== undefined ? { capacity: printDim(s.capacity) } : {}),
      })),
      buffers,
      kernels,
      steps: cp.steps.map((s) => ({
        kernel: s.kernel,
        args: [...s.args],
        nodes: [...s.nodes],
        ...(s.bind ? { bind: { ...s.bind } } : {}),
      })),
      inputs: [...cp.inputs],
      outputs: [...cp.outputs],
      ...(cp.batchSymbol !== undefined ? { batchSymbol: cp.batchSymbol } : {}),
      ...(cp.batchRefusal !== undefined ? { batchRefusal: cp.batchRefusal } : {}),
      ...(cp.genericRefusals !== undefined ? { genericRefusals: [...cp.genericRefusals] } : {}),
    },
  };
  files.set(
    "weights.safetensors",
    serializeSafetensors(weights, { format: ARTIFACT_FORMAT, program: cp.name }),
  );
  files.set("manifest.json", enc.encode(JSON.stringify(manifest, null, 2) + "\n"));
  return files;
}

/** Reads one artifact file by its relative name (Node: readFile under the directory; browser: fetch). */
export type FetchLike = (name: string) => Promise<Uint8Array>;

/**
 * A FetchLike over HTTP: each file is `fetch`ed relative to `base` (an artifact directory URL,
 * relative to the page in a browser; a missing trailing slash is added). A non-2xx answer is an
 * error naming the URL and the status.
 */
export function fetchFiles(base: string | URL, fetchImpl: typeof fetch = globalThis.fetch): FetchLike {
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const dir = new URL(String(base).endsWith("/") ? String(base) : `${String(base)}/`, page);
  return async (name) => {
    const url = new URL(name, dir);
    const res = await fetchImpl(url);
    if (!res.ok) throw new Error(`GET ${url.href}: HTTP ${res.status} ${res.statusText}`.trimEnd());
    return new Uint8Array(await res.arrayBuffer());
  };
}

/** Loads a device artifact served over HTTP (see fetchFiles); errors name files under `base`. */
export function loadProgramArtifactFromUrl(
  base: string | URL,
  fetchImpl: typeof fetch = globalThis.fetch,
): Promise<CompiledProgram> {
  return loadProgramArtifact(fetchFiles(base, fetchImpl), String(base).replace(/\/$/, ""));
}

/** Loads a device artifact; `where` names it in errors (a directory or URL). */
export async function loadProgramArtifact(
  fetchFile: FetchLike,
  where = "artifact",
): Promise<CompiledProgram> {
  const fail = (why: string): never => {
    throw new ArtifactError(`${where}/manifest.json: ${why}`);
  };
  const get = async (name: string): Promise<Uint8Array> => {
    if (name.split("/").some((p) => p === ".." || p === "" || p === ".") || /\\|^\//.test(name))
      fail(`file name ${JSON.stringify(name)} leaves the artifact`);
    try {
      return await fetchFile(name);
    } catch (e) {
      throw new ArtifactError(`${where}/${name}: cannot read: ${(e as Error).message}`);
    }
  };
  const dec = new TextDecoder();
  let m: ProgramManifest;
  try {
    m = JSON.parse(dec.decode(await get("manifest.json"))) as ProgramManifest;
  } catch (e) {
    if (e instanceof ArtifactError) throw e;
    return fail(`not JSON: ${(e as Error).message}`);
  }
  if (typeof m !== "object" || m === null) return fail("not a JSON object");
  if (m.format !== ARTIFACT_FORMAT)
    fail(`format is ${JSON.stringify(m.format)}, expected "${ARTIFACT_FORMAT}"`);
  // Version 1 predates per-step symbol bindings (generic kernels): it reads the same way.
  if (m.version !== ARTIFACT_VERSION && m.version !== 1)
    fail(`version ${JSON.stringify(m.version)} is not supported`);
  if (m.target !== "wgsl" && m.target !== "cuda")
    fail(`target ${JSON.stringify(m.target)} is not a device artifact`);
  const p = m.program;
  if (typeof p !== "object" || p === null || !Array.isArray(p.buffers) || !Array.isArray(p.kernels))
    return fail("'program' is missing or malformed");
  const dim = (s: string, what: string): Dim => {
    try {
      return parseDim(s);
    } catch (e) {
      return fail(`${what}: ${(e as Error).message}`);
    }
  };
  const weights = parseSafetensors(await get(m.weights), `${where}/${m.weights}`);
  const buffers = p.buffers.map((b, i): ProgramBuffer => {
    if (b.id !== i) fail(`buffer ${i} has id ${b.id}`);
    if (!(DTYPES as readonly string[]).includes(b.dtype))
      fail(`buffer '${b.name}': unknown dtype ${b.dtype}`);
    if (b.offset !== undefined && (!Number.isInteger(b.offset) || b.offset < 0 || b.aliasOf === undefined))
      fail(`buffer '${b.name}': offset ${JSON.stringify(b.offset)} needs aliasOf and a non-negative integer`);
    let data: Tensor | undefined;
    if (b.weight !== undefined) {
      data = weights.get(b.weight);
      if (!data) fail(`buffer '${b.name}': weight '${b.weight}' is not in ${m.weights}`);
    }
    return {
      id: b.id,
      name: b.name,
      dtype: b.dtype,
      dims: b.dims.map((d) => dim(d, `buffer '${b.name}'`)),
      storage: b.storage,
      size: dim(b.size, `buffer '${b.name}'`),
      kind: b.kind,
      ...(b.aliasOf !== undefined ? { aliasOf: b.aliasOf } : {}),
      ...(b.offset !== undefined ? { offset: b.offset } : {}),
      ...(data ? { data } : {}),
      firstUse: b.firstUse,
      lastUse: b.lastUse,
    };
  });
  const kernels = await Promise.all(
    p.kernels.map(async (k): Promise<CompiledKernel> => {
      const g = k.grid.map((d) => dim(d, `kernel ${k.name} grid`));
      return {
        name: k.name,
        source: dec.decode(await get(k.file)),
        symbols: k.symbols,
        params: k.params,
        workgroupSize: k.workgroupSize,
        grid: [g[0], g[1], g[2]],
      };
    }),
  );
  for (const [i, s] of p.steps.entries()) {
    const k = kernels[s.kernel];
    if (!k) fail(`step ${i} names kernel ${s.kernel}, but there are ${kernels.length}`);
    if (s.args.length !== k.params.length || s.args.some((a) => !buffers[a]))
      fail(`step ${i} (kernel ${k.name}) binds ${s.args.length} buffers to ${k.params.length} parameters`);
    if (s.bind !== undefined && (typeof s.bind !== "object" || s.bind === null))
      fail(`step ${i} (kernel ${k.name}): 'bind' is not an object`);
    for (const [n, v] of Object.entries(s.bind ?? {}))
      if (!Number.isInteger(v) || v < 0 || v >= 2 ** 31)
        fail(`step ${i} (kernel ${k.name}) binds symbol ${n} to ${JSON.stringify(v)}, not an i32 size`);
  }
  const unbound = unboundSymbolError(p, kernels);
  if (unbound) fail(unbound);
  for (const k of ["batchSymbol", "batchRefusal"] as const)
    if (p[k] !== undefined && typeof p[k] !== "string") fail(`program.${k} is not a string`);
  const gr = p.genericRefusals;
  if (gr !== undefined && !(Array.isArray(gr) && gr.every((x) => typeof x === "string")))
    fail("program.genericRefusals is not a list of strings");
  return {
    name: p.name,
    backend: m.target,
    target: p.target,
    symbols: p.symbols.map((s) => ({
      name: s.name,
      ...(s.capacity !== undefined ? { capacity: dim(s.capacity, `symbol ${s.name}`) } : {}),
    })),
    buffers,
    kernels,
    steps: p.steps,
    inputs: p.inputs,
    outputs: p.outputs,
    ...(p.batchSymbol !== undefined ? { batchSymbol: p.batchSymbol } : {}),
    ...(p.batchRefusal !== undefined ? { batchRefusal: p.batchRefusal } : {}),
    ...(gr !== undefined ? { genericRefusals: gr } : {}),
  };
}
