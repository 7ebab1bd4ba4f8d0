import { bindInputs, RunError } from "../../backends/cpu/interpreter.js";
import { Graph } from "../ir/graph.js";
import { evalDim } from "../ir/sym.js";
import { numel, type Tensor } from "../ir/tensor.js";
import { tensorType } from "../ir/types.js";
import { type KArray, type RunOptions, runKernel } from "./interp.js";
import { type Program, stepEnv } from "./program.js";
import { deviceArray, fromDevice, toDevice } from "./run.js";
import { DEFAULT_TARGET, type KType, type Target } from "./types.js";

export interface ProgramRunOptions extends RunOptions {
  /**
   * The program's target: `f16` (how IR f16 tensors are stored) and `subgroupSize` (lanes the
   * kernels were lowered for; `subgroupSize` in the options overrides it). Default DEFAULT_TARGET.
   */
  readonly target?: Target;
}

/** A graph with just the program's input signature, so input binding is the reference's own. */
function signature(p: Program): Graph {
  const g = new Graph(p.name);
  for (const s of p.symbols) g.declareSymbol(s);
  for (const id of p.inputs) {
    const b = p.buffers[id];
    g.addInput(tensorType(b.dtype, b.dims), b.name);
  }
  return g;
}

/**
 * A fresh intermediate/scratch/output array filled with all-ones bytes (NaN for floats, -1 / 2^32-1
 * for ints), like the CUDA emulator: GPU memory is not zeroed and the WebGPU runtime reuses buffers
 * by liveness, so a kernel that reads what no step wrote must show up here too.
 */
function poisoned(t: Exclude<KType, "bool">, n: number): KArray {
  const a = deviceArray(t, n);
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength).fill(0xff);
  return a;
}

/**
 * Executes a scheduled program on the KIR interpreter: the CPU check of a whole compiled graph.
 * Symbols are bound from the input shapes exactly as `runGraph` binds them; data-dependent symbols
 * take their capacity, as on the GPU (outputs with such dims come back at capacity size; the live
 * count is the producing op's count output). i64 inputs must fit in i32 (their device form) and
 * i64/bool outputs come back in their IR dtype. Buffers that are not inputs or constants start
 * poisoned (all-ones bytes). Returns the outputs by name.
 */
export function runProgramOnKir(
  program: Program,
  feeds: ReadonlyMap<string, Tensor>,
  opts: ProgramRunOptions = {},
): Map<string, Tensor> {
  if (opts.target && program.target && JSON.stringify(opts.target) !== JSON.stringify(program.target))
    throw new RunError(`program ${program.name} was lowered for another target than the one given to run it`);
  const target = opts.target ?? program.target ?? DEFAULT_TARGET;
  const env = bindInputs(signature(program), feeds);
  // Like the GPU runtime: a data-dependent symbol not bound by an input takes its capacity.
  for (const s of program.symbols)
    if (!env.has(s.name) && s.capacity !== undefined) env.set(s.name, evalDim(s.capacity, env));
  const storage = new Map<number, KArray>();
  for (const id of program.inputs) {
    const b = program.buffers[id];
    const t = feeds.get(b.name)!;
    if (t.dtype === "i64")
      for (let i = 0; i < t.data.length; i++)
        if (t.data[i] < -(2 ** 31) || t.data[i] >= 2 ** 31)
          throw new RunError(
            `input '${b.name}' element ${i} is ${t.data[i]}, outside the device's i32 range`,
          );
    storage.set(id, toDevice(t, target));
  }
  const arrayOf = (id: number): KArray => {
    const b = program.buffers[id];
    const r = b.aliasOf ?? id;
    const whole = rootArray(r);
    // Offset views (chunks of a unit split by the binding limit) see their sub-range only.
    return b.offset === undefined ? whole : whole.subarray(b.offset, b.offset + evalDim(b.size, env));
  };
  const rootArray = (r: number): KArray => {
    const have = storage.get(r);
    if (have) return have;
    const rb = program.buffers[r];
    let a: KArray;
    if (rb.kind === "constant") {
      if (!rb.data) throw new RunError(`constant %${rb.name} has no data (weights were not loaded)`);
      a = toDevice(rb.data, target);
    } else a = poisoned(rb.storage, evalDim(rb.size, env));
    storage.set(r, a);
    return a;
  };
  program.steps.forEach((s, i) => {
    const k = program.kernels[s.kernel];
    const arrays: Record<string, KArray> = {};
    k.params.forEach((p, j) => (arrays[p.name] = arrayOf(s.args[j])));
    try {
      runKernel(k, arrays, stepEnv(env, s), { subgroupSize: target.subgroupSize, ...opts });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new RunError(`step ${i} (kernel ${k.name}, nodes ${s.nodes.join(", ")}): ${msg}`);
    }
  });
  const out = new Map<string, Tensor>();
  for (const id of program.outputs) {
    const b = program.buffers[id];
    const shape = b.dims.map((d) => evalDim(d, env));
    const a = arrayOf(id);
    out.set(b.name, fromDevice(a.length === numel(shape) ? a : a.slice(0, numel(shape)), b.dtype, shape));
  }
  return out;
}
