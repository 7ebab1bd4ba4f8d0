import { kernelSymbols } from "../../compiler/kir/builder.js";
import {
  type BinOp,
  type Builtin,
  type Expr,
  isFloatKType,
  type KType,
  type Kernel,
  type LocalArray,
  type Stmt,
  type SubgroupOp,
  type UnOp,
} from "../../compiler/kir/types.js";
import { someInBody } from "../kir-walk.js";
import { PRELUDE } from "./prelude.js";
import { pruneDeadRegisters } from "./prune.js";

/**
 * KIR -> CUDA C++. Every kernel becomes `extern "C" __global__ void tokr_<name>(buffers..., int
 * symbols...)` plus a host launcher `tokr_launch_<name>(grid, bufs, syms, stream)` and a row in
 * `tokr_kernel_table`. The same text compiles with nvcc and, through cuda_cpu.h, with g++.
 * f16/bf16 values are `__half`/`__nv_bfloat16` in storage and registers; arithmetic on them runs in
 * float and rounds back after every operation.
 */

export class CudaRenderError extends Error {}

/** Lanes per warp: subgroup ops render as full-mask butterflies over this many lanes. */
export const WARP_SIZE = 32;

const CTYPE: Record<KType, string> = {
  f32: "float",
  f16: "__half",
  bf16: "__nv_bfloat16",
  i32: "int",
  u32: "unsigned",
  bool: "bool",
};

const isFloat = isFloatKType;
/** 16-bit floats: stored as `__half` / `__nv_bfloat16`, computed in float, rounded back per operation. */
const isHalf = (t: KType): t is "f16" | "bf16" => t === "f16" || t === "bf16";
const TO_HALF = { f16: "__float2half_rn", bf16: "__float2bfloat16_rn" } as const;
const FROM_HALF = { f16: "__half2float", bf16: "__bfloat162float" } as const;

/** Float-domain spellings of the unary primitives (operand already a float or integer expr). */
const UNARY: Record<UnOp, (a: string, t: KType) => string> = {
  neg: (a) => `(-${a})`,
  abs: (a, t) => (isFloat(t) ? `fabsf(${a})` : `abs(${a})`),
  exp: (a) => `expf(${a})`,
  log: (a) => `logf(${a})`,
  sqrt: (a) => `sqrtf(${a})`,
  rsqrt: (a) => `rsqrtf(${a})`,
  tanh: (a) => `tanhf(${a})`,
  erf: (a) => `erff(${a})`,
  floor: (a) => `floorf(${a})`,
  ceil: (a) => `ceilf(${a})`,
  not: (a) => `(!${a})`,
};

const infix =
  (op: string) =>
  (a: string, b: string): string =>
    `(${a} ${op} ${b})`;

/** Binary primitives; `t` is the operand type (f16 operands arrive converted to float). */
const BINARY: Record<BinOp, (a: string, b: string, t: KType) => string> = {
  add: infix("+"),
  sub: infix("-"),
  mul: infix("*"),
  div: infix("/"),
  mod: (a, b, t) => (isFloat(t) ? `fmodf(${a}, ${b})` : `(${a} % ${b})`),
  min: (a, b, t) => (isFloat(t) ? `tk_fmin(${a}, ${b})` : `min(${a}, ${b})`),
  max: (a, b, t) => (isFloat(t) ? `tk_fmax(${a}, ${b})` : `max(${a}, ${b})`),
  pow: (a, b) => `powf(${a}, ${b})`,
  lt: infix("<"),
  le: infix("<="),
  gt: infix(">"),
  ge: infix(">="),
  eq: infix("=="),
  ne: infix("!="),
  and: infix("&&"),
  or: infix("||"),
};

const AXIS = ["x", "y", "z"] as const;

const BUILTIN: Record<Builtin, (axis: 0 | 1 | 2) => string> = {
  global_id: (a) => `(int)(blockIdx.${AXIS[a]} * blockDim.${AXIS[a]} + threadIdx.${AXIS[a]})`,
  local_id: (a) => `(int)threadIdx.${AXIS[a]}`,
  group_id: (a) => `(int)blockIdx.${AXIS[a]}`,
  num_groups: (a) => `(int)gridDim.${AXIS[a]}`,
  subgroup_size: () => `${WARP_SIZE}`,
  subgroup_lane: () => `(tk_linear_tid() & ${WARP_SIZE - 1})`,
};

const SUBGROUP: Record<SubgroupOp, string> = {
  add: "tk_warp_add",
  max: "tk_warp_max",
  min: "tk_warp_min",
  shuffle_xor: "tk_shfl_xor",
};

/** A C float literal that reads back as the same f32 value (9 significant digits round-trip). */
function floatLit(v: number): string {
  if (Number.isNaN(v)) return "__int_as_float(0x7fffffff)";
  if (v === Infinity) return "__int_as_float(0x7f800000)";
  if (v === -Infinity) return "(-__int_as_float(0x7f800000))";
  const f = Math.fround(v);
  if (Object.is(f, -0)) return "-0.0f";
  if (Number.isInteger(f) && Math.abs(f) < 1e9) return `${f}.0f`;
  for (let p = 1; ; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f || p >= 9) return `${s}f`;
  }
}

/** A constant zero, possibly cast (a static zero-sized count). */
function isZeroLiteral(e: Expr): boolean {
  return (e.k === "const" && e.v === 0) || (e.k === "cast" && isZeroLiteral(e.a));
}

function constLit(t: KType, v: number): string {
  switch (t) {
    case "f32":
      return floatLit(v);
    case "f16":
    case "bf16":
      return `${TO_HALF[t]}(${floatLit(v)})`;
    case "i32":
      return v === -(2 ** 31) ? "(-2147483647 - 1)" : v < 0 ? `(${v})` : `${v}`;
    case "u32":
      return `${v}u`;
    case "bool":
      return v ? "true" : "false";
  }
}

/** Names of one kernel: KIR names get a `_` suffix so they never meet C++ or CUDA identifiers. */
class Names {
  readonly syms: readonly string[];
  constructor(readonly kernel: Kernel) {
    this.syms = kernelSymbols(kernel);
  }
  v(name: string): string {
    return `${name}_`;
  }
  sym(name: string): string {
    return `s_${name}`;
  }
}

class KernelRenderer {
  private readonly lines: string[] = [];
  private readonly arrayTypes = new Map<string, KType>();

  constructor(
    private readonly k: Kernel,
    private readonly n: Names,
  ) {
    for (const p of k.params) this.arrayTypes.set(p.name, p.t);
    for (const a of k.arrays) this.arrayTypes.set(a.name, a.t);
  }

  /** An expression as its own type (f16 as __half). */
  expr(e: Expr): string {
    switch (e.k) {
      case "const":
        return constLit(e.t, e.v);
      case "sym":
        return this.n.sym(e.name);
      case "var":
        return this.n.v(e.name);
      case "builtin":
        return BUILTIN[e.name](e.axis);
      case "unary":
        return this.rounded(e.t, UNARY[e.op](this.asFloat(e.a), e.a.t));
      case "binary": {
        if ((e.op === "div" || e.op === "mod") && !isFloat(e.t) && e.b.k === "const" && e.b.v === 0)
          return `tk_div_by_zero<${CTYPE[e.t]}>()`;
        // x / 0.0 is IEEE (inf or NaN, like the interpreter), but nvcc rejects a literal zero divisor.
        if (e.op === "div" && isFloat(e.t) && isZeroLiteral(e.b)) {
          return this.rounded(e.t, `(${this.asFloat(e.a)} / tk_fzero())`);
        }
        return this.rounded(e.t, BINARY[e.op](this.asFloat(e.a), this.asFloat(e.b), e.a.t));
      }
      case "select":
        return `(${this.expr(e.cond)} ? ${this.expr(e.a)} : ${this.expr(e.b)})`;
      case "cast":
        return this.cast(e.a, e.t);
      case "load":
        if (!this.arrayTypes.has(e.array))
          throw new CudaRenderError(`kernel ${this.k.name}: load from unknown array '${e.array}'`);
        return `${this.n.v(e.array)}[${this.expr(e.index)}]`;
      case "subgroup":
        return e.op === "shuffle_xor"
          ? `${SUBGROUP[e.op]}(${this.expr(e.a)}, ${this.expr(e.arg!)})`
          : `${SUBGROUP[e.op]}(${this.expr(e.a)})`;
    }
  }

  /** Floats in the float domain: f16/bf16 operands are widened, everything else as is. */
  private asFloat(e: Expr): string {
    return isHalf(e.t) ? `${FROM_HALF[e.t]}(${this.expr(e)})` : this.expr(e);
  }

  /** A result of type `t` from its float-domain (or integer) expression. */
  private rounded(t: KType, floatExpr: string): string {
    return isHalf(t) ? `${TO_HALF[t]}(${floatExpr})` : floatExpr;
  }

  private cast(a: Expr, t: KType): string {
    if (t === "bool") return `(${this.asFloat(a)} != 0)`;
    if (isHalf(t)) return `${TO_HALF[t]}((float)${this.asFloat(a)})`;
    if (isFloat(a.t) && (t === "i32" || t === "u32"))
      return `${t === "i32" ? "tk_f2i" : "tk_f2u"}(${this.asFloat(a)})`;
    return `((${CTYPE[t]})${this.asFloat(a)})`;
  }

  private emit(depth: number, s: string): void {
    this.lines.push(`${"  ".repeat(depth)}${s}`);
  }

  stmts(ss: readonly Stmt[], d: number): void {
    for (const s of ss) this.stmt(s, d);
  }

  private stmt(s: Stmt, d: number): void {
    switch (s.k) {
      case "decl":
        this.emit(d, `${s.mut ? "" : "const "}${CTYPE[s.t]} ${this.n.v(s.name)} = ${this.expr(s.init)};`);
        return;
      case "assign":
        this.emit(d, `${this.n.v(s.name)} = ${this.expr(s.value)};`);
        return;
      case "store":
        if (!this.arrayTypes.has(s.array))
          throw new CudaRenderError(`kernel ${this.k.name}: store to unknown array '${s.array}'`);
        this.emit(d, `${this.n.v(s.array)}[${this.expr(s.index)}] = ${this.expr(s.value)};`);
        return;
      case "if":
        this.emit(d, `if (${this.expr(s.cond)}) {`);
        this.stmts(s.then, d + 1);
        if (s.else.length > 0) {
          this.emit(d, "} else {");
          this.stmts(s.else, d + 1);
        }
        this.emit(d, "}");
        return;
      case "for": {
        const v = this.n.v(s.v);
        this.emit(d, `for (int ${v} = ${this.expr(s.from)}; ${v} < ${this.expr(s.to)}; ${v} += ${s.step}) {`);
        this.stmts(s.body, d + 1);
        this.emit(d, "}");
        return;
      }
      case "barrier":
        this.emit(d, "__syncthreads();");
        return;
      case "break":
        this.emit(d, "break;");
        return;
      case "return":
        this.emit(d, "return;");
        return;
    }
  }

  array(a: LocalArray): string {
    return `${a.scope === "workgroup" ? "__shared__ " : ""}${CTYPE[a.t]} ${this.n.v(a.name)}[${a.size}];`;
  }

  text(): string {
    return this.lines.join("\n");
  }
}

/** What a kernel needs from the device: barriers or warp collectives (fiber scheduling on the CPU). */
export function kernelSyncs(k: Kernel): boolean {
  return someInBody(k.body, { stmt: (s) => s.k === "barrier", expr: (e) => e.k === "subgroup" });
}

/** Layout of a rendered kernel's arguments, for launchers and runtimes. */
export interface CudaKernelInfo {
  readonly name: string;
  /** The `__global__` function (PTX entry) name. */
  readonly entry: string;
  readonly launcher: string;
  readonly block: readonly [number, number, number];
  /** Buffer parameters in argument order, then symbol values (i32) in `symbols` order. */
  readonly params: readonly { readonly name: string; readonly t: string; readonly access: string }[];
  readonly symbols: readonly string[];
  /** Static shared memory in bytes. */
  readonly sharedBytes: number;
  readonly syncs: boolean;
}

const BYTES: Record<KType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u32: 4, bool: 1 };

function validate(k: Kernel): void {
  const [x, y, z] = k.workgroupSize;
  const threads = x * y * z;
  if (threads < 1 || threads > 1024 || z > 64)
    throw new CudaRenderError(
      `kernel ${k.name}: block ${x}x${y}x${z} exceeds CUDA limits (1024 threads, z<=64)`,
    );
  if (k.features.includes("subgroups") && threads % WARP_SIZE !== 0)
    throw new CudaRenderError(
      `kernel ${k.name}: uses subgroup ops with ${threads} threads per block; full-mask warp ops need a multiple of ${WARP_SIZE}`,
    );
}

/** Renders one kernel: the `__global__` function and its launcher. */
export function renderKernel(k: Kernel): { source: string; info: CudaKernelInfo } {
  validate(k);
  const n = new Names(k);
  const r = new KernelRenderer(k, n);
  const entry = `tokr_${k.name}`;
  const launcher = `tokr_launch_${k.name}`;
  const syncs = kernelSyncs(k);
  const args = [
    ...k.params.map((p) => `${p.access === "read" ? "const " : ""}${CTYPE[p.t]}* ${n.v(p.name)}`),
    ...n.syms.map((s) => `int ${n.sym(s)}`),
  ];
  const [bx, by, bz] = k.workgroupSize;
  const out: string[] = [];
  out.push(`// kernel ${k.name}: block ${bx}x${by}x${bz}${syncs ? ", synchronising" : ""}`);
  out.push(`extern "C" __global__ void __launch_bounds__(${bx * by * bz}) ${entry}(${args.join(", ")}) {`);
  for (const a of k.arrays) out.push(`  ${r.array(a)}`);
  r.stmts(pruneDeadRegisters(k.body), 1);
  out.push(r.text());
  out.push("}");
  const callArgs = [
    ...k.params.map((p, i) => `(${p.access === "read" ? "const " : ""}${CTYPE[p.t]}*)bufs[${i}]`),
    ...n.syms.map((_, i) => `syms[${i}]`),
  ];
  out.push(
    `extern "C" int ${launcher}(const unsigned* grid, void* const* bufs, const int* syms, void* stream) {`,
    `  (void)bufs, (void)syms;`,
    `  if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0) return 0;  // empty launch (a zero-sized symbol)`,
    `  return TOKR_LAUNCH(${syncs}, ${entry}, dim3(grid[0], grid[1], grid[2]), dim3(${bx}, ${by}, ${bz}), stream${callArgs.map((a) => `, ${a}`).join("")});`,
    "}",
  );
  const sharedBytes = k.arrays
    .filter((a) => a.scope === "workgroup")
    .reduce((s, a) => s + a.size * BYTES[a.t], 0);
  return {
    source: out.join("\n"),
    info: {
      name: k.name,
      entry,
      launcher,
      block: [bx, by, bz],
      params: k.params.map((p) => ({ name: p.name, t: p.t, access: p.access })),
      symbols: n.syms,
      sharedBytes,
      syncs,
    },
  };
}

/** A translation unit: prelude, kernels, launchers and the kernel table. Deterministic. */
export function renderModule(
  kernels: readonly Kernel[],
  title = "tokr kernels",
): {
  source: string;
  kernels: CudaKernelInfo[];
} {
  const seen = new Set<string>();
  const parts: string[] = [`// ${title}: generated by tokr (backends/cuda/render.ts); do not edit.`, PRELUDE];
  const infos: CudaKernelInfo[] = [];
  for (const k of kernels) {
    if (seen.has(k.name)) throw new CudaRenderError(`duplicate kernel name '${k.name}'`);
    seen.add(k.name);
    const r = renderKernel(k);
    parts.push(r.source);
    infos.push(r.info);
  }
  const rows = infos.map((i) => `  {"${i.name}", ${i.launcher}, ${i.params.length}, ${i.symbols.length}},`);
  parts.push(
    `extern "C" const tokr_kernel_info tokr_kernel_table[] = {\n${rows.join("\n")}\n  {nullptr, nullptr, 0, 0},\n};`,
  );
  return { source: parts.join("\n\n") + "\n", kernels: infos };
}
