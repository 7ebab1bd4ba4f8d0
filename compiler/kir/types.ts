import type { DType } from "../ir/dtype.js";
import type { Dim } from "../ir/sym.js";
import type { TensorType } from "../ir/types.js";
import type { KernelBuilder } from "./builder.js";

/**
 * Kernel IR (KIR): the closed set of primitives every op lowers to and every GPU backend renders.
 *
 * A kernel is one compute dispatch: a workgroup size, a grid of workgroups (symbolic, evaluated
 * by the runtime from the run's symbol bindings), storage buffer parameters, workgroup/private
 * arrays and a body of statements executed by every invocation. Graph symbols (token counts,
 * batch) appear in expressions as `sym` leaves; backends pass them as uniforms, so one compiled
 * kernel serves every binding. Index arithmetic is i32; integer `div`/`mod` truncate toward zero
 * (C semantics) and are only used on non-negative operands by the lowerings.
 */

/**
 * Register/storage element types. Storage of IR `bool` is u32 (0/1); IR i64 lives as i32 on devices.
 * `bf16` (CUDA only, `Target.bf16`) holds IR f32 tensors; like f16, each operation rounds its result.
 */
export type KType = "f32" | "f16" | "bf16" | "i32" | "u32" | "bool";

/** Float register types (arithmetic runs in float and rounds to the type). */
export function isFloatKType(t: KType): t is "f32" | "f16" | "bf16" {
  return t === "f32" || t === "f16" || t === "bf16";
}

export const UNARY_OPS = [
  "neg",
  "abs",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "tanh",
  "erf",
  "floor",
  "ceil",
  "not",
] as const;
export type UnOp = (typeof UNARY_OPS)[number];

export const BINARY_OPS = [
  "add",
  "sub",
  "mul",
  "div",
  "mod",
  "min",
  "max",
  "pow",
  "lt",
  "le",
  "gt",
  "ge",
  "eq",
  "ne",
  "and",
  "or",
] as const;
export type BinOp = (typeof BINARY_OPS)[number];

/** Comparison and logic ops produce `bool`. */
export const BOOL_RESULT: ReadonlySet<BinOp> = new Set(["lt", "le", "gt", "ge", "eq", "ne", "and", "or"]);

/** Per-invocation indices (all i32). `global_id = group_id * workgroup_size + local_id` per axis. */
export const BUILTINS = [
  "global_id",
  "local_id",
  "group_id",
  "num_groups",
  "subgroup_size",
  "subgroup_lane",
] as const;
export type Builtin = (typeof BUILTINS)[number];

/** Subgroup (warp) collectives over the active lanes of the invocation's subgroup. */
export const SUBGROUP_OPS = ["add", "max", "min", "shuffle_xor"] as const;
export type SubgroupOp = (typeof SUBGROUP_OPS)[number];

export type Expr =
  | { readonly k: "const"; readonly t: KType; readonly v: number }
  /** A graph symbol's value in this run (i32); rendered as a uniform. */
  | { readonly k: "sym"; readonly t: "i32"; readonly name: string }
  | { readonly k: "var"; readonly t: KType; readonly name: string }
  | { readonly k: "builtin"; readonly t: "i32"; readonly name: Builtin; readonly axis: 0 | 1 | 2 }
  | { readonly k: "unary"; readonly t: KType; readonly op: UnOp; readonly a: Expr }
  | { readonly k: "binary"; readonly t: KType; readonly op: BinOp; readonly a: Expr; readonly b: Expr }
  /** `cond ? a : b`; both arms are evaluated (no side effects in expressions). */
  | { readonly k: "select"; readonly t: KType; readonly cond: Expr; readonly a: Expr; readonly b: Expr }
  | { readonly k: "cast"; readonly t: KType; readonly a: Expr }
  /** Element `index` of a buffer parameter or a workgroup/private array. */
  | { readonly k: "load"; readonly t: KType; readonly array: string; readonly index: Expr }
  /** `shuffle_xor` reads lane `lane ^ mask` (mask in `arg`); the reductions ignore `arg`. */
  | {
      readonly k: "subgroup";
      readonly t: KType;
      readonly op: SubgroupOp;
      readonly a: Expr;
      readonly arg?: Expr;
    };

export type Stmt =
  /** Declares a register; `mut: false` means assigned once (WGSL `let`, CUDA `const`). */
  | {
      readonly k: "decl";
      readonly name: string;
      readonly t: KType;
      readonly init: Expr;
      readonly mut: boolean;
    }
  | { readonly k: "assign"; readonly name: string; readonly value: Expr }
  | { readonly k: "store"; readonly array: string; readonly index: Expr; readonly value: Expr }
  | { readonly k: "if"; readonly cond: Expr; readonly then: readonly Stmt[]; readonly else: readonly Stmt[] }
  /** `for (v = from; v < to; v += step)` over i32; `v` is read-only in the body. */
  | {
      readonly k: "for";
      readonly v: string;
      readonly from: Expr;
      readonly to: Expr;
      readonly step: number;
      readonly body: readonly Stmt[];
    }
  /** Workgroup barrier: all invocations of the workgroup reach it (uniform control flow required). */
  | { readonly k: "barrier" }
  | { readonly k: "break" }
  /** Ends this invocation. Not allowed before a barrier that other invocations still reach. */
  | { readonly k: "return" };

/** A storage buffer parameter, in binding order. */
export interface BufferParam {
  readonly name: string;
  /** Element type in storage (never `bool`: bool tensors are u32 0/1). */
  readonly t: Exclude<KType, "bool">;
  readonly access: "read" | "read_write";
}

/** Workgroup-shared (one per workgroup) or private (one per invocation) array of static size. */
export interface LocalArray {
  readonly name: string;
  readonly t: KType;
  readonly size: number;
  readonly scope: "workgroup" | "private";
}

export type Feature = "subgroups" | "f16";

export interface Kernel {
  /** Unique within a program; a valid identifier. */
  readonly name: string;
  readonly workgroupSize: readonly [number, number, number];
  /** Workgroups per axis, over graph symbols; each must evaluate to 1..65535. */
  readonly grid: readonly [Dim, Dim, Dim];
  readonly params: readonly BufferParam[];
  readonly arrays: readonly LocalArray[];
  readonly body: readonly Stmt[];
  readonly features: readonly Feature[];
}

/** What a kernel parameter is bound to when an op's lowering is launched. */
export type Binding =
  | { readonly kind: "input"; readonly index: number }
  | { readonly kind: "output"; readonly index: number }
  | { readonly kind: "scratch"; readonly name: string };

/** One dispatch of a lowering: a kernel and one binding per parameter (same order). */
export interface Launch {
  readonly kernel: Kernel;
  readonly args: readonly Binding[];
}

/** A temporary buffer that lives for the duration of one node's launches. */
export interface Scratch {
  readonly name: string;
  readonly t: Exclude<KType, "bool">;
  /** Elements. */
  readonly size: Dim;
}

/** An op's lowering: dispatched in order; scratch buffers are allocated by the runtime. */
export interface Lowering {
  readonly launches: readonly Launch[];
  readonly scratch: readonly Scratch[];
}

/** Where an epilogue runs: output 0's flat element index, and its coordinates on demand. */
export interface EpilogueSite {
  readonly flat: Expr;
  /** Coordinates in output 0's dims; emits index arithmetic, so call only when needed. */
  coords(): readonly Expr[];
}

/**
 * A pointwise continuation a lowering applies to each element of its output 0 before storing it:
 * the scheduler fuses a MatMul's bias / activation / residual chain this way (`OpDef.lowerEpilogue`,
 * docs/backends.md "Scheduling"). Output 0's binding then receives the chain's result.
 */
export interface Epilogue {
  /** Extra tensors the chain reads; the lowering binds them as `{ kind: "input", index: ctx.inputs.length + j }`. */
  readonly inputs: readonly TensorType[];
  /** IR dtype of the stored result (output 0's dims are unchanged). */
  readonly dtype: DType;
  /**
   * Declares the chain's buffers on `kb` (after the lowering's own inputs, before its outputs, in
   * `inputs` order) and returns the rule: output 0's value in its register type at `site` -> the
   * value to store, in the register type of `dtype`. Call the rule inside the element's scope.
   */
  setup(kb: KernelBuilder): (value: Expr, site: EpilogueSite) => Expr;
}

/** What the lowering may assume about the device (filled from the adapter or a compile option). */
export interface Target {
  /** Store and compute IR f16 tensors as f16 (else as f32). */
  readonly f16: boolean;
  /**
   * Store and compute IR f32 tensors as bf16 (CUDA's `--bf16`; WGSL has no bf16 and refuses it).
   * Lowerings still accumulate in f32; absent means false.
   */
  readonly bf16?: boolean;
  readonly subgroups: boolean;
  /** Lanes per subgroup when `subgroups` (lavapipe 8, NVIDIA 32); lowerings must not rely on more. */
  readonly subgroupSize: number;
  readonly maxWorkgroupInvocations: number;
  readonly maxWorkgroupStorageBytes: number;
  readonly maxStorageBuffersPerStage: number;
  /**
   * Largest storage binding in bytes (WebGPU `maxStorageBufferBindingSize`). The scheduler splits
   * units binding more into chunks on offset views (compiler/kir/split.ts); CUDA has no such limit.
   */
  readonly maxStorageBindingBytes: number;
  /** Matmul style: register blocking without workgroup memory (CPU drivers) or workgroup tiling. */
  readonly matmul: "register" | "tiled";
  /**
   * The matmul kernel variant by name (`MATMUL_VARIANTS` in compiler/ops/linalg-lower.ts, of the
   * `matmul` style), as the autotuner chose it; absent means the style's default.
   */
  readonly matmulVariant?: string;
}

/** A conservative target every WebGPU device satisfies (the WebGPU default limits). */
export const DEFAULT_TARGET: Target = {
  f16: false,
  subgroups: false,
  subgroupSize: 4,
  maxWorkgroupInvocations: 256,
  maxWorkgroupStorageBytes: 16384,
  maxStorageBuffersPerStage: 8,
  maxStorageBindingBytes: 128 * 1024 * 1024,
  matmul: "register",
};

const STORAGE_BYTES: Readonly<Record<Exclude<KType, "bool">, number>> = {
  f32: 4,
  f16: 2,
  bf16: 2,
  i32: 4,
  u32: 4,
};

/** Bytes per element of a storage type (what buffer sizes and binding offsets count in). */
export function elementBytes(t: Exclude<KType, "bool">): number {
  return STORAGE_BYTES[t];
}

/** The device element type of an IR dtype (storage form; bool is u32). */
export function storageType(d: DType, target: Target): Exclude<KType, "bool"> {
  switch (d) {
    case "f32":
      return target.bf16 ? "bf16" : "f32";
    case "f64":
      return "f32";
    case "f16":
      return target.f16 ? "f16" : "f32";
    case "i32":
    case "i64":
    case "i8":
    case "u8":
      return "i32";
    case "bool":
      return "u32";
  }
}

/** The register type in which a kernel computes with values of an IR dtype. */
export function registerType(d: DType, target: Target): KType {
  return d === "bool" ? "bool" : storageType(d, target);
}
