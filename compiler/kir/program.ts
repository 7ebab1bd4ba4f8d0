import type { DType } from "../ir/dtype.js";
import type { Dim } from "../ir/sym.js";
import type { Tensor } from "../ir/tensor.js";
import type { KType, Kernel, Target } from "./types.js";

/**
 * A whole graph scheduled onto kernels: what every device backend (WGSL, CUDA, the KIR
 * interpreter) executes. Built from a verified graph by `buildProgram` (schedule.ts); backends
 * render `kernels` and the runtime replays `steps` in order.
 */
export interface Program {
  readonly name: string;
  /** Graph symbols the run binds (from input shapes); data-dependent ones carry a capacity. */
  readonly symbols: readonly { readonly name: string; readonly capacity?: Dim }[];
  readonly buffers: readonly ProgramBuffer[];
  /** Distinct kernels (a kernel used by several steps appears once). */
  readonly kernels: readonly Kernel[];
  readonly steps: readonly Step[];
  /** Buffer ids of the graph inputs / outputs, in graph order. */
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  /** The device assumptions the kernels were lowered for (lane counts, f16): runners must match them. */
  readonly target?: Target;
  /**
   * The batch symbol when the program is batch-separable (batch.ts): runners may run consecutive
   * slices of it and concatenate the outputs. Absent: not separable (or not decided: old artifacts).
   */
  readonly batchSymbol?: string;
  /** Why the program is not batch-separable (naming the first node that mixes examples). */
  readonly batchRefusal?: string;
  /**
   * Units of a generic class (generic.ts) that kept their static kernels, each `node: why`
   * (split by the binding limit, or the generic lowering differs). Absent: none.
   */
  readonly genericRefusals?: readonly string[];
}

export interface ProgramBuffer {
  readonly id: number;
  /** The graph value's name (scratch: `<node>.<scratch name>`). */
  readonly name: string;
  /** IR dtype and shape (what the user sees at the boundary). */
  readonly dtype: DType;
  readonly dims: readonly Dim[];
  /** Element type on the device (storageType of dtype). */
  readonly storage: Exclude<KType, "bool">;
  /** Elements (product of dims; for scratch, the lowering's size). */
  readonly size: Dim;
  readonly kind: "input" | "output" | "constant" | "intermediate" | "scratch";
  /** Views (Reshape...) share the storage of another buffer (always a root: no chains). */
  readonly aliasOf?: number;
  /**
   * Elements into the `aliasOf` root's storage where this view starts (absent: 0). Chunks of a
   * unit split by the binding limit (split.ts) bind such views; byte offsets are multiples of 256.
   */
  readonly offset?: number;
  /** Constant data (kind "constant"). */
  readonly data?: Tensor;
  /** Index of the first and last step that touches this buffer's storage (for memory planning). */
  readonly firstUse: number;
  readonly lastUse: number;
}

/** One dispatch: a kernel (index into `kernels`) and the buffer bound to each of its parameters. */
export interface Step {
  readonly kernel: number;
  readonly args: readonly number[];
  /** The graph node(s) this dispatch computes (a fused chain names all), for errors and profiles. */
  readonly nodes: readonly string[];
  /**
   * Values of symbols the kernel reads that are not graph symbols: a generic kernel serves units
   * that differ in static dims (kir/generic.ts), and each of its steps binds its own values.
   */
  readonly bind?: Readonly<Record<string, number>>;
}

/** The symbol values a step runs with: the run's (from the inputs) plus the step's own binding. */
export function stepEnv(env: ReadonlyMap<string, number>, step: Step): ReadonlyMap<string, number> {
  if (!step.bind) return env;
  const out = new Map(env);
  for (const [k, v] of Object.entries(step.bind)) out.set(k, v);
  return out;
}
