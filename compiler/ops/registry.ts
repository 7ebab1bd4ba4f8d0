import type { AttrSchema, AttrValue, Attrs } from "../ir/attrs.js";
import { attr, optAttr } from "../ir/attrs.js";
import type { Dim, DimEnv } from "../ir/sym.js";
import type { Tensor } from "../ir/tensor.js";
import type { TensorType } from "../ir/types.js";
import type { DType } from "../ir/dtype.js";
import type { Epilogue, Expr, Lowering, Target } from "../kir/types.js";

/** An error in an op's use (bad shapes, bad attributes); the caller adds the node's location. */
export class OpError extends Error {}

export interface PortSpec {
  readonly name: string;
  /** May be absent (null input, or fewer outputs requested). */
  readonly optional?: boolean;
  /** Takes all remaining inputs (Concat, Max...) or outputs (Split). Only the last port may be variadic. */
  readonly variadic?: boolean;
}

/** What shape inference sees of a node. */
export interface InferCtx {
  readonly op: string;
  readonly attrs: Attrs;
  readonly inputs: readonly (TensorType | null)[];
  /** How many outputs the node has (ops with optional outputs look at this). */
  readonly numOutputs: number;
  /** Attribute with the schema default applied. */
  attr<T extends AttrValue>(name: string): T;
  optAttr<T extends AttrValue>(name: string): T | undefined;
  /**
   * The element values of input `i` when known at compile time (constants and shape
   * arithmetic such as Shape -> Gather -> Concat), possibly symbolic. Only for small integer tensors.
   */
  known(i: number): readonly Dim[] | undefined;
  /**
   * A data-dependent dimension (e.g. an adaptive keep count) of output `output`, axis `axis`,
   * bounded by `capacity`. Inference mints a fresh graph symbol; verification returns the declared one.
   */
  dataDim(output: number, axis: number, capacity: Dim, hint: string): Dim;
  fail(message: string): never;
}

/** What a reference implementation sees besides its inputs. */
export interface RefCtx {
  readonly attrs: Attrs;
  readonly numOutputs: number;
  attr<T extends AttrValue>(name: string): T;
  optAttr<T extends AttrValue>(name: string): T | undefined;
  /** Symbol bindings of the run, for ops whose attributes are symbolic dims (tokens.prune `keep`). */
  readonly env?: DimEnv;
}

/**
 * Where a tensor's elements sit in the storage bound for it: element `idx` at
 * `offset + Σ idx[a]·strides[a]` (see kir/views.ts; size-1 axes have stride 0).
 */
export interface ElementStrides {
  readonly offset: Dim;
  readonly strides: readonly Dim[];
}

/** What an op's lowering to kernel IR sees (types are the node's, possibly symbolic). */
export interface LowerCtx {
  readonly op: string;
  /** A valid identifier naming the node; kernel names start with it. */
  readonly name: string;
  readonly attrs: Attrs;
  readonly inputs: readonly (TensorType | null)[];
  readonly outputs: readonly TensorType[];
  readonly target: Target;
  attr<T extends AttrValue>(name: string): T;
  optAttr<T extends AttrValue>(name: string): T | undefined;
  fail(message: string): never;
  /**
   * Inputs (listed in `OpDef.stridedInputs`) bound as the storage of a base value they are a
   * strided view of: the lowering reads element idx of input i at `inputViews[i]` (absent: row-major).
   */
  readonly inputViews?: readonly (ElementStrides | undefined)[];
  /** Output 0 bound as the storage of a value it is a strided view of (`OpDef.stridedOutput`). */
  readonly outputView?: ElementStrides;
  /**
   * The largest value a symbolic dim takes in the runs this kernel serves, when known: generic
   * kernels (kir/generic.ts) serve several static shapes through symbols, and a fast path that
   * needs a static size (a private array) can size it by this bound and loop to the real value.
   */
  readonly bound?: (d: Dim) => number | undefined;
}

/** What an elementwise op's scalar rule sees. */
export interface PointwiseCtx {
  readonly attrs: Attrs;
  /** IR dtypes of the inputs (null for absent optionals) and of the output. */
  readonly inputs: readonly (DType | null)[];
  readonly output: DType;
  readonly target: Target;
  attr<T extends AttrValue>(name: string): T;
  optAttr<T extends AttrValue>(name: string): T | undefined;
  fail(message: string): never;
}

/**
 * Everything about one op, declared once: ports, attribute schema, symbolic shape/type
 * inference and the reference semantics every backend is checked against.
 */
export interface OpDef {
  readonly name: string;
  readonly doc: string;
  readonly inputs: readonly PortSpec[];
  readonly outputs: readonly PortSpec[];
  readonly attrs: AttrSchema;
  /** Output types, one per output of the node. Throws (via ctx.fail) on invalid use. */
  infer(ctx: InferCtx): TensorType[];
  /** The executable spec: computes outputs from concrete inputs (null for absent optionals). */
  reference(inputs: readonly (Tensor | null)[], ctx: RefCtx): Tensor[];
  /**
   * Compile-time evaluation over known small integer values (shape arithmetic); returns the
   * element values of output 0, or undefined when they cannot be known.
   */
  symbolic?(ctx: InferCtx): readonly Dim[] | undefined;
  /** Multiply-add count ×2 (or elementwise op count) for reports; inputs/outputs are inferred types. */
  flops?(ctx: InferCtx, outputs: readonly TensorType[]): Dim;
  /** Ops with no side effects and deterministic results may be constant-folded and removed when dead. */
  readonly pure?: boolean;
  /**
   * Elementwise ops (one output, numpy broadcasting of inputs): output element from the input
   * elements, already loaded in register types (`registerType`). Chains of these fuse into one kernel.
   */
  pointwise?(args: readonly Expr[], ctx: PointwiseCtx): Expr;
  /** Reads only its inputs' types (dims), never their data (Shape): its kernels bind no input. */
  readonly typeOnly?: boolean;
  /** Output 0 is input 0's elements in the same row-major order (Reshape...): no kernel, shared storage. */
  readonly view?: boolean;
  /** Kernels computing the outputs from the inputs (ops that are not pointwise or views). */
  lower?(ctx: LowerCtx): Lowering;
  /**
   * `lower` with a pointwise epilogue applied to output 0 before it is stored (see `Epilogue`):
   * the scheduler fuses following bias / activation / residual chains into such ops' kernels.
   */
  lowerEpilogue?(ctx: LowerCtx, epilogue: Epilogue): Lowering;
  /**
   * Inputs whose lowering reads through `LowerCtx.inputViews`: the scheduler may bind the base of
   * a Transpose / Slice / Reshape chain there instead of materialising the chain (kir/views.ts).
   */
  readonly stridedInputs?: readonly number[];
  /** The lowering stores output 0 through `LowerCtx.outputView` when given (kir/views.ts). */
  readonly stridedOutput?: boolean;
  /**
   * Attributes (of a node with these attrs) that the lowering never reads because it derives them
   * from the dims (tokens.merge `r` = input rows - output rows): generic kernels (kir/generic.ts)
   * leave them out of the class key, so layers that differ only there share one kernel.
   */
  attrsFromDims?(attrs: Attrs): readonly string[];
}

const REGISTRY = new Map<string, OpDef>();

export function registerOp(def: OpDef): OpDef {
  if (REGISTRY.has(def.name)) throw new Error(`op '${def.name}' is defined twice`);
  const variadic = def.inputs.findIndex((p) => p.variadic);
  if (variadic >= 0 && variadic !== def.inputs.length - 1)
    throw new Error(`op '${def.name}': only the last input may be variadic`);
  REGISTRY.set(def.name, def);
  return def;
}

export function getOp(name: string): OpDef | undefined {
  return REGISTRY.get(name);
}

export function allOps(): readonly OpDef[] {
  return [...REGISTRY.values()];
}

/** A RefCtx for an op definition and attrs. */
export function refCtx(def: OpDef, attrs: Attrs, numOutputs: number, env?: DimEnv): RefCtx {
  return {
    attrs,
    numOutputs,
    ...(env ? { env } : {}),
    attr: <T extends AttrValue>(name: string) => attr<T>(def.attrs, attrs, name),
    optAttr: <T extends AttrValue>(name: string) => optAttr<T>(def.attrs, attrs, name),
  };
}

/** Checks the number of inputs/outputs against the op's ports; returns problems. */
export function checkArity(def: OpDef, numInputs: number, numOutputs: number): string[] {
  const errs: string[] = [];
  const req = (ps: readonly PortSpec[]) => ps.filter((p) => !p.optional && !p.variadic).length;
  const variadic = def.inputs.some((p) => p.variadic);
  if (numInputs < req(def.inputs))
    errs.push(`${def.name} needs at least ${req(def.inputs)} inputs, got ${numInputs}`);
  if (!variadic && numInputs > def.inputs.length)
    errs.push(`${def.name} takes at most ${def.inputs.length} inputs, got ${numInputs}`);
  if (numOutputs < req(def.outputs))
    errs.push(`${def.name} needs at least ${req(def.outputs)} outputs, got ${numOutputs}`);
  if (!def.outputs.some((p) => p.variadic) && numOutputs > def.outputs.length)
    errs.push(`${def.name} has at most ${def.outputs.length} outputs, got ${numOutputs}`);
  return errs;
}
